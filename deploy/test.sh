#!/usr/bin/env bash
# Command 2 of the README: install what is missing, then run the whole test suite against
# real Kafka, Redis, nginx and Chromium (the tests start their own stack on ports +10000).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install.sh --test
exec .venv/bin/python -m pytest "$@"
