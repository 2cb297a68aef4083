// Builds an update from an item by filling the page's <template id="item-template">, which
// services/history/render.py renders with the same code as the page's own updates: the markup is
// written there only. Newsroom text is only ever set with textContent, never parsed as HTML.

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
  const template = document.getElementById('item-template');
  if (!template) throw new Error('renderItem needs the page\'s <template id="item-template">');
  const article = document.importNode(template.content, true).firstElementChild;
  const part = (selector) => article.querySelector(selector);
  const anchor = `item-${item.id}`;
  article.id = anchor;
  article.dataset.id = item.id;
  article.dataset.version = String(item.version);
  article.dataset.pinned = item.pinned ? '1' : '0';
  article.setAttribute('aria-labelledby', `${anchor}-h`);
  part('.item-time').setAttribute('href', `#${anchor}`);
  part('.item-time time').setAttribute('datetime', item.published_at);
  const flags = { breaking: item.urgency === 'breaking', pinned: Boolean(item.pinned), key: Boolean(item.key_event) };
  for (const [flag, on] of Object.entries(flags)) {
    if (on) continue;
    article.classList.remove(`is-${flag}`);
    part(`.badge-${flag}`).remove();
  }
  const headline = part('.item-headline');
  headline.id = `${anchor}-h`;
  headline.textContent = item.headline;

  const body = part('.item-body');
  if (item.body) body.textContent = item.body;
  else body.remove();
  const byline = part('.item-byline');
  if (item.byline) byline.textContent = item.byline;
  else byline.remove();
  const source = part('.item-source');
  const link = safeLink(item.url);
  if (link) {
    source.setAttribute('href', item.url);
    source.lastChild.appendData(link.hostname);
  } else {
    source.remove();
  }
  const tags = part('.item-tags');
  const tag = tags.firstElementChild;
  if (item.tags && item.tags.length) {
    tags.replaceChildren(...item.tags.map((text) => {
      const li = tag.cloneNode(false);
      li.textContent = text;
      return li;
    }));
  } else {
    tags.remove();
  }
  const updated = part('.item-updated');
  if (item.version > 1) {
    updated.querySelector('time').setAttribute('datetime', item.updated_at);
    updated.lastChild.appendData(String(item.version));
  } else {
    updated.remove();
  }
  const foot = part('.item-foot');
  if (!foot.childElementCount) foot.remove();
  localizeTimes(article);
  if (actions) article.append(actions);
  return article;
}
