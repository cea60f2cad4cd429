#!/bin/bash
# Waits (up to 15 min) for a 1-minute load average below 1.2, then alternates old/new full search
# runs 3 times, recording the load before each run.
out=/tmp/benchruns/${1:-final}; rm -rf $out; mkdir -p $out
for t in $(seq 1 ${2:-90}); do
  l=$(cut -d' ' -f1 /proc/loadavg)
  if awk "BEGIN{exit !($l < 1.2)}"; then break; fi
  sleep 10
done
for i in 1 2 3; do
  for v in old new; do
    echo "run $i $v: $(date -u +%FT%TZ) loadavg $(cat /proc/loadavg)" | tee -a $out/log.txt
    /tmp/rosetta-$v/build/bench/server_bench --skip-ingest --work /tmp/rosetta-bench-$v > $out/$v-$i.txt 2>&1
  done
done
echo "end: $(date -u +%FT%TZ) loadavg $(cat /proc/loadavg)" | tee -a $out/log.txt
