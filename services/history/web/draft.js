// The console's draft of an update: read from the form, checked as the API checks it, and
// turned into the item readers will see (for the preview) or the fields a correction changes.

import { TAG_RE } from './rules.js';

/** The draft's pictures: the form holds one; editing keeps the item's own while its first is unchanged. */
function readImages(fields, base) {
  const url = fields.images.value.trim();
  const alt = fields.image_alt.value.trim();
  if (!url) return [];
  const kept = base?.images ?? [];
  if (kept.length && kept[0].url === url && kept[0].alt === alt) return kept;
  return [{ url, alt }];
}

/** What the form holds, as the API takes it; `base` is the item being corrected, if any. */
export function readForm(fields, base = null) {
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
    images: readImages(fields, base),
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
  const image = draft.images[0];
  if (image && !/^https:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?([/?#][!-~]*)?$/.test(image.url)) {
    problems.images = 'An image address starts with https:// (no http:, data: or javascript:).';
  }
  if (image && !image.alt) problems.image_alt = 'Describe the image for readers who cannot see it.';
  return problems;
}

/** The item a draft will become, for the preview; a correction `note` shows as it will to readers. */
export function draftItem(draft, feed, base = null, note = '') {
  const now = new Date().toISOString();
  return {
    ...draft,
    correction: note ? { note, corrected_at: now } : (base?.correction ?? null),
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
