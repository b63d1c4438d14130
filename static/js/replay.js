// The replay page (templates/negotiation/replay.html): a timeline over every seq of a game.
//
// The server folds the log (rules.evolve) and filters it (visibility.view) for the chosen
// viewer; this module never folds anything itself. At each seq it fetches the view
// (GET view/?viewer=&seq=) and renders it with the live table's own classes (PlayerTable for
// a seat or a spectator, HostConsole for the omniscient view) on a read-only connection, then
// hides every command control. Events are worded by describe.js, as in the live log. Charts
// are <img> elements of the server's SVG endpoints; PNG is drawn client-side on a canvas.
//
// Test ids: replay, replay-viewer, replay-moment, replay-prev-moment, replay-next-moment,
// replay-seq, replay-scrubber, replay-marks, replay-start, replay-step-back, replay-play,
// replay-step-forward, replay-end, replay-speed-<1|4|16>, replay-position, replay-view,
// replay-charts, chart-<name>, chart-svg-<name>, chart-png-<name>, replay-notes,
// replay-note-text, replay-note-add, replay-note-error, replay-note-list, replay-note-<id>,
// replay-events, replay-event-<seq>. The root (#replay) carries data-seq (the seq rendered),
// data-viewer and data-playing.
//
// window.ratifyReplay exposes the Replay object for tests and debugging.

import { describe, Names } from "./describe.js";
import { h, replace, setText } from "./dom.js";
import { HostConsole } from "./host.js";
import { PHASES } from "./model.js";
import { PlayerTable } from "./player.js";
import { saveChartPng } from "./png.js";
import { Store } from "./store.js";

const CHART_TITLES = {
  "issue-grid": "Issue grid: win-sets, zone of agreement and proposals",
  surplus: "Pivotal surplus of the table proposal over time",
  utility: "Utility of the table proposal over time",
  votes: "Level II votes, member by member",
};
const MOMENT_NAMES = { proposal: "Proposal", tentative: "Tentative agreement", ballot: "Vote counted", outcome: "Outcome" };
/** Views kept in memory, per viewer and seq (a view is a few kilobytes). */
const VIEW_CACHE_SIZE = 600;
/** While playing, charts refresh at most this often (each is drawn by the server). */
const CHART_REFRESH_PLAYING_MS = 1500;
const CHART_REFRESH_SETTLED_MS = 250;

/** The live table's connection, refusing every command: a replay changes nothing. */
class ReadOnlyConnection {
  get unanswered() {
    return 0;
  }

  command() {
    return Promise.reject(new Error("This is a replay: nothing can be changed."));
  }

  rebind() {}

  resync() {}
}

/** The replay page says what is happening in its own status line; the table stays quiet. */
const QUIET = { say() {} };

async function getJson(url, signal) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", signal });
  if (!response.ok) throw new Error((await response.text()) || `The server answered ${response.status}.`);
  return response.json();
}

function query(params) {
  return new URLSearchParams(params).toString();
}

function fallbackText(event) {
  if (event.type === "ballot_cast") return "A ballot was cast (secret until the count).";
  if (event.type === "straw_poll_answered") return "A straw-poll answer came in.";
  return event.type.replaceAll("_", " ");
}

function clockTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function duration(seconds) {
  const total = Math.max(0, Math.round(seconds));
  const m = Math.floor(total / 60);
  const s = String(total % 60).padStart(2, "0");
  return `${m}:${s}`;
}

class Replay {
  constructor(root, cfg) {
    this.root = root;
    this.cfg = cfg;
    this.viewer = cfg.viewer;
    this.lastSeq = cfg.lastSeq;
    this.seq = 1;
    this.speed = 1;
    this.playing = false;
    this.views = new Map();
    this.events = [];
    this.moments = [];
    this.notes = [];
    this.names = null;
    this.ui = null;
    this.uiFor = null;
    this.firstTime = null;
    this.pending = null;
    this.chartTimer = null;
    this.chartsShownAt = 0;

    const $ = (id) => document.getElementById(id);
    this.scrubber = $("replay-scrubber");
    this.seqOut = $("replay-seq-out");
    this.position = $("replay-position");
    this.marks = $("replay-marks");
    this.viewerSelect = $("replay-viewer");
    this.momentSelect = $("replay-moment");
    this.playButton = $("replay-play");
    this.stage = $("replay-view");
    this.stageWho = $("replay-stage-who");
    this.eventList = $("replay-event-list");
    this.noteList = $("replay-note-list");
    this.notesEmpty = $("replay-notes-empty");
    this.noteForm = $("replay-note-form");
    this.noteSeq = $("replay-note-seq");
    this.noteError = $("replay-note-error");
    this.chartList = $("replay-chart-list");
    this.bind();
    this.buildCharts();
  }

  bind() {
    this.scrubber.addEventListener("input", () => this.goTo(Number(this.scrubber.value), { fromScrubber: true }));
    document.getElementById("replay-start").addEventListener("click", () => this.goTo(1));
    document.getElementById("replay-end").addEventListener("click", () => this.goTo(this.lastSeq));
    document.getElementById("replay-step-back").addEventListener("click", () => this.step(-1));
    document.getElementById("replay-step-forward").addEventListener("click", () => this.step(1));
    document.getElementById("replay-prev-moment").addEventListener("click", () => this.jumpMoment(-1));
    document.getElementById("replay-next-moment").addEventListener("click", () => this.jumpMoment(1));
    this.playButton.addEventListener("click", () => (this.playing ? this.pause() : this.play()));
    for (const radio of document.querySelectorAll('input[name="replay-speed"]')) {
      radio.addEventListener("change", () => {
        if (radio.checked) this.speed = Number(radio.value);
      });
    }
    this.momentSelect.addEventListener("change", () => {
      const seq = Number(this.momentSelect.value);
      if (seq) this.goTo(seq);
    });
    if (this.viewerSelect && this.viewerSelect.tagName === "SELECT") {
      this.viewerSelect.value = this.viewer;
      this.viewerSelect.addEventListener("change", () => this.load(this.viewerSelect.value));
    }
    if (this.noteForm) this.noteForm.addEventListener("submit", (event) => this.addNote(event));
    document.addEventListener("keydown", (event) => this.key(event));
  }

  /** Arrow keys step, Home and End jump, anywhere but in a field or a tab list. */
  key(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const target = event.target;
    if (target === this.scrubber) return; // the range input steps by itself
    if (target.closest && target.closest("input, textarea, select, [role=tablist], [contenteditable]")) return;
    const moves = { ArrowLeft: () => this.step(-1), ArrowRight: () => this.step(1), Home: () => this.goTo(1), End: () => this.goTo(this.lastSeq) };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    move();
  }

  // ------------------------------------------------------------------------------------------
  // Loading a viewer's timeline

  async load(viewer) {
    this.pause();
    this.viewer = viewer;
    this.root.dataset.viewer = viewer;
    this.root.setAttribute("aria-busy", "true");
    const data = await getJson(`${this.cfg.urls.data}?${query({ viewer })}`);
    this.lastSeq = data.last_seq;
    this.events = data.events;
    this.moments = data.moments;
    this.notes = data.annotations;
    this.firstTime = data.first_time;
    this.scrubber.max = String(this.lastSeq);
    setText(document.getElementById("replay-last"), this.lastSeq);
    const label = (this.cfg.viewers.find((v) => v.key === viewer) || { label: viewer }).label;
    setText(this.stageWho, `The table as seen by ${label}`);
    // Names (of seats and countries) come from a view; the last one names everyone the
    // viewer ever saw.
    const last = await this.fetchView(this.lastSeq);
    this.names = new Names(last.view);
    this.renderEvents();
    this.renderMoments();
    this.renderNotes();
    await this.goTo(Math.min(this.seq, this.lastSeq), { force: true });
    this.root.setAttribute("aria-busy", "false");
  }

  async fetchView(seq) {
    const key = `${this.viewer}:${seq}`;
    if (this.views.has(key)) return this.views.get(key);
    const data = await getJson(`${this.cfg.urls.view}?${query({ viewer: this.viewer, seq })}`);
    this.views.set(key, data);
    while (this.views.size > VIEW_CACHE_SIZE) this.views.delete(this.views.keys().next().value);
    return data;
  }

  // ------------------------------------------------------------------------------------------
  // Moving along the timeline

  step(delta) {
    this.pause();
    return this.goTo(this.seq + delta);
  }

  jumpMoment(direction) {
    this.pause();
    const seqs = [...new Set([...this.moments.map((m) => m.seq), ...this.notes.map((n) => n.seq)])].sort((a, b) => a - b);
    const target = direction > 0 ? seqs.find((s) => s > this.seq) : [...seqs].reverse().find((s) => s < this.seq);
    if (target) this.goTo(target);
  }

  async goTo(seq, { force = false, fromScrubber = false } = {}) {
    const target = Math.max(1, Math.min(this.lastSeq, Math.round(seq) || 1));
    if (!fromScrubber && !force && target === this.seq && this.root.dataset.seq === String(target)) return;
    this.seq = target;
    if (!fromScrubber) this.scrubber.value = String(target);
    setText(this.seqOut, target);
    if (this.noteSeq) setText(this.noteSeq, target);
    const ticket = {};
    this.pending = ticket;
    let data;
    try {
      data = await this.fetchView(target);
    } catch (error) {
      setText(this.position, `Could not load event ${target}: ${error.message}`);
      return;
    }
    if (this.pending !== ticket) return; // a later move won
    this.renderTable(data);
    this.renderPosition(data);
    this.highlightEvent(target);
    this.root.dataset.seq = String(target);
    this.scheduleCharts();
  }

  play() {
    if (this.playing) return;
    if (this.seq >= this.lastSeq) this.goTo(1);
    this.playing = true;
    this.root.dataset.playing = "true";
    this.playButton.setAttribute("aria-pressed", "true");
    setText(this.playButton, "❚❚ Pause");
    const run = async () => {
      while (this.playing && this.seq < this.lastSeq) {
        const started = performance.now();
        await this.goTo(this.seq + 1);
        // Fetch the next view while waiting, so a fast speed stays smooth.
        if (this.seq < this.lastSeq) this.fetchView(this.seq + 1).catch(() => {});
        const wait = 1000 / this.speed - (performance.now() - started);
        if (wait > 0) await new Promise((resolve) => window.setTimeout(resolve, wait));
      }
      this.pause();
    };
    run();
  }

  pause() {
    if (!this.playing) return;
    this.playing = false;
    this.root.dataset.playing = "false";
    this.playButton.setAttribute("aria-pressed", "false");
    setText(this.playButton, "▶ Play");
    this.scheduleCharts();
  }

  // ------------------------------------------------------------------------------------------
  // The table as the viewer saw it

  renderTable(data) {
    const view = data.view;
    const host = view.me.role === "instructor";
    const who = `${this.viewer}:${view.me.role}:${view.me.seat}`;
    if (!this.ui || this.uiFor !== who) {
      this.store = new Store();
      const cfg = {
        code: this.cfg.code,
        host,
        seat: view.me.seat,
        briefingUrl: this.cfg.urls.briefing,
        resultsUrl: this.cfg.urls.results,
        lobbyUrl: this.cfg.urls.lobby,
        joinUrl: "",
        seatLinks: {},
        settings: view.settings,
        clockSkew: 0,
      };
      this.stage.replaceChildren();
      const Table = host ? HostConsole : PlayerTable;
      this.ui = new Table(this.stage, this.store, new ReadOnlyConnection(), cfg, QUIET);
      this.uiFor = who;
    }
    // The clock reads as it did when the event happened.
    this.ui.status.skew = data.time - Date.now() / 1000;
    this.ui.status.setConnection({ status: "replay", retryAt: null }, 0);
    this.store.snapshot(structuredClone(view));
    this.ui.render();
    this.readOnly();
  }

  /** Hide every control of the live table: the replay shows what was seen, not what was done. */
  readOnly() {
    for (const el of this.stage.querySelectorAll("button:not([role=tab]), input, textarea, select")) {
      el.disabled = true;
      el.hidden = true;
      el.tabIndex = -1;
    }
  }

  renderPosition(data) {
    const view = data.view;
    const entry = this.events.find((e) => e.seq === data.seq);
    const text = entry ? this.describe(entry.event) : "An event this viewer did not see.";
    const since = this.firstTime !== null ? ` (${duration(data.time - this.firstTime)} in)` : "";
    const phase = PHASES[view.phase] || view.phase;
    const round = view.round ? ` · round ${view.round}` : "";
    const line = `Event ${data.seq} of ${this.lastSeq} · ${clockTime(data.time)}${since} · ${phase}${round}: ${text}`;
    // While playing the line changes every second or faster: keep screen readers quiet.
    this.position.setAttribute("aria-live", this.playing ? "off" : "polite");
    setText(this.position, line);
    this.scrubber.setAttribute("aria-valuetext", `Event ${data.seq} of ${this.lastSeq}: ${text}`);
  }

  describe(event) {
    if (!this.names) return event.type;
    return describe(event, this.names, { host: this.viewer === "instructor" }) || fallbackText(event);
  }

  // ------------------------------------------------------------------------------------------
  // Events, key moments and notes

  renderEvents() {
    const items = this.events.map((entry) =>
      h(
        "li",
        { class: `replay-event replay-event--${entry.type}`, dataset: { seq: entry.seq } },
        h(
          "button",
          { type: "button", class: "replay-event__go", testid: `replay-event-${entry.seq}`, on: { click: () => this.goTo(entry.seq) } },
          h("span", { class: "replay-event__seq" }, String(entry.seq)),
          " ",
          this.describe(entry.event),
        ),
      ),
    );
    replace(this.eventList, items);
    this.renderMarks();
  }

  highlightEvent(seq) {
    const previous = this.eventList.querySelector("[aria-current]");
    if (previous) previous.removeAttribute("aria-current");
    // The latest event seen at or before this seq.
    let current = null;
    for (const li of this.eventList.children) {
      if (Number(li.dataset.seq) <= seq) current = li;
      else break;
    }
    if (current) {
      current.setAttribute("aria-current", "step");
      const list = this.eventList;
      const top = current.offsetTop - list.offsetTop;
      if (top < list.scrollTop || top > list.scrollTop + list.clientHeight - current.offsetHeight) {
        list.scrollTop = Math.max(0, top - list.clientHeight / 2);
      }
    }
  }

  renderMoments() {
    const options = [h("option", { value: "" }, `Proposals, agreements, votes, outcomes… (${this.moments.length})`)];
    for (const moment of this.moments) {
      const entry = this.events.find((e) => e.seq === moment.seq);
      const words = entry ? this.describe(entry.event) : moment.type;
      options.push(h("option", { value: moment.seq }, `${moment.seq} · ${MOMENT_NAMES[moment.kind] || moment.kind}: ${words.slice(0, 90)}`));
    }
    replace(this.momentSelect, options);
  }

  renderMarks() {
    const span = Math.max(1, this.lastSeq - 1);
    const at = (seq) => `${((seq - 1) / span) * 100}%`;
    const marks = this.moments.map((m) => h("span", { class: `replay-mark replay-mark--${m.kind}`, style: `left: ${at(m.seq)}`, title: `${m.seq}: ${MOMENT_NAMES[m.kind] || m.kind}` }));
    const notes = this.notes.map((n) => h("span", { class: "replay-mark replay-mark--note", style: `left: ${at(n.seq)}`, title: `Note at ${n.seq}: ${n.text.slice(0, 80)}`, testid: `replay-mark-note-${n.id}` }));
    replace(this.marks, marks, notes);
  }

  renderNotes() {
    this.notesEmpty.hidden = this.notes.length > 0;
    const sorted = [...this.notes].sort((a, b) => a.seq - b.seq || a.id - b.id);
    replace(
      this.noteList,
      sorted.map((note) =>
        h(
          "li",
          { class: "replay-note", testid: `replay-note-${note.id}` },
          h("button", { type: "button", class: "button button--small button--quiet", on: { click: () => this.goTo(note.seq) }, "aria-label": `Go to event ${note.seq}` }, `Event ${note.seq}`),
          " ",
          h("span", { class: "replay-note__text" }, note.text),
          h("span", { class: "muted small" }, ` — ${note.author}`),
        ),
      ),
    );
    this.renderMarks();
  }

  async addNote(event) {
    event.preventDefault();
    const textArea = document.getElementById("replay-note-text");
    const text = textArea.value.trim();
    setText(this.noteError, "");
    if (!text) {
      setText(this.noteError, "Write the note first.");
      textArea.focus();
      return;
    }
    const body = new FormData();
    body.set("seq", String(this.seq));
    body.set("text", text);
    const token = this.noteForm.querySelector("input[name=csrfmiddlewaretoken]").value;
    const submit = this.noteForm.querySelector("button[type=submit]");
    submit.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(this.cfg.urls.annotations, { method: "POST", body, headers: { "X-CSRFToken": token }, credentials: "same-origin" });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(data.error || `The server answered ${response.status}.`);
      this.notes.push(data);
      textArea.value = "";
      this.renderNotes();
    } catch (error) {
      setText(this.noteError, error.message);
    } finally {
      submit.removeAttribute("aria-busy");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Charts

  buildCharts() {
    this.charts = new Map();
    const figures = this.cfg.charts.map((name) => {
      const img = h("img", { class: "replay-chart__img", testid: `chart-${name}`, alt: CHART_TITLES[name] || name, decoding: "async" });
      const svgLink = h("a", { class: "button button--small button--quiet", testid: `chart-svg-${name}`, download: "" }, "Download SVG");
      const pngButton = h("button", { type: "button", class: "button button--small button--quiet", testid: `chart-png-${name}`, on: { click: () => this.downloadPng(name) } }, "Download PNG");
      const status = h("span", { class: "muted small", role: "status" });
      this.charts.set(name, { img, svgLink, status });
      return h(
        "figure",
        { class: "replay-chart" },
        h("figcaption", { class: "replay-chart__caption" }, CHART_TITLES[name] || name),
        h("div", { class: "replay-chart__frame" }, img),
        h("div", { class: "actions" }, svgLink, pngButton, status),
      );
    });
    replace(this.chartList, figures);
  }

  chartUrl(name, extra = {}) {
    const base = this.cfg.urls.chart.replace("NAME", name);
    return `${base}?${query({ viewer: this.viewer, upto: this.seq, ...extra })}`;
  }

  scheduleCharts() {
    window.clearTimeout(this.chartTimer);
    const since = performance.now() - this.chartsShownAt;
    const delay = this.playing ? Math.max(0, CHART_REFRESH_PLAYING_MS - since) : CHART_REFRESH_SETTLED_MS;
    this.chartTimer = window.setTimeout(() => this.showCharts(), delay);
  }

  showCharts() {
    this.chartsShownAt = performance.now();
    const label = (this.cfg.viewers.find((v) => v.key === this.viewer) || { label: this.viewer }).label;
    for (const [name, chart] of this.charts) {
      const url = this.chartUrl(name);
      if (chart.img.getAttribute("src") !== url) chart.img.src = url;
      chart.img.alt = `${CHART_TITLES[name] || name}, as seen by ${label}, up to event ${this.seq}.`;
      chart.svgLink.href = this.chartUrl(name, { download: "1" });
      chart.svgLink.setAttribute("aria-label", `Download the ${CHART_TITLES[name] || name} chart as SVG`);
    }
    this.root.dataset.chartsSeq = String(this.seq);
  }

  /** Draw the chart's SVG on a canvas at twice its size and save it as PNG. */
  async downloadPng(name) {
    const chart = this.charts.get(name);
    setText(chart.status, "Drawing…");
    try {
      await saveChartPng(this.chartUrl(name), `ratify-${this.cfg.code}-${name}-${this.viewer}-seq${this.seq}.png`);
      setText(chart.status, "");
    } catch (error) {
      setText(chart.status, error.message || "Could not make the PNG.");
    }
  }
}

function main() {
  const root = document.getElementById("replay");
  const config = document.getElementById("replay-config");
  if (!root || !config) return;
  const replay = new Replay(root, JSON.parse(config.textContent));
  window.ratifyReplay = replay;
  replay.load(replay.viewer).catch((error) => {
    replace(replay.stage, h("p", { class: "form-error", role: "alert" }, `The replay could not load: ${error.message}`));
  });
}

main();
