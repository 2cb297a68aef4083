# Apache Kafka from the official jars on Maven Central (the ones deploy/install.sh fetches, copied
# into the build context as libs/), on Debian's Java 17, for LIVEFEED_KAFKA_IMAGE. It takes the
# official apache/kafka image's settings: every KAFKA_* variable is a server.properties key, and
# CLUSTER_ID formats an empty log dir, so docker-compose.yml runs either image unchanged.
ARG BASE_IMAGE=localhost/livefeed-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && mkdir -p /usr/share/man/man1 \
    && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 1000 --home-dir /opt/kafka --no-create-home appuser \
    && mkdir -p /var/lib/kafka/data /opt/kafka/config && chown -R appuser /var/lib/kafka /opt/kafka/config
COPY libs/ /opt/kafka/libs/
COPY kafka-run.sh /opt/kafka/bin/run
COPY kafka-broker-api-versions.sh /opt/kafka/bin/kafka-broker-api-versions.sh
USER appuser
EXPOSE 9092 9093
CMD ["/opt/kafka/bin/run"]
