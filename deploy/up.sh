#!/usr/bin/env bash
# Command 1 of the README: install what is missing, then start the whole stack in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install.sh
exec .venv/bin/python -m deploy.stack up "$@"
