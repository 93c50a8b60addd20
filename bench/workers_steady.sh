#!/bin/bash
# `roost broker --workers 2` against one process, 15-s mqttload runs (fanin, pairs,
# fanout; 10 clients, 64-byte payloads, QoS 0), with the machine's CPU over each run
# (200% = both cores of the development machine). Longer than `python -m bench load`'s
# 5-s runs so that mqttload's one 2-s stall per subscriber that missed the first
# messages (interest crosses between workers asynchronously) weighs less. Needs
# MQTTLOAD (the mqttload binary). Holds the /tmp/BENCH_RUNNING lock while it runs.
# Results: docs/clustering.md, "--workers 2 against one process".
set -u
: "${MQTTLOAD:?set MQTTLOAD to the mqttload binary}"
while [ -e /tmp/BENCH_RUNNING ]; do sleep 10; done
touch /tmp/BENCH_RUNNING
BPID=""
trap 'rm -f /tmp/BENCH_RUNNING; [ -n "$BPID" ] && kill $BPID 2>/dev/null' EXIT
R="$(dirname "$0")/../.venv/bin/roost"
D="${TMPDIR:-/tmp}/roost-workers-steady"
PORT=47811
cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8, $5+$6}' /proc/stat; }
for kind in single workers2; do
  rm -rf "$D/$kind"; mkdir -p "$D/$kind"
  if [ $kind = single ]; then
    $R broker --no-persistence -p $PORT > "$D/$kind/log" 2>&1 &
  else
    $R broker --no-persistence --workers 2 --data-dir "$D/$kind/data" -p $PORT > "$D/$kind/log" 2>&1 &
  fi
  BPID=$!
  for _ in $(seq 150); do grep -q "Roost broker running\|All 2 workers" "$D/$kind/log" && break; sleep 0.1; done
  sleep 1
  for shape in fanin pairs fanout; do
    read -r c1 i1 < <(cpu)
    out=$("$MQTTLOAD" -p $PORT -s $shape -n 10 -S 64 -d 15 -t 10 -q 0 2>&1 | grep ^RESULT)
    read -r c2 i2 < <(cpu)
    fields=$(echo "$out" | tr ' ' '\n' | grep -E '^(msgs_per_s|lost|stalls|status)=' | tr '\n' ' ')
    echo "$kind $shape $fields machine_cpu_pct=$(( 200 * (c2 - c1) / ((c2 - c1) + (i2 - i1)) ))"
  done
  kill $BPID; wait $BPID; BPID=""
done
