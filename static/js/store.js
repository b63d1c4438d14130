// The client's copy of the game: the last snapshot (`visibility.view`) with every event since
// folded into it, the same way `rules.evolve` folds them on the server.

import { valuesDict } from "./model.js";

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

export class Store {
  constructor() {
    this.state = null;
    /** Proposals of the current round, oldest first: {id, by, values, replies_to, attempt, status}. */
    this.history = [];
    this.withdrawn = new Set();
    this.inForceId = null;
    /** The last involuntary defection of this round: {countries, attempts_left, round, proposal_id}. */
    this.defection = null;
    this.presence = { online: [], instructor: false, spectators: 0 };
    this.listeners = [];
  }

  subscribe(listener) {
    this.listeners.push(listener);
  }

  emit(kind, detail) {
    for (const listener of this.listeners) listener(kind, detail);
  }

  get role() {
    return this.state ? this.state.me.role : null;
  }

  snapshot(state) {
    const previous = this.state;
    this.state = state;
    if (!state.seats) state.seats = {};
    /** The player id holding the viewer's seat when the snapshot was taken. */
    const own = state.me.seat ? state.seats[state.me.seat] : null;
    this.myPlayer = own && own.player ? own.player : null;
    /** Whether this server's snapshots name the players in their seats. */
    this.seatNames = Object.values(state.seats).some((seat) => seat && "name" in seat);
    this.serverHistory = Array.isArray(state.proposal_history);
    if (this.serverHistory) {
      this.history = state.proposal_history.map((p) => ({ ...p, values: valuesDict(state.scenario, p.values) }));
      this.withdrawn = new Set(this.history.filter((p) => p.status === "withdrawn").map((p) => p.id));
      const agreed = this.history.filter((p) => p.status === "agreed" && (!state.tentative || p.id !== state.tentative.id));
      this.inForceId = state.in_force && agreed.length ? agreed[agreed.length - 1].id : state.in_force && state.tentative ? state.tentative.id : null;
    } else {
      // An older server: keep what was seen live this round, plus the open proposals.
      if (!previous || previous.round !== state.round) {
        this.history = [];
        this.withdrawn = new Set();
        this.inForceId = null;
      }
      for (const p of state.proposals) this.remember(p, state.attempt);
    }
    this.recompute();
    this.defection = this.defectionFromCount(state);
    this.emit("snapshot", state);
  }

  remember(p, attempt) {
    if (this.history.some((entry) => entry.id === p.id)) return;
    this.history.push({
      id: p.id,
      by: p.by,
      values: p.values,
      replies_to: p.replies_to ?? null,
      attempt,
      status: "open",
    });
    this.history.sort((a, b) => a.id - b.id);
  }

  /** Each proposal's fate, as the server words it: open, agreed, withdrawn or closed. */
  recompute() {
    const s = this.state;
    const open = new Set(s.proposals.map((p) => p.id));
    const agreed = new Set([s.tentative ? s.tentative.id : null, s.in_force ? this.inForceId : null]);
    for (const entry of this.history) {
      if (agreed.has(entry.id)) entry.status = "agreed";
      else if (open.has(entry.id)) entry.status = "open";
      else if (this.withdrawn.has(entry.id)) entry.status = "withdrawn";
      else entry.status = "closed";
    }
    if (this.serverHistory) s.proposal_history = this.history.map((entry) => ({ ...entry }));
  }

  /** After a reload in Level I: the failed count of this round says ratification failed. */
  defectionFromCount(state) {
    const count = state.last_count;
    if (!count || state.phase !== "level1") return null;
    const failed = Object.entries(count.results || {})
      .filter(([, r]) => !r.ratified)
      .map(([key]) => key);
    if (!failed.length) return null;
    return {
      countries: failed,
      attempts_left: Math.max(0, (state.attempts || 1) - (state.attempt || 1) + 1),
      round: state.round,
      proposal_id: count.proposal_id,
    };
  }

  setPresence(frame) {
    this.presence = frame;
    this.emit("presence", frame);
  }

  /** Fold one event (or a placeholder, null) into the state. */
  apply(seq, event) {
    const s = this.state;
    if (!s) return;
    s.seq = seq;
    if (event) {
      const handler = FOLD[event.type];
      if (handler) handler(this, s, event);
      this.recompute();
    }
    this.emit("event", event);
  }
}

function memberCountry(s, key) {
  for (const country of s.scenario.countries || []) {
    if (country.chief.key === key) return country.key;
    if ((country.constituents || []).some((m) => m.key === key)) return country.key;
  }
  return null;
}

const FOLD = {
  seat_taken(store, s, ev) {
    const seat = { ...(s.seats[ev.seat] || {}), occupied: true, bot: Boolean(ev.bot) };
    // The server names the holder in the event (older servers did not: a bot is then "Bot").
    if (typeof ev.name === "string") seat.name = ev.name;
    else if (ev.bot) seat.name = "Bot";
    else delete seat.name;
    if (s.me.role === "instructor" || ev.seat === s.me.seat) seat.player = ev.player;
    s.seats[ev.seat] = seat;
  },

  seat_released(store, s, ev) {
    s.seats[ev.seat] = store.seatNames ? { occupied: false, bot: false, name: "" } : { occupied: false, bot: false };
    if (s.me.role === "instructor" || ev.seat === s.me.seat) s.seats[ev.seat].player = null;
  },

  phase_changed(store, s, ev) {
    const newRound = ev.round !== s.round;
    s.phase = ev.phase;
    s.round = ev.round;
    s.attempt = ev.attempt;
    s.deadline = ev.deadline;
    if (newRound) {
      s.offers = s.me.role === "chief" ? { made: {} } : s.me.seat ? { received: {} } : {};
      s.polls = [];
      s.in_force = null;
      s.transfers = {};
      s.compliance = {};
      s.last_count = null;
      store.history = [];
      store.withdrawn = new Set();
      store.inForceId = null;
      store.defection = null;
    }
    if (ev.phase === "level1") {
      s.proposals = [];
      s.tentative = null;
      s.ballots = freshBallots(s);
    } else if (ev.phase === "level2") {
      s.ballots = freshBallots(s);
    } else if (ev.phase === "compliance") {
      s.compliance = {};
    }
  },

  proposal_made(store, s, ev) {
    const values = valuesDict(s.scenario, ev.values);
    s.proposals = s.proposals.filter((p) => p.by !== ev.by);
    for (const p of s.proposals) p.accepted_by = p.accepted_by.filter((k) => k !== ev.by);
    s.proposals.push({
      id: ev.proposal_id,
      by: ev.by,
      values,
      replies_to: ev.replies_to ?? null,
      accepted_by: [ev.by],
    });
    s.proposals.sort((a, b) => a.id - b.id);
    store.remember({ id: ev.proposal_id, by: ev.by, values, replies_to: ev.replies_to }, s.attempt);
  },

  proposal_withdrawn(store, s, ev) {
    s.proposals = s.proposals.filter((p) => p.id !== ev.proposal_id);
    store.withdrawn.add(ev.proposal_id);
  },

  proposal_accepted(store, s, ev) {
    for (const p of s.proposals) {
      p.accepted_by = p.accepted_by.filter((k) => k !== ev.by);
      if (p.id === ev.proposal_id) p.accepted_by = [...p.accepted_by, ev.by].sort();
    }
  },

  tentative_agreement(store, s, ev) {
    s.tentative = { id: ev.proposal_id, values: valuesDict(s.scenario, ev.values) };
    s.proposals = [];
    s.tentative_agreements = (s.tentative_agreements || 0) + 1;
    store.defection = null;
  },

  chat_posted(store, s, ev) {
    s.messages.push({ channel: ev.channel, by: ev.by, text: ev.text });
  },

  statement_made(store, s, ev) {
    s.messages.push({ channel: "public", by: ev.by, text: ev.text });
  },

  announcement_made(store, s, ev) {
    s.messages.push({ channel: "public", by: "instructor", text: ev.text });
  },

  straw_poll_opened(store, s, ev) {
    const poll = {
      id: ev.poll_id,
      by: ev.by,
      country: ev.country,
      values: valuesDict(s.scenario, ev.values),
      closed: false,
      result: null,
      answered: 0,
    };
    if (s.me.role === "instructor") poll.answers = {};
    if (s.me.role === "constituent") poll.my_answer = null;
    s.polls.push(poll);
  },

  straw_poll_answered(store, s, ev) {
    const poll = s.polls.find((p) => p.id === ev.poll_id);
    if (!poll) return;
    poll.answered += 1;
    if (poll.answers) poll.answers[ev.by] = ev.yes;
    if (ev.by === s.me.seat) poll.my_answer = ev.yes;
  },

  straw_poll_closed(store, s, ev) {
    const poll = s.polls.find((p) => p.id === ev.poll_id);
    if (!poll) return;
    poll.closed = true;
    poll.result = {
      yes: ev.yes,
      no: ev.no,
      unanswered: ev.unanswered,
      yes_weight: ev.yes_weight,
      total_weight: ev.total_weight,
      quota_met: ev.quota_met,
    };
    if (ev.would_ratify !== undefined) poll.result.would_ratify = ev.would_ratify;
    poll.answered = ev.yes + ev.no;
  },

  side_payment_offered(store, s, ev) {
    let book;
    let key;
    if (s.me.role === "instructor") {
      s.offers[ev.by] = s.offers[ev.by] || {};
      book = s.offers[ev.by];
      key = ev.to;
    } else if (ev.by === s.me.seat) {
      s.offers.made = s.offers.made || {};
      book = s.offers.made;
      key = ev.to;
    } else if (ev.to === s.me.seat) {
      s.offers.received = s.offers.received || {};
      book = s.offers.received;
      key = ev.by;
    } else {
      return;
    }
    if (ev.amount) book[key] = ev.amount;
    else delete book[key];
  },

  ballot_cast(store, s, ev) {
    s.ballots.cast = (s.ballots.cast || 0) + 1;
    if (s.ballots.ballots) s.ballots.ballots[ev.by] = ev.yes;
    if (ev.by === s.me.seat) s.ballots.mine = ev.yes;
  },

  ballots_counted(store, s, ev) {
    const results = {};
    for (const r of ev.results) {
      results[r.country] = {
        ratified: r.ratified,
        yes_weight: r.yes_weight,
        total_weight: r.total_weight,
        vetoed_by: r.vetoed_by || [],
      };
    }
    s.last_count = {
      proposal_id: ev.proposal_id,
      values: valuesDict(s.scenario, ev.values),
      ballots: { ...ev.ballots },
      results,
    };
  },

  agreement_in_force(store, s, ev) {
    s.in_force = valuesDict(s.scenario, ev.values);
    s.transfers = { ...ev.transfers };
    store.inForceId = ev.proposal_id;
  },

  involuntary_defection(store, s, ev) {
    for (const country of ev.countries) {
      const record = s.records[country];
      if (record) record.involuntary_defections += 1;
    }
    store.defection = {
      countries: [...ev.countries],
      attempts_left: ev.attempts_left,
      round: s.round,
      proposal_id: ev.proposal_id,
    };
  },

  compliance_chosen(store, s, ev) {
    const country = memberCountry(s, ev.by);
    if (country) s.compliance[country] = ev.comply;
  },

  compliance_resolved(store, s, ev) {
    store.resolved = { choices: { ...ev.choices }, payoffs: { ...ev.payoffs } };
    for (const [country, comply] of Object.entries(ev.choices)) {
      const record = s.records[country];
      if (record && !comply) record.voluntary_defections += 1;
    }
  },

  round_ended(store, s, ev) {
    const resolved = store.resolved;
    const mine = s.me.role === "instructor" ? clone(s.transfers) : (s.transfers || {})[s.me.seat];
    s.history.push({
      round: ev.round,
      result: ev.result,
      values: ev.values ? valuesDict(s.scenario, ev.values) : null,
      compliance: resolved ? resolved.choices : null,
      payoffs: resolved ? resolved.payoffs : null,
      transfer: s.in_force ? mine ?? null : s.me.role === "instructor" ? {} : null,
    });
    store.resolved = null;
    s.deadline = null;
    s.tentative = null;
  },

  game_paused(store, s, ev) {
    s.paused = true;
    s.paused_remaining = ev.remaining;
    s.deadline = null;
  },

  game_resumed(store, s, ev) {
    s.paused = false;
    s.paused_remaining = null;
    s.deadline = ev.deadline;
  },

  deadline_extended(store, s, ev) {
    if (s.paused) s.paused_remaining = (s.paused_remaining || 0) + ev.seconds;
    else if (s.deadline !== null && s.deadline !== undefined) s.deadline += ev.seconds;
  },

  game_ended(store, s, ev) {
    s.phase = "ended";
    s.deadline = null;
    s.paused = false;
    s.paused_remaining = null;
    s.end_reason = ev.reason;
  },
};

function freshBallots(s) {
  if (s.me.role === "instructor") return { cast: 0, ballots: {} };
  if (s.me.seat) return { cast: 0, mine: null };
  return { cast: 0 };
}
