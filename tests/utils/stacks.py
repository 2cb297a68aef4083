"""A stack of a module's own, for tests that need another topology than the session stack's.

It runs beside the session stack on its ports plus ``shift``, with one process per service and
limits out of the way, and prints each process's last log lines when the module fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from deploy.stack import Stack, Topology

__all__ = ["OWN_STACK_ENV", "own_stack"]

OWN_STACK_ENV = {
    "LIVEFEED_HEARTBEAT_S": "5",
    "LIVEFEED_FANOUT_WORKERS": "1",
    "LIVEFEED_INGEST_WORKERS": "1",
    "LIVEFEED_HISTORY_WORKERS": "1",
    "LIVEFEED_WRITE_RATE_PER_S": "5000",
    "LIVEFEED_WRITE_BURST": "5000",
    "LIVEFEED_GATEWAY_WRITE_RATE_PER_S": "5000",
    "LIVEFEED_GATEWAY_WRITE_BURST": "5000",
}


@contextlib.contextmanager
def own_stack(shift: int, prefix: str, token: str, **topology: Any) -> Iterator[Stack]:
    """Start a stack on the session stack's ports plus ``shift``, with ``topology``'s changes
    (``kafka_brokers=3``, ``history_instances=2``, ...); stop it and remove its run dir after."""
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    base = int(os.environ.get("LIVEFEED_TEST_PORT_SHIFT", "10000")) + shift
    stack = Stack(topology=replace(Topology.shifted(base), **topology), run_dir=run_dir, token=token, quiet=True,
                  extra_env=dict(OWN_STACK_ENV))
    try:
        stack.start()
        yield stack
    except BaseException:
        for log in sorted((run_dir / "logs").glob("*.log")):
            print(f"==== {log.name} (last 30 lines)")
            print("\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        raise
    finally:
        stack.stop()
        if os.environ.get("LIVEFEED_KEEP_TEST_RUN") is None:
            shutil.rmtree(run_dir, ignore_errors=True)
