#!/bin/bash
# What the official nginx image's entrypoint does for docker-compose.yml: with
# NGINX_ENTRYPOINT_LOCAL_RESOLVERS set, export the container's DNS server as
# NGINX_LOCAL_RESOLVERS; then render /etc/nginx/templates/*.template into /etc/nginx/conf.d/
# with envsubst, limited to the variables matching NGINX_ENVSUBST_FILTER.
# One difference: only the first nameserver, the engine's own. podman lists the host's after it,
# and nginx asks its resolvers in turn, so the host's "no such name" for a service would win
# every other time (Docker lists only its own, 127.0.0.11).
set -euo pipefail
if [ -n "${NGINX_ENTRYPOINT_LOCAL_RESOLVERS:-}" ]; then
  NGINX_LOCAL_RESOLVERS=$(awk '$1=="nameserver" {if ($2 ~ ":") {print "["$2"]"} else {print $2}; exit}' /etc/resolv.conf)
  export NGINX_LOCAL_RESOLVERS
fi
filter="${NGINX_ENVSUBST_FILTER:-}"
defined=$(printf '${%s} ' $(env | cut -d= -f1 | grep -E "$filter" || true))
for template in /etc/nginx/templates/*.template; do
  [ -f "$template" ] || continue
  out="/etc/nginx/conf.d/$(basename "$template" .template)"
  envsubst "$defined" < "$template" > "$out"
done
exec "$@"
