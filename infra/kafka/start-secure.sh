#!/bin/bash
# The production broker with SASL/SCRAM and ACLs. Clients reach only the SASL listener
# (kafka:9092). The controller and inter-broker listeners are bound to the container's
# loopback, where the unauthenticated principal is the super user: only this script, inside
# the container, can create users, topics and grants. It starts the broker as the image does,
# then (idempotently, on every start) creates each service's SCRAM user from the environment,
# the topics, and the grants in acls.txt, and marks the broker ready for the healthcheck.
# A missing password stops the broker here.
set -euo pipefail
BIN=/opt/kafka/bin
LOCAL=localhost:9094
SERVICES="intake selection training scoring shapley deadletters gateway serving operator"
rm -f /tmp/crowdsft-ready

for user in $SERVICES; do
  var="KAFKA_PASSWORD_${user^^}"
  [[ -n "${!var:-}" ]] || { echo "missing $var" >&2; exit 1; }
done

/etc/kafka/docker/run &
broker=$!
until "$BIN/kafka-topics.sh" --bootstrap-server "$LOCAL" --list >/dev/null 2>&1; do
  kill -0 "$broker" || exit 1
  sleep 2
done

for user in $SERVICES; do
  var="KAFKA_PASSWORD_${user^^}"
  "$BIN/kafka-configs.sh" --bootstrap-server "$LOCAL" --alter --entity-type users \
    --entity-name "$user" --add-config "SCRAM-SHA-512=[password=${!var}]" >/dev/null
done
for topic in $(awk '$3 == "topic" {print $4}' /opt/crowdsft/acls.txt | sort -u); do
  "$BIN/kafka-topics.sh" --bootstrap-server "$LOCAL" --create --if-not-exists \
    --topic "$topic" --partitions "${KAFKA_NUM_PARTITIONS:-3}" >/dev/null
done
grep -v '^#' /opt/crowdsft/acls.txt | while read -r user operation kind name; do
  [[ -n "$user" ]] || continue
  "$BIN/kafka-acls.sh" --bootstrap-server "$LOCAL" --add --allow-principal "User:$user" \
    --operation "$operation" "--$kind" "$name" >/dev/null
  if [[ "$kind" == topic ]]; then  # reading or writing a topic needs its metadata too
    "$BIN/kafka-acls.sh" --bootstrap-server "$LOCAL" --add --allow-principal "User:$user" \
      --operation Describe --topic "$name" >/dev/null
  fi
done
touch /tmp/crowdsft-ready
echo "crowdsft: SCRAM users and ACLs in place"
wait "$broker"
