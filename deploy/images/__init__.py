"""Builds every image docker-compose.yml runs from a local Debian root, without any registry.

Production pulls the official images (apache/kafka, redis, nginx, python). A machine that reaches
no registry, or an operator who wants only Debian's packages, builds them here instead:
debootstrap makes a Debian root, the engine imports it as ``localhost/debian:<suite>``, and each
``*.Dockerfile`` of this folder builds on it (livefeed itself from deploy/Dockerfile, with this
folder's Python image as its base). :func:`build` returns the ``LIVEFEED_*_IMAGE`` variables
that make docker-compose.yml use them, also written as an env file for ``docker-compose
--env-file``.

    python -m deploy.images build --env-file .run/images.env
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOTS", "Image", "build", "compose_env", "engine_cli", "images", "main"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CACHE = Path(os.environ.get("LIVEFEED_CACHE", Path.home() / ".cache" / "livefeed"))
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
MIRROR = "http://deb.debian.org/debian"
ROOTS = {"bookworm": "bookworm", "forky": "sid"}
"""The Debian suites the images use, each with the debootstrap script that makes it: bookworm for
Python 3.11 (the lock's), Java 17 and Redis; forky for nginx 1.27.3+ (``resolve`` on upstream servers)."""
BUILD_TIMEOUT_S = 900


@dataclass(frozen=True)
class Image:
    """One image: its tag, its Dockerfile, and the compose variable that selects it."""

    variable: str
    tag: str
    dockerfile: Path
    args: Mapping[str, str]


def images(version: str) -> list[Image]:
    """The images, in build order (each after the one it builds on)."""
    base = {"bookworm": "localhost/livefeed-base:bookworm", "forky": "localhost/livefeed-base:forky"}
    from deploy.stack import KAFKA_VERSION

    return [
        *(Image("", tag, HERE / "base.Dockerfile", {"DEBIAN_IMAGE": f"localhost/debian:{suite}"})
          for suite, tag in base.items()),
        Image("LIVEFEED_PYTHON_IMAGE", "localhost/livefeed-python:3.11-bookworm", HERE / "python.Dockerfile",
              {"BASE_IMAGE": base["bookworm"]}),
        Image("LIVEFEED_REDIS_IMAGE", "localhost/livefeed-redis:bookworm", HERE / "redis.Dockerfile",
              {"BASE_IMAGE": base["bookworm"]}),
        Image("LIVEFEED_KAFKA_IMAGE", f"localhost/livefeed-kafka:{KAFKA_VERSION}", HERE / "kafka.Dockerfile",
              {"BASE_IMAGE": base["bookworm"]}),
        Image("LIVEFEED_GATEWAY_IMAGE", "localhost/livefeed-nginx:forky", HERE / "nginx.Dockerfile",
              {"BASE_IMAGE": base["forky"]}),
        Image("LIVEFEED_IMAGE", f"localhost/livefeed:{version}", ROOT / "deploy" / "Dockerfile",
              {"PYTHON_IMAGE": "localhost/livefeed-python:3.11-bookworm"}),
    ]


def engine_cli() -> str:
    """The container engine's command line: podman where installed, else docker."""
    for cli in ("podman", "docker"):
        if path := shutil.which(cli):
            return path
    raise SystemExit("livefeed images: neither podman nor docker is installed "
                     "(deploy/install.sh --test installs podman)")


def _run(argv: list[str], log: Callable[[str], None], **kwargs: object) -> None:
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False,
                            **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({result.returncode}):\n"
                           f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    log(f"  done in {time.monotonic() - started:.1f} s")


def _has_image(cli: str, tag: str) -> bool:
    argv = [cli, "image", "exists", tag] if cli.endswith("podman") else [cli, "image", "inspect", tag]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def debian_root(cli: str, suite: str, log: Callable[[str], None]) -> None:
    """Import a minimal Debian ``suite`` as ``localhost/debian:<suite>`` unless the engine has it."""
    tag = f"localhost/debian:{suite}"
    if _has_image(cli, tag):
        return
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    with tempfile.TemporaryDirectory(prefix=f"livefeed-{suite}-") as rootfs:
        log(f"debootstrap --variant=minbase {suite} (about 30 s)")
        script = f"/usr/share/debootstrap/scripts/{ROOTS[suite]}"
        _run([debootstrap, "--variant=minbase", suite, rootfs, MIRROR, script], log)
        log(f"importing it as {tag}")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        _run([cli, "import", "-", tag], log, stdin=tar.stdout)
        tar.wait(60)


def _context(image: Image, tmp: Path) -> Path:
    """The build context: the repository for livefeed, else a folder with this image's files."""
    if image.dockerfile.parent != HERE:
        return ROOT
    context = tmp / image.tag.replace("/", "_").replace(":", "_")
    context.mkdir()
    stem = image.dockerfile.stem
    for extra in HERE.glob(f"{stem}-*.sh"):
        shutil.copy2(extra, context / extra.name)
    if stem == "base":
        shutil.copy2(HOST_CA, context / "host-ca-certificates.crt")
    if stem == "kafka":
        from deploy.stack import fetch_kafka

        shutil.copytree(fetch_kafka(log=lambda _: None), context / "libs")
    return context


def build(log: Callable[[str], None] = print, cli: str | None = None) -> dict[str, str]:
    """Build every image (the engine's layer cache makes a rebuild take seconds); return the
    compose variables that select them."""
    import tomllib

    cli = cli or engine_cli()
    if cli.endswith("podman"):
        from deploy.podman import configure

        configure()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "images.lock").open("w") as lock, tempfile.TemporaryDirectory(prefix="livefeed-images-") as tmp:
        # One build at a time: deploy/test.sh starts one in the background, and the compose
        # tests' own call waits for it here, then finds every layer cached.
        fcntl.flock(lock, fcntl.LOCK_EX)
        for suite in ROOTS:
            debian_root(cli, suite, log)
        for image in images(version):
            log(f"building {image.tag}")
            args = [a for k, v in image.args.items() for a in ("--build-arg", f"{k}={v}")]
            _run([cli, "build", "-q", "-t", image.tag, "-f", str(image.dockerfile), *args,
                  str(_context(image, Path(tmp)))], log)
    return compose_env(version)


def compose_env(version: str) -> dict[str, str]:
    """The compose variables that select the images :func:`build` makes."""
    return {i.variable: i.tag for i in images(version) if i.variable}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.images", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build every image from a local Debian root")
    build_cmd.add_argument("--env-file", type=Path, help="also write the LIVEFEED_*_IMAGE variables to this file")
    args = parser.parse_args(argv)
    env = build(lambda m: print(f"livefeed images: {m}", file=sys.stderr, flush=True))
    lines = "".join(f"{k}={v}\n" for k, v in env.items())
    if args.env_file:
        args.env_file.parent.mkdir(parents=True, exist_ok=True)
        args.env_file.write_text(lines)
    sys.stdout.write(lines)
    return 0
