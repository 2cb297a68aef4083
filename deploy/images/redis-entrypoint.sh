#!/bin/sh
# What the official redis image's entrypoint does for docker-compose.yml's command: a Redis
# started without a config file refuses every client but localhost (protected mode), so turn it
# off as that image does; the compose network is the only way in.
set -e
if [ "${1:-}" = "redis-server" ]; then
  case "${2:-}" in
    *.conf) ;;
    *) shift; set -- redis-server "$@" --protected-mode no ;;
  esac
fi
exec "$@"
