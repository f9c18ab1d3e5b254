#!/usr/bin/env bash
# Runs `ipsecgw demo` at 64 and 1420-byte frames and, in the same run, dpdk-testpmd's io
# forwarding over net_ring devices (the I/O ceiling of the virtual devices the demo uses), and
# prints the median per-second rates: R1's worker (alone on lcore 1: it encrypts LAN1->LAN2
# and decrypts LAN2->LAN1) and testpmd's forwarding core.
# Usage: scripts/demo-ceiling.sh [SECONDS]   (build first: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-6}
bin=target/release/ipsecgw

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for size in 64 1420; do
  out=$("$bin" demo --seconds "$secs" --size "$size" 2>&1)
  echo "$out" | grep -q "came out intact both ways" || { echo "$out"; echo "demo failed at $size bytes"; exit 1; }
  # Skip the first second (ramp-up); R1's rx rate counts both directions through its worker.
  r1=$(echo "$out" | grep "R1 (lcore 1)" | tail -n +2 | sed -E 's/.*rx ([0-9.]+) Mpps.*/\1/' | median)
  l12=$(echo "$out" | grep "^t=" | tail -n +2 | sed -E 's/.*LAN1->LAN2 ([0-9.]+) Mpps.*/\1/' | median)
  l21=$(echo "$out" | grep "^t=" | tail -n +2 | sed -E 's/.*LAN2->LAN1 ([0-9.]+) Mpps.*/\1/' | median)
  echo "demo ${size}B: R1 worker (lcore 1) ${r1} Mpps through it; delivered LAN1->LAN2 ${l12} Mpps, LAN2->LAN1 ${l21} Mpps"
done

prefix="ceiling_$$"
start=$(date +%s.%N)
tp=$( (sleep "$secs"; echo) | dpdk-testpmd --no-huge -m 1024 --no-pci --no-telemetry --file-prefix "$prefix" -l 0,1 \
  --vdev net_ring0 --vdev net_ring1 -- --forward-mode=io --auto-start --tx-first --nb-cores=1 \
  --total-num-mbufs=16384 2>&1)
end=$(date +%s.%N)
rm -rf "/var/run/dpdk/$prefix"
pkts=$(echo "$tp" | grep -A2 "Accumulated forward statistics" | grep -oE "TX-packets: +[0-9]+" | grep -oE "[0-9]+")
awk -v p="$pkts" -v s="$start" -v e="$end" 'BEGIN {printf "dpdk-testpmd io forwarding, net_ring, 1 core: %.1f Mpps (%.0f packets in %.1f s, start-up included)\n", p/(e-s)/1e6, p, e-s}'
