"""Entry point of ``livefeed-fanout``: the fanout on uvloop, stopped cleanly by SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import uvloop

from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.settings import FanoutSettings

from .app import run

__all__ = ["main"]


async def _serve(settings: FanoutSettings) -> None:
    task = asyncio.create_task(run(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main() -> None:
    settings = FanoutSettings()
    configure_logging("fanout", settings.log_level)
    serve_metrics(settings.metrics_host, settings.fanout_metrics_port)
    uvloop.run(_serve(settings))


if __name__ == "__main__":
    main()
