#!/usr/bin/env bash
# Compares two ipsecgw binaries on one bench row by alternating rounds, the way the paired
# medians in bench/THROUGHPUT.md were measured: on this noisy machine the same binary moves by
# 15 to 35% between rounds, so only rounds taken side by side say which is faster.
#
# Usage: scripts/ab-rounds.sh ROUNDS BIN_A BIN_B -- BENCH_RUN_ARGS...
#   e.g. scripts/ab-rounds.sh 10 old/ipsecgw target/release/ipsecgw -- --pcap frames.pcap
# Each round runs `BIN bench-run --generator --seconds ${SECS:-2} --warmup 1 --no-ceiling ARGS`
# for A then B, prints each one's cycles per packet, and ends with the medians, the median of
# the per-round ratios B/A and how many rounds B took fewer cycles.
set -euo pipefail
if [ $# -lt 4 ] || [ "$4" != "--" ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
rounds=$1 a=$2 b=$3
shift 4
cycles() {
  local bin=$1
  shift
  "$bin" bench-run --generator --seconds "${SECS:-2}" --warmup 1 --no-ceiling "$@" 2>&1 |
    sed -nE 's/^RESULT .*cpp=([0-9.]+).*/\1/p' || true
}
results=()
for r in $(seq 1 "$rounds"); do
  ca=$(cycles "$a" "$@")
  cb=$(cycles "$b" "$@")
  if [ -z "$ca" ] || [ -z "$cb" ]; then
    echo "ab-rounds: round $r printed no RESULT line" >&2
    exit 1
  fi
  echo "round $r: A $ca  B $cb"
  results+=("$ca $cb")
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics as st, sys
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
a = [x for x, _ in rows]
b = [y for _, y in rows]
print(f"median A {st.median(a):.1f}  B {st.median(b):.1f}  paired B/A {st.median([y / x for x, y in rows]):.3f}"
      f"  B fewer cycles in {sum(y < x for x, y in rows)} of {len(rows)}")
'
