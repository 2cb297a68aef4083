// <livefeed-feed feed="ukraine" limit="5" more-href="/news-feed"></livefeed-feed>: a feed's newest
// items on a publisher's page, live. One file, no dependencies; the gateway is where this script
// came from (import.meta.url), never the host page. Widgets of one feed share one snapshot and one
// WebSocket. The stream follows the reader page's rules (web/live.js): resume from the last cursor,
// capped jittered backoff, a reset reloads the snapshot, a second reset goes live from now and
// catches up after the hello, so a reset never becomes a reload loop. Items fill fixed-height
// slots, so nothing on the page (or in the widget) moves when one arrives. Newsroom text is only
// ever set as textContent.

const BASE = new URL('../', import.meta.url);
const MAX_LIMIT = 20;
const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const SILENCE_MS = 45000;
const RESET_CLOSE_CODE = 4000;
const CATCH_UP_TRIES = 6;
const KEEP_ITEMS = 200;

const hour = new Intl.DateTimeFormat(undefined, { hour: 'numeric' }).resolvedOptions().hour12 ? 'numeric' : '2-digit';
const clock = new Intl.DateTimeFormat(undefined, { hour, minute: '2-digit' });
const day = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour, minute: '2-digit' });

/** "14:05" today, "3 Mar, 14:05" on an earlier day, in the reader's zone and locale. */
function when(iso) {
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return '';
  return (moment.toDateString() === new Date().toDateString() ? clock : day).format(moment);
}

/** Whether a snapshot at `cursor` holds everything up to `start` (a feed's cursors share a partition). */
function reached(cursor, start) {
  if (!cursor) return false;
  const [epoch, partition, offset] = cursor.split('.');
  const [startEpoch, startPartition, startOffset] = start.split('.');
  return epoch !== startEpoch || partition !== startPartition || Number(offset) >= Number(startOffset);
}

/** One feed's items and stream, shared by every widget of the feed on the page. */
class Channel {
  constructor(feed) {
    this.feed = feed;
    this.items = new Map();
    this.views = new Set();
    this.cursor = null;
    this.loaded = false;
    this.socket = null;
    this.attempt = 0;
    this.resets = 0;
    this.needsReload = true;
    this.timer = null;
    this.watchdog = null;
    this.onOnline = () => this.retryNow();
    this.onOffline = () => this.drop();
  }

  add(view) {
    this.views.add(view);
    if (this.views.size === 1) {
      this.stopped = false;
      addEventListener('online', this.onOnline);
      addEventListener('offline', this.onOffline);
      setTimeout(() => this.connect());
    } else if (this.loaded) {
      view.show(this, new Set());
    }
  }

  remove(view) {
    this.views.delete(view);
    if (this.views.size) return;
    this.stopped = true;
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    this.socket?.close(1000, 'page closed');
    this.socket = null;
  }

  url(path) {
    return new URL(`v1/feeds/${encodeURIComponent(this.feed)}/${path}`, BASE);
  }

  /** The newest items (merged into what is shown with `merge`, else replacing it); returns their cursor. */
  async reload(merge) {
    const limit = Math.max(...[...this.views].map((v) => v.limit), 1);
    const response = await fetch(this.url(`items?limit=${limit}`), { cache: 'no-store', credentials: 'omit' });
    if (!response.ok) throw new Error(`history answered ${response.status}`);
    const page = await response.json();
    if (!merge) this.items.clear();
    const fresh = new Set();
    for (const item of page.items) if (this.apply(item)) fresh.add(item.id);
    this.loaded = true;
    this.show(merge ? fresh : new Set(), false);
    return page.cursor || null;
  }

  /** Keep `item` if it is newer than what is known of it (a snapshot may already hold an event). */
  apply(item) {
    const known = this.items.get(item.id);
    if (known && known.version >= item.version) return false;
    this.items.set(item.id, item);
    if (this.items.size > KEEP_ITEMS) this.items.delete([...this.items.keys()].sort()[0]);
    return item.status !== 'retracted';
  }

  /** The current items, newest first (ids are ULIDs: they sort in publish order). */
  list() {
    return [...this.items.values()].filter((i) => i.status !== 'retracted').sort((a, b) => (a.id < b.id ? 1 : -1));
  }

  show(fresh, announce = true) {
    for (const view of this.views) view.show(this, fresh, announce);
  }

  state(name) {
    for (const view of this.views) view.state(name);
  }

  async connect() {
    if (this.stopped || this.socket) return;
    if (navigator.onLine === false) {
      this.state('offline');
      return;
    }
    this.state(this.attempt ? 'reconnecting' : 'connecting');
    if (this.needsReload && this.resets >= 2) {
      this.cursor = null;
      this.needsReload = false;
    } else if (this.needsReload) {
      try {
        this.cursor = await this.reload(false);
        this.needsReload = false;
      } catch {
        this.retry();
        return;
      }
    }
    if (this.stopped || this.socket) return;
    const from = this.cursor;
    const url = this.url(from ? `stream?since=${encodeURIComponent(from)}` : 'stream');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onmessage = (event) => this.receive(socket, event, from);
    socket.onclose = (event) => this.closed(socket, event);
    this.arm(socket);
  }

  receive(socket, event, from) {
    if (socket !== this.socket) return;
    this.arm(socket);
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === 'hello') {
      this.attempt = 0;
      this.resets = 0;
      if (from === null && message.cursor) {
        this.cursor = message.cursor;
        this.catchUp(socket, message.cursor, 0);
      }
      this.state('live');
    } else if (message.type === 'reset') {
      this.needsReload = true;
      this.resets += 1;
    } else if (message.type?.startsWith('item.') && message.item) {
      if (message.cursor) this.cursor = message.cursor;
      const fresh = this.apply(message.item) && message.type === 'item.published';
      this.show(new Set(fresh ? [message.item.id] : []));
    }
  }

  /** The stream began at `start` without a snapshot position: reload, merged, until it reaches `start`. */
  async catchUp(socket, start, tries) {
    let cursor = null;
    try {
      cursor = await this.reload(true);
    } catch {
      cursor = null;
    }
    if (socket !== this.socket || this.stopped || reached(cursor, start)) return;
    if (tries + 1 < CATCH_UP_TRIES) {
      setTimeout(() => this.catchUp(socket, start, tries + 1), 200 * 2 ** tries);
      return;
    }
    this.needsReload = true;
    socket.close(4002, 'catch up');
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    clearTimeout(this.watchdog);
    this.socket = null;
    if (this.stopped) return;
    if (event.code === RESET_CLOSE_CODE) this.needsReload = true;
    this.retry();
  }

  retry() {
    const delay = this.needsReload && this.attempt === 0
      ? 0
      : Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.state(navigator.onLine === false ? 'offline' : 'reconnecting');
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.socket || this.stopped) return;
    clearTimeout(this.timer);
    this.connect();
  }

  /** The network is gone: close now and resume from the cursor when it is back (no failing retries meanwhile). */
  drop() {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    clearTimeout(this.watchdog);
    clearTimeout(this.timer);
    socket.close(1000, 'offline');
    this.state('offline');
  }

  arm(socket) {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (socket !== this.socket) return;
      this.socket = null;
      socket.close(4001, 'silent');
      this.retry();
    }, SILENCE_MS);
  }
}

const channels = new Map();

function channel(feed) {
  if (!channels.has(feed)) channels.set(feed, new Channel(feed));
  return channels.get(feed);
}

const STATE_TEXT = { connecting: 'Connecting', live: 'Live', reconnecting: 'Reconnecting', offline: 'Offline' };

const STYLE = `
:host{display:block;contain:layout paint}
:host([hidden]){display:none}
.w{all:initial;display:block;box-sizing:border-box;height:var(--h);overflow:hidden;
font:var(--livefeed-font-size,16px)/1.3 var(--livefeed-font,system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif);
color:var(--livefeed-text,#121212);background:var(--livefeed-background,transparent)}
.w *{box-sizing:border-box;margin:0;padding:0;font:inherit;color:inherit;letter-spacing:normal;text-transform:none;
text-align:start;text-decoration:none;line-height:1.3em}
header{display:flex;align-items:center;gap:.4em;height:2em;border-bottom:2px solid var(--livefeed-accent,#c70000)}
.t{font-weight:800;font-size:.8em;letter-spacing:.08em;text-transform:uppercase;color:var(--livefeed-accent,#c70000)}
.s{margin-inline-start:auto;width:9em;font-size:.75em;color:var(--livefeed-muted,#5b5b5b)}
.s::before{content:"";display:inline-block;width:.6em;height:.6em;border-radius:50%;margin-inline-end:.35em;background:#a05a00}
.s[data-state=live]::before{background:var(--livefeed-accent,#c70000)}
ol{list-style:none;position:relative;height:calc(var(--n)*5.6em)}
li{display:grid;grid-template-rows:1.3em 2.6em 1.3em;grid-template-columns:minmax(0,1fr) auto;height:5.6em;padding:.2em 0 calc(.2em - 1px);border-bottom:1px solid var(--livefeed-rule,#dcdcdc);overflow:hidden}
li[hidden]{visibility:hidden;display:grid}
.m{display:flex;gap:.5em;font-size:.8em;line-height:1.625em;color:var(--livefeed-muted,#5b5b5b)}
time{font-weight:700;flex:none}
.c{min-width:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.b{margin-inline-start:auto;font-weight:800;text-transform:uppercase;letter-spacing:.06em;color:var(--livefeed-accent,#c70000)}
.h{display:-webkit-box;-webkit-box-orient:vertical;-webkit-line-clamp:2;overflow:hidden;font-weight:700}
a.h:hover,a.h:focus-visible{text-decoration:underline}
.m,.h,.p{grid-column:1}
.i{grid-area:1/2/4/3;align-self:center;margin-inline-start:.6em;width:6em;height:4em;object-fit:cover;background:var(--livefeed-rule,#dcdcdc)}
.i[hidden]{display:none}
.p{font-size:.9em;line-height:1.444em;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;color:var(--livefeed-muted,#5b5b5b)}
.e{position:absolute;inset:0;padding-top:.5em;color:var(--livefeed-muted,#5b5b5b)}
.more{display:block;height:2em;line-height:2em;font-weight:800;font-size:.8em;letter-spacing:.08em;text-transform:uppercase;color:var(--livefeed-accent,#c70000)}
.v{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%);white-space:nowrap}
:focus-visible{outline:2px solid var(--livefeed-accent,#c70000);outline-offset:1px}
@media (prefers-reduced-motion:no-preference){li.new{animation:f 2s ease-out}}
@keyframes f{from{background:var(--livefeed-highlight,#fff1a8)}}
@media (prefers-color-scheme:dark){.w{color:var(--livefeed-text,#ececec)}}
`;

function el(tag, className, part) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (part) node.setAttribute('part', part);
  return node;
}

/** A link target from an attribute: http(s) or relative to the page, never javascript: and the like. */
function safeHref(value) {
  try {
    const url = new URL(value, document.baseURI);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

class LivefeedFeed extends HTMLElement {
  connectedCallback() {
    const feed = this.getAttribute('feed') || '';
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(feed)) {
      console.warn('<livefeed-feed>: the feed attribute must be a feed slug');
      return;
    }
    this.limit = Math.min(MAX_LIMIT, Math.max(1, Number.parseInt(this.getAttribute('limit'), 10) || 5));
    if (!this.shadowRoot) this.build(feed);
    this.channel = channel(feed);
    this.channel.add(this);
  }

  disconnectedCallback() {
    this.channel?.remove(this);
    this.channel = null;
  }

  build(feed) {
    const root = this.attachShadow({ mode: 'open' });
    const style = el('style');
    style.textContent = STYLE;
    const wrap = el('section', 'w', 'container');
    wrap.style.setProperty('--n', String(this.limit));
    wrap.style.setProperty('--h', `calc(${this.limit} * 5.6em + 4em)`);
    const header = el('header', '', 'header');
    const title = el('span', 't', 'title');
    title.textContent = this.getAttribute('heading') || 'News feed';
    wrap.setAttribute('aria-label', title.textContent);
    this.status = el('span', 's', 'status');
    header.append(title, this.status);
    this.list = el('ol', '', 'list');
    this.slots = [];
    for (let i = 0; i < this.limit; i += 1) {
      const slot = el('li', '', 'item');
      slot.hidden = true;
      const meta = el('div', 'm', 'meta');
      const badge = el('span', 'b', 'badge');
      badge.textContent = 'Breaking';
      meta.append(el('time', '', 'time'), el('span', 'c', 'correction'), badge);
      const image = el('img', 'i', 'image');
      image.loading = 'lazy';
      image.decoding = 'async';
      image.referrerPolicy = 'no-referrer';
      slot.append(meta, el('a', 'h', 'headline'), el('p', 'p', 'body'), image);
      this.slots.push(slot);
    }
    this.empty = el('p', 'e', 'empty');
    this.list.append(...this.slots, this.empty);
    const more = el('a', 'more', 'more');
    more.textContent = this.getAttribute('more-text') || 'More news';
    const href = this.getAttribute('more-href');
    more.href = (href && safeHref(href)) || new URL(`feeds/${feed}`, BASE).href;
    this.announcer = el('div', 'v');
    this.announcer.setAttribute('aria-live', 'polite');
    this.announcer.setAttribute('role', 'status');
    wrap.append(header, this.list, more, this.announcer);
    root.append(style, wrap);
    this.state('connecting');
  }

  state(name) {
    this.status.dataset.state = name;
    this.status.textContent = STATE_TEXT[name] || '';
  }

  /** Fill the slots with the channel's newest items; announce and mark the `fresh` ones. */
  show(channel, fresh, announce = true) {
    const items = channel.list().slice(0, this.limit);
    this.slots.forEach((slot, i) => {
      const item = items[i];
      slot.hidden = !item;
      slot.classList.remove('new');
      if (!item) return;
      if (slot.dataset.id === item.id && slot.dataset.version === String(item.version)) return;
      slot.dataset.id = item.id;
      slot.dataset.version = String(item.version);
      const [meta, headline, body, image] = slot.children;
      const [time, correction, badge] = meta.children;
      time.dateTime = item.published_at;
      time.textContent = when(item.published_at);
      const note = item.correction;
      correction.textContent = note ? `Corrected ${when(note.corrected_at)}: ${note.note}` : '';
      correction.title = note ? note.note : '';
      const picture = (item.images || []).find((i) => /^https:\/\//.test(i.url));
      image.hidden = !picture;
      if (picture) {
        image.src = picture.url;
        image.alt = picture.alt;
      } else {
        image.removeAttribute('src');
      }
      badge.hidden = item.urgency !== 'breaking';
      slot.part = item.urgency === 'breaking' ? 'item breaking' : 'item';
      headline.textContent = item.headline;
      headline.href = new URL(`feeds/${channel.feed}#item-${item.id}`, BASE).href;
      body.textContent = item.body || '';
      if (fresh.has(item.id)) {
        void slot.offsetWidth;
        slot.classList.add('new');
      }
    });
    this.empty.hidden = items.length > 0;
    this.empty.textContent = items.length ? '' : 'No updates yet.';
    const arrived = items.filter((i) => fresh.has(i.id));
    if (announce && arrived.length) {
      this.announcer.textContent = arrived.map((i) => `${i.urgency === 'breaking' ? 'Breaking: ' : 'New: '}${i.headline}`).join('. ');
    }
  }
}

if (!customElements.get('livefeed-feed')) customElements.define('livefeed-feed', LivefeedFeed);
