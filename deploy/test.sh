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
# that need none of the local stack: it runs beside the rest, and its report follows theirs.
mkdir -p .run
log=.run/compose-tests.log
echo "livefeed test: tests/compose runs in the background (images, then compose; log: $log)"
# Its own process group, bounded: SIGINT lets pytest take the compose project down on the way out.
setsid bash -c 'timeout -s INT -k 60 480 .venv/bin/python -m deploy.images build &&
  timeout -s INT -k 120 480 .venv/bin/python -m pytest -p no:cacheprovider tests/compose' > "$log" 2>&1 &
compose=$!
stop_compose() { kill -INT -- "-$compose" 2>/dev/null || true; }
trap stop_compose INT TERM HUP EXIT
status=0
.venv/bin/python -m pytest --ignore=tests/compose --durations=15 || status=$?
echo "livefeed test: waiting for tests/compose ($log)"
compose_status=0
wait "$compose" || compose_status=$?
trap - INT TERM HUP EXIT
tail -n 40 "$log"
if [ "$compose_status" -ne 0 ]; then
  echo "livefeed test: tests/compose failed ($compose_status): the whole log is $log" >&2
  [ "$status" -ne 0 ] || status=$compose_status
fi
exit "$status"
