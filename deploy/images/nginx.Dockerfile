# nginx from Debian, for LIVEFEED_GATEWAY_IMAGE. The gateway's upstreams re-resolve the
# services' names (`server fanout:8003 resolve`), which needs nginx 1.27.3 or later: Debian has
# it from forky on, so this image is a debootstrapped forky root (localhost/debian:forky), not
# the bookworm one. Its entrypoint does what the official image's does for docker-compose.yml.
ARG BASE_IMAGE=localhost/livefeed-base:forky
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends nginx gettext-base curl >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nginx \
    && rm -f /etc/nginx/sites-enabled/default \
    && mkdir -p /etc/nginx/templates /etc/nginx/conf.d /var/cache/nginx \
    && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx-entrypoint.sh /docker-entrypoint.sh
ENTRYPOINT ["/docker-entrypoint.sh"]
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
