"""livefeed's fan-out benchmark (issue 6): the ``livefeed-bench`` command (``python -m benchmarks.run``).

``run`` is the command line; ``bench`` the scenarios; ``loadgen`` the reader processes;
``publisher`` and ``httpclient`` the newsroom side and HTTP load; ``systems`` and ``peers/`` the
systems measured side by side; ``report`` the JSON, markdown, plots and README section;
``procstat``, ``hist`` and ``profiling`` the measuring tools; ``costs`` why ``httpclient`` and ``hist``
are our own rather than libraries.
"""
