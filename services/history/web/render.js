// Builds an update's markup from an item, exactly as services/history/render.py renders it: keep the
// two in step. Newsroom text is only ever set with textContent, never parsed as HTML.

// "19:05" where clocks run to 24 hours, "7:05 PM" (not "07:05 PM") where they run to 12.
const hour = new Intl.DateTimeFormat(undefined, { hour: 'numeric' }).resolvedOptions().hour12 ? 'numeric' : '2-digit';
const clockFormat = new Intl.DateTimeFormat(undefined, { hour, minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour, minute: '2-digit' });

/** "14:05" today, "3 Mar, 14:05" on another day, in the reader's time zone. */
export function formatTime(iso, now = new Date()) {
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return '';
  return moment.toDateString() === now.toDateString() ? clockFormat.format(moment) : dayFormat.format(moment);
}

/** Rewrites every server-rendered <time> (UTC) in the reader's time zone. */
export function localizeTimes(root) {
  for (const node of root.querySelectorAll('time[datetime]')) {
    node.textContent = formatTime(node.dateTime);
    node.title = new Date(node.dateTime).toLocaleString();
  }
}

/** An element with a class and, optionally, text; children appended in order. */
export function el(tag, className, text, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  for (const child of children) if (child) node.append(child);
  return node;
}

function timeEl(iso) {
  const node = el('time', '', formatTime(iso));
  node.dateTime = iso;
  node.title = new Date(iso).toLocaleString();
  return node;
}

/** The URL if it is an absolute http(s) address, else null (no javascript: links). */
export function safeLink(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed : null;
  } catch {
    return null;
  }
}

/** One update as an <article>; `actions` (an element) is appended for the newsroom console. */
export function renderItem(item, actions = null) {
  const anchor = `item-${item.id}`;
  const article = el('article', 'item');
  article.id = anchor;
  article.tabIndex = -1;
  article.dataset.id = item.id;
  article.dataset.version = String(item.version);
  article.dataset.pinned = item.pinned ? '1' : '0';
  article.setAttribute('aria-labelledby', `${anchor}-h`);
  article.classList.toggle('is-breaking', item.urgency === 'breaking');
  article.classList.toggle('is-pinned', Boolean(item.pinned));
  article.classList.toggle('is-key', Boolean(item.key_event));

  const link = el('a', 'item-time', null, timeEl(item.published_at));
  link.href = `#${anchor}`;
  link.title = 'Link to this update';
  const meta = el('div', 'item-meta', null, link);
  if (item.urgency === 'breaking') meta.append(el('span', 'badge badge-breaking', 'Breaking'));
  if (item.pinned) meta.append(el('span', 'badge badge-pinned', 'Pinned'));
  if (item.key_event) meta.append(el('span', 'badge badge-key', 'Key event'));
  const headline = el('h3', 'item-headline', item.headline);
  headline.id = `${anchor}-h`;
  article.append(meta, headline);
  if (item.body) article.append(el('p', 'item-body', item.body));

  const foot = el('div', 'item-foot');
  if (item.byline) foot.append(el('span', 'item-byline', item.byline));
  const source = safeLink(item.url);
  if (source) {
    const a = el('a', 'item-source', `Source: ${source.hostname}`);
    a.href = source.href;
    a.rel = 'nofollow noopener noreferrer ugc';
    foot.append(a);
  }
  if (item.tags && item.tags.length) {
    const tags = el('ul', 'item-tags');
    tags.setAttribute('aria-label', 'Tags');
    for (const tag of item.tags) tags.append(el('li', 'tag', tag));
    foot.append(tags);
  }
  if (item.version > 1) {
    foot.append(el('span', 'item-updated', 'Updated ', timeEl(item.updated_at), document.createTextNode(` · v${item.version}`)));
  }
  if (foot.childNodes.length) article.append(foot);
  if (actions) article.append(actions);
  return article;
}
