"""A feed's items in the formats other software reads: Atom 1.0 and JSON Feed 1.1 for feed readers
and newsletters, IPTC ninjs 3.1 for wire partners.

Pure functions over stored items, no I/O: the routes (``syndication.py`` for the feeds,
``routes.py`` for ninjs) read the store, check the reader, and hand the items here.
"""
