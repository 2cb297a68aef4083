# Redis from Debian, for LIVEFEED_REDIS_IMAGE: runs the command docker-compose.yml gives it
# (redis-server --dir /data ...) as the redis user, with redis-cli for the health check, and
# the official image's entrypoint behaviour (redis-entrypoint.sh).
ARG BASE_IMAGE=localhost/livefeed-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER redis
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server", "--dir", "/data"]
