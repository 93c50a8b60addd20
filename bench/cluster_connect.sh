#!/bin/bash
# CONNECT cost of the cluster's session directory: 500 persistent MQTT 5 clients, one
# after the other (CONNECT, CONNACK, DISCONNECT), against a broker alone and against a
# cluster node with its nats-server on the same machine; twice (the second pass resumes
# the sessions and updates existing records). Holds the /tmp/BENCH_RUNNING lock.
# Results: docs/clustering.md, Benchmarks.
set -u
while [ -e /tmp/BENCH_RUNNING ]; do sleep 10; done
touch /tmp/BENCH_RUNNING
D="${TMPDIR:-/tmp}/roost-cluster-connect"; rm -rf $D; mkdir -p $D/js
nats-server -a 127.0.0.1 -p 14556 -js -sd $D/js > $D/nats.log 2>&1 &
PIDS="$!"
trap 'kill $PIDS 2>/dev/null; rm -f /tmp/BENCH_RUNNING' EXIT
cd "$(dirname "$0")/.."
printf 'sys_interval = 0\n[[listeners]]\nport = 18871\n' > $D/alone.toml
printf 'sys_interval = 0\n[[listeners]]\nport = 18872\n[cluster]\nnats_url = "nats://127.0.0.1:14556"\nnode = "m"\n' > $D/node.toml
.venv/bin/roost broker --data-dir $D/d1 -c $D/alone.toml 2> $D/alone.log &
PIDS="$PIDS $!"
.venv/bin/roost broker --data-dir $D/d2 -c $D/node.toml 2> $D/node.log &
PIDS="$PIDS $!"
sleep 4
for pass in 1 2; do
  echo -n "pass $pass, alone:   "; .venv/bin/python -m bench.connect_rate 18871 500
  echo -n "pass $pass, cluster: "; .venv/bin/python -m bench.connect_rate 18872 500
done
