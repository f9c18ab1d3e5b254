#!/usr/bin/env bash
# Instructions per packet of the worker, by function: callgrind over one `ipsecgw bench-run
# --generator` round, the way bench/THROUGHPUT.md counts them ("At stop 30", "At stop 36").
# The count is exact and does not move with the host's noise, where cycles do; it says where
# the work is, not what it costs (a cut that reorders a burst's loads can cost cycles).
#
# Usage: scripts/instructions-per-packet.sh BIN -- BENCH_RUN_ARGS...
#   e.g. scripts/instructions-per-packet.sh target/release/ipsecgw -- --pcap frames.pcap \
#        --direction out --transform aes-gcm-128 --policies 10000
# Prints the exclusive instructions per received packet of every function above 0.5, largest
# first. Valgrind has no AVX-512: intel-ipsec-mb runs its AVX2 code and the engine keeps off
# its own AVX-512 kernels, so the library's lines are not the native run's; ours are.
set -euo pipefail
if [ $# -lt 2 ] || [ "$2" != "--" ]; then
  sed -n '7,12p' "$0" >&2
  exit 2
fi
bin=$1
shift 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --toggle-collect='*Worker*poll_once*' \
  "$bin" bench-run --generator --seconds 1 --warmup 0 --no-ceiling "$@" >"$out/log" 2>&1 || {
  tail -20 "$out/log" >&2
  exit 1
}
# Every packet the worker received while collecting: the `rx` row of the stage accounting.
packets=$(awk '$1 == "rx" && NF == 6 { print $3; exit }' "$out/log")
if [ -z "$packets" ] || [ "$packets" -eq 0 ]; then
  echo "instructions-per-packet: no packets received" >&2
  exit 1
fi
echo "$packets packets received"
callgrind_annotate --auto=no --inclusive=no "$out/cg.out" |
  awk -v p="$packets" '
    # Lines "  1,234 (12.34%)  file:function [object]": the function is what follows the
    # first colon (a file name has none; Rust paths do).
    /^ *[0-9][0-9,]* \(/ {
      n = $1; gsub(",", "", n)
      f = $0; sub(/^ *[0-9,]+ \([^)]*\) +/, "", f)
      obj = ""
      if (match(f, /\[[^]]*\]$/)) { obj = substr(f, RSTART + 1, RLENGTH - 2); sub(/^.*\//, "", obj) }
      sub(/ \[.*$/, "", f)
      if (f ~ /PROGRAM TOTALS/) { total = n; next }
      sub(/^[^:]*:/, "", f)
      # Code without symbols (the library, DPDK drivers): named by its object.
      if (f ~ /^0x/ && obj != "") f = f " in " obj
      sum[f] += n
    }
    END {
      printf "%8.1f  total\n", total / p
      for (f in sum) if (sum[f] / p >= 0.5) printf "%8.1f  %s\n", sum[f] / p, f
    }' | sort -rn
