#!/usr/bin/env bash
# Configures the manual's R1 (manual keying, "Configuring IPsec" example) from scratch on a
# running gateway and writes the console transcript to tests/fixtures/interop/r1-console.txt.
#
# The gateway starts from a minimal configuration (its two interfaces and addresses, on veths in
# a private network namespace); every command is then typed through `ipsecgw exec` on its control
# socket, as a user would at the console, and its output is recorded under a RouterOS prompt.
# Run as root from the repository root: bash tests/interop/r1-console.sh [path/to/ipsecgw]
set -euo pipefail

BIN=${1:-target/debug/ipsecgw}
OUT=tests/fixtures/interop/r1-console.txt
NS=ipi-console-$$
DIR=$(mktemp -d)
cleanup() {
  [ -n "${GW_PID:-}" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
for i in lan wan; do
  ip -n "$NS" link add "r1-$i" type veth peer name "x-$i"
  ip -n "$NS" link set "r1-$i" up
  ip -n "$NS" link set "x-$i" up
done
cat >"$DIR/r1.rsc" <<'EOF'
/interface
add name=lan device="net_af_packet0,iface=r1-lan"
add name=wan device="net_af_packet1,iface=r1-wan"
/ip address
add address=10.1.0.1/24 interface=lan
add address=192.0.2.1/24 interface=wan
EOF
ip netns exec "$NS" "$BIN" run --config "$DIR/r1.rsc" --socket "$DIR/ctl.sock" --lcores 0,1 >"$DIR/gw.log" 2>&1 &
GW_PID=$!
for _ in $(seq 100); do
  grep -q "control: serving" "$DIR/gw.log" && break
  sleep 0.1
done

mkdir -p "$(dirname "$OUT")"
{
  echo "# The manual's R1 configured from scratch on a running ipsecgw (\`ipsecgw run\` on a config"
  echo "# with only the interfaces and addresses), each command typed through \`ipsecgw exec\`."
  echo "# Regenerate: bash tests/interop/r1-console.sh (as root)."
  echo
} >"$OUT"
say() {
  echo "[admin@R1] > $1" >>"$OUT"
  "$BIN" exec --socket "$DIR/ctl.sock" "$1" >>"$OUT" 2>&1 || echo "(exit status $?)" >>"$OUT"
}
say "/interface print"
say "/ip address print"
say "/ip route add dst-address=10.2.0.0/24 gateway=192.0.2.2"
say "/ip ipsec key add name=enc-key1 algorithm=3des key=0x000102030405060708090a0b0c0d0e0f1011121314151617"
say "/ip ipsec key add name=enc-key2 algorithm=3des key=f0e1d2c3b4a5968778695a4b3c2d1e0f0a1b2c3d4e5f6071"
say "/ip ipsec key add name=auth-key1 algorithm=sha1 key=00112233445566778899aabbccddeeff00112233"
say "/ip ipsec key print"
say "/ip ipsec manual-sa add name=sa1 ah-key=auth-key1 esp-enc-key=enc-key1/enc-key2 esp-auth-key=none ah-spi=256/257 esp-spi=258/259"
say "/ip ipsec manual-sa print"
say "/ip ipsec policy add src-address=10.1.0.0/24 dst-address=10.2.0.0/24 protocol=all action=encrypt ipsec-protocols=ah,esp level=require tunnel=yes sa-src=192.0.2.1 sa-dst=192.0.2.2 manual-sa=sa1"
say "/ip ipsec policy print"
say "/ip ipsec installed-sa print"
say "/ip ipsec key remove enc-key1"
say "/export"
echo "wrote $OUT"
