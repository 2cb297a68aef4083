"""Entry point of ``livefeed-history``: the history app (and its consumer) under uvicorn."""

from __future__ import annotations

import uvicorn

from shared.logs import configure_logging
from shared.settings import HistorySettings

from .app import create_app


def main() -> None:
    settings = HistorySettings()
    configure_logging("history", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.history_host,
        port=settings.history_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
