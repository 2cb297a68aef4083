# Stands in for python:3.11-slim-bookworm as deploy/Dockerfile's base: Debian's Python 3.11 in a
# virtualenv on PATH, so `python` and `pip` behave as in the official image (Debian's own Python
# refuses system-wide pip installs).
ARG BASE_IMAGE=localhost/livefeed-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/python
ENV PATH=/opt/python/bin:$PATH
