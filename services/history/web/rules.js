// The slug and id rules the browser checks before asking the server, the same as the server's
// (shared/models.py FEED_PATTERN, TAG_PATTERN, ITEM_ID_PATTERN; tests/unit/test_rules.py holds them equal).

export const FEED_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const TAG_RE = /^[a-z0-9][a-z0-9-]{0,39}$/;
export const ITEM_ID_RE = /^[0-9a-z]{26}$/;
