"""The one-core write ceiling: a program that only writes a pre-built frame to N loopback sockets.

It accepts WebSocket readers (the benchmark's own load generator), answers each handshake,
and on ``blast SECONDS`` (a line on stdin) writes, round after round for that long, one
WebSocket text frame carrying a fresh ``ts`` to every socket with a plain non-blocking
``send``: no routing, no per-reader state beyond a leftover buffer, one syscall per frame per
socket, which is exactly the fanout's inner loop and nothing else. It answers one JSON line on
stdout: frames written, rounds, seconds, and how often a socket was still full.

Run: ``python -m benchmarks.peers.ceiling --port P`` (it prints ``ready`` once listening).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time

__all__ = ["main"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ITEM = (
    b'{"id":"01jbenchceilingitem0000000","feed":"bench-0","version":1,"status":"published",'
    b'"headline":"Benchmark item 1","body":"A short body of a breaking news item, about as long as a real '
    b'one\'s first line.","tags":[],"urgency":"normal","url":null,"byline":null,"pinned":false,'
    b'"key_event":false,"published_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z"}'
)


def frame(ts_ms: float) -> bytes:
    """A text frame shaped like a livefeed event message, stamped with ``ts_ms``."""
    payload = (
        b'{"type":"item.published","cursor":"abcd1234.0.1","feed":"bench-0","ts":'
        + repr(round(ts_ms, 3)).encode() + b',"item":' + _ITEM + b"}"
    )
    length = len(payload)
    head = struct.pack("!BB", 0x81, length) if length < 126 else struct.pack("!BBH", 0x81, 126, length)
    return head + payload


def _accept_key(request: bytes) -> bytes:
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
            return base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return b""


def blast(socks: list[socket.socket], seconds: float) -> dict[str, float]:
    """Write one fresh frame per round to every socket for ``seconds``; count what went out."""
    pending: dict[int, bytes] = {}
    written = full = rounds = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        data = frame(time.time() * 1000.0)
        rounds += 1
        for i, sock in enumerate(socks):
            left = pending.get(i)
            if left is not None:
                try:
                    sent = sock.send(left)
                except (BlockingIOError, InterruptedError):
                    full += 1
                    continue
                except OSError:
                    continue
                if sent < len(left):
                    pending[i] = left[sent:]
                    full += 1
                    continue
                del pending[i]
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                full += 1
                continue
            except OSError:
                continue
            if sent < len(data):
                pending[i] = data[sent:]
            written += 1
    elapsed = time.perf_counter() - started
    return {"written": written, "rounds": rounds, "seconds": elapsed, "full": full,
            "per_second": written / elapsed if elapsed else 0.0, "sockets": len(socks)}


def serve(host: str, port: int) -> None:
    """Accept and upgrade readers; run blasts on command until stdin closes."""
    listener = socket.create_server((host, port), backlog=4096)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "command")
    handshaking: dict[socket.socket, bytes] = {}
    ready: list[socket.socket] = []
    print("ready", flush=True)
    while True:
        for key, _ in selector.select(1.0):
            if key.data == "accept":
                for _ in range(256):
                    try:
                        conn, _addr = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    handshaking[conn] = b""
                    selector.register(conn, selectors.EVENT_READ, "handshake")
            elif key.data == "handshake":
                conn = key.fileobj  # type: ignore[assignment]
                assert isinstance(conn, socket.socket)
                try:
                    chunk = conn.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    selector.unregister(conn)
                    handshaking.pop(conn, None)
                    if conn in ready:
                        ready.remove(conn)
                    conn.close()
                    continue
                if conn not in handshaking:
                    continue  # an upgraded reader said something (a pong): ignore it
                request = handshaking[conn] + chunk
                if b"\r\n\r\n" not in request:
                    handshaking[conn] = request
                    continue
                del handshaking[conn]
                conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Accept: " + _accept_key(request) + b"\r\n\r\n")
                ready.append(conn)
            else:
                line = sys.stdin.readline()
                if not line:
                    return
                parts = line.split()
                if parts and parts[0] == "blast":
                    result = blast(list(ready), float(parts[1]) if len(parts) > 1 else 3.0)
                    print(json.dumps(result), flush=True)
                elif parts and parts[0] == "count":
                    print(json.dumps({"sockets": len(ready)}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    del soft
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
