// A feed's live stream over WebSocket that never loses its place: it resumes from the cursor
// of the last event it saw, reconnects with capped, jittered backoff, and on a `reset` (or a
// cursor the server cannot continue) asks the page to reload its snapshot and resumes from that.
// Should the reloaded snapshot's cursor be refused too, it goes live from now and reloads the
// snapshot after the stream's hello, so a reset can never turn into a reload loop.
// A private feed's stream carries the reader token (`?token=`: a WebSocket cannot send headers).
// When the token expires the server sends `reauth` and closes with 4401; a handshake refused
// for the token is found by asking the API why. Either way the stream stops for good and says
// so (state 'denied'), instead of reconnecting with a token that can only be refused again.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const SILENCE_MS = 45000;
const RESET_CLOSE_CODE = 4000;
const REAUTH_CLOSE_CODE = 4401;
const CATCH_UP_TRIES = 6;

/** Whether a snapshot at `cursor` holds everything up to `start` (cursors of one feed share a partition). */
function reachedCursor(cursor, start) {
  if (!cursor) return false;
  const [epoch, partition, offset] = cursor.split('.');
  const [startEpoch, startPartition, startOffset] = start.split('.');
  if (epoch !== startEpoch || partition !== startPartition) return true;
  return Number(offset) >= Number(startOffset);
}

/** What the connection indicator says in each state. */
export const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline: waiting for the network…',
  denied: 'Stopped: link expired',
};

export class LiveStream {
  /**
   * @param {object} options
   * @param {string} options.feed
   * @param {string|null} options.cursor the snapshot's cursor (null: the feed had no events)
   * @param {(message: object) => void} options.onEvent called with each item.* message
   * @param {(state: string, detail: object) => void} options.onState 'connecting' | 'live' | 'reconnecting' | 'offline'
   * @param {(options?: {merge?: boolean}) => Promise<string|null>} options.reload reloads the snapshot
   *   (merged into the page with `merge`, else replacing it), returns its cursor
   * @param {string|null} [options.token] a private feed's reader token
   * @param {() => Promise<string|null>} [options.refusal] why the feed refuses the token now
   *   (an error code such as 'reader_token_expired'), or null if it does not
   * @param {string} [options.origin] the gateway to stream from (e.g. 'https://live.example'), by
   *   default this page's own; another origin must be one of its LIVEFEED_EMBED_ORIGINS' gateways
   */
  constructor({ feed, cursor, onEvent, onState, reload, token = null, refusal = async () => null, origin = location.origin }) {
    this.feed = feed;
    this.origin = origin;
    this.token = token || null;
    this.refusal = refusal;
    this.cursor = cursor || null;
    this.onEvent = onEvent;
    this.onState = onState;
    this.reload = reload;
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.watchdog = null;
    this.needsReload = false;
    this.resets = 0;
    this.stopped = false;
    this.onOnline = () => this.retryNow();
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.socket) this.socket.close(1000, 'page closed');
    this.socket = null;
  }

  url() {
    const url = new URL(`/v1/feeds/${encodeURIComponent(this.feed)}/stream`, this.origin);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    if (this.cursor) url.searchParams.set('since', this.cursor);
    if (this.token) url.searchParams.set('token', this.token);
    return url.href;
  }

  /** The token no longer opens the feed (`code` says why): stop for good and say so. */
  deny(code) {
    this.stop();
    this.onState('denied', { code });
  }

  async connect() {
    if (this.stopped) return;
    this.onState(this.attempt === 0 ? 'connecting' : 'reconnecting', { attempt: this.attempt });
    if (this.needsReload && this.resets >= 2) {
      this.cursor = null;
      this.needsReload = false;
    } else if (this.needsReload) {
      try {
        this.cursor = await this.reload();
        this.needsReload = false;
      } catch (error) {
        if (String(error?.code).startsWith('reader_token_')) this.deny(error.code);
        else this.scheduleRetry();
        return;
      }
    }
    const resumedFrom = this.cursor;
    const socket = new WebSocket(this.url());
    socket.greeted = false;
    this.socket = socket;
    socket.addEventListener('message', (event) => this.receive(socket, event, resumedFrom));
    socket.addEventListener('close', (event) => this.closed(socket, event));
    this.armWatchdog(socket);
  }

  receive(socket, event, resumedFrom) {
    if (socket !== this.socket) return;
    this.armWatchdog(socket);
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === 'hello') {
      socket.greeted = true;
      this.attempt = 0;
      this.resets = 0;
      if (resumedFrom === null && message.cursor) {
        this.cursor = message.cursor;
        this.catchUp(socket, message.cursor, 0);
      }
      this.onState('live', {});
    } else if (message.type === 'reset') {
      this.needsReload = true;
      this.resets += 1;
    } else if (message.type === 'reauth') {
      this.deny(message.reason || 'reader_token_expired');
    } else if (message.type && message.type.startsWith('item.')) {
      if (message.cursor) this.cursor = message.cursor;
      this.onEvent(message);
    }
  }

  /**
   * The page's snapshot had no position, so this stream began at `start` with nothing before it:
   * fetch what came before, merged into what arrives meanwhile (the snapshot may be older than
   * updates already shown), until the snapshot has reached `start`. Should it not, reload and
   * resume from the snapshot's own cursor instead, which replays the gap.
   */
  async catchUp(socket, start, tries) {
    let reached = null;
    try {
      reached = await this.reload({ merge: true });
    } catch {
      reached = null;
    }
    if (socket !== this.socket || this.stopped || reachedCursor(reached, start)) return;
    if (tries + 1 < CATCH_UP_TRIES) {
      setTimeout(() => this.catchUp(socket, start, tries + 1), 200 * 2 ** tries);
      return;
    }
    this.needsReload = true;
    socket.close(4002, 'catch up');
  }

  async closed(socket, event) {
    if (socket !== this.socket) return;
    clearTimeout(this.watchdog);
    this.socket = null;
    if (this.stopped) return;
    if (event.code === REAUTH_CLOSE_CODE) {
      this.deny(event.reason || 'reader_token_expired');
      return;
    }
    if (event.code === RESET_CLOSE_CODE) this.needsReload = true;
    if (this.token && !socket.greeted) {
      // The handshake was refused or cut: a browser cannot see the status, so ask the API.
      const code = await this.refusal().catch(() => null);
      if (this.stopped || this.socket) return;
      if (code) {
        this.deny(code);
        return;
      }
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    const delay = this.needsReload && this.attempt === 0
      ? 0
      : Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.onState(navigator.onLine === false ? 'offline' : 'reconnecting', { attempt: this.attempt, delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.socket || this.stopped) return;
    clearTimeout(this.timer);
    this.connect();
  }

  armWatchdog(socket) {
    clearTimeout(this.watchdog);
    // Heartbeats arrive well within this; silence means a dead connection the OS has not noticed.
    this.watchdog = setTimeout(() => {
      if (socket !== this.socket) return;
      this.socket = null;
      socket.close(4001, 'silent');
      this.scheduleRetry();
    }, SILENCE_MS);
  }
}
