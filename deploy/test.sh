#!/usr/bin/env bash
# Command 2 of the README: install what is missing, then run the whole test suite against
# real Kafka, Redis, nginx and Chromium (the tests start their own stack on ports +10000), and
# docker-compose.yml through podman (tests/compose). With arguments, pytest gets them instead.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install.sh --test
if [ $# -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
# tests/compose builds its images (minutes the first time, mostly downloads) and runs containers
# that need none of the local stack, and tests/unit needs no server at all: they run beside the
# rest, one after the other, and their reports follow the rest's.
mkdir -p .run
log=.run/compose-tests.log
echo "livefeed test: tests/compose, then tests/unit, run in the background (log: $log)"
# Its own process group, each step bounded: SIGINT lets pytest take the compose project down.
setsid bash -c 'status=0
  timeout -s INT -k 60 480 .venv/bin/python -m deploy.images build &&
    timeout -s INT -k 120 480 .venv/bin/python -m pytest -p no:cacheprovider -s tests/compose || status=$?
  timeout -s INT -k 30 300 .venv/bin/python -m pytest -p no:cacheprovider tests/unit || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
  exit "$status"' > "$log" 2>&1 &
compose=$!
stop_compose() { kill -INT -- "-$compose" 2>/dev/null || true; }
trap stop_compose INT TERM HUP EXIT
status=0
.venv/bin/python -m pytest --ignore=tests/compose --ignore=tests/unit --durations=15 || status=$?
echo "livefeed test: waiting for tests/compose and tests/unit ($log)"
compose_status=0
wait "$compose" || compose_status=$?
trap - INT TERM HUP EXIT
grep -E "^(FAILED|ERROR) |^=+ .*(passed|failed|error).* =+$|compose test:" "$log" || true
tail -n 5 "$log"
if [ "$compose_status" -ne 0 ]; then
  echo "livefeed test: tests/compose or tests/unit failed ($compose_status): the whole log is $log" >&2
  [ "$status" -ne 0 ] || status=$compose_status
fi
exit "$status"
