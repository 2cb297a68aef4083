"""Entry point of ``livefeed-history``: the history app (and its consumer) under uvicorn."""

from __future__ import annotations

from shared.http import serve
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.settings import HistorySettings

from .app import create_app


def main() -> None:
    settings = HistorySettings()
    configure_logging("history", settings.log_level)
    serve_metrics(settings.metrics_host, settings.history_metrics_port)
    serve(create_app(settings), settings.history_host, settings.history_port)


if __name__ == "__main__":
    main()
