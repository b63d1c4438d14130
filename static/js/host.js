// The instructor's console: join code, seats with their links and bots, game controls, the
// whole table at a glance and a live log.

import { Names, pollVerdict } from "./describe.js";
import { copyText, h, replace, setText, show, syncList } from "./dom.js";
import { fmt } from "./model.js";
import {
  act,
  ActivityLog,
  button,
  Chat,
  errorLine,
  Notices,
  syncProposalHistory,
  ratifyForecast,
  roundHistory,
  StatusBar,
  syncProposals,
} from "./ui.js";

export class HostConsole {
  constructor(root, store, conn, cfg, announcer) {
    this.root = root;
    this.store = store;
    this.conn = conn;
    this.cfg = cfg;
    this.announcer = announcer;
    this.status = new StatusBar({ clockSkew: cfg.clockSkew, announcer });
    this.built = false;
  }

  build(s) {
    const cfg = this.cfg;
    this.notices = new Notices(cfg.resultsUrl);
    this.log = new ActivityLog({ host: true, title: "Live log", open: true, announcer: this.announcer });

    // Join code and address.
    const copyJoin = button("Copy", { class: "button button--quiet button--small", testid: "copy-join-url", "aria-label": "Copy the join address" });
    const copied = h("span", { class: "muted small", role: "status" });
    copyJoin.addEventListener("click", async () => {
      setText(copied, (await copyText(cfg.joinUrl)) ? "Copied." : "Select the address and copy it.");
    });
    this.presence = h("p", { class: "presence", testid: "presence", role: "status" });
    const head = h(
      "section",
      { class: "host-head", "aria-label": "How to join" },
      h("div", { class: "joincode" }, h("span", { class: "joincode__label" }, "Join code"), h("strong", { class: "joincode__code", testid: "join-code" }, cfg.code)),
      h(
        "div",
        { class: "joinurl" },
        h("p", {}, "Players open ", h("a", { href: cfg.joinUrl, testid: "join-url", class: "joinurl__link" }, cfg.joinUrl), " and type the code and their name, or use their seat's own link below. ", copyJoin, " ", copied),
        h("p", { class: "muted small" }, `${s.scenario.title}`),
        this.presence,
      ),
    );

    // Controls.
    this.controlError = errorLine("control-error");
    const control = (text, testid, name, args = {}, extra = {}) => {
      const b = button(text, { testid, ...extra });
      b.addEventListener("click", () => act(this.conn, b, this.controlError, name, args));
      return b;
    };
    this.startButton = control("Start the game", "start-game", "start_game", {}, { class: "button button--primary" });
    this.pauseButton = control("Pause", "pause", "pause");
    this.resumeButton = control("Resume", "resume", "resume", {}, { class: "button button--primary" });
    this.advanceButton = control("End this phase now", "advance", "advance_phase");
    this.plus1 = control("+1 min", "extend-1", "extend_deadline", { seconds: 60 }, { "aria-label": "Add 1 minute to the clock" });
    this.plus5 = control("+5 min", "extend-5", "extend_deadline", { seconds: 300 }, { "aria-label": "Add 5 minutes to the clock" });
    this.endButton = button("End the game…", { class: "button button--danger", testid: "end-game", "aria-expanded": "false" });
    const confirmYes = control("Yes, end the game now", "end-game-confirm", "end_game", {}, { class: "button button--danger" });
    const confirmNo = button("Keep playing", { testid: "end-game-cancel" });
    this.confirm = h("div", { class: "confirm", hidden: true, testid: "end-game-confirmation", role: "group", "aria-label": "Confirm the end of the game" }, h("p", {}, "End the game for everyone? The current round ends as it stands and no one can play on."), h("div", { class: "actions" }, confirmYes, confirmNo));
    this.endButton.addEventListener("click", () => {
      this.confirm.hidden = false;
      this.endButton.setAttribute("aria-expanded", "true");
      confirmNo.focus();
    });
    confirmNo.addEventListener("click", () => {
      this.confirm.hidden = true;
      this.endButton.setAttribute("aria-expanded", "false");
      this.endButton.focus();
    });
    this.phaseHelp = h("p", { class: "muted small", testid: "phase-help" });
    // An announcement every seat and spectator reads (kept in the log).
    const announceInput = h("input", { type: "text", id: "announce-text", maxlength: "4000", testid: "announce-text", autocomplete: "off" });
    const announceButton = button("Announce", { type: "submit", testid: "announce" });
    const announceForm = h(
      "form",
      { class: "announce", testid: "announce-form" },
      h("label", { for: "announce-text" }, "Announcement to everyone in this game"),
      h("div", { class: "announce__row" }, announceInput, announceButton),
    );
    announceForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = announceInput.value.trim();
      if (!text) return;
      if (await act(this.conn, announceButton, this.controlError, "announce", { text })) announceInput.value = "";
    });
    const controls = h(
      "section",
      { class: "card controls", "aria-labelledby": "controls-title" },
      h("h2", { id: "controls-title" }, "Run the game"),
      this.phaseHelp,
      h("div", { class: "actions" }, this.startButton, this.pauseButton, this.resumeButton, this.advanceButton, this.plus1, this.plus5, this.endButton),
      this.confirm,
      announceForm,
      this.controlError,
      h("p", { class: "small" }, h("a", { href: cfg.resultsUrl, testid: "results-link-host", target: "_blank", rel: "noopener" }, "Results and debrief"), " (opens in a new tab; scores so far until the game ends) · ", h("a", { href: cfg.replayUrl, testid: "replay-link-host", target: "_blank", rel: "noopener" }, "Replay")),
    );

    // Seats.
    this.seatError = errorLine("seat-error");
    this.fillButton = button("Fill empty seats with bots", { testid: "fill-bots" });
    this.fillButton.addEventListener("click", () => this.fillBots());
    const copyAll = button("Copy all seat links", { class: "button button--quiet", testid: "copy-all-links" });
    const copyAllNote = h("span", { class: "muted small", role: "status" });
    copyAll.addEventListener("click", async () => {
      const names = new Names(this.store.state);
      const lines = Object.entries(cfg.seatLinks).map(([key, url]) => `${names.who(key, { you: false })}: ${url}`);
      setText(copyAllNote, (await copyText(lines.join("\n"))) ? "Copied." : "Could not copy.");
    });
    this.seatCount = h("p", { class: "muted small", testid: "seat-count" });
    this.seatLists = new Map();
    const countries = s.scenario.countries.map((country) => {
      const list = h("ul", { class: "seats" });
      this.seatLists.set(country.key, list);
      return h("div", { class: "seats__country" }, h("h3", {}, country.name), list);
    });
    const seats = h(
      "section",
      { class: "card", "aria-labelledby": "seats-title", testid: "seats" },
      h("h2", { id: "seats-title" }, "Seats"),
      this.seatCount,
      h("div", { class: "actions" }, this.fillButton, copyAll, copyAllNote),
      this.seatError,
      countries,
    );

    // The table as the instructor sees it.
    this.tableList = h("ul", { class: "proposals", testid: "proposals" });
    this.tableEmpty = h("p", { class: "empty" }, "No proposal is on the table.");
    this.tableSection = h("section", { class: "card", "aria-labelledby": "host-table-title", testid: "table" }, h("h2", { id: "host-table-title" }, "On the table"), this.tableEmpty, this.tableList);
    this.voting = h("section", { class: "card", "aria-labelledby": "voting-title", testid: "voting" });
    this.pollsSection = h("section", { class: "card", testid: "polls" });
    this.offersSection = h("section", { class: "card", testid: "side-payments" });
    this.complianceSection = h("section", { class: "card", testid: "compliance" });
    this.historySlot = h("div");
    this.roundsSlot = h("div");

    const channels = [{ id: "table", label: "Table", canPost: false, note: "You read every channel; only players write." }];
    for (const country of s.scenario.countries) {
      channels.push({ id: `caucus:${country.key}`, label: `${country.name} caucus`, canPost: false, note: "You read every channel; only players write." });
    }
    channels.push({ id: "public", label: "Public", canPost: false, note: "Statements by the chiefs, read by everyone." });
    this.chat = new Chat(channels, () => Promise.reject(new Error("The instructor does not chat.")));

    const left = h("div", { class: "layout__main" }, controls, seats);
    const right = h(
      "div",
      { class: "layout__side layout__side--host" },
      this.notices.el,
      this.notices.results,
      this.voting,
      this.tableSection,
      this.pollsSection,
      this.offersSection,
      this.complianceSection,
      this.log.el,
      this.historySlot,
      this.roundsSlot,
      this.chat.el,
    );
    this.root.replaceChildren(this.status.el, h("div", { class: "app__body" }, head, h("div", { class: "layout layout--host" }, left, right)));
    this.built = true;
  }

  render() {
    const store = this.store;
    const s = store.state;
    if (!s) return;
    if (!this.built) this.build(s);
    this.status.update(s);
    this.renderControls(s);
    this.renderSeats(s);
    this.renderPresence(s);
    this.notices.update(store);
    this.renderVoting(s);
    const level1 = s.phase === "level1";
    show(this.tableSection, level1);
    show(this.tableEmpty, s.proposals.length === 0);
    syncProposals(this.tableList, store, () => [], (p) => this.forecast(s, p));
    this.renderPolls(s);
    this.renderOffers(s);
    this.renderCompliance(s);
    syncProposalHistory(this.historySlot, store);
    const roundsKey = JSON.stringify(s.history);
    if (this.roundsSlot.dataset.shown !== roundsKey) {
      this.roundsSlot.dataset.shown = roundsKey;
      replace(this.roundsSlot, roundHistory(s));
    }
    this.chat.update(s);
  }

  tick() {
    this.status.tick();
  }

  renderControls(s) {
    const running = ["level1", "level2", "compliance"].includes(s.phase);
    show(this.startButton, s.phase === "lobby");
    show(this.pauseButton, running && !s.paused);
    show(this.resumeButton, running && s.paused);
    show(this.advanceButton, running && !s.paused);
    const clockRuns = running && (s.paused ? s.paused_remaining !== null : s.deadline !== null);
    show(this.plus1, clockRuns);
    show(this.plus5, clockRuns);
    show(this.endButton, s.phase !== "ended");
    if (s.phase === "ended") this.confirm.hidden = true;
    const help = {
      lobby: "Seat everyone (or fill the empty seats with bots), then start: the chiefs open Level I.",
      level1: "Level I: the chiefs negotiate. Ending this phase now ends the round without a new agreement.",
      level2: "Level II: the constituents vote. Ending this phase now counts the votes; a missing vote counts as no.",
      compliance: "Compliance: each government chooses to comply or defect. Ending this phase now counts a missing choice as comply.",
      ended: "The game is over. Open the results for the debrief.",
    };
    setText(this.phaseHelp, help[s.phase] || "");
  }

  renderSeats(s) {
    const names = new Names(s);
    const online = new Set(this.store.presence.online || []);
    let taken = 0;
    let total = 0;
    for (const country of s.scenario.countries) {
      const keys = [country.chief.key, ...country.constituents.map((m) => m.key)];
      total += keys.length;
      syncList(
        this.seatLists.get(country.key),
        keys,
        (k) => k,
        (k) => h("li", { class: "seat", testid: `seat-${k}` }),
        (el, k) => {
          const seat = s.seats[k] || { occupied: false, bot: false };
          if (seat.occupied) taken += 1;
          const isOnline = online.has(k);
          const key = JSON.stringify([seat, isOnline, s.phase === "ended"]);
          if (el.dataset.shown === key) return;
          el.dataset.shown = key;
          const focused = el.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
          this.seatRow(el, s, names, k, seat, isOnline);
          if (focused) {
            const again = el.querySelector(`[data-testid="${focused}"]`);
            if (again) again.focus();
          }
        },
      );
    }
    setText(this.seatCount, `${taken} of ${total} seats taken.`);
    this.fillButton.disabled = taken === total;
    this.fillButton.hidden = s.phase === "ended";
  }

  seatRow(el, s, names, key, seat, isOnline) {
    const m = names.member(key);
    const link = this.cfg.seatLinks[key];
    let holder;
    let state;
    if (!seat.occupied) {
      holder = "free";
      state = "free";
    } else if (seat.bot) {
      holder = "Bot";
      state = "bot";
    } else {
      holder = seat.name || "taken";
      state = isOnline ? "online" : "away";
    }
    const stateText = { free: "free", bot: "bot", online: "online", away: "not connected" }[state];
    const copy = button("Copy link", { class: "button button--quiet button--small", testid: `copy-link-${key}`, "aria-label": `Copy link of seat ${m.name}` });
    const note = h("span", { class: "muted small", role: "status" });
    copy.addEventListener("click", async () => setText(note, (await copyText(link)) ? "Copied." : "Could not copy."));
    const bot = button("Bot", { class: "button button--small", testid: `seat-bot-${key}`, "aria-label": `Bot in seat ${m.name}`, disabled: seat.bot });
    bot.addEventListener("click", () => act(this.conn, bot, this.seatError, "seat_bot", { seat: key }));
    const release = button("Release", { class: "button button--quiet button--small", testid: `release-${key}`, "aria-label": `Release seat ${m.name}`, disabled: !seat.occupied });
    release.addEventListener("click", () => act(this.conn, release, this.seatError, "release_seat", { seat: key }));
    replace(
      el,
      h(
        "div",
        { class: "seat__who" },
        h("span", { class: `dot dot--${state}`, "aria-hidden": "true" }),
        h("strong", {}, m.name),
        h("span", { class: "muted small" }, ` ${m.role === "chief" ? "chief" : "constituent"} · ${key}`),
      ),
      h("div", { class: "seat__holder", testid: `seat-holder-${key}` }, h("span", { class: `holder holder--${state}` }, holder), h("span", { class: "visually-hidden" }, `, ${stateText}`), state === "away" ? h("span", { class: "muted small" }, " (not connected)") : null),
      h("div", { class: "seat__link" }, h("a", { href: link, class: "seat__url", title: link, testid: `seat-link-${key}` }, shortUrl(link))),
      h("div", { class: "seat__actions" }, copy, s.phase === "ended" ? null : [bot, release], note),
    );
  }

  async fillBots() {
    const s = this.store.state;
    const empty = Object.keys(s.seats).filter((k) => !s.seats[k].occupied);
    if (!empty.length) return;
    this.fillButton.setAttribute("aria-busy", "true");
    setText(this.seatError, "");
    const results = await Promise.allSettled(empty.map((seat) => this.conn.command("seat_bot", { seat })));
    this.fillButton.removeAttribute("aria-busy");
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) setText(this.seatError, failed[0].reason.message);
  }

  renderPresence(s) {
    const p = this.store.presence;
    const humans = Object.entries(s.seats).filter(([, seat]) => seat.occupied && !seat.bot);
    const online = humans.filter(([k]) => (p.online || []).includes(k)).length;
    const spectators = p.spectators ? ` · ${p.spectators} watching` : "";
    setText(this.presence, `${online} of ${humans.length} players connected${spectators}.`);
  }

  forecast(s, p) {
    const rows = ratifyForecast(s, p.values);
    if (!rows.length) return null;
    return h(
      "ul",
      { class: "forecast small", "aria-label": "If everyone voted sincerely" },
      rows.map((r) =>
        h(
          "li",
          {},
          h("span", { class: r.ratifies ? "ok" : "ko" }, `${r.country.name} ${r.ratifies ? "would ratify" : "would not ratify"}`),
          ` (${fmt(r.yes)} of ${fmt(r.total)} for)`,
          r.chiefU !== null ? `; chief ${fmt(r.chiefU, 1)} vs bottom line ${fmt(r.country.chief.reservation, 1)}${r.chiefOk ? "" : " (below)"}` : "",
        ),
      ),
    );
  }

  renderVoting(s) {
    const show2 = s.phase === "level2";
    show(this.voting, show2);
    if (!show2) return;
    const names = new Names(s);
    const ballots = s.ballots.ballots || {};
    const key = JSON.stringify([Object.keys(ballots).sort(), s.tentative]);
    if (this.voting.dataset.shown === key) return;
    this.voting.dataset.shown = key;
    const voters = s.scenario.countries.flatMap((c) => c.constituents.map((m) => ({ m, c })));
    const cast = voters.filter(({ m }) => m.key in ballots).length;
    replace(
      this.voting,
      h("h2", { id: "voting-title" }, "Level II vote in progress"),
      h("p", { testid: "ballots-cast" }, `${cast} of ${voters.length} votes cast. Votes stay secret until the count.`),
      s.scenario.countries.map((c) =>
        h(
          "div",
          {},
          h("h3", {}, c.name),
          h(
            "ul",
            { class: "voters" },
            c.constituents.map((m) => h("li", { class: m.key in ballots ? "voted" : "waiting" }, `${m.name}: ${m.key in ballots ? "voted" : "not yet"} (${names.holder(m.key)})`)),
          ),
        ),
      ),
    );
  }

  renderPolls(s) {
    const names = new Names(s);
    show(this.pollsSection, s.polls.length > 0 && s.phase === "level1");
    const key = JSON.stringify(s.polls);
    if (this.pollsSection.dataset.shown === key) return;
    this.pollsSection.dataset.shown = key;
    replace(
      this.pollsSection,
      h("h2", {}, "Straw polls"),
      h(
        "ul",
        { class: "polls" },
        [...s.polls].reverse().map((p) => {
          const r = p.result;
          const status = p.closed && r ? `${r.yes} yes, ${r.no} no, ${r.unanswered} no answer: ${pollVerdict(r)}` : `open, ${p.answered} answered`;
          return h("li", { testid: `poll-${p.id}` }, h("strong", {}, `#${p.id}`), ` ${names.who(p.by)}: ${names.values(p.values)}. `, status, ".");
        }),
      ),
    );
  }

  renderOffers(s) {
    const names = new Names(s);
    const entries = Object.entries(s.offers || {}).flatMap(([by, book]) => Object.entries(book).map(([to, amount]) => ({ by, to, amount })));
    show(this.offersSection, entries.length > 0);
    const key = JSON.stringify(entries);
    if (this.offersSection.dataset.shown === key) return;
    this.offersSection.dataset.shown = key;
    replace(
      this.offersSection,
      h("h2", {}, "Side payments promised"),
      h("ul", {}, entries.map((e) => h("li", {}, `${names.who(e.by)} → ${names.who(e.to)}: ${fmt(e.amount)} points`))),
    );
  }

  renderCompliance(s) {
    const names = new Names(s);
    const visible = s.phase === "compliance";
    show(this.complianceSection, visible);
    if (!visible) return;
    const key = JSON.stringify(s.compliance);
    if (this.complianceSection.dataset.shown === key) return;
    this.complianceSection.dataset.shown = key;
    replace(
      this.complianceSection,
      h("h2", {}, "Compliance choices"),
      h(
        "ul",
        {},
        s.scenario.countries.map((c) => {
          const choice = s.compliance[c.key];
          return h("li", {}, `${names.country(c.key)}: ${choice === undefined ? "not chosen yet" : "chosen (revealed when every government has chosen)"}`);
        }),
      ),
    );
  }
}

function shortUrl(url) {
  try {
    const u = new URL(url);
    return u.pathname;
  } catch {
    return url;
  }
}

