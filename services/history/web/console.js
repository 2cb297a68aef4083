// The newsroom console: sign in with a newsroom token, write, preview, correct and retract
// updates, with the feed live beside the form. The token lives in sessionStorage (this tab
// only) and is sent only in the Authorization header of writes.

import { feedPath, getJSON, newKey, write } from './api.js';
import { FeedList } from './feedlist.js';
import { changes, draftItem, problemsWith, readForm } from './draft.js';
import { LiveStream, STATE_TEXT } from './live.js';
import { el, formatTime, renderItem } from './render.js';
import { FEED_RE } from './rules.js';

const TOKEN_KEY = 'livefeed.newsroom.token';
const FEED_KEY = 'livefeed.newsroom.feed';
const PAGE_SIZE = 50;
const CONFIRM_MS = 4000;

const $ = (id) => document.getElementById(id);
const form = $('item-form');
const submit = $('submit');
const feedEl = $('feed');
const fields = {
  headline: $('f-headline'),
  body: $('f-body'),
  tags: $('f-tags'),
  byline: $('f-byline'),
  url: $('f-url'),
  images: $('f-image-url'),
  image_alt: $('f-image-alt'),
  correction: $('f-correction'),
  breaking: $('f-breaking'),
  pinned: $('f-pinned'),
  key_event: $('f-key'),
};

let token = sessionStorage.getItem(TOKEN_KEY);
let feed = null;
let stream = null;
let list = null;
let nextBefore = null;
let editing = null;
let attempt = null;

// -- sign-in ----------------------------------------------------------------------------------

async function tokenAccepted(candidate) {
  try {
    await write('POST', '/v1/tokens/check', { token: candidate });
    return true;
  } catch (error) {
    if (error.status === 401) return false;
    throw error;
  }
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('token');
  const problem = $('signin-error');
  const button = event.submitter ?? event.target.querySelector('button');
  const candidate = input.value.trim();
  problem.hidden = true;
  if (!candidate) {
    problem.textContent = 'Enter your newsroom token.';
    problem.hidden = false;
    return;
  }
  button.disabled = true;
  try {
    if (await tokenAccepted(candidate)) {
      token = candidate;
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = '';
      showDesk();
    } else {
      problem.textContent = 'That token was not accepted. Check it with your editor and try again.';
      problem.hidden = false;
    }
  } catch (error) {
    problem.textContent = error.message;
    problem.hidden = false;
  } finally {
    button.disabled = false;
  }
});

function signOut(message = '') {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  stream?.stop();
  stream = null;
  endEdit();
  $('desk').hidden = true;
  $('signout').hidden = true;
  $('signin-panel').hidden = false;
  const problem = $('signin-error');
  problem.textContent = message;
  problem.hidden = !message;
  $('token').focus();
}

$('signout').addEventListener('click', () => signOut());

// -- the feed beside the form -------------------------------------------------------------------

function actionButton(label, action, id, extra = '') {
  const button = el('button', extra, label);
  button.type = 'button';
  button.dataset.action = action;
  button.setAttribute('aria-describedby', `item-${id}-h`);
  return button;
}

/** "Posted by ana · last change by ed": the newsroom credentials behind an item (none on older items). */
function whoText(item) {
  const parts = [];
  if (item.created_by) parts.push(`Posted by ${item.created_by}`);
  if (item.version > 1 && item.updated_by) parts.push(`last change by ${item.updated_by}`);
  return parts.join(' · ');
}

function renderWithActions(item) {
  const actions = el('div', 'item-actions',
    null,
    actionButton('Edit', 'edit', item.id),
    actionButton(item.pinned ? 'Unpin' : 'Pin', item.pinned ? 'unpin' : 'pin', item.id),
    actionButton('Retract', 'retract', item.id, 'danger'));
  const article = renderItem(item, actions);
  const who = whoText(item);
  if (who) article.insertBefore(el('p', 'item-who', who), actions);
  article.classList.toggle('is-editing', editing?.item.id === item.id);
  return article;
}

function setState(state) {
  const conn = $('conn');
  conn.dataset.state = state;
  conn.textContent = STATE_TEXT[state] ?? state;
}

function refreshEmpty() {
  $('feed-empty').hidden = list.size > 0;
  $('load-older').hidden = !nextBefore;
}

function onEvent(message) {
  list.apply(message.item);
  refreshEmpty();
  const item = message.item;
  if (editing && item.id === editing.item.id && item.version > editing.item.version) {
    showEditing(item.status === 'retracted'
      ? 'This update was retracted while you were editing it; it can no longer change.'
      : `This update changed (now v${item.version}) since you started editing; saving will be refused. `
        + 'Press Edit on it again to start from the latest version.');
  }
}

/** The feed's newest items: replacing the list, or with `merge` only adding and updating (see live.js). */
async function loadSnapshot({ merge = false } = {}) {
  const page = await getJSON(feedPath(feed, `/items?limit=${PAGE_SIZE}`));
  if (merge) {
    for (const item of page.items) list.apply(item);
  } else {
    list.reconcile(page.items);
  }
  nextBefore = page.next_before;
  refreshEmpty();
  return page.cursor;
}

async function openFeed(name) {
  feed = name;
  sessionStorage.setItem(FEED_KEY, feed);
  $('feed-input').value = feed;
  $('reader-link').href = `/feeds/${encodeURIComponent(feed)}`;
  $('live-title').textContent = `Live feed: ${feed}`;
  const url = new URL(location.href);
  url.searchParams.set('feed', feed);
  history.replaceState(null, '', url);
  stream?.stop();
  endEdit();
  feedEl.replaceChildren();
  list = new FeedList(feedEl, renderWithActions);
  setState('connecting');
  let cursor = null;
  try {
    cursor = await loadSnapshot();
  } catch (error) {
    showFormError(`Could not load ${feed}: ${error.message}`);
  }
  if (feed !== name) return;
  stream = new LiveStream({ feed, cursor, onEvent, onState: setState, reload: loadSnapshot });
  stream.start();
}

$('feed-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('feed-input').value.trim().toLowerCase();
  if (!FEED_RE.test(name)) {
    showFormError('A feed name is lowercase letters, digits and dashes, starting with a letter or digit.');
    return;
  }
  openFeed(name);
});

$('load-older').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  if (!nextBefore) return;
  button.disabled = true;
  try {
    const page = await getJSON(feedPath(feed, `/items?limit=${PAGE_SIZE}&before=${encodeURIComponent(nextBefore)}`));
    for (const item of page.items) list.apply(item);
    nextBefore = page.next_before;
    refreshEmpty();
  } catch (error) {
    showFormError(error.message);
  } finally {
    button.disabled = false;
  }
});

async function showDesk() {
  $('signin-panel').hidden = true;
  $('desk').hidden = false;
  $('signout').hidden = false;
  let feeds = [];
  try {
    feeds = (await getJSON('/v1/feeds')).feeds.map((f) => f.feed);
  } catch {
    feeds = [];
  }
  $('feed-options').replaceChildren(...feeds.map((name) => Object.assign(document.createElement('option'), { value: name })));
  const wanted = new URLSearchParams(location.search).get('feed') || sessionStorage.getItem(FEED_KEY) || feeds[0] || 'world';
  await openFeed(FEED_RE.test(wanted) ? wanted : 'world');
  renderPreview();
  fields.headline.focus();
}

// -- actions on an update -----------------------------------------------------------------------

function disarm(button) {
  delete button.dataset.armed;
  button.textContent = 'Retract';
  button.classList.remove('confirm');
}

feedEl.addEventListener('click', async (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const id = button.closest('article').dataset.id;
  const item = list.item(id);
  if (!item) return;
  const action = button.dataset.action;
  if (action === 'edit') {
    startEdit(item);
    return;
  }
  if (action === 'retract' && !button.dataset.armed) {
    button.dataset.armed = '1';
    button.textContent = 'Confirm retract';
    button.classList.add('confirm');
    setTimeout(() => button.isConnected && disarm(button), CONFIRM_MS);
    return;
  }
  button.disabled = true;
  try {
    const path = action === 'retract' ? feedPath(feed, `/items/${id}`) : feedPath(feed, `/items/${id}/pin`);
    const method = { retract: 'DELETE', pin: 'PUT', unpin: 'DELETE' }[action];
    const result = await write(method, path, { token, key: newKey() });
    list.apply(result.item);
    refreshEmpty();
    if (action === 'retract' && editing?.item.id === id) endEdit();
    showStatus({ retract: 'Retracted: readers no longer see it.', pin: 'Pinned on top.', unpin: 'Unpinned.' }[action]);
  } catch (error) {
    if (button.isConnected) {
      button.disabled = false;
      if (action === 'retract') disarm(button);
    }
    handleError(error);
  }
});

// -- the form -----------------------------------------------------------------------------------

function clearErrors() {
  for (const [name, input] of Object.entries(fields)) {
    input.removeAttribute('aria-invalid');
    const message = $(`e-${name}`);
    if (message) message.hidden = true;
  }
  $('form-error').hidden = true;
}

function showFieldErrors(problems) {
  let first = null;
  const leftover = [];
  for (const [name, text] of Object.entries(problems)) {
    const message = $(`e-${name}`);
    if (!message || !fields[name]) {
      leftover.push(text);
      continue;
    }
    message.textContent = text;
    message.hidden = false;
    fields[name].setAttribute('aria-invalid', 'true');
    first ??= fields[name];
  }
  if (leftover.length) showFormError(leftover.join(' '));
  first?.focus();
}

function showFormError(text) {
  const box = $('form-error');
  box.textContent = text;
  box.hidden = false;
}

function showStatus(text, link = null) {
  const status = $('form-status');
  status.replaceChildren(document.createTextNode(text));
  if (link) {
    const a = el('a', '', 'View on the reader page');
    a.href = link;
    a.target = '_blank';
    a.rel = 'noopener';
    status.append(' ', a);
  }
}

function handleError(error) {
  if (error.status === 401) {
    signOut('Your token was refused; sign in again. Nothing was changed.');
    return;
  }
  if (error.status === 412) {
    showFormError(`${error.message} Your correction was not saved.`);
    return;
  }
  if (error.status === 422 && error.fields.length) {
    const problems = {};
    for (const { field, message } of error.fields) {
      const name = String(field).split('.')[0];
      problems[name === 'urgency' ? 'breaking' : name] = message;
    }
    showFieldErrors(problems);
    return;
  }
  showFormError(error.message);
}

function renderPreview() {
  const note = editing ? fields.correction.value.trim() : '';
  const article = renderItem(draftItem(readForm(fields, editing?.item), feed, editing?.item, note));
  article.id = 'item-preview';
  article.removeAttribute('tabindex');
  article.querySelector('.item-headline').id = 'item-preview-h';
  article.setAttribute('aria-labelledby', 'item-preview-h');
  $('preview').replaceChildren(article);
}

function showEditing(text) {
  const banner = $('editing');
  banner.textContent = text;
  banner.hidden = false;
}

function startEdit(item) {
  endEdit();
  editing = { item };
  fields.headline.value = item.headline;
  fields.body.value = item.body;
  fields.tags.value = item.tags.join(', ');
  fields.byline.value = item.byline ?? '';
  fields.url.value = item.url ?? '';
  fields.images.value = item.images?.[0]?.url ?? '';
  fields.image_alt.value = item.images?.[0]?.alt ?? '';
  $('correction-box').hidden = false;
  fields.breaking.checked = item.urgency === 'breaking';
  fields.pinned.checked = item.pinned;
  fields.key_event.checked = item.key_event;
  showEditing(`Editing the update of ${formatTime(item.published_at)} (v${item.version}). `
    + 'Saving publishes a correction: readers see it marked “Updated” with its new version, '
    + 'or “Corrected” with your note if you write one.');
  $('composer-title').textContent = 'Correct an update';
  submit.textContent = 'Save correction';
  $('cancel-edit').hidden = false;
  list.element(item.id)?.classList.add('is-editing');
  renderPreview();
  form.scrollIntoView({ block: 'start' });
  fields.headline.focus();
}

function endEdit() {
  if (editing) list?.element(editing.item.id)?.classList.remove('is-editing');
  editing = null;
  attempt = null;
  form.reset();
  $('correction-box').hidden = true;
  clearErrors();
  $('editing').hidden = true;
  $('composer-title').textContent = 'New update';
  submit.textContent = 'Publish';
  $('cancel-edit').hidden = true;
  renderPreview();
}

$('cancel-edit').addEventListener('click', () => {
  endEdit();
  fields.headline.focus();
});

form.addEventListener('input', renderPreview);
form.addEventListener('change', renderPreview);
form.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  const draft = readForm(fields, editing?.item);
  const note = editing ? fields.correction.value.trim() : '';
  const problems = problemsWith(draft);
  if (Object.keys(problems).length) {
    showFieldErrors(problems);
    return;
  }
  const request = editing
    ? { method: 'PATCH', path: feedPath(feed, `/items/${editing.item.id}`), body: { ...changes(editing.item, draft), ...(note ? { correction: note } : {}) }, ifMatch: editing.item.version }
    : { method: 'POST', path: feedPath(feed, '/items'), body: draft };
  if (!Object.keys(request.body).length) {
    showStatus('Nothing changed.');
    return;
  }
  // The same submission, retried after a failure, reuses its key: the server publishes it once.
  const signature = JSON.stringify(request);
  if (attempt?.signature !== signature) attempt = { signature, key: newKey() };
  const label = submit.textContent;
  submit.disabled = true;
  submit.textContent = editing ? 'Saving…' : 'Publishing…';
  try {
    const result = await write(request.method, request.path, { token, body: request.body, ifMatch: request.ifMatch, key: attempt.key });
    attempt = null;
    list.apply(result.item);
    refreshEmpty();
    const link = `/feeds/${encodeURIComponent(feed)}#item-${result.item.id}`;
    showStatus(editing ? `Correction saved (v${result.item.version}).` : `Published: “${result.item.headline}”.`, link);
    endEdit();
    fields.headline.focus();
  } catch (error) {
    handleError(error);
  } finally {
    submit.disabled = false;
    if (token) submit.textContent = editing ? 'Save correction' : 'Publish';
    else submit.textContent = label;
  }
});

if (token) showDesk();
else $('signin-panel').hidden = false;
