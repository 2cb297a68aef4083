"""Every Redis key livefeed writes, in one table: the one place the key layout lives.

Each key is a pattern over named parts. :func:`key` fills one in from Python; :data:`LUA`
defines the same patterns as Lua functions (``k_item(feed, id)``) for the store's scripts,
so a script and a method can never disagree on a name.

=================== ======== ================================================ ==========
pattern             type     what                                             written by
=================== ======== ================================================ ==========
item:{feed}:{id}    hash     an item's JSON, version, status, seq, cursor     history
rev:{feed}:{id}     zset     an item's versions' JSON, scored by version      history
list:{feed}         zset     live items, scored by publish offset             history
tag:{feed}:{tag}    zset     live items with the tag                          history
keyev:{feed}        zset     key events                                       history
pinned:{feed}       zset     pinned items                                     history
feeds               zset     feeds, scored by last change (ms)                history
head:{feed}         string   cursor of the feed's last applied event          history
wm:{partition}      string   the partition offset history has applied         history
op:{op}             string   the item a keyed publish made (Event.op)         history
meta:epoch          string   the topic epoch the data belongs to              history
meta:generation     string   which emptying of the store the data is from     history
meta:rebuild        hash     partition -> offset it is rebuilt up to, pending history
meta:history-reset  string   the history instance emptying the store (lock)   history
meta:history-status string   an instance's consumer readiness, for its        history
  :{instance}                workers
idem:{scope}:{key}  hash     an Idempotency-Key's claim and answer            ingest
lock:{feed}:{id}    string   a short lock while an item is edited             ingest
rate:{credential}   hash     a credential's write bucket: tokens, at (us)     ingest
=================== ======== ================================================ ==========

An item's ``item:`` hash and its ``rev:`` versions live for the age limit after its last
change, whatever the per-feed list retention: an item that has left ``list:`` can still be
read, corrected or retracted. A retraction deletes ``rev:`` (retracted words are not kept).

Every key starts with :data:`PREFIX`. ingest also writes history's item keys after a write
(write-through); history rebuilds everything but ``idem:``, ``lock:`` and ``rate:`` from Kafka.
"""

from __future__ import annotations

import re

__all__ = ["LUA", "PATTERNS", "PREFIX", "REBUILT", "key"]

PREFIX = "lf:"

PATTERNS: dict[str, str] = {
    "item": "item:{feed}:{id}",
    "rev": "rev:{feed}:{id}",
    "list": "list:{feed}",
    "tag": "tag:{feed}:{tag}",
    "keyev": "keyev:{feed}",
    "pinned": "pinned:{feed}",
    "feeds": "feeds",
    "head": "head:{feed}",
    "wm": "wm:{partition}",
    "op": "op:{op}",
    "epoch": "meta:epoch",
    "generation": "meta:generation",
    "rebuild": "meta:rebuild",
    "reset": "meta:history-reset",
    "status": "meta:history-status:{instance}",
    "idem": "idem:{scope}:{key}",
    "lock": "lock:{feed}:{id}",
    "rate": "rate:{credential}",
}

REBUILT = frozenset(PATTERNS) - {"idem", "lock", "rate", "status", "rebuild", "reset"}
"""The keys history owns: a rebuild deletes and refills them from Kafka. Not the keys that say a rebuild
is under way while it is (the instances' status, the partitions still rebuilding, the lock of the
instance emptying the store): see services/history/rebuild.py."""

_PART = re.compile(r"\{(\w+)\}")


def key(name: str, **parts: object) -> str:
    """The full key ``name`` names, e.g. ``key("item", feed="world", id="01…")``."""
    return PREFIX + PATTERNS[name].format(**parts)


def _lua(name: str, pattern: str) -> str:
    split = _PART.split(PREFIX + pattern)
    pieces = [repr(text) if i % 2 == 0 else text for i, text in enumerate(split) if text]
    return f"local function k_{name}({', '.join(split[1::2])}) return {' .. '.join(pieces)} end"


LUA = "\n".join(_lua(name, pattern) for name, pattern in PATTERNS.items()) + "\n"
"""The patterns as Lua functions ``k_<name>(parts…)``, to prepend to a script."""
