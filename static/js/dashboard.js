// The instructor's live dashboard of a class session (templates/classroom/dashboard.html).
// One websocket (docs/classroom.md): the server sends {type: "summary", session} after every
// change and every few seconds; the page sends {id, action, ...} frames and gets "ack" or
// "error" with the same id. Every text goes into the page through textContent (dom.js).
//
// Test ids: session-code, session-join-url, session-qr, dash-connection, fill-on-start,
// start-all, pause-all, resume-all, assign-random, fill-bots, end-all, end-all-confirmation,
// end-all-confirm, end-all-cancel, announce-all-form, announce-all-text, announce-all,
// dash-error, roster, roster-count, roster-rows, roster-<id>, assign-<id>, games,
// game-<CODE> (data-phase, data-paused), game-phase-<CODE>, game-timer-<CODE>,
// game-proposal-<CODE> (data-in-zone), game-votes-<CODE>, game-alerts-<CODE>,
// game-seats-<CODE>, seat-<CODE>-<KEY> (data-connected), to-bot-<CODE>-<KEY>,
// give-back-<CODE>-<KEY>, pause-<CODE>, resume-<CODE>, extend-<CODE>, advance-<CODE>,
// end-<CODE>, start-<CODE>, announce-<CODE>, announce-text-<CODE>, host-<CODE>.

import { h, replace } from "./dom.js";

const root = document.getElementById("dashboard");
const connectionLine = root.querySelector("[data-testid=dash-connection]");
const errorLine = root.querySelector("[data-testid=dash-error]");
const rosterRows = root.querySelector("[data-testid=roster-rows]");
const rosterCount = root.querySelector("[data-testid=roster-count]");
const gamesBox = root.querySelector("[data-testid=games]");

const PHASES = { lobby: "Waiting to start", level1: "Level I: negotiating", level2: "Level II: ratification vote", compliance: "Compliance", ended: "Ended" };

let socket = null;
let retry = 1000;
let counter = 0;
const waiting = new Map();
let summary = null;
let skew = 0; // server clock minus this clock, seconds
const cards = new Map();

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${window.location.host}${root.dataset.socketPath}`);
  connectionLine.textContent = "Connecting…";
  socket.addEventListener("open", () => {
    retry = 1000;
    connectionLine.textContent = "Live";
    connectionLine.dataset.status = "live";
  });
  socket.addEventListener("message", (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    if (frame.type === "summary") {
      summary = frame.session;
      skew = summary.now - Date.now() / 1000;
      render();
    } else if (frame.type === "ack" || frame.type === "error") {
      const pending = waiting.get(frame.id);
      if (pending) {
        waiting.delete(frame.id);
        if (frame.type === "ack") pending.resolve();
        else pending.reject(new Error(frame.message || "Refused."));
      } else if (frame.type === "error") {
        showError(frame.message);
      }
    }
  });
  socket.addEventListener("close", (event) => {
    for (const pending of waiting.values()) pending.reject(new Error("The connection was lost; try again."));
    waiting.clear();
    if (event.code === 4403) {
      connectionLine.textContent = "This session is not yours, or you were signed out. Sign in again.";
      connectionLine.dataset.status = "gone";
      return;
    }
    connectionLine.textContent = "Connection lost; reconnecting…";
    connectionLine.dataset.status = "reconnecting";
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  });
}

function send(action, payload = {}) {
  counter += 1;
  const id = `d${Date.now().toString(36)}-${counter}`;
  return new Promise((resolve, reject) => {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      reject(new Error("Not connected; wait a moment and try again."));
      return;
    }
    waiting.set(id, { resolve, reject });
    socket.send(JSON.stringify({ id, action, ...payload }));
    setTimeout(() => {
      if (waiting.has(id)) {
        waiting.delete(id);
        reject(new Error("No answer from the server; try again."));
      }
    }, 15000);
  });
}

function showError(text) {
  errorLine.textContent = text || "";
}

async function run(button, action, payload) {
  if (button) button.setAttribute("aria-busy", "true");
  showError("");
  try {
    await send(action, payload);
    return true;
  } catch (error) {
    showError(error.message);
    return false;
  } finally {
    if (button) button.removeAttribute("aria-busy");
  }
}

function byTestId(id) {
  return root.querySelector(`[data-testid="${id}"]`);
}

// Whole-class controls ------------------------------------------------------------------------

byTestId("start-all").addEventListener("click", (e) => run(e.currentTarget, "start_all", { fill_bots: byTestId("fill-on-start").checked }));
byTestId("pause-all").addEventListener("click", (e) => run(e.currentTarget, "control", { game: "*", name: "pause" }));
byTestId("resume-all").addEventListener("click", (e) => run(e.currentTarget, "control", { game: "*", name: "resume" }));
byTestId("assign-random").addEventListener("click", (e) => run(e.currentTarget, "assign_random"));
byTestId("fill-bots").addEventListener("click", (e) => run(e.currentTarget, "fill_bots"));
const endAllConfirm = byTestId("end-all-confirmation");
byTestId("end-all").addEventListener("click", () => {
  endAllConfirm.hidden = false;
  byTestId("end-all-cancel").focus();
});
byTestId("end-all-cancel").addEventListener("click", () => {
  endAllConfirm.hidden = true;
});
byTestId("end-all-confirm").addEventListener("click", async (e) => {
  if (await run(e.currentTarget, "control", { game: "*", name: "end_game" })) endAllConfirm.hidden = true;
});
byTestId("announce-all-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = byTestId("announce-all-text");
  const text = input.value.trim();
  if (text && (await run(byTestId("announce-all"), "announce", { game: "*", text }))) input.value = "";
});

// Rendering -----------------------------------------------------------------------------------

function seatLabel(game, seat) {
  return `Game ${game.number} · ${seat.name} (${seat.country})`;
}

function renderRoster() {
  const games = summary.games.map((g, i) => ({ ...g, number: i + 1 }));
  const joined = summary.roster.filter((m) => m.joined).length;
  rosterCount.textContent = `(${joined} joined of ${summary.roster.length})`;
  const focused = document.activeElement && rosterRows.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
  replace(
    rosterRows,
    summary.roster.map((member) => {
      const select = h("select", { testid: `assign-${member.id}`, "aria-label": `Seat of ${member.name}` });
      select.append(h("option", { value: "" }, member.seat ? "" : "No seat yet"));
      for (const game of games) {
        const group = h("optgroup", { label: `Game ${game.number} (${game.code})` });
        for (const seat of game.seats) {
          const value = `${game.code}:${seat.key}`;
          const mine = member.game_code === game.code && member.seat === seat.key;
          const taken = seat.occupied && !seat.bot && !mine;
          group.append(h("option", { value, selected: mine, disabled: taken }, `${seatLabel(game, seat)}${taken ? ` · ${seat.holder}` : seat.bot ? " · bot" : ""}`));
        }
        select.append(group);
      }
      select.addEventListener("change", async () => {
        if (!select.value) return;
        const [game, seat] = select.value.split(":");
        await run(select, "assign", { member: member.id, game, seat });
      });
      const status = member.seated ? "seated" : member.joined ? "waiting" : "not yet";
      return h(
        "tr",
        { testid: `roster-${member.id}`, dataset: { status } },
        h("th", { scope: "row" }, member.name),
        h("td", {}, member.joined ? (member.seated ? "Seated" : "Waiting for a seat") : "Not yet"),
        h("td", {}, select),
      );
    }),
  );
  if (focused) {
    const again = byTestId(focused);
    if (again) again.focus();
  }
}

function gameCard(game) {
  const code = game.code;
  const control = (text, name, extra = {}, payload = {}) => {
    const b = h("button", { type: "button", class: "button button--small", ...extra }, text);
    b.addEventListener("click", () => run(b, "control", { game: code, name, ...payload }));
    return b;
  };
  const announceInput = h("input", { type: "text", maxlength: "4000", autocomplete: "off", testid: `announce-text-${code}`, "aria-label": `Announcement to game ${code}` });
  const announceButton = h("button", { type: "submit", class: "button button--small", testid: `announce-${code}` }, "Announce");
  const form = h("form", { class: "announce__row" }, announceInput, announceButton);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = announceInput.value.trim();
    if (text && (await run(announceButton, "announce", { game: code, text }))) announceInput.value = "";
  });
  const parts = {
    title: h("h3", {}),
    phase: h("p", { class: "dash-game__phase", testid: `game-phase-${code}` }),
    timer: h("p", { class: "dash-game__timer", testid: `game-timer-${code}` }),
    alerts: h("ul", { class: "dash-alerts", testid: `game-alerts-${code}`, role: "status" }),
    proposal: h("p", { class: "dash-game__proposal", testid: `game-proposal-${code}` }),
    votes: h("p", { testid: `game-votes-${code}` }),
    seats: h("ul", { class: "dash-seats", testid: `game-seats-${code}` }),
    controls: h(
      "div",
      { class: "actions" },
      control("Start", "start_game", { testid: `start-${code}` }),
      control("Pause", "pause", { testid: `pause-${code}` }),
      control("Resume", "resume", { testid: `resume-${code}` }),
      control("+2 min", "extend_deadline", { testid: `extend-${code}`, "aria-label": `Add 2 minutes in game ${code}` }, { seconds: 120 }),
      control("End phase", "advance_phase", { testid: `advance-${code}` }),
      control("End game", "end_game", { testid: `end-${code}`, class: "button button--small button--danger" }),
      h("a", { href: `/g/${code}/host/`, class: "button button--small button--quiet", testid: `host-${code}` }, "Host console"),
    ),
  };
  const el = h("article", { class: "card dash-game", testid: `game-${code}` }, parts.title, parts.phase, parts.timer, parts.alerts, parts.proposal, parts.votes, parts.seats, parts.controls, form);
  return { el, parts };
}

function renderGame(card, game, number) {
  const { el, parts } = card;
  el.dataset.phase = game.phase;
  el.dataset.paused = game.paused ? "true" : "false";
  parts.title.textContent = `Game ${number} · ${game.code}`;
  const round = game.round ? ` · round ${game.round} of ${game.rounds}` : "";
  parts.phase.textContent = `${PHASES[game.phase] || game.phase}${game.paused ? " (paused)" : ""}${round}`;
  card.game = game;
  if (game.latest_proposal) {
    const p = game.latest_proposal;
    parts.proposal.dataset.inZone = p.in_zone ? "true" : "false";
    replace(
      parts.proposal,
      h("strong", {}, game.tentative ? "Tentative agreement: " : `Latest proposal #${p.id} by ${p.by} (${p.country}): `),
      p.text,
      " ",
      h("span", { class: `badge ${p.in_zone ? "badge--good" : "badge--bad"}` }, p.in_zone ? "in the zone of agreement" : "outside the zone of agreement"),
    );
  } else {
    parts.proposal.dataset.inZone = "";
    parts.proposal.textContent = "No proposal on the table.";
  }
  if (game.votes) {
    const per = Object.entries(game.votes.countries).map(([name, v]) => `${name} ${v.cast}/${v.voters}`).join(", ");
    parts.votes.textContent = `Votes cast: ${game.votes.cast} of ${game.votes.voters} (${per})`;
  } else {
    parts.votes.textContent = game.results.length ? `Rounds: ${game.results.join(", ").replaceAll("_", " ")}` : "";
  }
  replace(
    parts.seats,
    game.seats.map((seat) => {
      const state = seat.bot ? "bot" : !seat.occupied ? "free" : seat.connected ? "connected" : "away";
      const who = seat.bot ? `Bot${seat.stand_in_for ? ` for ${seat.stand_in_for}` : ""}` : seat.holder || "empty";
      const actions = [];
      if (seat.bot && seat.stand_in_for) {
        const back = h("button", { type: "button", class: "button button--small button--quiet", testid: `give-back-${game.code}-${seat.key}` }, "Give back");
        back.addEventListener("click", () => run(back, "give_back", { game: game.code, seat: seat.key }));
        actions.push(back);
      } else if (!seat.bot && game.phase !== "ended") {
        const bot = h("button", { type: "button", class: "button button--small button--quiet", testid: `to-bot-${game.code}-${seat.key}` }, "Bot");
        bot.setAttribute("aria-label", `A bot plays ${seat.name} in game ${game.code}`);
        bot.addEventListener("click", () => run(bot, "to_bot", { game: game.code, seat: seat.key }));
        actions.push(bot);
      }
      return h(
        "li",
        { class: `dash-seat dash-seat--${state}`, testid: `seat-${game.code}-${seat.key}`, dataset: { connected: seat.connected ? "true" : "false", state } },
        h("span", { class: "dash-seat__dot", "aria-hidden": "true" }),
        h(
          "span",
          { class: "dash-seat__text" },
          h("span", { class: "dash-seat__who" }, who),
          " ",
          h("span", { class: "dash-seat__role" }, `${seat.name} (${seat.country})`),
          h("span", { class: "visually-hidden" }, `, ${state}`),
        ),
        h("span", {}, ...actions),
      );
    }),
  );
  renderClock(card);
}

function renderClock(card) {
  const game = card.game;
  const now = Date.now() / 1000 + skew;
  let text = "";
  if (game.paused && game.remaining != null) text = `Paused with ${clock(game.remaining)} left`;
  else if (game.deadline != null) text = `${clock(Math.max(0, game.deadline - now))} left in this phase`;
  card.parts.timer.textContent = text;
  const alerts = [...game.alerts.filter((a) => a.kind !== "stalled")];
  const idle = now - game.last_event_at;
  const active = !["lobby", "ended"].includes(game.phase) && !game.paused;
  if (active && idle >= game.stall_seconds) alerts.push({ kind: "stalled", text: `No action for ${Math.floor(idle / 60)} minutes` });
  const key = alerts.map((a) => a.text).join("|");
  if (card.parts.alerts.dataset.key !== key) {
    card.parts.alerts.dataset.key = key;
    replace(card.parts.alerts, alerts.map((a) => h("li", { class: `dash-alert dash-alert--${a.kind}`, dataset: { kind: a.kind } }, a.text)));
  }
}

function clock(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function render() {
  renderRoster();
  summary.games.forEach((game, index) => {
    let card = cards.get(game.code);
    if (!card) {
      card = gameCard(game);
      cards.set(game.code, card);
      gamesBox.append(card.el);
    }
    renderGame(card, game, index + 1);
  });
}

setInterval(() => {
  for (const card of cards.values()) if (card.game) renderClock(card);
}, 1000);

connect();
window.ratifyDashboard = { get summary() { return summary; } };
