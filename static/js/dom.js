// Small DOM helpers. Text always goes in through textContent / text nodes: never innerHTML.

/**
 * Create an element. `attrs` keys:
 *   class, text (textContent), hidden, on: {event: handler}, dataset: {...},
 *   testid (data-testid), any other key becomes an attribute (skipped when null/false).
 * Children may be nodes, strings (text nodes), numbers, arrays, null/undefined/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "hidden") el.hidden = Boolean(value);
    else if (key === "testid") el.setAttribute("data-testid", value);
    else if (key === "on") {
      for (const [name, handler] of Object.entries(value)) el.addEventListener(name, handler);
    } else if (key === "dataset") {
      for (const [name, v] of Object.entries(value)) el.dataset[name] = String(v);
    } else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Set textContent only when it changes (keeps screen readers and selections calm). */
export function setText(el, text) {
  const value = text === null || text === undefined ? "" : String(text);
  if (el.textContent !== value) el.textContent = value;
}

export function show(el, visible) {
  if (el.hidden === Boolean(visible)) el.hidden = !visible;
}

/**
 * Keyed list reconciliation: make `container`'s children one element per item, in order,
 * reusing the element made earlier for the same key (so focus stays on a reused button).
 * `create(item)` returns a new element; `update(el, item)` refreshes it.
 */
export function syncList(container, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of Array.from(container.children)) {
    if (child.dataset.key !== undefined) existing.set(child.dataset.key, child);
    else child.remove();
  }
  let cursor = container.firstElementChild;
  for (const item of items) {
    const key = String(keyOf(item));
    let el = existing.get(key);
    if (el) existing.delete(key);
    else {
      el = create(item);
      el.dataset.key = key;
    }
    update(el, item);
    if (el !== cursor) container.insertBefore(el, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const el of existing.values()) el.remove();
}

/** A visually hidden live region that reads out short sentences. */
export class Announcer {
  constructor(parent) {
    this.el = h("div", { class: "visually-hidden", "aria-live": "polite", "aria-atomic": "false" });
    parent.append(this.el);
  }

  say(text) {
    const line = h("p", { text });
    this.el.append(line);
    while (this.el.childElementCount > 5) this.el.firstElementChild.remove();
  }
}

/** Copy text to the clipboard; falls back to selecting a hidden textarea. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the old way
  }
  const area = h("textarea", { class: "visually-hidden", readonly: true });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}
