#!/bin/bash
# Turns the KAFKA_* variables into server.properties the way the official apache/kafka image
# does (KAFKA_LOG_DIRS -> log.dirs; "__" -> "_", "___" -> "-"), formats the log dir with
# CLUSTER_ID once, then runs the broker in the foreground.
set -euo pipefail
props=/opt/kafka/config/server.properties
: > "$props"
skip='^KAFKA_(HEAP_OPTS|OPTS|JVM_PERFORMANCE_OPTS|LOG4J_OPTS|GC_LOG_OPTS|JMX_OPTS|JMX_PORT|JMX_HOSTNAME|VERSION)$'
while IFS='=' read -r name value; do
  [[ $name =~ ^KAFKA_ ]] || continue
  [[ $name =~ $skip ]] && continue
  key=${name#KAFKA_}
  key=${key,,}
  key=${key//___/-}
  key=${key//__/@}
  key=${key//_/.}
  key=${key//@/_}
  printf '%s=%s\n' "$key" "$value" >> "$props"
done < <(env)
java=(java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} -XX:+UseG1GC ${KAFKA_OPTS:-} -cp '/opt/kafka/libs/*')
logdir=$(sed -n 's/^log\.dirs=//p' "$props" | cut -d, -f1)
if [ ! -f "${logdir:-/var/lib/kafka/data}/meta.properties" ]; then
  "${java[@]}" kafka.tools.StorageTool format -t "${CLUSTER_ID:?set CLUSTER_ID}" -c "$props" --ignore-formatted
fi
exec "${java[@]}" kafka.Kafka "$props"
