// Names of seats and channels, and every event in plain words (for the log and screen readers).

import { describeValues, fmt, members, PHASES, ROUND_RESULTS } from "./model.js";

export class Names {
  constructor(state) {
    this.state = state;
    this.scenario = state.scenario;
    this.members = members(state.scenario);
    this.me = state.me.seat;
  }

  member(key) {
    return this.members.get(key) || null;
  }

  /** "Mira Stolnik (Borduria)"; "you" for the viewer's own seat when `you` is set. */
  who(key, { you = true } = {}) {
    if (you && key === this.me) return "You";
    if (key === "instructor") return "Instructor";
    const m = this.member(key);
    if (!m) return key;
    return `${m.name} (${m.countryName})`;
  }

  /** The role's name alone: "Mira Stolnik", "Farm lobby". */
  role(key) {
    const m = this.member(key);
    return m ? m.name : key;
  }

  /** The person holding a seat: a display name, "Bot", "taken" or "free". */
  holder(key) {
    const seat = (this.state.seats || {})[key];
    if (!seat || !seat.occupied) return "free";
    if (seat.bot) return "Bot";
    return seat.name || "taken";
  }

  country(key) {
    const c = (this.scenario.countries || []).find((x) => x.key === key);
    return c ? c.name : key;
  }

  channel(channel) {
    if (channel === "table") return "Table (chiefs)";
    if (channel === "public") return "Public statements";
    if (channel.startsWith("caucus:")) return `${this.country(channel.slice(7))} caucus`;
    return channel;
  }

  values(values) {
    return describeValues(this.scenario, values);
  }
}

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

function duration(seconds) {
  if (seconds % 60 === 0) return plural(seconds / 60, "minute", "minutes");
  return plural(seconds, "second", "seconds");
}

function short(text, limit = 120) {
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/**
 * An event in words, or null for one not worth a line. `host` shows more of what the
 * instructor sees (but never a secret vote's direction: the console may be projected).
 */
export function describe(event, names, { host = false } = {}) {
  const who = (key) => names.who(key);
  switch (event.type) {
    case "game_created":
      return "The game was created.";
    case "seat_taken":
      if (event.bot) return `A bot took the seat of ${names.who(event.seat, { you: false })}.`;
      return `${event.name || "A player"} took the seat of ${names.who(event.seat, { you: false })}.`;
    case "seat_released":
      return `The seat of ${names.who(event.seat, { you: false })} is free again.`;
    case "phase_changed":
      switch (event.reason) {
        case "game_started":
          return "The game has started: Level I, the chiefs negotiate.";
        case "tentative_agreement":
          return "Level II: the constituents vote on the tentative agreement.";
        case "involuntary_defection":
          return `Back to Level I: attempt ${event.attempt} of this round.`;
        case "next_round":
          return `Round ${event.round} has begun: Level I.`;
        case "agreement_in_force":
          return "Compliance: each government now decides whether to comply or defect.";
        default:
          return `Now: ${PHASES[event.phase] || event.phase}.`;
      }
    case "proposal_made":
      return (
        `${who(event.by)} proposed #${event.proposal_id}: ${names.values(event.values)}` +
        (event.replies_to ? ` (answering #${event.replies_to}).` : ".")
      );
    case "proposal_withdrawn":
      return `${who(event.by)} withdrew proposal #${event.proposal_id}.`;
    case "proposal_accepted":
      return `${who(event.by)} accepted proposal #${event.proposal_id}.`;
    case "tentative_agreement":
      return `Tentative agreement on #${event.proposal_id}: ${names.values(event.values)}. It now goes home for ratification.`;
    case "chat_posted":
      return `${who(event.by)} (${names.channel(event.channel)}): ${short(event.text)}`;
    case "statement_made":
      return `${who(event.by)} made a public statement: “${short(event.text)}”`;
    case "announcement_made":
      return `The instructor announced: “${short(event.text)}”`;
    case "straw_poll_opened":
      return `${who(event.by)} opened straw poll #${event.poll_id}: ${names.values(event.values)}.`;
    case "straw_poll_answered":
      if (event.by === names.me) return `You answered straw poll #${event.poll_id}: ${event.yes ? "yes" : "no"}.`;
      return `${who(event.by)} answered straw poll #${event.poll_id}.`;
    case "straw_poll_closed": {
      const verdict = pollVerdict(event);
      return `Straw poll #${event.poll_id} in ${names.country(event.country)}: ${event.yes} yes, ${event.no} no, ${event.unanswered} no answer; ${verdict}.`;
    }
    case "side_payment_offered":
      if (!event.amount) return `${who(event.by)} withdrew the side payment to ${names.who(event.to)}.`;
      return `${who(event.by)} promised ${plural(event.amount, "point", "points")} to ${names.who(event.to)} if the agreement enters into force.`;
    case "ballot_cast":
      if (event.by === names.me) return `You voted ${event.yes ? "yes" : "no"}.`;
      return host ? `${who(event.by)} voted.` : null;
    case "ballots_counted": {
      const parts = event.results.map(
        (r) =>
          `${names.country(r.country)} ${r.ratified ? "ratified" : "rejected"} (${fmt(r.yes_weight)} of ${fmt(r.total_weight)} for)`,
      );
      return `The votes are counted: ${parts.join("; ")}.`;
    }
    case "agreement_in_force":
      return `The agreement is in force: ${names.values(event.values)}.`;
    case "involuntary_defection": {
      const failed = event.countries.map((c) => names.country(c)).join(" and ");
      const next = event.attempts_left
        ? `The chiefs go back to Level I with ${plural(event.attempts_left, "attempt", "attempts")} left.`
        : "No attempts are left this round.";
      return `Ratification failed in ${failed}: an involuntary defection. ${next}`;
    }
    case "compliance_chosen":
      return `${names.country(names.member(event.by)?.country)} chose to ${event.comply ? "comply" : "defect"}.`;
    case "compliance_resolved": {
      const parts = Object.entries(event.choices).map(
        ([c, comply]) =>
          `${names.country(c)} ${comply ? "complied" : "defected"}` +
          (event.payoffs[c] !== undefined ? ` (${fmt(event.payoffs[c])} points)` : ""),
      );
      return parts.length ? `Compliance: ${parts.join("; ")}.` : "The governments have chosen.";
    }
    case "round_ended":
      return `Round ${event.round} ended: ${ROUND_RESULTS[event.result] || event.result}.`;
    case "game_paused":
      return "The instructor paused the game.";
    case "game_resumed":
      return "The game goes on.";
    case "deadline_extended":
      return `The instructor added ${duration(event.seconds)}.`;
    case "game_ended":
      return event.reason === "ended_by_instructor" ? "The instructor ended the game." : "The game is over.";
    default:
      return null;
  }
}

export function pollVerdict(result) {
  if (result.would_ratify !== undefined) {
    return result.would_ratify ? "it would be ratified" : "it would not be ratified";
  }
  return result.quota_met ? "enough support to ratify" : "not enough support to ratify";
}

/** Events read out to screen-reader users as they happen (chat has its own live log). */
export const ANNOUNCED = new Set([
  "phase_changed",
  "proposal_made",
  "proposal_withdrawn",
  "proposal_accepted",
  "tentative_agreement",
  "straw_poll_opened",
  "straw_poll_closed",
  "side_payment_offered",
  "ballots_counted",
  "agreement_in_force",
  "involuntary_defection",
  "compliance_resolved",
  "round_ended",
  "announcement_made",
  "game_paused",
  "game_resumed",
  "deadline_extended",
  "game_ended",
]);
