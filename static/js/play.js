// Ratify's table in the browser: plain ES modules, no framework, no build step.
//
// The page (templates/negotiation/play.html) holds <div id="app"> with data-socket-path,
// data-code, data-host ("true" on the instructor's console), data-seat, data-briefing-url,
// data-results-url, data-lobby-url and data-server-time; the host page also embeds the seat
// links (#seat-links) and the join address (#join-url); both embed the game's settings
// (#game-settings: rounds, attempts, compliance, regime, payoffs, deadlines).
//
// Data flow: Connection (connection.js) speaks docs/protocol.md; Store (store.js) keeps the
// last snapshot and folds every event into it in seq order; PlayerTable (player.js) or
// HostConsole (host.js) renders the state. Every text from the game goes into the page through
// textContent / createElement (dom.js): never innerHTML.
//
// Test ids (data-testid), for Playwright. <channel> is "table", "caucus:<COUNTRY>" or "public"
// (the public input posts a statement); <id> a proposal or poll id; <KEY> a seat key.
//   everywhere   phase (data-phase), round, timer, connection (data-status: connecting, live,
//                reconnecting, offline, gone), paused-notice, announcement
//                (announcement-text, announcement-dismiss), tentative-banner,
//                defection-notice, in-force-banner, ended-notice, results-link,
//                count-result-<COUNTRY>, round-history, proposal-history, history-<id>,
//                event-log, chat-tab-<channel>, chat-panel-<channel>, chat-log-<channel>,
//                chat-input-<channel>, chat-send-<channel>, chat-error-<channel>
//   player       me, briefing-link, seat-lost, lobby-card, table, proposals, proposal-<id>,
//                accept-<id>, counter-<id>, withdraw-<id>, proposal-error-<id>,
//                builder, issue-<key> (range input; its value is on the grid),
//                issue-value-<key>, issue-down-<key>, issue-up-<key>, preview (with
//                data-utility and data-beats), preview-verdict, same-text, replying,
//                propose, open-poll, builder-reset, builder-error,
//                polls, poll-<id>, poll-yes-<id>, poll-no-<id>, poll-answer-<id>,
//                poll-result-<id>, close-poll-<id>, poll-error-<id>,
//                side-payments, side-payment-budget, side-payment-to, side-payment-amount,
//                side-payment-send, side-payment-<KEY>, side-payment-withdraw-<KEY>,
//                side-payment-error, side-payments-received,
//                ballot, ballot-verdict, ballot-timer, ballot-yes, ballot-no, ballot-status,
//                ballot-error, compliance, payoffs, comply, defect, compliance-status,
//                compliance-error
//   host         join-code, join-url, copy-join-url, presence, phase-help, start-game, pause,
//                resume, advance, extend-1, extend-5, end-game, end-game-confirmation,
//                end-game-confirm, end-game-cancel, announce-form, announce-text, announce,
//                control-error, results-link-host, replay-link-host,
//                seats, seat-count, fill-bots, copy-all-links, seat-error, seat-<KEY>,
//                seat-holder-<KEY>, seat-link-<KEY>, copy-link-<KEY>, seat-bot-<KEY>,
//                release-<KEY>, voting, ballots-cast, table, proposals, proposal-<id>, polls,
//                poll-<id>, side-payments, compliance
//   pages        home: join; lobby: game-code, seat-name, take-seat, any-seat, pick-<KEY>,
//                seat-taken, seat-problem, watch; briefing: back-to-table, facts, reservation,
//                heatmap; results: outcome, score-<COUNTRY>
//
// window.ratify exposes {store, conn} for tests and debugging.

import { Connection } from "./connection.js";
import { Announcer } from "./dom.js";
import { HostConsole } from "./host.js";
import { PlayerTable } from "./player.js";
import { Store } from "./store.js";

function readJson(id, fallback) {
  const el = document.getElementById(id);
  if (!el) return fallback;
  try {
    return JSON.parse(el.textContent);
  } catch {
    return fallback;
  }
}

/** Seconds the server's clock is ahead of ours, from the time the page was rendered. */
function clockSkew(serverTime) {
  const server = Number(serverTime);
  if (!Number.isFinite(server) || server <= 0) return 0;
  const nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
  const received = (performance.timeOrigin + (nav ? nav.responseStart : 0)) / 1000;
  const skew = server - received;
  // Small differences are network time, not clock error: ignore them.
  return Math.abs(skew) > 1.5 ? skew : 0;
}

function main() {
  const root = document.getElementById("app");
  if (!root) return;
  const data = root.dataset;
  const host = data.host === "true";
  const cfg = {
    code: data.code,
    host,
    seat: data.seat || null,
    briefingUrl: data.briefingUrl,
    resultsUrl: data.resultsUrl,
    replayUrl: data.replayUrl,
    lobbyUrl: data.lobbyUrl || `/g/${data.code}/`,
    joinUrl: readJson("join-url", "") || `${window.location.origin}/g/${data.code}/`,
    seatLinks: readJson("seat-links", {}),
    settings: readJson("game-settings", null),
    clockSkew: clockSkew(data.serverTime),
  };

  const store = new Store();
  const announcer = new Announcer(document.body);
  let ui = null;
  let builtFor = null;
  let scheduled = false;
  const render = () => {
    scheduled = false;
    if (!store.state) return;
    const who = `${store.state.me.role}:${store.state.me.seat}`;
    if (ui && builtFor !== who) {
      // The connection now speaks for another seat (after a reconnect): start the page afresh.
      ui = null;
    }
    builtFor = who;
    if (!ui) {
      ui = host ? new HostConsole(root, store, conn, cfg, announcer) : new PlayerTable(root, store, conn, cfg, announcer);
      ui.status.setConnection(lastStatus, conn.unanswered);
    }
    ui.render();
    root.setAttribute("aria-busy", "false");
    root.dataset.seq = String(store.state.seq);
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    window.setTimeout(render, 0);
  };

  let seatsRefresh = null;
  let lastStatus = { status: "connecting", retryAt: null };
  let wasLive = false;
  const conn = new Connection(data.socketPath, {
    onClock(skew) {
      // Small differences are network time, not clock error.
      cfg.clockSkew = Math.abs(skew) > 1 ? skew : 0;
      if (ui && ui.status) ui.status.skew = cfg.clockSkew;
    },
    onSnapshot(seq, state) {
      store.snapshot(state);
      schedule();
    },
    onEvent(seq, event) {
      const mySeat = store.state ? store.state.me.seat : null;
      store.apply(seq, event);
      if (event && mySeat && event.seat === mySeat && !host) {
        const seat = store.state.seats[mySeat] || {};
        const replaced =
          event.type === "seat_released" ||
          seat.bot ||
          (event.type === "seat_taken" && event.player && store.myPlayer && event.player !== store.myPlayer);
        if (replaced) {
          // The instructor gave this seat away: connect again, as whoever this browser is now.
          cfg.lostSeat = event.type === "seat_released" ? "The instructor released your seat." : "The instructor gave your seat to a bot.";
          window.setTimeout(() => conn.rebind(), 1500);
        }
      }
      if (event && ui && ui.log) ui.log.event(event, store.state);
      if (event && host && event.type === "seat_taken" && !event.bot && !event.name && store.seatNames) {
        // Until seat events carry the player's name, fetch it with a fresh snapshot (at most
        // one per second, however many students join at once).
        window.clearTimeout(seatsRefresh);
        seatsRefresh = window.setTimeout(() => conn.resync(), 1000);
      }
      schedule();
    },
    onPresence(frame) {
      store.setPresence(frame);
      schedule();
    },
    onStatus(info) {
      if (info.status === "live" && wasLive && lastStatus.status !== "live" && ui && ui.log) {
        ui.log.add("Connected again: caught up with the game.", { announce: true });
      } else if (info.status !== "live" && lastStatus.status === "live" && ui && ui.log) {
        ui.log.add(info.status === "offline" ? "You are offline." : "Connection lost; reconnecting…", { announce: true, kind: "error" });
      }
      if (info.status === "live") wasLive = true;
      if (ui) ui.status.setConnection(info, conn.unanswered);
      else {
        const loading = document.getElementById("loading");
        if (loading && info.status !== "connecting") {
          loading.textContent =
            info.status === "gone" ? "This game does not exist any more." : info.status === "offline" ? "You are offline. The table opens when you are back online." : "Connecting to the game…";
        }
      }
      lastStatus = info;
    },
    onError(frame) {
      const text = frame.message || "The server refused a message.";
      if (ui && ui.log) ui.log.add(text, { announce: true, kind: "error" });
    },
  });
  window.ratify = { store, conn, cfg };

  window.setInterval(() => {
    if (!ui) return;
    ui.status.setConnection(lastStatus, conn.unanswered);
    ui.tick();
  }, 1000);
  conn.start();
}

main();
