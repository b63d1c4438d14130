// The player's table: a chief's or a constituent's (or a spectator's) view of the game.

import { Names, pollVerdict } from "./describe.js";
import { h, replace, setText, show, syncList } from "./dom.js";
import { clock, fmt, grid, indexOf, snap, valueAt, valuesList } from "./model.js";
import {
  act,
  ActivityLog,
  button,
  Chat,
  errorLine,
  nextId,
  Notices,
  syncProposalHistory,
  ratifyForecast,
  roundHistory,
  showError,
  StatusBar,
  syncProposals,
  transferTo,
  valuesTable,
  verdict,
  verdictLine,
} from "./ui.js";

export class PlayerTable {
  constructor(root, store, conn, cfg, announcer) {
    this.root = root;
    this.store = store;
    this.conn = conn;
    this.cfg = cfg;
    this.announcer = announcer;
    this.status = new StatusBar({ clockSkew: cfg.clockSkew, announcer });
    this.built = false;
  }

  /** Build the page on the first snapshot (it depends on the seat and the scenario). */
  build(s) {
    const role = s.me.role;
    this.notices = new Notices(this.cfg.resultsUrl, this.cfg.lobbyUrl);
    this.log = new ActivityLog({ title: "What happened", open: window.matchMedia("(min-width: 60rem)").matches, announcer: this.announcer });

    this.roleCard = h("section", { class: "rolecard", "aria-label": "Your role" });
    this.standIn = new StandInNotice(this.cfg);
    this.lobbyCard = h("section", { class: "card", testid: "lobby-card" });
    this.ballot = new Ballot(this);
    this.compliance = new Compliance(this);
    this.proposals = new Proposals(this);
    this.builder = role === "chief" || role === "constituent" ? new Builder(this) : null;
    this.polls = role === "chief" || role === "constituent" ? new Polls(this) : null;
    this.payments = role === "chief" || role === "constituent" ? new Payments(this) : null;
    this.historySlot = h("div");
    this.roundsSlot = h("div");

    const channels = [];
    const country = s.me.country;
    const countryName = new Names(s).country(country);
    if (role === "chief") {
      channels.push({
        id: "table",
        label: "Table",
        title: "The Level I table",
        canPost: true,
        inputLabel: "Message to the other chiefs",
        empty: "The Level I table: only the chiefs read it.",
      });
    }
    if (role === "chief" || role === "constituent") {
      channels.push({
        id: `caucus:${country}`,
        label: "Caucus",
        title: `${countryName} caucus`,
        canPost: true,
        inputLabel: `Message to ${countryName}'s caucus (your chief and constituents)`,
        empty: `Only ${countryName}'s chief and constituents read this.`,
      });
    }
    channels.push({
      id: "public",
      label: "Public",
      title: "Public statements",
      canPost: role === "chief",
      inputLabel: "Public statement (everyone reads it, including the other side's constituents)",
      sendLabel: "Publish",
      empty: "Public statements by the chiefs appear here.",
      note: role === "chief" ? null : "Only chiefs make public statements.",
    });
    this.chat = new Chat(channels, (channel, text) =>
      channel === "public" ? this.conn.command("statement", { text }) : this.conn.command("chat", { channel, text }),
    );

    const main = h(
      "div",
      { class: "layout__main" },
      this.standIn.el,
      this.notices.el,
      this.lobbyCard,
      this.ballot.el,
      this.compliance.el,
      this.notices.results,
      this.roundsSlot,
      this.proposals.el,
      this.builder ? this.builder.el : null,
      this.polls ? this.polls.el : null,
      this.payments ? this.payments.el : null,
      this.historySlot,
    );
    const side = h("div", { class: "layout__side" }, this.chat.el, this.log.el);
    this.root.replaceChildren(
      this.status.el,
      h("div", { class: "app__body" }, this.roleCard, h("div", { class: "layout" }, main, side)),
    );
    this.built = true;
  }

  render() {
    const store = this.store;
    const s = store.state;
    if (!s) return;
    if (!this.built) this.build(s);
    this.status.update(s);
    this.standIn.update(s);
    this.renderRole(s);
    this.notices.update(store);
    this.renderLobby(s);
    this.ballot.update(s);
    this.compliance.update(s);
    this.proposals.update(store);
    if (this.builder) this.builder.update(s);
    if (this.polls) this.polls.update(s);
    if (this.payments) this.payments.update(s);
    syncProposalHistory(this.historySlot, store);
    const roundsKey = JSON.stringify(s.history);
    if (this.roundsSlot.dataset.shown !== roundsKey) {
      this.roundsSlot.dataset.shown = roundsKey;
      replace(this.roundsSlot, roundHistory(s));
    }
    this.chat.update(s);
  }

  renderRole(s) {
    const key = JSON.stringify([s.me.seat, s.seats[s.me.seat]]);
    if (this.roleCard.dataset.shown === key) return;
    this.roleCard.dataset.shown = key;
    if (!s.me.seat) {
      replace(
        this.roleCard,
        this.cfg.lostSeat ? h("p", { class: "notice notice--defection", testid: "seat-lost", role: "status" }, `${this.cfg.lostSeat} You are now watching.`) : null,
        h("p", { class: "rolecard__who" }, "You are watching this game as a spectator: you see the public record only."),
        h("p", {}, h("a", { href: this.cfg.lobbyUrl }, "Take a seat to play")),
      );
      return;
    }
    const names = new Names(s);
    const me = s.me;
    const title = me.role === "chief" ? me.title || "Chief negotiator" : "Constituent";
    const ideal = s.scenario.issues.map((issue) => `${issue.label} ${fmt(me.ideal[issue.key])}`).join(", ");
    replace(
      this.roleCard,
      h(
        "p",
        { class: "rolecard__who", testid: "me" },
        h("strong", {}, me.name),
        ` · ${title} · ${names.country(me.country)}`,
      ),
      h(
        "p",
        { class: "rolecard__prefs" },
        `Your ideal: ${ideal}. Your bottom line: ${fmt(me.reservation, 1)} points. `,
        h("a", { href: this.cfg.briefingUrl, target: "_blank", rel: "noopener", testid: "briefing-link" }, "Read your briefing"),
      ),
    );
  }

  renderLobby(s) {
    const lobby = s.phase === "lobby";
    show(this.lobbyCard, lobby);
    if (!lobby || this.lobbyCard.dataset.shown === "yes") return;
    this.lobbyCard.dataset.shown = "yes";
    replace(
      this.lobbyCard,
      h("h2", {}, "The game has not started yet"),
      h(
        "p",
        {},
        s.me.seat
          ? "Your instructor starts the game when everyone is seated. Meanwhile read your briefing: what you want, how much each issue matters to you, and your bottom line."
          : "Your instructor starts the game when everyone is seated.",
      ),
      s.me.seat ? h("p", {}, h("a", { class: "button button--primary", href: this.cfg.briefingUrl, target: "_blank", rel: "noopener" }, "Open your briefing")) : null,
      s.scenario.summary
        ? h("details", { class: "about" }, h("summary", {}, `About the scenario: ${s.scenario.title}`), h("p", {}, s.scenario.summary))
        : null,
    );
  }

  tick() {
    this.status.tick();
    if (this.ballot) this.ballot.tick();
  }
}

// ---------------------------------------------------------------------------------------------
// "A bot played for you": after a bot kept this seat (a dropped connection in a remote match,
// or the instructor) and gave it back. Asked of the server when the table opens and when the
// seat passes from a bot back to this player; shown once per hand-back, for a while.

/** How long after getting the seat back the notice is still worth showing (ms). */
const STAND_IN_NOTICE_MS = 30 * 60 * 1000;

class StandInNotice {
  constructor(cfg) {
    this.url = `${cfg.lobbyUrl}stood-in/`;
    this.code = cfg.code;
    this.el = h("section", { class: "notice notice--announcement", testid: "stood-in", role: "status", hidden: true });
    this.checked = false;
    this.seatWasBot = false;
  }

  update(s) {
    const seat = s.me.seat ? s.seats[s.me.seat] : null;
    const bot = Boolean(seat && seat.bot);
    if (s.me.seat && (!this.checked || (this.seatWasBot && !bot))) {
      this.checked = true;
      this.check();
    }
    this.seatWasBot = bot;
  }

  async check() {
    let found = null;
    try {
      const response = await fetch(this.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      found = (await response.json()).stood_in;
    } catch {
      return;
    }
    if (!found) return;
    const key = `ratify-stood-in-${this.code}-${found.until_seq}`;
    const fresh = Date.now() - found.until * 1000 < STAND_IN_NOTICE_MS;
    if (!fresh || window.sessionStorage.getItem(key)) return;
    const at = (seconds) => new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const moves = found.moves === 1 ? "1 move" : `${found.moves} moves`;
    replace(
      this.el,
      h("p", { class: "notice__title" }, "A bot played for you while you were away"),
      h("p", { testid: "stood-in-text" }, `From ${at(found.since)} to ${at(found.until)} a bot kept your seat (${moves}). The seat is yours again.`),
      h(
        "button",
        {
          type: "button",
          class: "button button--small",
          testid: "stood-in-dismiss",
          on: {
            click: () => {
              window.sessionStorage.setItem(key, "seen");
              show(this.el, false);
            },
          },
        },
        "OK",
      ),
    );
    show(this.el, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Proposals on the table

class Proposals {
  constructor(table) {
    this.table = table;
    this.hint = h("p", { class: "muted" });
    this.empty = h("p", { class: "empty" }, "No proposal is on the table yet.");
    this.list = h("ul", { class: "proposals", testid: "proposals" });
    this.el = h("section", { class: "card", "aria-labelledby": "table-title", testid: "table" }, h("h2", { id: "table-title" }, "On the table"), this.hint, this.empty, this.list);
  }

  update(store) {
    const s = store.state;
    const visible = s.phase === "level1" && Boolean(s.me.seat);
    show(this.el, visible);
    if (!visible) return;
    const chief = s.me.role === "chief";
    setText(
      this.hint,
      chief
        ? "Accept a proposal, or counter it with a text of your own. When every chief accepts the identical text, it becomes a tentative agreement and goes home for a vote."
        : "The chiefs' proposals. You vote only on a text every chief has accepted; tell your chief in the caucus what you can live with.",
    );
    show(this.empty, s.proposals.length === 0);
    const forecastShown = (s.scenario.countries || []).some((c) => c.constituents.some((m) => m.ideal && m.key !== s.me.seat));
    syncProposals(
      this.list,
      store,
      (p, el) => (chief ? this.actions(s, p, el) : []),
      forecastShown ? (p) => forecast(s, p.values) : null,
    );
  }

  actions(s, p, el) {
    const conn = this.table.conn;
    const error = () => el.querySelector(".field-error");
    const out = [];
    const mine = p.by === s.me.seat;
    const acceptedByMe = p.accepted_by.includes(s.me.seat);
    if (!mine && !acceptedByMe) {
      const accept = button(`Accept #${p.id}`, {
        class: "button button--primary",
        testid: `accept-${p.id}`,
        "aria-label": `Accept proposal ${p.id}`,
        disabled: s.paused,
      });
      accept.addEventListener("click", () => act(conn, accept, error(), "accept", { proposal_id: p.id }));
      out.push(accept);
    } else if (!mine) {
      out.push(h("span", { class: "tag tag--agreed" }, "You accepted this"));
    }
    if (!mine) {
      const counter = button("Counter", { testid: `counter-${p.id}`, "aria-label": `Counter proposal ${p.id}` });
      counter.addEventListener("click", () => this.table.builder.load(p.values, p.id));
      out.push(counter);
    }
    if (mine) {
      const withdraw = button("Withdraw", { class: "button button--quiet", testid: `withdraw-${p.id}`, "aria-label": `Withdraw proposal ${p.id}`, disabled: s.paused });
      withdraw.addEventListener("click", () => act(conn, withdraw, error(), "withdraw", { proposal_id: p.id }));
      out.push(withdraw);
    }
    return out;
  }
}

/** Countries whose constituents' preferences the viewer may see: would they ratify? */
function forecast(s, values) {
  const rows = ratifyForecast(s, values);
  if (!rows.length) return null;
  return h(
    "p",
    { class: "forecast small" },
    "If everyone voted sincerely: ",
    rows.map((r, i) => [i ? "; " : "", `${r.country.name} ${r.ratifies ? "would ratify" : "would not ratify"} (${fmt(r.yes)} of ${fmt(r.total)})`]),
    ".",
  );
}

// ---------------------------------------------------------------------------------------------
// The proposal builder (chiefs) / a calculator (constituents)

class Builder {
  constructor(table) {
    this.table = table;
    this.values = null;
    this.repliesTo = null;
    this.inputs = new Map();
    this.outputs = new Map();
    this.chief = null;
  }

  get el() {
    if (!this._el) this.make();
    return this._el;
  }

  make() {
    const s = this.table.store.state;
    const chief = s.me.role === "chief";
    this.chief = chief;
    this.values = {};
    for (const issue of s.scenario.issues) this.values[issue.key] = snap(issue, s.me.ideal[issue.key]);
    const titleId = nextId("builder");
    this.replying = h("p", { class: "replying", testid: "replying" });
    this.preview = h("div", { class: "preview", "aria-live": "polite", testid: "preview" });
    this.same = h("p", { class: "muted small", testid: "same-text" });
    this.error = errorLine("builder-error");
    const rows = s.scenario.issues.map((issue) => this.issueRow(s, issue));
    this.proposeButton = h("button", { type: "submit", class: "button button--primary", testid: "propose" }, "Propose");
    this.pollButton = button("Straw-poll it at home", { testid: "open-poll" });
    this.pollButton.addEventListener("click", () => this.openPoll());
    const reset = button("Back to my ideal", { class: "button button--quiet", testid: "builder-reset" });
    reset.addEventListener("click", () => this.load(s.me.ideal, null));
    this.buttons = h("div", { class: "actions" }, chief ? [this.proposeButton, this.pollButton] : null, reset);
    this.lobbyNote = h("p", { class: "muted small" }, "Try texts now: proposals open when the instructor starts the game.");
    this.form = h(
      "form",
      { class: "builder", "aria-labelledby": titleId, novalidate: true, on: { submit: (e) => this.propose(e) } },
      this.replying,
      rows,
      this.preview,
      this.same,
      this.buttons,
      this.lobbyNote,
      this.error,
    );
    if (chief) {
      this._el = h(
        "section",
        { class: "card", "aria-labelledby": titleId, testid: "builder" },
        h("h2", { id: titleId }, "Your proposal"),
        h("p", { class: "muted small" }, "Set every issue, check what the text is worth to you, then table it. Your new proposal replaces your previous one and counts as your acceptance."),
        this.form,
      );
    } else {
      this._el = h(
        "details",
        { class: "card", testid: "builder" },
        h("summary", {}, h("h2", { id: titleId, class: "summary-heading" }, "Try a text: what would it be worth to you?")),
        this.form,
      );
    }
  }

  issueRow(s, issue) {
    const g = grid(issue);
    const id = nextId(`issue-${issue.key}`);
    const hintId = nextId("hint");
    const input = h("input", {
      type: "range",
      id,
      min: String(g.min),
      max: String(g.max),
      step: String(g.step),
      value: String(this.values[issue.key]),
      testid: `issue-${issue.key}`,
      "aria-describedby": hintId,
      class: "issue__range",
    });
    const output = h("output", { for: id, class: "issue__value", testid: `issue-value-${issue.key}` });
    const down = button("−", { class: "button button--step", "aria-label": `Lower ${issue.label}`, testid: `issue-down-${issue.key}` });
    const up = button("+", { class: "button button--step", "aria-label": `Raise ${issue.label}`, testid: `issue-up-${issue.key}` });
    const set = (value) => {
      this.values[issue.key] = snap(issue, value);
      this.refresh();
    };
    input.addEventListener("input", () => set(Number(input.value)));
    input.addEventListener("change", () => set(Number(input.value)));
    down.addEventListener("click", () => set(valueAt(issue, indexOf(issue, this.values[issue.key]) - 1)));
    up.addEventListener("click", () => set(valueAt(issue, indexOf(issue, this.values[issue.key]) + 1)));
    this.inputs.set(issue.key, input);
    this.outputs.set(issue.key, output);
    return h(
      "div",
      { class: "issue" },
      h("label", { for: id, class: "issue__label" }, issue.label, issue.unit ? h("span", { class: "issue__unit muted small" }, issue.unit) : null),
      h("div", { class: "issue__control" }, down, input, up, output),
      h("p", { id: hintId, class: "issue__hint muted small" }, `${fmt(g.min)} to ${fmt(g.max)}; your ideal is ${fmt(s.me.ideal[issue.key])}.`),
    );
  }

  /** Put a text in the builder (a counter-proposal when `repliesTo` is set) and focus it. */
  load(values, repliesTo) {
    const s = this.table.store.state;
    const list = valuesList(s.scenario, values);
    s.scenario.issues.forEach((issue, j) => {
      this.values[issue.key] = snap(issue, list[j]);
    });
    this.repliesTo = repliesTo;
    this.refresh();
    const first = this.inputs.values().next().value;
    if (this._el.tagName === "DETAILS") this._el.open = true;
    this._el.scrollIntoView({ block: "start", behavior: "smooth" });
    if (first) first.focus({ preventScroll: true });
  }

  refresh() {
    const s = this.table.store.state;
    for (const issue of s.scenario.issues) {
      const value = this.values[issue.key];
      const input = this.inputs.get(issue.key);
      if (Number(input.value) !== value) input.value = String(value);
      const text = `${fmt(value)}${issue.unit ? ` ${issue.unit}` : ""}`;
      input.setAttribute("aria-valuetext", text);
      setText(this.outputs.get(issue.key), fmt(value));
    }
    const v = verdict(s, this.values, transferTo(s, s.me.seat));
    const forecastRows = ratifyForecast(s, this.values);
    // Only touch the live region when what it says changes (it is read out).
    const previewKey = JSON.stringify([v && v.text, forecastRows.map((r) => [r.country.key, r.ratifies, r.yes])]);
    if (this.preview.dataset.shown !== previewKey) {
      this.preview.dataset.shown = previewKey;
      replace(
        this.preview,
        v ? h("p", { class: `verdict ${v.good ? "verdict--good" : "verdict--bad"}`, testid: "preview-verdict" }, v.text) : null,
        forecastRows.length ? forecast(s, this.values) : null,
      );
    }
    this.preview.dataset.utility = v ? String(v.u) : "";
    this.preview.dataset.beats = v ? String(v.good) : "";
    // Counter-proposal marker.
    show(this.replying, this.repliesTo !== null);
    if (this.repliesTo !== null && this.replying.dataset.shown !== String(this.repliesTo)) {
      this.replying.dataset.shown = String(this.repliesTo);
      const cancel = button("Not a counter", { class: "button button--quiet button--small" });
      cancel.addEventListener("click", () => {
        this.repliesTo = null;
        this.refresh();
      });
      replace(this.replying, `Countering proposal #${this.repliesTo}. `, cancel);
    }
    if (this.repliesTo === null) this.replying.dataset.shown = "";
    const same = s.proposals.find((p) => s.scenario.issues.every((issue) => Number(p.values[issue.key]) === this.values[issue.key]));
    const sameText =
      this.chief && same && s.phase === "level1"
        ? same.by === s.me.seat
          ? `This is your proposal #${same.id}.`
          : `This text is already on the table as #${same.id}: proposing it accepts it.`
        : "";
    setText(this.same, sameText);
    show(this.same, Boolean(sameText));
  }

  update(s) {
    if (!this._el) this.make();
    const chiefActive = this.chief && s.phase === "level1";
    show(this._el, s.phase === "level1" || s.phase === "lobby");
    show(this.lobbyNote, s.phase === "lobby");
    this.proposeButton.disabled = !chiefActive || s.paused;
    this.pollButton.disabled = !chiefActive || s.paused;
    const openPoll = s.polls.some((p) => p.by === s.me.seat && !p.closed);
    this.pollButton.hidden = openPoll;
    if (this.repliesTo !== null && !s.proposals.some((p) => p.id === this.repliesTo) && s.phase !== "level1") this.repliesTo = null;
    this.refresh();
  }

  async propose(event) {
    event.preventDefault();
    const s = this.table.store.state;
    const args = { values: valuesList(s.scenario, this.values) };
    if (this.repliesTo !== null) args.replies_to = this.repliesTo;
    const ok = await act(this.table.conn, this.proposeButton, this.error, "propose", args);
    if (ok) {
      this.repliesTo = null;
      this.refresh();
    }
  }

  openPoll() {
    const s = this.table.store.state;
    act(this.table.conn, this.pollButton, this.error, "open_straw_poll", { values: valuesList(s.scenario, this.values) });
  }
}

// ---------------------------------------------------------------------------------------------
// Straw polls

class Polls {
  constructor(table) {
    this.table = table;
    this.titleId = nextId("polls");
    this.intro = h("p", { class: "muted small" });
    this.list = h("ul", { class: "polls" });
    this.el = h("section", { class: "card", "aria-labelledby": this.titleId, testid: "polls" }, h("h2", { id: this.titleId }, "Straw polls"), this.intro, this.list);
  }

  update(s) {
    const polls = [...s.polls].reverse();
    const chief = s.me.role === "chief";
    show(this.el, s.phase === "level1" && (polls.length > 0 || chief));
    setText(
      this.intro,
      chief
        ? "Ask your constituents, before you commit, whether they would vote yes on a text. Answers are private: you see only the total when you close the poll. Start one from your proposal above."
        : "Your chief asks whether you would vote yes on a text. Non-binding; your chief sees only the total.",
    );
    syncList(
      this.list,
      polls,
      (p) => p.id,
      (p) => h("li", { class: "poll", testid: `poll-${p.id}` }),
      (el, p) => this.card(el, s, p),
    );
  }

  card(el, s, p) {
    const key = JSON.stringify([p, s.phase, s.offers, s.paused]);
    if (el.dataset.shown === key) return;
    el.dataset.shown = key;
    const conn = this.table.conn;
    const names = new Names(s);
    const error = el.querySelector(".field-error") || errorLine(`poll-error-${p.id}`);
    const parts = [
      h("p", { class: "poll__head" }, h("strong", {}, `Poll #${p.id}`), p.by === s.me.seat ? " · yours" : ` · asked by ${names.who(p.by)}`, p.closed ? " · closed" : " · open"),
      valuesTable(s.scenario, p.values, { caption: `Straw poll ${p.id}` }),
    ];
    if (s.me.role === "constituent") parts.push(verdictLine(s, p.values, transferTo(s, s.me.seat)));
    if (p.closed && p.result) {
      const r = p.result;
      parts.push(
        h(
          "p",
          { class: `poll__result ${r.would_ratify ?? r.quota_met ? "verdict--good" : "verdict--bad"}`, testid: `poll-result-${p.id}` },
          `${r.yes} yes, ${r.no} no, ${r.unanswered} no answer (${fmt(r.yes_weight)} of ${fmt(r.total_weight)} weighted votes for): ${pollVerdict(r)}.`,
        ),
      );
    } else if (s.me.role === "constituent") {
      if (p.my_answer === null || p.my_answer === undefined) {
        const yes = button("Yes, I would vote yes", { class: "button button--primary", testid: `poll-yes-${p.id}`, disabled: s.paused });
        const no = button("No", { testid: `poll-no-${p.id}`, disabled: s.paused });
        yes.addEventListener("click", () => act(conn, yes, error, "answer_straw_poll", { poll_id: p.id, yes: true }));
        no.addEventListener("click", () => act(conn, no, error, "answer_straw_poll", { poll_id: p.id, yes: false }));
        parts.push(h("p", {}, "Would you vote yes on this text?"), h("div", { class: "actions" }, yes, no));
      } else {
        parts.push(h("p", { testid: `poll-answer-${p.id}` }, `You answered ${p.my_answer ? "yes" : "no"}. Your chief sees only the total.`));
      }
    } else if (p.by === s.me.seat) {
      const close = button("Close the poll and see the result", { testid: `close-poll-${p.id}`, disabled: s.paused });
      close.addEventListener("click", () => act(conn, close, error, "close_straw_poll", { poll_id: p.id }));
      parts.push(h("p", { class: "muted small" }, "The poll closes by itself when every constituent has answered."), h("div", { class: "actions" }, close));
    }
    parts.push(error);
    replace(el, parts);
  }
}

// ---------------------------------------------------------------------------------------------
// Side payments

class Payments {
  constructor(table) {
    this.table = table;
    this.titleId = nextId("payments");
    this.body = h("div");
    this.el = h("section", { class: "card", "aria-labelledby": this.titleId, testid: "side-payments" }, h("h2", { id: this.titleId }, "Side payments"), this.body);
    this.form = null;
  }

  update(s) {
    if (s.me.role === "chief") this.chief(s);
    else this.constituent(s);
  }

  constituent(s) {
    const received = (s.offers && s.offers.received) || {};
    const entries = Object.entries(received);
    show(this.el, entries.length > 0);
    const key = JSON.stringify(received);
    if (this.body.dataset.shown === key) return;
    this.body.dataset.shown = key;
    const names = new Names(s);
    replace(
      this.body,
      h(
        "ul",
        { testid: "side-payments-received" },
        entries.map(([by, amount]) => h("li", {}, `${names.who(by)} promised you ${fmt(amount)} points if the agreement enters into force.`)),
      ),
      h("p", { class: "muted small" }, "A promised side payment counts in your vote: you vote yes when the text plus the payment is worth more than your bottom line."),
    );
  }

  chief(s) {
    const names = new Names(s);
    const country = s.scenario.countries.find((c) => c.key === s.me.country);
    const budget = Number(country ? country.side_payment_budget || 0 : 0);
    const made = (s.offers && s.offers.made) || {};
    const promised = Object.values(made).reduce((a, b) => a + Number(b), 0);
    show(this.el, budget > 0);
    if (budget <= 0) return;
    if (!this.form) this.makeForm(s, budget);
    const key = JSON.stringify([made, s.phase, s.paused]);
    if (this.body.dataset.shown === key) return;
    this.body.dataset.shown = key;
    const open = s.phase === "level1" && !s.paused;
    const rows = Object.entries(made).map(([to, amount]) => {
      const withdraw = button("Withdraw", { class: "button button--quiet button--small", testid: `side-payment-withdraw-${to}`, "aria-label": `Withdraw the side payment to ${names.role(to)}` });
      withdraw.addEventListener("click", () => act(this.table.conn, withdraw, this.error, "offer_side_payment", { to, amount: 0 }));
      return h("li", { testid: `side-payment-${to}` }, `${names.who(to)}: ${fmt(amount)} points `, open ? withdraw : null);
    });
    this.amount.max = String(budget);
    replace(
      this.body,
      h("p", { testid: "side-payment-budget" }, `Budget ${fmt(budget)} points: ${fmt(promised)} promised, ${fmt(budget - promised)} left. Paid only if the agreement enters into force.`),
      rows.length ? h("ul", {}, rows) : h("p", { class: "muted" }, "You have promised nothing yet."),
      open ? this.form : null,
    );
  }

  makeForm(s, budget) {
    const toId = nextId("pay-to");
    const amountId = nextId("pay-amount");
    this.error = errorLine("side-payment-error");
    this.to = h("select", { id: toId, testid: "side-payment-to" });
    for (const country of s.scenario.countries) {
      const group = h("optgroup", { label: country.name });
      for (const m of country.constituents) group.append(h("option", { value: m.key }, m.name));
      if (country.key === s.me.country) this.to.prepend(group);
      else this.to.append(group);
    }
    this.to.value = s.scenario.countries.find((c) => c.key === s.me.country).constituents[0]?.key || "";
    this.amount = h("input", { id: amountId, type: "number", min: "0", max: String(budget), step: "1", value: "1", inputmode: "numeric", testid: "side-payment-amount", class: "input--short" });
    const send = h("button", { type: "submit", class: "button", testid: "side-payment-send" }, "Promise");
    this.form = h(
      "form",
      {
        class: "payments__form",
        novalidate: true,
        on: {
          submit: (e) => {
            e.preventDefault();
            const amount = Number(this.amount.value);
            if (!Number.isInteger(amount) || amount < 0) {
              showError(this.error, "A side payment is a whole number of points, 0 or more.");
              return;
            }
            act(this.table.conn, send, this.error, "offer_side_payment", { to: this.to.value, amount });
          },
        },
      },
      h("div", { class: "field" }, h("label", { for: toId }, "To"), this.to),
      h("div", { class: "field" }, h("label", { for: amountId }, "Points (0 withdraws)"), this.amount),
      send,
      this.error,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// The Level II ballot

class Ballot {
  constructor(table) {
    this.table = table;
    this.el = h("section", { class: "card card--focus ballot", "aria-labelledby": "ballot-title", testid: "ballot" });
    this.timer = h("p", { class: "ballot__timer", testid: "ballot-timer" });
  }

  update(s) {
    const level2 = s.phase === "level2" && s.tentative && s.me.seat;
    show(this.el, Boolean(level2));
    if (!level2) return;
    const constituent = s.me.role === "constituent";
    const transfer = transferTo(s, s.me.seat);
    const key = JSON.stringify([s.tentative, s.ballots.mine, transfer, constituent, s.paused]);
    if (this.el.dataset.shown === key) return;
    this.el.dataset.shown = key;
    const conn = this.table.conn;
    const error = this.el.querySelector(".field-error") || errorLine("ballot-error");
    const focused = this.el.contains(document.activeElement);
    const parts = [
      h("h2", { id: "ballot-title" }, constituent ? "Your vote: ratify this agreement?" : "Your constituents are voting"),
      h(
        "p",
        {},
        constituent
          ? "The chiefs agreed on this text. Vote yes to ratify it or no to reject it: no amendments. The votes stay secret until the count; a missing vote counts as no."
          : "Your constituents vote on the text you agreed. You will see the count, country by country, when every vote is in or time is up.",
      ),
      valuesTable(s.scenario, s.tentative.values, { caption: "The text put to the vote" }),
      verdictLine(s, s.tentative.values, constituent ? transfer : 0, "ballot-verdict"),
      this.timer,
    ];
    if (constituent) {
      if (s.ballots.mine === null || s.ballots.mine === undefined) {
        const yes = button("Vote yes", { class: "button button--primary button--big", testid: "ballot-yes", disabled: s.paused });
        const no = button("Vote no", { class: "button button--big button--no", testid: "ballot-no", disabled: s.paused });
        yes.addEventListener("click", () => act(conn, yes, error, "cast_ballot", { yes: true }));
        no.addEventListener("click", () => act(conn, no, error, "cast_ballot", { yes: false }));
        parts.push(h("div", { class: "actions" }, yes, no));
      } else {
        parts.push(
          h(
            "p",
            { class: "ballot__status", testid: "ballot-status", tabindex: "-1" },
            `You voted ${s.ballots.mine ? "yes" : "no"}. Your vote is final; the result comes when every vote is in or time is up.`,
          ),
        );
      }
    }
    parts.push(error);
    replace(this.el, parts);
    if (focused) {
      const status = this.el.querySelector('[data-testid="ballot-status"]');
      if (status) status.focus();
    }
    this.tick();
  }

  tick() {
    if (this.el.hidden) return;
    const s = this.table.store.state;
    const left = this.table.status.remaining();
    let text;
    if (left === null) text = "No time limit on this vote.";
    else if (s.paused) text = `Paused: ${clock(left)} left to vote when the game goes on.`;
    else if (left <= 0) text = "Time is up: the votes are being counted.";
    else text = `Time left to vote: ${clock(left)}`;
    setText(this.timer, text);
  }
}

// ---------------------------------------------------------------------------------------------
// Compliance (chiefs)

class Compliance {
  constructor(table) {
    this.table = table;
    this.el = h("section", { class: "card card--focus", "aria-labelledby": "compliance-title", testid: "compliance" });
  }

  update(s) {
    const visible = s.phase === "compliance" && Boolean(s.me.seat);
    show(this.el, visible);
    if (!visible) return;
    const chief = s.me.role === "chief";
    const chosen = s.compliance[s.me.country];
    const key = JSON.stringify([chosen, chief, s.paused]);
    if (this.el.dataset.shown === key) return;
    this.el.dataset.shown = key;
    const settings = s.settings || this.table.cfg.settings || s.scenario.game || {};
    const pay = settings.payoffs || { T: 5, R: 3, P: 1, S: 0 };
    const regime = settings.regime;
    const conn = this.table.conn;
    const error = this.el.querySelector(".field-error") || errorLine("compliance-error");
    const two = s.scenario.countries.length <= 2;
    const table = h(
      "table",
      { class: "payoffs", testid: "payoffs" },
      h("caption", {}, "Your government's payoff"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("td"),
          h("th", { scope: "col" }, two ? "They comply" : "All the others comply"),
          h("th", { scope: "col" }, two ? "They defect" : "Another defects"),
        ),
      ),
      h(
        "tbody",
        {},
        h("tr", {}, h("th", { scope: "row" }, "You comply"), h("td", { class: "num" }, `${fmt(pay.R)} (reward)`), h("td", { class: "num" }, `${fmt(pay.S)} (sucker)`)),
        h("tr", {}, h("th", { scope: "row" }, "You defect"), h("td", { class: "num" }, `${fmt(pay.T)} (temptation)`), h("td", { class: "num" }, `${fmt(pay.P)} (punishment)`)),
      ),
    );
    const parts = [
      h("h2", { id: "compliance-title" }, chief ? "Comply or defect?" : "Your government decides: comply or defect"),
      h(
        "p",
        {},
        "The agreement is in force. Each government now chooses, at the same time, whether to keep it or break it: a Prisoner's Dilemma. " +
          (s.rounds > s.round ? "Later rounds remember what you chose." : "") +
          (regime ? " Under this regime every country's compliance record is published." : ""),
      ),
      table,
    ];
    if (chief) {
      if (chosen === undefined) {
        const comply = button("Comply", { class: "button button--primary button--big", testid: "comply", disabled: s.paused });
        const defect = button("Defect", { class: "button button--big button--no", testid: "defect", disabled: s.paused });
        comply.addEventListener("click", () => act(conn, comply, error, "choose_compliance", { comply: true }));
        defect.addEventListener("click", () => act(conn, defect, error, "choose_compliance", { comply: false }));
        parts.push(h("div", { class: "actions" }, comply, defect), h("p", { class: "muted small" }, "No choice by the deadline counts as comply."));
      } else {
        parts.push(h("p", { testid: "compliance-status" }, `Your government chose to ${chosen ? "comply" : "defect"}. Waiting for the others.`));
      }
    } else if (chosen !== undefined) {
      parts.push(h("p", { testid: "compliance-status" }, `Your government chose to ${chosen ? "comply" : "defect"}.`));
    }
    parts.push(error);
    replace(this.el, parts);
  }
}

