// An ordered, idempotent list of updates: pinned first, then newest first (ids are ULIDs, so
// they sort in publish order). An item is shown only if its version is newer than the one the
// list has seen, so replays and out-of-order deliveries change nothing.

import { renderItem } from './render.js';

function before(a, b) {
  if (a.pinned !== b.pinned) return a.pinned;
  return a.id > b.id;
}

export class FeedList {
  /** `render(item)` builds an item's element; server-rendered children are adopted. */
  constructor(container, render = (item) => renderItem(item)) {
    this.container = container;
    this.render = render;
    this.entries = new Map();
    this.retracted = new Map();
    for (const node of container.querySelectorAll(':scope > article[data-id]')) {
      this.entries.set(node.dataset.id, {
        id: node.dataset.id,
        version: Number(node.dataset.version),
        pinned: node.dataset.pinned === '1',
        el: node,
        item: null,
      });
    }
  }

  get size() { return this.entries.size; }

  has(id) { return this.entries.has(id); }

  element(id) { return this.entries.get(id)?.el ?? null; }

  item(id) { return this.entries.get(id)?.item ?? null; }

  /** The version the list has seen of `id` (shown or retracted), 0 if none. */
  seen(id) {
    return Math.max(this.entries.get(id)?.version ?? 0, this.retracted.get(id) ?? 0);
  }

  /** The oldest non-pinned id shown, or null. */
  oldestId() {
    let oldest = null;
    for (const entry of this.entries.values()) {
      if (!entry.pinned && (oldest === null || entry.id < oldest)) oldest = entry.id;
    }
    return oldest;
  }

  /** Applies an item state; returns 'inserted', 'updated', 'removed' or null when stale. */
  apply(item) {
    if (item.version <= this.seen(item.id)) return null;
    if (item.status === 'retracted') {
      this.retracted.set(item.id, item.version);
      return this.remove(item.id) ? 'removed' : null;
    }
    const old = this.entries.get(item.id);
    const entry = { id: item.id, version: item.version, pinned: Boolean(item.pinned), el: this.render(item), item };
    if (old) {
      const hadFocus = old.el.contains(document.activeElement);
      if (old.pinned === entry.pinned) {
        old.el.replaceWith(entry.el);
      } else {
        old.el.remove();
        this.entries.delete(item.id);
        this.place(entry);
      }
      this.entries.set(item.id, entry);
      if (hadFocus) entry.el.focus({ preventScroll: true });
      return 'updated';
    }
    this.place(entry);
    this.entries.set(item.id, entry);
    return 'inserted';
  }

  /** Removes `id`; returns whether it was shown. Focus moves to a neighbour, not the page. */
  remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return false;
    const hadFocus = entry.el.contains(document.activeElement);
    const neighbour = entry.el.nextElementSibling ?? entry.el.previousElementSibling;
    entry.el.remove();
    this.entries.delete(id);
    if (hadFocus && neighbour) neighbour.focus({ preventScroll: true });
    return true;
  }

  /** Replaces the list with a snapshot: what it lacks was retracted (or aged out) meanwhile. */
  reconcile(items) {
    const present = new Set(items.map((i) => i.id));
    for (const id of [...this.entries.keys()]) if (!present.has(id)) this.remove(id);
    for (const item of items) this.apply(item);
  }

  place(entry) {
    for (const node of this.container.children) {
      const other = this.entries.get(node.dataset.id);
      if (other && before(entry, other)) {
        node.before(entry.el);
        return;
      }
    }
    this.container.append(entry.el);
  }
}
