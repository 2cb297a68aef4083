// The console's draft of an update: read from the form, checked as the API checks it, and
// turned into the item readers will see (for the preview) or the fields a correction changes.

import { TAG_RE } from './rules.js';

/** What the form holds, as the API takes it. */
export function readForm(fields) {
  const tags = [...new Set(fields.tags.value.split(/[\s,]+/).map((t) => t.trim().toLowerCase()).filter(Boolean))];
  return {
    headline: fields.headline.value.trim(),
    body: fields.body.value.replace(/\s+$/, ''),
    tags,
    urgency: fields.breaking.checked ? 'breaking' : 'normal',
    pinned: fields.pinned.checked,
    key_event: fields.key_event.checked,
    byline: fields.byline.value.trim() || null,
    url: fields.url.value.trim() || null,
  };
}

/** Field name → message for what the API would refuse; empty when the draft is fine. */
export function problemsWith(draft) {
  const problems = {};
  if (!draft.headline) problems.headline = 'Write a headline.';
  else if (draft.headline.length > 300) problems.headline = 'At most 300 characters.';
  if (draft.body.length > 10000) problems.body = 'At most 10,000 characters.';
  const bad = draft.tags.filter((t) => !TAG_RE.test(t));
  if (bad.length) problems.tags = `Not a tag: ${bad.join(', ')}. Use lowercase letters, digits and dashes.`;
  else if (draft.tags.length > 20) problems.tags = 'At most 20 tags.';
  if (draft.url && !/^https?:\/\/\S+$/.test(draft.url)) problems.url = 'A link starts with https:// or http://.';
  return problems;
}

/** The item a draft will become, for the preview. */
export function draftItem(draft, feed, base = null) {
  const now = new Date().toISOString();
  return {
    ...draft,
    id: base ? base.id : 'preview',
    feed,
    status: 'published',
    version: base ? base.version + 1 : 1,
    headline: draft.headline || 'Your headline appears here',
    published_at: base ? base.published_at : now,
    updated_at: now,
  };
}

/** The fields of `draft` that differ from `before`: what a correction sends. */
export function changes(before, draft) {
  const changed = {};
  for (const [name, value] of Object.entries(draft)) {
    if (JSON.stringify(value) !== JSON.stringify(before[name] ?? null)) changed[name] = value;
  }
  return changed;
}
