#!/usr/bin/env bash
# The yardstick of the throughput issue: one worker, outbound ESP tunnel, net_pcap replay into
# the gateway and out to net_null (outbound rows: also the same frames from the built-in
# generator, which does not copy them on the worker's core), against dpdk-test-crypto-perf (aesni_mb) measured in the same
# run; medians of interleaved rounds. The first seven rows are the issue's table (ipsec-secgw's
# figures as the issue gives them, from its machine); then IMIX, inbound, and the same 64-byte
# GCM row with 10,000 policies and SA pairs installed and the traffic spread over all of them.
# On a shared machine other processes take turns on the cores: each side's share of time on the
# CPU is measured (/proc schedstat of the worker threads), and the last column compares the two
# rates per time on the CPU. Usage: [IPSECGW=binary] [SECGW=binary] scripts/bench-gateway.sh
# [ROUNDS] [SECONDS]
# (`make bench` passes the profile-guided build, scripts/build-pgo.sh; by default the release one).
# Every row's whole output, each round's figures included, goes to target/bench-gateway.log (or
# BENCH_LOG): the table keeps only the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-3}
log=${BENCH_LOG:-target/bench-gateway.log}
mkdir -p "$(dirname "$log")"
: > "$log"
if [ -z "${IPSECGW:-}" ]; then
  cargo build --release --quiet
  IPSECGW=target/release/ipsecgw
fi
# Every DPDK process of the bench (ours, crypto-perf, ipsec-secgw) on hugepages when the machine
# can reserve 512 pages of 2 MiB (each process takes 1 GiB, one at a time): DPDK's usual set-up,
# and the one where no side's mbuf pool is laid out page by page (on 4 KiB pages ipsec-secgw's
# pool starts every mbuf at the same offset of its page, ours does not: see src/dpdk/shim.c).
# HUGEPAGES=no keeps all on 4 KiB pages (--no-huge). The reservation is undone on exit.
mem_args=()
mem_desc="4 KiB pages (--no-huge)"
need=520  # 512 for a process's 1 GiB, and a few to spare
if [ "${HUGEPAGES:-auto}" != no ] && [ -w /proc/sys/vm/nr_hugepages ]; then
  before=$(cat /proc/sys/vm/nr_hugepages)
  free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "$free" -lt "$need" ]; then
    echo $((before + need - free)) > /proc/sys/vm/nr_hugepages || true
    trap 'echo "$before" > /proc/sys/vm/nr_hugepages' EXIT
  fi
  mountpoint -q /dev/hugepages || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } || true
  free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
  if [ "$free" -ge "$need" ] && mountpoint -q /dev/hugepages; then
    mem_args=(--hugepages)
    mem_desc="hugepages ($free free pages of 2 MiB)"
  fi
fi
printf "ipsecgw bench (%s), %s rounds of %s s per row, DPDK on %s, %s\n\n" "$IPSECGW" "$rounds" "$secs" "$mem_desc" "$(date -u +%Y-%m-%dT%H:%MZ)"
# DPDK's ipsec-secgw in the same rounds (outbound rows with one policy), when SECGW names it
# (`make bench` builds it with scripts/build-secgw.sh).
secgw_args=()
if [ -n "${SECGW:-}" ]; then
  secgw_args=(--secgw "$SECGW")
fi
printf "| transform | frame | direction | policies | ipsec-secgw 22.11 Mpps (issue) | secgw / crypto-perf (issue) | crypto-perf Mops (this run) | ours Mpps | ours Gbit/s | ours cycles/packet (on the CPU) | ours / crypto-perf | same, per time on the CPU | ipsec-secgw Mpps (this run) | ours / ipsec-secgw | same, per time on the CPU | ours on the built-in generator Mpps | its cycles/packet (on the CPU) | its / crypto-perf | same, per time on the CPU | our crypto engine alone / crypto-perf |\n"
printf "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
runtimes=""
installs=""
scales=""
for row in "aes-gcm-128 64 out 1 6.43 43%" "aes-gcm-128 512 out 1 5.10 49%" "aes-gcm-128 1420 out 1 3.43 61%" \
           "aes-cbc-128+sha1 64 out 1 3.68 67%" "aes-cbc-128+sha1 512 out 1 2.72 81%" \
           "aes-cbc-128+sha1 1420 out 1 1.57 84%" "3des+sha1 1420 out 1 0.056 98%" \
           "aes-gcm-128 imix out 1 - -" "aes-gcm-128 64 in 1 - -" "aes-cbc-128+sha1 1420 in 1 - -" \
           "aes-gcm-128 64 out 10000 - -"; do
  set -- $row
  out=$("$IPSECGW" bench --transform "$1" --size "$2" --direction "$3" --policies "$4" \
        --rounds "$rounds" --seconds "$secs" "${secgw_args[@]}" "${mem_args[@]}" 2>&1)
  printf '### %s %s %s, %s policies\n%s\n\n' "$1" "$2" "$3" "$4" "$out" >> "$log"
  ours=$(echo "$out" | grep "^median: ours [0-9]")
  ceil=$(echo "$out" | grep "^median: crypto ceiling" || true)
  mpps=$(echo "$ours" | sed -E 's/.*ours ([0-9.]+) Mpps.*/\1/')
  gbps=$(echo "$ours" | sed -E 's/.*, ([0-9.]+) Gbit\/s.*/\1/')
  cpp=$(echo "$ours" | sed -E 's/.*, ([0-9.]+) cycles\/packet, ([0-9.]+) on the CPU.*/\1 (\2)/')
  mops=$(echo "$ceil" | sed -E 's/.*ceiling ([0-9.]+) Mops.*/\1/')
  ratio=$(echo "$ceil" | sed -E 's/.*= ([0-9]+%).*/\1/')
  adj=$(echo "$ceil" | sed -E 's/.*per time on the CPU ([0-9]+%|NaN%).*/\1/')
  sg=$(echo "$out" | grep "^median: ipsec-secgw" || true)
  sg_mpps=- sg_ratio=- sg_adj=-
  if [ -n "$sg" ]; then
    sg_mpps=$(echo "$sg" | sed -E 's/.*ipsec-secgw ([0-9.]+) Mpps.*/\1/')
    sg_ratio=$(echo "$sg" | sed -E 's/.*= ([0-9.]+);.*/\1/')
    sg_adj=$(echo "$sg" | sed -E 's/.*per time on the CPU ([0-9.]+|NaN).*/\1/')
  fi
  # The same frames from the built-in generator (outbound rows).
  gen=$(echo "$out" | grep "^median: ours on the built-in generator [0-9]" || true)
  gen_ceil=$(echo "$out" | grep "^median: ours on the built-in generator / ceiling" || true)
  gen_mpps=- gen_cpp=- gen_ratio=- gen_adj=-
  if [ -n "$gen" ]; then
    gen_mpps=$(echo "$gen" | sed -E 's/.*generator ([0-9.]+) Mpps.*/\1/')
    gen_cpp=$(echo "$gen" | sed -E 's/.*, ([0-9.]+) cycles\/packet, ([0-9.]+) on the CPU.*/\1 (\2)/')
  fi
  if [ -n "$gen_ceil" ]; then
    gen_ratio=$(echo "$gen_ceil" | sed -E 's/.*= ([0-9]+%).*/\1/')
    gen_adj=$(echo "$gen_ceil" | sed -E 's/.*per time on the CPU ([0-9]+%|NaN%).*/\1/')
  fi
  # Our crypto engine alone on the same payloads, in the same rounds: the most a gateway built
  # on it could reach against the ceiling.
  eng=$(echo "$out" | grep "^median: our engine alone" | sed -E 's/.*= ([0-9]+%).*/\1/' || true)
  printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$1" "$2" "$3" "$4" "$5" "$6" "$mops" "$mpps" "$gbps" "$cpp" "$ratio" "$adj" "$sg_mpps" "$sg_ratio" "$sg_adj" "$gen_mpps" "$gen_cpp" "$gen_ratio" "$gen_adj" "${eng:--}"
  # New inbound SAs built and pushed through the rings while the worker forwards (as many as
  # the row has policies, at least 1,000): the median of the rounds.
  inst=$(echo "$out" | sed -nE 's/^round [0-9]+: ([0-9]+) inbound SAs .* ([0-9]+) SAs\/s$/\2 \1/p' | sort -n | awk '{r[NR]=$1; n=$2} END {if (NR) print r[int((NR+1)/2)] " SAs/s (" n " SAs per round)"}')
  installs+=$(printf "\n%s %s %s, %s policies: %s" "$1" "$2" "$3" "$4" "$inst")
  # Rows with many policies measure one policy in the same rounds: their cost as a ratio.
  scale=$(echo "$out" | grep -E "^median: (cost of|ours on the built-in generator with one policy)" || true)
  if [ -n "$scale" ]; then
    scales+=$(printf "\n%s %s %s, %s policies:\n%s" "$1" "$2" "$3" "$4" "$scale")
  fi
  # Where the cycles go: the worker's own per-stage accounting of the row's last round.
  # (Outbound rows: net_pcap's table, then the built-in generator's.)
  runtimes+=$(printf "\n%s %s %s, %s policies:\n%s\n" "$1" "$2" "$3" "$4" "$(echo "$out" | sed -n '/^stage /,/^total /p')")
done
printf "\nPer-stage cycles of each row's last round (the worker's own accounting, TSC cycles):\n%s\n" "$runtimes"
printf "\nSA installation through the rings while forwarding (median of the rounds):%s\n" "$installs"
if [ -n "$scales" ]; then
  printf "\nThe cost of many policies, against one policy on the built-in generator in the same rounds:%s\n" "$scales"
fi
printf "\nEvery round of every row: %s\n" "$log"
