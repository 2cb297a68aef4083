#!/bin/bash
# The official image's tool of the same path, used by docker-compose.yml's health check.
exec java ${KAFKA_HEAP_OPTS:--Xmx128m} -cp '/opt/kafka/libs/*' org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
