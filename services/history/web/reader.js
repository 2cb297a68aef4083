// The reader page: takes over the server-rendered snapshot and keeps it live from its cursor.
// New updates slide in at the top, or wait behind a "N new updates" button while the reader
// is scrolled down, so the page never jumps under them. A private feed's page is opened with
// `?token=<reader token>`: every read sends it (Authorization header), the stream carries it, and
// the page's own links keep it; once it expires the page says so instead of reconnecting.

import { feedPath, getJSON } from './api.js';
import { FeedList } from './feedlist.js';
import { LiveStream, STATE_TEXT } from './live.js';
import { atEachMidnight, el, formatTime, localizeTimes } from './render.js';
import { ITEM_ID_RE } from './rules.js';

const PAGE_SIZE = 20;
const MAX_REVEAL_PAGES = 100;

const main = document.getElementById('main');
const feed = main.dataset.feed;
const token = new URLSearchParams(location.search).get('token') || null;
const DENIED_TEXT = {
  reader_token_expired: 'Your link to this private feed has expired, so live updates have stopped. '
    + 'Ask your newsroom for a new link.',
  reader_token_wrong_feed: 'Your link opens another private feed, not this one.',
  reader_token_required: 'This feed is private: open it with the link your newsroom gave you.',
};
const feedEl = document.getElementById('feed');
const emptyEl = document.getElementById('feed-empty');
const newButton = document.getElementById('new-updates');
const conn = document.getElementById('conn');
const notice = document.getElementById('notice');
const announcer = document.getElementById('announcer');
const keyBox = document.getElementById('key-events-box');
let olderLink = document.getElementById('load-older');
let nextBefore = main.dataset.nextBefore || null;
let loadingOlder = null;

const list = new FeedList(feedEl);
const pending = new Map();
const baseTitle = document.title;
let unseen = 0;
const reducedMotion = matchMedia('(prefers-reduced-motion: reduce)');

/** A path of this site with the reader token added, so a private feed's own links keep working. */
function withToken(path) {
  if (!token) return path;
  const url = new URL(path, location.href);
  url.searchParams.set('token', token);
  return `${url.pathname}${url.search}${url.hash}`;
}

/** Why the feed refuses the token now (an error code), or null if it does not: a stream cannot tell. */
async function refusal() {
  try {
    await getJSON(feedPath(feed, '/items?limit=1'), { token });
    return null;
  } catch (error) {
    return error.status === 401 || error.status === 403 ? error.code : null;
  }
}

/** The key-events list: complete however far back, kept current by the same events. */
class KeyEvents {
  constructor(container, empty) {
    this.container = container;
    this.empty = empty;
    this.versions = new Map();
    for (const li of container.children) this.versions.set(li.dataset.id, Number(li.dataset.version));
  }

  apply(item) {
    if (item.version <= (this.versions.get(item.id) ?? 0)) return;
    this.versions.set(item.id, item.version);
    this.container.querySelector(`li[data-id="${CSS.escape(item.id)}"]`)?.remove();
    if (item.status === 'published' && item.key_event) {
      const time = el('time', '', formatTime(item.published_at));
      time.dateTime = item.published_at;
      const link = el('a', '', null, time, el('span', 'key-headline', item.headline));
      link.href = `#item-${item.id}`;
      const li = el('li', '', null, link);
      li.dataset.id = item.id;
      li.dataset.version = String(item.version);
      const after = [...this.container.children].find((node) => node.dataset.id < item.id);
      this.container.insertBefore(li, after ?? null);
    }
    this.empty.hidden = this.container.children.length > 0;
  }

  reconcile(items) {
    const present = new Set(items.map((i) => i.id));
    for (const li of [...this.container.children]) {
      if (!present.has(li.dataset.id)) li.remove();
    }
    for (const item of items) this.apply(item);
    this.empty.hidden = this.container.children.length > 0;
  }
}

const keyEvents = new KeyEvents(document.getElementById('key-events'), document.getElementById('key-events-empty'));

/** "(3) World: live updates" while updates wait for a reader who is elsewhere. */
function countUnseen(delta) {
  unseen = delta === null ? 0 : unseen + delta;
  document.title = unseen ? `(${unseen}) ${baseTitle}` : baseTitle;
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && pending.size === 0) countUnseen(null);
});

function announce(text) {
  announcer.textContent = text;
}

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = !text;
}

function refreshEmpty() {
  emptyEl.hidden = list.size > 0;
}

/** The reader has scrolled into the feed: inserting above them would move what they read. */
function scrolledDown() {
  return window.scrollY > 0 && feedEl.getBoundingClientRect().top < 0;
}

function updateNewButton() {
  const count = pending.size;
  newButton.hidden = count === 0;
  newButton.textContent = `↑ ${count} new ${count === 1 ? 'update' : 'updates'}`;
}

function flush({ reveal }) {
  const items = [...pending.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  pending.clear();
  updateNewButton();
  if (!document.hidden) countUnseen(null);
  for (const item of items) list.apply(item);
  refreshEmpty();
  if (reveal && items.length) {
    const newest = list.element(items[items.length - 1].id);
    main.querySelector('.stream').scrollIntoView({ block: 'start', behavior: reducedMotion.matches ? 'instant' : 'smooth' });
    newest?.focus({ preventScroll: true });
  }
}

/** Keeps "Last update HH:MM" under the title current. */
function touchLatest(item) {
  let time = document.querySelector('.title-block .dek time');
  if (!time) {
    time = el('time', '');
    document.querySelector('.title-block h1').after(el('p', 'dek', 'Last update ', time));
  }
  if (time.dateTime && new Date(time.dateTime) >= new Date(item.published_at)) return;
  time.dateTime = item.published_at;
  time.textContent = formatTime(item.published_at);
}

function headlineFor(item) {
  return `${item.urgency === 'breaking' ? 'Breaking' : 'New update'}: ${item.headline}`;
}

/** One item.* message from the stream. */
function onEvent(message) {
  const item = message.item;
  keyEvents.apply(item);
  if (message.type === 'item.published') touchLatest(item);
  const queued = pending.get(item.id);
  if (queued) {
    if (item.version > queued.version) {
      if (item.status === 'retracted') {
        pending.delete(item.id);
        if (unseen > 0) countUnseen(-1);
      } else {
        pending.set(item.id, item);
      }
      updateNewButton();
    }
    return;
  }
  if (list.has(item.id) || item.status === 'retracted') {
    list.apply(item);
    refreshEmpty();
    return;
  }
  if (item.version <= list.seen(item.id)) return;
  const oldest = list.oldestId();
  const belongs = message.type === 'item.published' || item.pinned || oldest === null || item.id > oldest;
  if (!belongs) return; // an edit of an update further back than the reader has loaded
  if (scrolledDown()) {
    pending.set(item.id, item);
    countUnseen(1);
    updateNewButton();
    announce(`${pending.size} new ${pending.size === 1 ? 'update' : 'updates'} above.`);
    return;
  }
  list.apply(item);
  refreshEmpty();
  announce(headlineFor(item));
  if (document.hidden) countUnseen(1);
}

function setOlder(cursor) {
  nextBefore = cursor;
  if (!olderLink) {
    olderLink = el('a', 'load-older', 'Load older updates');
    olderLink.id = 'load-older';
    olderLink.addEventListener('click', onOlderClick);
    emptyEl.after(olderLink);
  }
  olderLink.hidden = !cursor;
  if (cursor) olderLink.href = withToken(`/feeds/${encodeURIComponent(feed)}?before=${encodeURIComponent(cursor)}`);
}

/** Appends the next page of older updates; resolves to whether there was one. */
function loadOlder() {
  if (!nextBefore) return Promise.resolve(false);
  if (loadingOlder) return loadingOlder;
  feedEl.setAttribute('aria-busy', 'true');
  olderLink.textContent = 'Loading…';
  loadingOlder = getJSON(feedPath(feed, `/items?limit=${PAGE_SIZE}&before=${encodeURIComponent(nextBefore)}`), { token })
    .then((page) => {
      for (const item of page.items) list.apply(item);
      setOlder(page.next_before);
      olderLink.textContent = 'Load older updates';
      refreshEmpty();
      return page.items.length > 0;
    })
    .catch(() => {
      olderLink.textContent = 'Could not load older updates. Try again';
      return false;
    })
    .finally(() => {
      feedEl.setAttribute('aria-busy', 'false');
      loadingOlder = null;
    });
  return loadingOlder;
}

function onOlderClick(event) {
  event.preventDefault();
  const last = feedEl.lastElementChild;
  loadOlder().then((loaded) => {
    const first = last?.nextElementSibling;
    if (loaded && first && document.activeElement === olderLink) first.focus({ preventScroll: true });
  });
}

function highlight(node) {
  node.classList.remove('is-target');
  void node.offsetWidth;
  node.classList.add('is-target');
}

/** Scrolls to an update, paging back through history until it is loaded. */
async function reveal(id) {
  if (pending.has(id)) flush({ reveal: false });
  let node = list.element(id);
  for (let pages = 0; !node && nextBefore && pages < MAX_REVEAL_PAGES; pages += 1) {
    if (!(await loadOlder())) break;
    node = list.element(id);
  }
  if (!node) {
    try {
      const item = await getJSON(feedPath(feed, `/items/${encodeURIComponent(id)}`), { token });
      list.apply(item);
      node = list.element(id);
    } catch (error) {
      showNotice(error.status === 410
        ? 'That update was retracted by the newsroom.'
        : 'That update is no longer available.');
      return;
    }
  }
  showNotice('');
  node.scrollIntoView({ block: 'start', behavior: 'instant' });
  node.focus({ preventScroll: true });
  highlight(node);
}

function idFromHash(hash) {
  const id = hash.startsWith('#item-') ? hash.slice(6) : '';
  return ITEM_ID_RE.test(id) ? id : null;
}

document.addEventListener('click', (event) => {
  const link = event.target.closest?.('a[href^="#item-"]');
  if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
  const id = idFromHash(link.getAttribute('href'));
  if (!id) return;
  event.preventDefault();
  if (location.hash !== `#item-${id}`) history.pushState(null, '', `#item-${id}`);
  reveal(id);
});

window.addEventListener('hashchange', () => {
  const id = idFromHash(location.hash);
  if (id) reveal(id);
});

/** j / k move between updates; Page Down / Page Up too while an update has focus (ARIA feed). */
document.addEventListener('keydown', async (event) => {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.target.closest?.('input, textarea, select, [contenteditable]')) return;
  const current = document.activeElement?.closest?.('#feed > article') ?? null;
  let step = { j: 1, k: -1 }[event.key];
  if (!step && current) step = { PageDown: 1, PageUp: -1 }[event.key];
  if (!step) return;
  event.preventDefault();
  let articles = [...feedEl.children];
  if (!articles.length) return;
  let index;
  if (current) {
    index = articles.indexOf(current) + step;
  } else {
    const firstInView = articles.findIndex((a) => a.getBoundingClientRect().bottom > 0);
    index = firstInView === -1 ? articles.length - 1 : firstInView;
  }
  if (index >= articles.length && (await loadOlder())) articles = [...feedEl.children];
  const target = articles[Math.max(0, Math.min(index, articles.length - 1))];
  target.scrollIntoView({ block: 'nearest', behavior: 'instant' });
  target.focus({ preventScroll: true });
});

newButton.addEventListener('click', () => flush({ reveal: true }));

let scrollQueued = false;
window.addEventListener('scroll', () => {
  if (scrollQueued || pending.size === 0) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    if (!scrolledDown()) flush({ reveal: false });
  });
}, { passive: true });

/**
 * The snapshot again, its pinned updates and key events; returns its cursor. After a reset it
 * replaces the page; with `merge` (catching up a stream that began with no cursor) it only adds
 * and updates, since updates shown meanwhile may be newer than the snapshot.
 */
async function reloadSnapshot({ merge = false } = {}) {
  const [page, pins, keys] = await Promise.all([
    getJSON(feedPath(feed, `/items?limit=${PAGE_SIZE}`), { token }),
    getJSON(feedPath(feed, '/pinned?limit=50'), { token }),
    getJSON(feedPath(feed, '/key-events?limit=200'), { token }),
  ]);
  const pinned = pins.items.filter((i) => !page.items.some((p) => p.id === i.id));
  const unique = [...new Map([...page.items, ...pinned].map((i) => [i.id, i])).values()];
  if (merge) {
    for (const item of unique) if (!pending.has(item.id)) list.apply(item);
    for (const item of keys.items) keyEvents.apply(item);
  } else {
    pending.clear();
    updateNewButton();
    list.reconcile(unique);
    keyEvents.reconcile(keys.items);
  }
  setOlder(page.next_before);
  refreshEmpty();
  return page.cursor;
}

function setState(state, detail = {}) {
  conn.dataset.state = state;
  conn.textContent = STATE_TEXT[state] ?? state;
  document.body.dataset.live = state;
  if (state === 'denied') showNotice(DENIED_TEXT[detail.code] ?? DENIED_TEXT.reader_token_expired);
}

localizeTimes(document);
atEachMidnight(() => localizeTimes(document));
if (olderLink) olderLink.addEventListener('click', onOlderClick);
if (token) {
  for (const link of main.querySelectorAll(`a[href^="/feeds/${CSS.escape(feed)}"]`)) {
    link.href = withToken(link.getAttribute('href'));
  }
  feedEl.addEventListener('click', (event) => {
    const link = event.target.closest?.('a.item-revisions');
    if (link) link.href = withToken(link.getAttribute('href'));
  });
}
if (matchMedia('(max-width: 959px)').matches && keyEvents.container.children.length > 3) keyBox.open = false;
if (!main.dataset.static) {
  const stream = new LiveStream({
    feed,
    cursor: main.dataset.cursor || null,
    onEvent,
    onState: setState,
    reload: reloadSnapshot,
    token,
    refusal,
  });
  stream.start();
  window.addEventListener('pagehide', () => stream.stop());
  window.addEventListener('pageshow', (event) => { if (event.persisted) stream.start(); });
}
const initial = idFromHash(location.hash);
if (initial) reveal(initial);
