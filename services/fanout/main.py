"""Entry point of ``livefeed-fanout``: the fanout on uvloop, stopped cleanly by SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

import uvloop

from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.reader_tokens import ReadAccess
from shared.settings import FanoutSettings
from shared.workers import STARTUP_FAILURE, heartbeat, worker_or_supervise

from .app import run

__all__ = ["main"]


log = logging.getLogger("livefeed.fanout")


async def _serve(settings: FanoutSettings, access: ReadAccess, worker: int) -> None:
    task = asyncio.create_task(run(settings, access, worker))
    beat = asyncio.create_task(heartbeat())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        beat.cancel()


def main() -> None:
    settings = FanoutSettings()
    configure_logging("fanout", settings.log_level)
    try:
        access = ReadAccess.from_settings(settings)
    except ValueError as exc:
        log.error("fanout cannot start: %s", exc)
        sys.exit(STARTUP_FAILURE)
    worker = worker_or_supervise("fanout", settings.fanout_workers)
    serve_metrics(settings.metrics_host, settings.fanout_metrics_port, worker)
    uvloop.run(_serve(settings, access, worker))


if __name__ == "__main__":
    main()
