// The websocket to one game (docs/protocol.md): hello with the last seq, snapshot and events
// strictly in seq order, commands with unique ids re-sent unchanged after a reconnect, ping,
// and reconnection by itself with exponential backoff and jitter.

const PING_EVERY_MS = 25_000;
const PONG_WAIT_MS = 10_000;
const BACKOFF_FIRST_S = 0.5;
const BACKOFF_MAX_S = 15;
/** The server allows 20 frames in 2 s; stay below that. */
const SEND_WINDOW_MS = 2_000;
const SEND_MAX_PER_WINDOW = 15;
/** A gap is asked about once; ask again if it is still there after this long. */
const RESYNC_RETRY_MS = 4_000;
/** Close code of a game that does not exist. */
const CLOSE_NO_SUCH_GAME = 4404;

function newId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") {
    return window.crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * Callbacks (all optional):
 *   onSnapshot(seq, state), onEvent(seq, event or null), onPresence(frame),
 *   onStatus({status: "connecting"|"live"|"reconnecting"|"offline"|"gone", retryAt}),
 *   onError(frame) for errors that match no pending command,
 *   onClock(skew): seconds the server's clock is ahead of ours, from each snapshot and pong.
 */
export class Connection {
  constructor(path, callbacks) {
    this.path = path;
    this.cb = callbacks;
    this.socket = null;
    this.lastSeq = null;
    this.pending = new Map(); // id -> {frame, resolve, reject}
    this.outbox = []; // frames waiting for the socket or for the rate window
    this.sentAt = [];
    this.attempt = 0;
    this.status = "connecting";
    this.retryAt = null;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.flushTimer = null;
    this.greeted = false; // hello answered on this socket
    this.resyncAsked = null; // {seq, at}
    this.stopped = false;

    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => this.goOffline());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        if (this.status === "live") this.ping();
        else if (this.status === "reconnecting") this.reconnectNow();
      }
    });
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${this.path}`;
  }

  start() {
    if (navigator.onLine === false) {
      this.setStatus("offline");
      return;
    }
    this.open();
  }

  open() {
    this.clearTimers();
    this.greeted = false;
    this.setStatus("connecting");
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (socket !== this.socket) return;
      // Whatever waited for the old socket is dropped: pending commands are queued again below.
      this.outbox = [];
      this.sendNow({ type: "hello", last_seq: this.lastSeq });
      // Commands never acknowledged go out again with the same id: the server applies an id once.
      for (const { frame } of this.pending.values()) this.outbox.push(frame);
      this.flush();
      this.pingTimer = window.setInterval(() => this.ping(), PING_EVERY_MS);
    });
    socket.addEventListener("message", (message) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.receive(frame);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.clearTimers();
      if (event.code === CLOSE_NO_SUCH_GAME) {
        this.stopped = true;
        this.setStatus("gone");
        return;
      }
      if (this.status === "offline" || this.stopped) return;
      this.scheduleReconnect();
    });
  }

  clearTimers() {
    window.clearInterval(this.pingTimer);
    window.clearTimeout(this.pongTimer);
    window.clearTimeout(this.retryTimer);
    window.clearTimeout(this.flushTimer);
    this.pingTimer = this.pongTimer = this.retryTimer = this.flushTimer = null;
  }

  setStatus(status) {
    this.status = status;
    if (this.cb.onStatus) this.cb.onStatus({ status, retryAt: this.retryAt });
  }

  scheduleReconnect() {
    if (this.stopped) return;
    if (navigator.onLine === false) {
      this.setStatus("offline");
      return;
    }
    // 0.5 s, 1 s, 2 s ... up to 15 s, each stretched by up to half again at random (jitter), so
    // thirty phones that lost the same wifi do not all come back in the same instant.
    const base = Math.min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** this.attempt);
    const delay = Math.min(BACKOFF_MAX_S, base * (1 + Math.random() * 0.5));
    this.attempt += 1;
    this.retryAt = Date.now() + delay * 1000;
    this.retryTimer = window.setTimeout(() => this.open(), delay * 1000);
    this.setStatus("reconnecting");
  }

  reconnectNow() {
    if (this.stopped) return;
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) return;
    this.attempt = 0;
    this.retryAt = null;
    this.open();
  }

  goOffline() {
    this.retryAt = null;
    this.setStatus("offline");
    const socket = this.socket;
    this.socket = null;
    this.clearTimers();
    if (socket) socket.close();
  }

  ping() {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    this.sendNow({ type: "ping", t: Date.now() });
    window.clearTimeout(this.pongTimer);
    // No answer: the connection is dead even if the browser has not noticed (phones, wifi).
    this.pongTimer = window.setTimeout(() => this.dropSocket(), PONG_WAIT_MS);
  }

  dropSocket() {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    this.clearTimers();
    try {
      socket.close();
    } catch {
      // already closing
    }
    this.scheduleReconnect();
  }

  /** Connect again and start from a fresh snapshot: the server binds a new connection anew
   * (to the seat this browser holds now, or as a spectator). */
  rebind() {
    this.lastSeq = null;
    this.attempt = 0;
    this.dropSocket();
  }

  /** Ask for a fresh snapshot (after a complex event, or when something looks wrong). */
  resync() {
    this.lastSeq = null;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.sendNow({ type: "hello", last_seq: null });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  receive(frame) {
    window.clearTimeout(this.pongTimer);
    this.pongTimer = null;
    switch (frame.type) {
      case "snapshot":
        this.greet();
        this.lastSeq = frame.seq;
        this.resyncAsked = null;
        this.clock(frame.now, Date.now());
        if (this.cb.onSnapshot) this.cb.onSnapshot(frame.seq, frame.state);
        break;
      case "pong":
        // The server read its clock about halfway between our ping and this pong.
        if (typeof frame.t === "number") this.clock(frame.now, (frame.t + Date.now()) / 2);
        break;
      case "event":
        this.greet();
        this.event(frame);
        break;
      case "ack": {
        const entry = this.pending.get(frame.id);
        if (entry) {
          this.pending.delete(frame.id);
          entry.resolve(frame);
        }
        break;
      }
      case "error": {
        const entry = frame.id !== null ? this.pending.get(frame.id) : undefined;
        if (entry) {
          this.pending.delete(frame.id);
          entry.reject(new CommandError(frame.code, frame.message));
        } else if (this.cb.onError) {
          this.cb.onError(frame);
        }
        break;
      }
      case "presence":
        this.greet();
        if (this.cb.onPresence) this.cb.onPresence(frame);
        break;
      default:
        break; // a frame type this client does not know
    }
  }

  clock(serverSeconds, localMilliseconds) {
    if (typeof serverSeconds !== "number" || !this.cb.onClock) return;
    this.cb.onClock(serverSeconds - localMilliseconds / 1000);
  }

  greet() {
    if (this.greeted) return;
    this.greeted = true;
    this.attempt = 0;
    this.retryAt = null;
    this.setStatus("live");
  }

  event(frame) {
    if (this.lastSeq === null) return; // waiting for the snapshot asked for
    if (frame.seq <= this.lastSeq) return; // seen already
    if (frame.seq !== this.lastSeq + 1) {
      // A gap: ask for what is missing, once (the server resends everything after lastSeq).
      const asked = this.resyncAsked;
      const now = Date.now();
      if (!asked || asked.seq !== this.lastSeq || now - asked.at > RESYNC_RETRY_MS) {
        this.resyncAsked = { seq: this.lastSeq, at: now };
        this.sendNow({ type: "hello", last_seq: this.lastSeq });
      }
      return;
    }
    this.lastSeq = frame.seq;
    this.resyncAsked = null;
    if (this.cb.onEvent) this.cb.onEvent(frame.seq, frame.event);
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  /**
   * Send a command; resolves with the ack, rejects with a CommandError (its `message` is for
   * the player). Kept until answered, and re-sent with the same id after a reconnect.
   */
  command(name, args = {}) {
    const id = newId();
    const frame = { type: "command", id, name, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { frame, resolve, reject });
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.outbox.push(frame);
        this.flush();
      }
    });
  }

  sendNow(frame) {
    this.outbox.unshift(frame);
    this.flush();
  }

  flush() {
    window.clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    this.sentAt = this.sentAt.filter((t) => now - t < SEND_WINDOW_MS);
    while (this.outbox.length && this.sentAt.length < SEND_MAX_PER_WINDOW) {
      const frame = this.outbox.shift();
      if (frame.type === "command" && !this.pending.has(frame.id)) continue; // answered meanwhile
      socket.send(JSON.stringify(frame));
      this.sentAt.push(now);
    }
    if (this.outbox.length) {
      const wait = SEND_WINDOW_MS - (now - this.sentAt[0]) + 10;
      this.flushTimer = window.setTimeout(() => this.flush(), Math.max(50, wait));
    }
  }

  get unanswered() {
    return this.pending.size;
  }
}
