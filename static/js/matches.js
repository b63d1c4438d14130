// The public lobby of remote matches (templates/negotiation/matches/lobby.html): refresh the
// list of open matches in place, every few seconds while the page is visible. The page lists
// the matches as they were when it loaded without this script.

const section = document.querySelector("[data-testid=open-matches]");
const rows = section.querySelector("tbody");
const count = section.querySelector("[data-testid=open-count]");
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) if (child !== null) node.append(child);
  return node;
};
const row = (m) =>
  el("tr", { "data-testid": `match-${m.code}` },
    el("td", {}, `${m.scenario} `, el("span", { class: "muted code" }, m.code)),
    el("td", { class: "num" }, `${m.free} of ${m.seats}`),
    el("td", {}, m.started ? "in play" : m.bot_fill_after ? `waiting · bots after ${m.bot_fill_after} s` : "waiting"),
    el("td", {}, el("div", { class: "actions" },
      m.free ? el("a", { class: "button button--small button--primary", href: m.join_url, "data-testid": `join-${m.code}` }, "Join") : null,
      el("a", { href: m.watch_url, "data-testid": `watch-${m.code}` }, "Watch"))));
async function refresh() {
  if (document.visibilityState !== "visible") return;
  try {
    const response = await fetch(section.dataset.refreshUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const { matches } = await response.json();
    rows.replaceChildren(...(matches.length ? matches.map(row) : [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No open match right now: start one with Quick match."))]));
    count.textContent = `${matches.length} open match${matches.length === 1 ? "" : "es"}`;
  } catch {
    // Offline for a moment: the next round tries again.
  }
}
window.setInterval(refresh, Number(section.dataset.refreshMs) || 5000);
document.addEventListener("visibilitychange", refresh);
