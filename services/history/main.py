"""Entry point of ``livefeed-history``: the history app (and its consumer, in worker 0) under uvicorn."""

from __future__ import annotations

from shared.http import serve
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.settings import HistorySettings
from shared.workers import worker_or_supervise

from .app import create_app


def main() -> None:
    settings = HistorySettings()
    configure_logging("history", settings.log_level)
    worker = worker_or_supervise("history", settings.history_workers)
    serve_metrics(settings.metrics_host, settings.history_metrics_port, worker)
    serve(create_app(settings, consume=worker == 0), settings.history_host, settings.history_port,
          reuse_port=settings.history_workers > 1)


if __name__ == "__main__":
    main()
