"""Optional py-spy profiles of the process under test, taken during a measured window.

With ``--profile DIR`` the harness records the server (fanout, peer, ingest or history) with
``py-spy record --nonblocking`` for the length of each step and keeps the raw folded stacks in
DIR; the row of the step gets the functions with the most self time, so a missed target comes
with what bounds it. py-spy is a separate tool (``pip install py-spy``), not a dependency.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path

__all__ = ["Profile", "summarize"]


def _package(frame: str) -> str:
    """``f (redis/asyncio/client.py:12)`` -> ``redis``; the project's own code keeps its module path."""
    start, end = frame.rfind("("), frame.rfind(":")
    path = frame[start + 1 : end] if 0 <= start < end else frame
    parts = path.replace("\\", "/").split("/")
    if parts[0] in ("services", "shared", "benchmarks") and len(parts) > 1:
        return "/".join(parts[:3]).removesuffix(".py")
    return parts[0].removesuffix(".py")


def summarize(raw: Path, top: int = 12) -> list[dict[str, object]]:
    """Where the samples of py-spy's raw output went: by package, then the ``top`` frames by self time.

    ``self_percent`` is time in that frame or package itself (the leaf of a sample), and
    ``inclusive_percent`` time with it anywhere on the stack.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own_package: Counter[str] = Counter()
    inclusive_package: Counter[str] = Counter()
    total = 0
    try:
        lines = raw.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        own_package[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
        for package in {_package(f) for f in frames}:
            inclusive_package[package] += count
    if not total:
        return []
    packages: list[dict[str, object]] = [
        {"package": package, "self_percent": round(n / total * 100, 1),
         "inclusive_percent": round(inclusive_package[package] / total * 100, 1)}
        for package, n in own_package.most_common(top)
    ]
    frames_top: list[dict[str, object]] = [
        {"frame": frame, "self_percent": round(n / total * 100, 1),
         "inclusive_percent": round(inclusive[frame] / total * 100, 1)}
        for frame, n in own.most_common(top)
    ]
    return packages + frames_top


class Profile:
    """One py-spy recording of ``pid`` for ``seconds`` into ``out`` (a no-op without py-spy)."""

    def __init__(self, pid: int | None, seconds: float, out: Path) -> None:
        self.pid = pid
        self.seconds = seconds
        self.out = out
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        beside = Path(sys.executable).parent / "py-spy"  # a venv's tool, when its bin/ is not on PATH
        spy = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
        if spy is None or self.pid is None:
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            spy, "record", "-p", str(self.pid), "-d", str(max(int(self.seconds), 1)), "-r", "200",
            "--nonblocking", "-f", "raw", "-o", str(self.out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )

    async def finish(self) -> list[dict[str, object]]:
        """Wait for the recording (bounded) and return its summary."""
        if self.process is None:
            return []
        try:
            await asyncio.wait_for(self.process.wait(), self.seconds + 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        return summarize(self.out)
