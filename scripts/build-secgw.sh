#!/usr/bin/env bash
# Builds DPDK's own IPsec gateway, the ipsec-secgw example of the installed DPDK (22.11, from
# the dpdk-doc package's sources), into target/secgw/ipsec-secgw: the contender `ipsecgw bench
# --secgw` measures in the same rounds as ours. Two changes to the example, both needed to
# measure it on DPDK's virtual devices and neither on its packet path:
# - its ports no longer require receive checksum offload, which net_pcap does not offer (without
#   it, secgw does not check IPv4 checksums at all; ours checks them in software);
# - its statistics (-t SECONDS) also print the TSC and its rate, flushed, so the bench reads
#   the packets sent over an exact window.
# Usage: scripts/build-secgw.sh
set -euo pipefail
cd "$(dirname "$0")/.."
src=/usr/share/dpdk/examples
if [ ! -f "$src/ipsec-secgw/ipsec-secgw.c" ]; then
  echo "build-secgw: $src/ipsec-secgw not found: apt-get install dpdk-doc" >&2
  exit 1
fi
out=target/secgw
rm -rf "$out"
mkdir -p "$out"
cp -r "$src/ipsec-secgw" "$src/common" "$out/"
c="$out/ipsec-secgw/ipsec-secgw.c"
sed -i 's/^\t\t\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,$/\t\t.offloads = 0,/' "$c"
sed -i 's/^\tprintf("\\n====================================================\\n");$/&\n\tprintf("TSC %" PRIu64 " HZ %" PRIu64 "\\n", rte_rdtsc(), rte_get_tsc_hz());\n\tfflush(stdout);/' "$c"
grep -qP '^\t\t\.offloads = 0,$' "$c" || { echo "build-secgw: offload patch did not apply" >&2; exit 1; }
grep -q 'printf("TSC %"' "$c" || { echo "build-secgw: stats patch did not apply" >&2; exit 1; }
make -s -C "$out/ipsec-secgw" >/dev/null
ln -sf ipsec-secgw/build/ipsec-secgw "$out/ipsec-secgw-bin"
echo "build-secgw: $out/ipsec-secgw-bin"
