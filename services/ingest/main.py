"""Entry point of ``livefeed-ingest``: the ingest app under uvicorn with uvloop."""

from __future__ import annotations

from shared.http import serve
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.settings import IngestSettings
from shared.workers import worker_or_supervise

from .app import create_app


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    worker = worker_or_supervise("ingest", settings.ingest_workers)
    serve_metrics(settings.metrics_host, settings.ingest_metrics_port, worker)
    serve(create_app(settings), settings.ingest_host, settings.ingest_port, reuse_port=settings.ingest_workers > 1)


if __name__ == "__main__":
    main()
