"""The naive baseline: the FastAPI WebSocket broadcast most tutorials build.

One endpoint per feed keeps a set of connected sockets; a background task consumes the same
Kafka topic as the fanout and, for each event, loops ``await ws.send_text(...)`` over the
feed's clients. It runs under uvicorn with uvloop and its default WebSocket settings, as a
tutorial would deploy it. Run: ``python -m benchmarks.peers.naive --port P --kafka HOST:PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from .common import peer_arguments, tail_topic

__all__ = ["create_app", "main"]


def create_app(kafka: str, topic: str) -> FastAPI:
    """The app: ``/v1/feeds/{feed}/stream`` plus ``/healthz`` (ready once the consumer is positioned)."""
    clients: dict[str, set[WebSocket]] = {}
    ready = asyncio.Event()

    async def broadcast() -> None:
        async for feed, message in tail_topic(kafka, topic, ready):
            text = message.decode()
            for ws in list(clients.get(feed, ())):
                try:
                    await ws.send_text(text)
                except Exception:
                    clients.get(feed, set()).discard(ws)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(broadcast())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ready": ready.is_set()}

    @app.websocket("/v1/feeds/{feed}/stream")
    async def stream(ws: WebSocket, feed: str) -> None:
        await ws.accept()
        clients.setdefault(feed, set()).add(ws)
        try:
            while True:
                await ws.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            clients.get(feed, set()).discard(ws)

    return app


def main(argv: list[str] | None = None) -> None:
    args = peer_arguments(__doc__ or "").parse_args(argv)
    uvicorn.run(create_app(args.kafka, args.topic), host=args.host, port=args.port, loop="uvloop",
                log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
