"""Entry point of ``livefeed-ingest``: the ingest app under uvicorn with uvloop."""

from __future__ import annotations

import uvicorn

from shared.logs import configure_logging
from shared.settings import IngestSettings

from .app import create_app


def main() -> None:
    settings = IngestSettings()
    configure_logging("ingest", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.ingest_host,
        port=settings.ingest_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
