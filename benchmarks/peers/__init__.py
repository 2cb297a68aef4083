"""The systems livefeed's fanout is measured against, in the same run, on the same topic.

``naive``: the FastAPI/Starlette WebSocket endpoint most tutorials build; ``socketio_peer``:
python-socketio (ASGI) under uvicorn; ``centrifugo``: the Go server (built on first use) fed
through its HTTP API by a Kafka bridge; ``ceiling``: a program that only writes a pre-built frame
to N loopback sockets, the most one core can do. Each runs as its own process.
"""
