#!/usr/bin/env bash
# Installs everything livefeed needs on a fresh Debian machine, and nothing twice:
# Debian's redis-server, nginx, Java and Maven; a virtualenv (.venv) with livefeed in it;
# the Apache Kafka jars from Maven Central (cached in ~/.cache/livefeed).
# With --test, also what the test suite needs: Debian's chromium, docker-compose and podman.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf 'livefeed install: %s\n' "$*"; }

packages=()
command -v redis-server >/dev/null || packages+=(redis-server)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || packages+=(nginx)
command -v java >/dev/null || packages+=(default-jre-headless)
command -v mvn >/dev/null || packages+=(maven)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || packages+=(chromium)
  command -v docker-compose >/dev/null || packages+=(docker-compose)
  # docker-compose.yml runs in the suite through podman (deploy/podman.py), on images built from
  # a debootstrapped Debian root (deploy/images): the engine, its runtime, network and DNS.
  for tool in podman runc iptables debootstrap netavark aardvark-dns; do
    [ -n "$(command -v "$tool" || ls "/usr/sbin/$tool" "/usr/lib/podman/$tool" 2>/dev/null)" ] || packages+=("$tool")
  done
  command -v wrk >/dev/null || packages+=(wrk)
fi
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "livefeed install: need Debian packages ${packages[*]}; run as root or install them first" >&2
    exit 1
  fi
  step "apt-get install ${packages[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  python3 -m venv .venv
fi
# Exactly the versions and hashes of deploy/requirements/dev.txt (the lock; README says how to
# update it), then livefeed itself, editable and without dependencies of its own choosing.
if ! .venv/bin/python -c "import shared, services, aiokafka, pytest, playwright, socketio, matplotlib" 2>/dev/null \
   || [ deploy/requirements/dev.txt -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  step "installing the locked Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check --require-hashes -r deploy/requirements/dev.txt
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  touch .venv/.installed
fi

.venv/bin/python -c "from deploy.stack import fetch_kafka; fetch_kafka(lambda m: print('livefeed install:', m))"
step "done"
