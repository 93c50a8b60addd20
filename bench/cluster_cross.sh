#!/bin/bash
# Cross-node latency and throughput: a nats-server, two Roost nodes, roost bench sub on
# node b and roost bench pub on node a (local runs: both on node a). Holds the
# /tmp/BENCH_RUNNING lock while it runs. Results: docs/clustering.md, Benchmarks.
set -u
touch /tmp/BENCH_RUNNING
D="${TMPDIR:-/tmp}/roost-cluster-cross"; rm -rf $D; mkdir -p $D/js
nats-server -a 127.0.0.1 -p 14555 -js -sd $D/js > $D/nats.log 2>&1 &
NATS=$!
PIDS="$NATS"
trap 'kill $PIDS 2>/dev/null; rm -f /tmp/BENCH_RUNNING' EXIT
sleep 1
R="$(dirname "$0")/../.venv/bin/roost"
for n in a b; do
  p=$([ $n = a ] && echo 18861 || echo 18862)
  printf 'sys_interval = 10\n[[listeners]]\nhost = "127.0.0.1"\nport = %s\n[cluster]\nnats_url = "nats://127.0.0.1:14555"\nnode = "%s"\n' $p $n > $D/$n.toml
  $R broker -c $D/$n.toml --no-persistence > $D/$n.log 2>&1 &
  PIDS="$PIDS $!"
done
sleep 3
run() { # label subport pubport qos rateargs
  $R bench sub -p $2 -t cross/load -q $4 -d 14 --quiet --prefix x > $D/sub-$1.txt 2>&1 &
  S=$!
  sleep 3
  $R bench pub -p $3 -t cross/load -q $4 -d 8 $5 --quiet --prefix x > $D/pub-$1.txt 2>&1
  wait $S
  echo "== $1"; grep RESULT $D/pub-$1.txt | tr ' ' '\n' | grep -E "^(msgs_per_s|rate|sent|published)" | tr '\n' ' '; echo
  grep RESULT $D/sub-$1.txt | tr ' ' '\n' | grep -E "^(received|msgs_per_s|lat_p50_us|lat_p99_us|lost|dup|loss)" | tr '\n' ' '; echo
}
for q in 0 1; do
  run local-q$q 18861 18861 $q ""
  run cross-q$q 18862 18861 $q ""
  run local-q$q-r2000 18861 18861 $q "-r 2000"
  run cross-q$q-r2000 18862 18861 $q "-r 2000"
done
