// Builds an update from an item by filling the page's <template id="item-template">, which
// services/history/render.py renders with the same code as the page's own updates: the markup is
// written there only. Newsroom text is only ever set with textContent, never parsed as HTML.

// "19:05" where clocks run to 24 hours, "7:05 PM" (not "07:05 PM") where they run to 12.
const hour = new Intl.DateTimeFormat(undefined, { hour: 'numeric' }).resolvedOptions().hour12 ? 'numeric' : '2-digit';
const clockFormat = new Intl.DateTimeFormat(undefined, { hour, minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', hour, minute: '2-digit' });
const yearFormat = new Intl.DateTimeFormat(undefined, {
  day: 'numeric', month: 'short', year: 'numeric', hour, minute: '2-digit',
});

/** "14:05" today, "3 Mar, 14:05" on another day, "3 Mar 2025, 14:05" in another year: the reader's time zone. */
export function formatTime(iso, now = new Date()) {
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return '';
  if (moment.toDateString() === now.toDateString()) return clockFormat.format(moment);
  return (moment.getFullYear() === now.getFullYear() ? dayFormat : yearFormat).format(moment);
}

/** Calls `redo` just after each local midnight, so "today's" times gain their date when the day turns. */
export function atEachMidnight(redo) {
  const next = new Date();
  next.setHours(24, 0, 1, 0);
  setTimeout(() => {
    redo();
    atEachMidnight(redo);
  }, next.getTime() - Date.now());
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

/** Whether `url` is an https address, the only kind of picture an item may show (the console's draft may hold others). */
function safeImage(url) {
  try {
    return new URL(url).protocol === 'https:';
  } catch {
    return false;
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
  fillImages(part('.item-image'), (item.images || []).filter((image) => safeImage(image.url)));

  const body = part('.item-body');
  if (item.body) body.textContent = item.body;
  else body.remove();
  const correction = part('.item-correction');
  if (item.correction) {
    correction.querySelector('time').setAttribute('datetime', item.correction.corrected_at);
    correction.querySelector('.item-correction-note').textContent = item.correction.note;
  } else {
    correction.remove();
  }
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
  if (showsUpdated(item)) {
    updated.querySelector('time').setAttribute('datetime', item.updated_at);
    updated.lastChild.appendData(String(item.version));
  } else {
    updated.remove();
  }
  const revisions = part('.item-revisions');
  if (item.version > 1) revisions.setAttribute('href', `/v1/feeds/${item.feed}/items/${item.id}/revisions`);
  else revisions.remove();
  const foot = part('.item-foot');
  if (!foot.childElementCount) foot.remove();
  localizeTimes(article);
  if (actions) article.append(actions);
  return article;
}

/** A plain edit shows "Updated"; a version that is the latest correction shows only "Corrected" (as render.py). */
function showsUpdated(item) {
  if (item.version <= 1) return false;
  return !item.correction || new Date(item.updated_at) > new Date(item.correction.corrected_at);
}

/** Replaces the template's one <figure> with the item's pictures: lazy, their box reserved by their size. */
function fillImages(figure, images) {
  const made = images.map((image) => {
    const copy = figure.cloneNode(true);
    const img = copy.querySelector('img');
    img.setAttribute('src', image.url);
    img.setAttribute('alt', image.alt);
    if (image.width && image.height) {
      img.setAttribute('width', String(image.width));
      img.setAttribute('height', String(image.height));
    } else {
      img.removeAttribute('width');
      img.removeAttribute('height');
      copy.classList.add('is-unsized');
    }
    const caption = copy.querySelector('figcaption');
    for (const name of ['caption', 'credit']) {
      const span = caption.querySelector(`.item-image-${name}`);
      if (image[name]) span.textContent = image[name];
      else span.remove();
    }
    if (!caption.childElementCount) caption.remove();
    return copy;
  });
  figure.replaceWith(...made);
}
