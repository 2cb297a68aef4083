"""The python-socketio peer: an ASGI Socket.IO server under uvicorn, fed from the same topic.

Each client joins the room of the feed named in its connection query (``?feed=…``); a
background task consumes the livefeed topic and emits every event to its feed's room with
``await sio.emit("item", message, room=feed)`` (python-socketio encodes the packet once per
emit). Clients speak Engine.IO v4 over a WebSocket: ``/socket.io/?EIO=4&transport=websocket``.
Run: ``python -m benchmarks.peers.socketio_peer --port P --kafka HOST:PORT``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

import orjson
import socketio  # type: ignore[import-untyped]
import uvicorn

from .common import peer_arguments, tail_topic

__all__ = ["create_app", "main"]


def create_app(kafka: str, topic: str) -> Any:
    """The ASGI app: Socket.IO at ``/socket.io/``, and ``/healthz`` once the consumer is positioned."""
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
    ready = asyncio.Event()
    background: set[asyncio.Task[None]] = set()

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        await sio.enter_room(sid, query.get("feed", ["default"])[0])

    async def broadcast() -> None:
        async for feed, message in tail_topic(kafka, topic, ready):
            await sio.emit("item", orjson.loads(message), room=feed)

    async def health(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    background.add(asyncio.get_running_loop().create_task(broadcast()))
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = orjson.dumps({"ready": ready.is_set()})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return socketio.ASGIApp(sio, other_asgi_app=health)


def main(argv: list[str] | None = None) -> None:
    args = peer_arguments(__doc__ or "").parse_args(argv)
    uvicorn.run(create_app(args.kafka, args.topic), host=args.host, port=args.port, loop="uvloop",
                log_level="warning", backlog=4096, lifespan="on")


if __name__ == "__main__":
    main()
