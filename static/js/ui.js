// Pieces shared by the player's table and the host console: the status bar, notices, proposal
// cards, count results, the chat and the activity log.

import { ANNOUNCED, describe, Names } from "./describe.js";
import { h, replace, setText, show, syncList } from "./dom.js";
import { beats, clock, fmt, PHASES, ROUND_RESULTS, ruleText, utility, valuesDict } from "./model.js";

let uid = 0;
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** An error line near a control: always in the DOM (so role=alert is read out), empty when fine. */
export function errorLine(testid) {
  return h("p", { class: "field-error", role: "alert", testid });
}

export function showError(el, message) {
  setText(el, message || "");
}

/**
 * Send a command from a button: the button is marked busy (not disabled, so keyboard focus
 * stays on it) until the server answers; a refusal's message goes to `errorEl`.
 */
export async function act(conn, button, errorEl, name, args = {}) {
  if (button && button.getAttribute("aria-busy") === "true") return false;
  if (button) button.setAttribute("aria-busy", "true");
  if (errorEl) showError(errorEl, "");
  try {
    await conn.command(name, args);
    return true;
  } catch (error) {
    if (errorEl) showError(errorEl, error.message || "The game refused that.");
    return false;
  } finally {
    if (button) button.removeAttribute("aria-busy");
  }
}

export function button(text, attrs = {}) {
  return h("button", { type: "button", class: "button", ...attrs }, text);
}

/** A small table of a text's values: one row per issue. */
export function valuesTable(scenario, values, { caption } = {}) {
  const dict = valuesDict(scenario, values);
  return h(
    "table",
    { class: "values" },
    caption ? h("caption", { class: "visually-hidden", text: caption }) : null,
    h(
      "tbody",
      {},
      scenario.issues.map((issue) =>
        h(
          "tr",
          {},
          h("th", { scope: "row", text: issue.label }),
          h("td", { class: "num" }, h("strong", { text: fmt(dict[issue.key]) })),
        ),
      ),
    ),
  );
}

/** "Worth 75 to you: more than your bottom line of 60." with a good/bad class, or null. */
export function verdict(state, values, transfer = 0) {
  const me = state.me;
  if (!me.seat || !me.ideal) return null;
  const u = utility(state.scenario, me, values);
  const good = beats(u, me.reservation, transfer);
  const worth = transfer
    ? `Worth ${fmt(u, 1)} + ${fmt(transfer)} side payment = ${fmt(u + transfer, 1)} to you`
    : `Worth ${fmt(u, 1)} to you`;
  const text = good
    ? `${worth}: more than your bottom line of ${fmt(me.reservation, 1)}.`
    : `${worth}: not more than your bottom line of ${fmt(me.reservation, 1)}.`;
  return { u, good, text };
}

export function verdictLine(state, values, transfer = 0, testid = null) {
  const v = verdict(state, values, transfer);
  if (!v) return null;
  return h("p", { class: `verdict ${v.good ? "verdict--good" : "verdict--bad"}`, testid }, v.text);
}

/** Whether each country would ratify `values` if every constituent voted sincerely (host). */
export function ratifyForecast(state, values) {
  const out = [];
  for (const country of state.scenario.countries || []) {
    let yes = 0;
    let total = 0;
    let vetoed = false;
    let known = true;
    for (const m of country.constituents) {
      if (!m.ideal) {
        known = false;
        break;
      }
      const t = transferTo(state, m.key);
      const w = Number(m.weight ?? 1) || quotaValue(m.weight);
      total += w;
      const votesYes = beats(utility(state.scenario, m, values), m.reservation, t);
      if (votesYes) yes += w;
      else if (m.veto) vetoed = true;
    }
    if (!known) continue;
    const q = quotaValue(country.ratification.quota);
    const strict = country.ratification.strict !== false;
    const met = strict ? yes - q * total > 1e-9 : yes - q * total >= -1e-9;
    const chief = country.chief;
    const chiefU = chief.ideal ? utility(state.scenario, chief, values) : null;
    out.push({
      country,
      ratifies: met && !vetoed,
      yes,
      total,
      chiefU,
      chiefOk: chiefU === null ? null : beats(chiefU, chief.reservation),
    });
  }
  return out;
}

function quotaValue(q) {
  if (typeof q === "number") return q;
  const parts = String(q).split("/");
  return parts.length === 2 ? Number(parts[0]) / Number(parts[1]) : Number(q);
}

/** Side payments promised to a seat, as the viewer knows them. */
export function transferTo(state, key) {
  const offers = state.offers || {};
  if (state.me.role === "instructor") {
    let sum = 0;
    for (const book of Object.values(offers)) sum += Number(book[key] || 0);
    return sum;
  }
  if (key === state.me.seat && offers.received) {
    return Object.values(offers.received).reduce((a, b) => a + Number(b), 0);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Status bar

const CONNECTION_TEXT = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting",
  offline: "Offline",
  gone: "This game no longer exists",
};

export class StatusBar {
  constructor({ clockSkew = 0, announcer = null } = {}) {
    this.skew = clockSkew;
    this.announcer = announcer;
    this.phase = h("span", { class: "status__phase", testid: "phase" });
    this.round = h("span", { class: "status__round", testid: "round" });
    this.timer = h("span", { class: "status__timer", role: "timer", testid: "timer" });
    this.connection = h("span", { class: "status__conn", testid: "connection", role: "status" });
    this.el = h(
      "div",
      { class: "statusbar", role: "region", "aria-label": "Game status" },
      h("div", { class: "statusbar__inner" }, this.phase, this.round, this.timer, this.connection),
    );
    this.conn = { status: "connecting", retryAt: null };
    this.waiting = 0;
    this.warned = null;
  }

  now() {
    return Date.now() / 1000 + this.skew;
  }

  update(state) {
    this.state = state;
    setText(this.phase, PHASES[state.phase] || state.phase);
    this.phase.dataset.phase = state.phase;
    if (state.phase === "lobby") setText(this.round, `${state.rounds === 1 ? "1 round" : `${state.rounds} rounds`}`);
    else {
      const round = state.rounds > 1 ? `Round ${state.round} of ${state.rounds}` : `Round ${state.round}`;
      const attempt = state.attempts > 1 && state.phase !== "ended" ? ` · attempt ${state.attempt} of ${state.attempts}` : "";
      setText(this.round, round + attempt);
    }
    this.tick();
  }

  /** Seconds left in the phase, or null when no clock runs. */
  remaining() {
    const s = this.state;
    if (!s) return null;
    if (s.paused) return s.paused_remaining ?? null;
    if (s.deadline === null || s.deadline === undefined) return null;
    return s.deadline - this.now();
  }

  tick() {
    const s = this.state;
    if (s) {
      const left = this.remaining();
      let text;
      if (s.phase === "ended") text = "Finished";
      else if (left === null) text = s.phase === "lobby" ? "Not started" : "No time limit";
      else if (s.paused) text = `Paused · ${clock(left)} left`;
      else if (left <= 0) text = "Time is up";
      else text = `${clock(left)} left`;
      setText(this.timer, text);
      this.timer.classList.toggle("status__timer--low", left !== null && left > 0 && left <= 60 && !s.paused);
      // One spoken warning a minute before the end of a phase.
      const key = `${s.phase}:${s.round}:${s.attempt}`;
      if (left !== null && !s.paused && left <= 60 && left > 55 && this.warned !== key) {
        this.warned = key;
        if (this.announcer) this.announcer.say("One minute left in this phase.");
      }
    }
    this.renderConnection();
  }

  setConnection(info, waiting = 0) {
    this.conn = info;
    this.waiting = waiting;
    this.renderConnection();
  }

  renderConnection() {
    const { status, retryAt } = this.conn;
    let text = CONNECTION_TEXT[status] || status;
    if (status === "reconnecting" && retryAt) {
      const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      text = secs > 0 ? `Reconnecting in ${secs} s` : "Reconnecting…";
    }
    if (this.waiting && status !== "live") text += ` · ${this.waiting} unsent`;
    setText(this.connection, text);
    this.connection.dataset.status = status;
    this.connection.className = `status__conn status__conn--${status}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Notices: tentative agreement, defection, count results, agreement in force, game over

export class Notices {
  constructor(resultsUrl, lobbyUrl = null) {
    this.resultsUrl = resultsUrl;
    this.lobbyUrl = lobbyUrl;
    this.paused = h("p", { class: "notice notice--paused", testid: "paused-notice" }, "The instructor has paused the game. The clock is stopped.");
    this.seatLost = h("section", { class: "notice notice--defection", testid: "seat-lost" });
    this.tentative = h("section", { class: "notice notice--tentative", testid: "tentative-banner", "aria-labelledby": "tentative-title" });
    this.defection = h("section", { class: "notice notice--defection", testid: "defection-notice", "aria-labelledby": "defection-title" });
    this.inForce = h("section", { class: "notice notice--good", testid: "in-force-banner" });
    this.ended = h("section", { class: "notice notice--ended", testid: "ended-notice" });
    this.count = h("section", { class: "card count", "aria-labelledby": "count-title" });
    /** Above the player's own move: what changed. */
    this.announcement = h("section", { class: "notice notice--announcement", testid: "announcement", role: "status" });
    this.dismissedAnnouncement = null;
    this.el = h("div", { class: "notices" }, this.seatLost, this.announcement, this.paused, this.ended, this.tentative, this.defection);
    /** Below it: the outcome of the vote. */
    this.results = h("div", { class: "notices" }, this.inForce, this.count);
  }

  update(store) {
    const s = store.state;
    const names = new Names(s);
    show(this.paused, s.paused && s.phase !== "ended");

    // The instructor's latest announcement stays on top until the reader dismisses it.
    const announcements = (s.messages || []).filter((m) => m.by === "instructor");
    const latest = announcements.length ? announcements[announcements.length - 1] : null;
    const key = latest ? `${announcements.length}:${latest.text}` : null;
    show(this.announcement, Boolean(latest) && key !== this.dismissedAnnouncement);
    if (latest && this.announcement.dataset.shown !== key) {
      this.announcement.dataset.shown = key;
      replace(
        this.announcement,
        h("h2", { class: "notice__title" }, "Announcement from the instructor"),
        h("p", { testid: "announcement-text" }, latest.text),
        h("button", { type: "button", class: "button button--quiet", testid: "announcement-dismiss", on: { click: () => {
          this.dismissedAnnouncement = key;
          show(this.announcement, false);
        } } }, "Dismiss"),
      );
    }

    // The instructor gave this seat to a bot or emptied it: say so, and how to get back in.
    const mine = s.me.seat ? s.seats[s.me.seat] : null;
    const lost = Boolean(mine) && (!mine.occupied || mine.bot);
    show(this.seatLost, lost);
    if (lost && this.seatLost.dataset.shown !== "yes") {
      this.seatLost.dataset.shown = "yes";
      replace(
        this.seatLost,
        h("h2", { class: "notice__title" }, mine.bot ? "A bot now plays your seat" : "Your seat was released"),
        h("p", {}, "The instructor has given your seat away. Ask your instructor, or ", h("a", { href: this.lobbyUrl || "../" }, "take a seat again"), "."),
      );
    }
    if (!lost) this.seatLost.dataset.shown = "";

    // Tentative agreement: the frozen text, while the constituents vote (and until the round ends).
    const tentative = s.tentative && s.phase === "level2" ? s.tentative : null;
    show(this.tentative, Boolean(tentative));
    if (tentative) {
      const key = `${tentative.id}:${s.phase}`;
      if (this.tentative.dataset.shown !== key) {
        this.tentative.dataset.shown = key;
        const voting = s.phase === "level2";
        replace(
          this.tentative,
          h("h2", { id: "tentative-title", class: "notice__title" }, `Tentative agreement on proposal #${tentative.id}`),
          h("p", { class: "notice__values" }, names.values(tentative.values)),
          h(
            "p",
            { class: "small" },
            voting
              ? "Every chief accepted this text. The constituents at home now vote it up or down, without amendments."
              : "Every chief accepted this text.",
          ),
        );
      }
    }

    // Involuntary defection: which countries failed, and what happens next.
    const d = store.defection;
    show(this.defection, Boolean(d));
    if (d) {
      const key = `${d.round}:${d.proposal_id}:${d.attempts_left}`;
      if (this.defection.dataset.shown !== key) {
        this.defection.dataset.shown = key;
        const failed = d.countries.map((c) => names.country(c)).join(" and ");
        const next = d.attempts_left
          ? `The chiefs are back at Level I and may try again: ${d.attempts_left === 1 ? "this is the last attempt" : `${d.attempts_left} attempts left`} this round.`
          : "No attempts were left, so the round ended without an agreement.";
        replace(
          this.defection,
          h("h2", { id: "defection-title", class: "notice__title" }, "Ratification failed: involuntary defection"),
          h(
            "p",
            {},
            `The chiefs agreed on proposal #${d.proposal_id}, but ${failed} did not ratify it at home. ` +
              "Putnam calls this an involuntary defection: the negotiator meant to keep the deal but could not deliver it. " +
              next,
          ),
        );
      }
    }

    // The count, country by country, member by member.
    const count = s.last_count;
    show(this.count, Boolean(count));
    if (count) {
      const key = JSON.stringify([count.proposal_id, count.results, s.round]);
      if (this.count.dataset.shown !== key) {
        this.count.dataset.shown = key;
        replace(this.count, countResults(s, names, count));
      }
    }

    show(this.inForce, Boolean(s.in_force));
    if (s.in_force) {
      const mine = s.me.seat ? (s.transfers || {})[s.me.seat] : null;
      const key = JSON.stringify([s.in_force, mine, s.round]);
      if (this.inForce.dataset.shown !== key) {
        this.inForce.dataset.shown = key;
        replace(
          this.inForce,
          h("h2", { class: "notice__title" }, "The agreement is in force"),
          h("p", {}, "Every country ratified the text."),
          valuesTable(s.scenario, s.in_force, { caption: "The agreement in force" }),
          mine ? h("p", {}, `Your side payment of ${fmt(mine)} points is paid.`) : null,
        );
      }
    }

    show(this.ended, s.phase === "ended");
    if (s.phase === "ended" && this.ended.dataset.shown !== "yes") {
      this.ended.dataset.shown = "yes";
      replace(
        this.ended,
        h("h2", { class: "notice__title" }, "The game is over"),
        h("p", {}, s.end_reason === "ended_by_instructor" ? "The instructor ended the game." : "Every round has been played."),
        h("p", {}, h("a", { href: this.resultsUrl, class: "button button--primary", testid: "results-link" }, "See the results")),
      );
    }
  }
}

export function countResults(s, names, count) {
  const rows = (s.scenario.countries || []).map((country) => {
    const r = count.results[country.key];
    if (!r) return null;
    const vetoes = (r.vetoed_by || []).map((k) => names.role(k));
    const members = country.constituents.map((m) => {
      const ballot = count.ballots[m.key];
      const vote = ballot === true ? "yes" : ballot === false ? "no" : "no vote (counts as no)";
      return h("li", {}, `${m.name}${m.key === s.me.seat ? " (you)" : ""}: ${vote}`);
    });
    return h(
      "li",
      { class: `count__row ${r.ratified ? "count__row--yes" : "count__row--no"}`, testid: `count-result-${country.key}` },
      h("strong", {}, `${country.name}: ${r.ratified ? "ratified" : "not ratified"}`),
      ` — ${fmt(r.yes_weight)} of ${fmt(r.total_weight)} weighted votes for; it needs ${ruleText(country)}.`,
      vetoes.length ? ` Vetoed by ${vetoes.join(", ")}.` : "",
      h("details", { class: "count__members" }, h("summary", {}, "Votes member by member"), h("ul", {}, members)),
    );
  });
  return [
    h("h2", { id: "count-title" }, `Ratification vote on proposal #${count.proposal_id}`),
    h("ul", { class: "count__list" }, rows),
  ];
}

// ---------------------------------------------------------------------------------------------
// Round history

export function roundHistory(s) {
  if (!s.history || !s.history.length) return null;
  return h(
    "section",
    { class: "card", "aria-labelledby": "rounds-title", testid: "round-history" },
    h("h2", { id: "rounds-title" }, "Rounds so far"),
    h(
      "ol",
      { class: "rounds" },
      s.history.map((r) => {
        const bits = [`Round ${r.round}: ${ROUND_RESULTS[r.result] || r.result}`];
        if (r.values) bits.push(` at ${new Names(s).values(r.values)}`);
        if (r.compliance) {
          const parts = Object.entries(r.compliance).map(
            ([c, comply]) => `${new Names(s).country(c)} ${comply ? "complied" : "defected"}${r.payoffs && r.payoffs[c] !== undefined ? ` (${fmt(r.payoffs[c])})` : ""}`,
          );
          if (parts.length) bits.push(`; ${parts.join(", ")}`);
        }
        if (typeof r.transfer === "number" && r.transfer) bits.push(`; your side payment ${fmt(r.transfer)}`);
        return h("li", {}, `${bits.join("")}.`);
      }),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Proposal cards

/**
 * A card for an open proposal. `actions(p)` returns the buttons for the viewer (may be []).
 * The card is rebuilt only when its content changes, so focus stays on its buttons.
 */
export function syncProposals(list, store, actions, extra = null) {
  const s = store.state;
  const names = new Names(s);
  syncList(
    list,
    s.proposals,
    (p) => p.id,
    (p) => h("li", { class: "proposal", testid: `proposal-${p.id}` }),
    (el, p) => {
      const key = JSON.stringify([p, s.me.seat, s.phase, s.paused, s.offers, s.seats[p.by]]);
      if (el.dataset.shown === key) return;
      el.dataset.shown = key;
      const mine = p.by === s.me.seat;
      const accepted = p.accepted_by.filter((k) => k !== p.by);
      const focused = el.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
      const error = el.querySelector(".field-error");
      replace(
        el,
        h(
          "div",
          { class: "proposal__head" },
          h("span", { class: "proposal__id" }, `#${p.id}`),
          " ",
          h("span", { class: "proposal__by" }, mine ? "Your proposal" : names.who(p.by)),
          p.replies_to ? h("span", { class: "muted" }, ` · answers #${p.replies_to}`) : null,
        ),
        valuesTable(s.scenario, p.values, { caption: `Proposal ${p.id}` }),
        h(
          "p",
          { class: "proposal__accepts" },
          accepted.length ? `Also accepted by ${accepted.map((k) => names.who(k)).join(", ")}.` : "No one else has accepted it yet.",
        ),
        verdictLine(s, p.values, transferTo(s, s.me.seat)),
        extra ? extra(p) : null,
        h("div", { class: "actions" }, actions(p, el)),
        error || errorLine(`proposal-error-${p.id}`),
      );
      if (focused) {
        const again = el.querySelector(`[data-testid="${focused}"]`);
        if (again) again.focus();
      }
    },
  );
}

/** Render the proposal history into `slot` when it changed, keeping it open if it was. */
export function syncProposalHistory(slot, store) {
  const key = JSON.stringify([store.history, store.state.round]);
  if (slot.dataset.shown === key) return;
  slot.dataset.shown = key;
  const wasOpen = Boolean(slot.querySelector("details[open]"));
  const el = proposalHistory(store, new Names(store.state));
  if (el && wasOpen) el.open = true;
  replace(slot, el);
}

/** Proposals of this round (from `proposal_history`, or as seen live) with their fate. */
export function proposalHistory(store, names) {
  const items = store.history.filter((p) => p.status !== "open");
  if (!items.length) return null;
  const words = { closed: "closed", superseded: "closed", withdrawn: "withdrawn", agreed: "agreed", open: "on the table" };
  return h(
    "details",
    { class: "card history", testid: "proposal-history" },
    h("summary", {}, `Earlier proposals this round (${items.length})`),
    h(
      "ol",
      { class: "history__list", reversed: true },
      [...items].reverse().map((p) =>
        h(
          "li",
          { testid: `history-${p.id}` },
          h("strong", {}, `#${p.id}`),
          ` ${names.who(p.by)}: ${names.values(p.values)} `,
          h("span", { class: `tag tag--${p.status}` }, words[p.status] || p.status),
          p.replies_to ? h("span", { class: "muted" }, ` (answers #${p.replies_to})`) : null,
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Chat

/**
 * Tabs of chat channels. `channels`: [{id, label, canPost, placeholder}].
 * `send(channel, text)` returns a promise (command) that rejects with a message.
 */
export class Chat {
  constructor(channels, send) {
    this.channels = channels;
    this.sendFn = send;
    this.rendered = new Map();
    this.unread = new Map();
    this.active = channels[0] ? channels[0].id : null;
    const tablist = h("div", { class: "tabs", role: "tablist", "aria-label": "Chat channels" });
    this.tabs = new Map();
    this.panels = new Map();
    this.lists = new Map();
    const panels = h("div", { class: "tabpanels" });
    for (const ch of channels) {
      const tabId = nextId("tab");
      const panelId = nextId("panel");
      const badge = h("span", { class: "tab__badge", "aria-hidden": "true" });
      const tab = h(
        "button",
        {
          type: "button",
          role: "tab",
          id: tabId,
          class: "tab",
          "aria-controls": panelId,
          testid: `chat-tab-${ch.id}`,
          title: ch.title || null,
          on: { click: () => this.select(ch.id), keydown: (e) => this.tabKey(e, ch.id) },
        },
        ch.label,
        badge,
      );
      tab.badge = badge;
      tablist.append(tab);
      this.tabs.set(ch.id, tab);
      const list = h("ol", { class: "messages", role: "log", "aria-label": ch.title || ch.label, testid: `chat-log-${ch.id}` });
      this.lists.set(ch.id, list);
      const empty = h("p", { class: "messages__empty muted" }, ch.empty || "No messages yet.");
      const panel = h("div", { role: "tabpanel", id: panelId, "aria-labelledby": tabId, class: "tabpanel", testid: `chat-panel-${ch.id}` }, empty, list);
      panel.empty = empty;
      if (ch.canPost) panel.append(this.form(ch));
      else if (ch.note) panel.append(h("p", { class: "muted small" }, ch.note));
      panels.append(panel);
      this.panels.set(ch.id, panel);
    }
    const title = channels.length === 1 ? channels[0].title || channels[0].label : "Talk";
    this.el = h("section", { class: "card chat", "aria-labelledby": "chat-title" }, h("h2", { id: "chat-title" }, title), tablist, panels);
    if (channels.length === 1) tablist.hidden = true;
    this.select(this.active);
  }

  form(ch) {
    const inputId = nextId("chat");
    const input = h("textarea", {
      id: inputId,
      rows: 2,
      maxlength: 2000,
      class: "chat__input",
      testid: `chat-input-${ch.id}`,
      placeholder: ch.placeholder || "",
    });
    const error = errorLine(`chat-error-${ch.id}`);
    const send = h("button", { type: "submit", class: "button", testid: `chat-send-${ch.id}` }, ch.sendLabel || "Send");
    const form = h(
      "form",
      { class: "chat__form", on: { submit: (e) => this.submit(e, ch.id, input, send, error) } },
      h("label", { for: inputId, class: "chat__label" }, ch.inputLabel || `Message to ${ch.label}`),
      h("div", { class: "chat__row" }, input, send),
      error,
    );
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    return form;
  }

  async submit(event, channel, input, send, error) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) {
      showError(error, "Write something first.");
      return;
    }
    if (send.getAttribute("aria-busy") === "true") return;
    send.setAttribute("aria-busy", "true");
    showError(error, "");
    try {
      await this.sendFn(channel, text);
      if (input.value.trim() === text) input.value = "";
    } catch (e) {
      showError(error, e.message);
    } finally {
      send.removeAttribute("aria-busy");
    }
  }

  select(id, focus = false) {
    this.active = id;
    for (const [key, tab] of this.tabs) {
      const on = key === id;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      this.panels.get(key).hidden = !on;
      if (on) {
        this.unread.set(key, 0);
        setText(tab.badge, "");
        if (focus) tab.focus();
      }
    }
    const list = this.lists.get(id);
    if (list) list.scrollTop = list.scrollHeight;
  }

  tabKey(event, id) {
    const ids = this.channels.map((c) => c.id);
    let index = ids.indexOf(id);
    if (event.key === "ArrowRight") index = (index + 1) % ids.length;
    else if (event.key === "ArrowLeft") index = (index - 1 + ids.length) % ids.length;
    else if (event.key === "Home") index = 0;
    else if (event.key === "End") index = ids.length - 1;
    else return;
    event.preventDefault();
    this.select(ids[index], true);
  }

  update(state) {
    const names = new Names(state);
    for (const ch of this.channels) {
      const messages = state.messages.filter((m) => m.channel === ch.id);
      const list = this.lists.get(ch.id);
      const before = this.rendered.get(ch.id) || [];
      const isPrefix = before.length <= messages.length && before.every((m, i) => m === messages[i]);
      const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      if (!isPrefix) list.replaceChildren();
      const fresh = isPrefix ? messages.slice(before.length) : messages;
      for (const m of fresh) list.append(this.line(m, names, state));
      this.rendered.set(ch.id, messages);
      show(this.panels.get(ch.id).empty, messages.length === 0);
      if (fresh.length && (nearBottom || !isPrefix)) list.scrollTop = list.scrollHeight;
      if (isPrefix && fresh.length && ch.id !== this.active && before.length) {
        const unread = (this.unread.get(ch.id) || 0) + fresh.length;
        this.unread.set(ch.id, unread);
        setText(this.tabs.get(ch.id).badge, String(unread));
        this.tabs.get(ch.id).setAttribute("aria-label", `${ch.label}, ${unread} new`);
      } else if (ch.id === this.active) {
        this.tabs.get(ch.id).removeAttribute("aria-label");
      }
    }
  }

  line(m, names, state) {
    const mine = m.by === state.me.seat;
    const holder = names.holder(m.by);
    const person = holder !== "free" && holder !== "taken" && holder !== "Bot" && !mine ? ` · ${holder}` : "";
    return h(
      "li",
      { class: `message${mine ? " message--mine" : ""}` },
      h("span", { class: "message__who" }, mine ? "You" : names.who(m.by), h("span", { class: "muted" }, person)),
      h("span", { class: "message__text" }, m.text),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Activity log

export class ActivityLog {
  constructor({ host = false, title = "Activity", open = true, announcer = null } = {}) {
    this.host = host;
    this.announcer = announcer;
    this.list = h("ol", { class: "log", testid: "event-log", "aria-label": title });
    this.empty = h("p", { class: "muted" }, "Nothing has happened since you arrived.");
    this.el = h(
      "details",
      { class: "card log-card", open },
      h("summary", {}, h("h2", { class: "summary-heading" }, title)),
      this.empty,
      this.list,
    );
    this.count = 0;
  }

  add(text, { announce = false, kind = "" } = {}) {
    if (!text) return;
    const time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    this.list.prepend(h("li", { class: `log__item${kind ? ` log__item--${kind}` : ""}` }, h("time", { class: "log__time" }, time), " ", text));
    while (this.list.childElementCount > 300) this.list.lastElementChild.remove();
    this.empty.hidden = true;
    if (announce && this.announcer) this.announcer.say(text);
  }

  event(event, state) {
    if (!event) return;
    const names = new Names(state);
    const text = describe(event, names, { host: this.host });
    const isOwnSeat = event.type === "seat_taken" || event.type === "seat_released";
    const announce = ANNOUNCED.has(event.type) && !(isOwnSeat && !this.host);
    this.add(text, { announce, kind: event.type });
  }
}

