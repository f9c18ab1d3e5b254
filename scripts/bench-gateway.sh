#!/usr/bin/env bash
# The yardstick of the throughput issue: one worker, outbound ESP tunnel, net_pcap replay into
# the gateway and out to net_null, against dpdk-test-crypto-perf (aesni_mb) measured in the same
# run; medians of interleaved rounds. Usage: scripts/bench-gateway.sh [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-3}
cargo build --release --quiet
printf "| transform | frame | direction | ours Mpps | ours Gbit/s | cycles/packet | crypto-perf Mops | ours / crypto-perf |\n"
printf "|---|---|---|---|---|---|---|---|\n"
for row in "aes-gcm-128 64 out" "aes-gcm-128 512 out" "aes-gcm-128 1420 out" "aes-cbc-128+sha1 64 out" \
           "aes-cbc-128+sha1 512 out" "aes-cbc-128+sha1 1420 out" "3des+sha1 1420 out" \
           "aes-gcm-128 imix out" "aes-gcm-128 64 in" "aes-cbc-128+sha1 1420 in"; do
  set -- $row
  out=$(target/release/ipsecgw bench --transform "$1" --size "$2" --direction "$3" --rounds "$rounds" --seconds "$secs" 2>&1)
  ours=$(echo "$out" | grep "^median: ours")
  ceil=$(echo "$out" | grep "^median: crypto ceiling" || true)
  mpps=$(echo "$ours" | sed -E 's/.*ours ([0-9.]+) Mpps.*/\1/')
  gbps=$(echo "$ours" | sed -E 's/.*, ([0-9.]+) Gbit\/s.*/\1/')
  cpp=$(echo "$ours" | sed -E 's/.*, ([0-9.]+) cycles.*/\1/')
  mops=$(echo "$ceil" | sed -E 's/.*ceiling ([0-9.]+) Mops.*/\1/')
  ratio=$(echo "$ceil" | sed -E 's/.*= ([0-9]+%).*/\1/')
  printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n" "$1" "$2" "$3" "$mpps" "$gbps" "$cpp" "$mops" "$ratio"
done
