#!/usr/bin/env bash
# Installs, idempotently and non-interactively, every system package the build and the tests need.
# A second run is a fast no-op: it only calls apt when a package is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential pkg-config libclang-dev
  # crypto engine: Intel's multi-buffer library (what DPDK's aesni_mb driver runs)
  libipsec-mb-dev
  # DPDK (used from the DPDK issue on; installed now so the machine is ready)
  libdpdk-dev dpdk dpdk-dev
  # independent ESP peers for interop tests
  tshark python3-scapy
  # strongSwan for the IKEv1 interop tests: charon, swanctl, userspace ESP (kernel-libipsec is in
  # libcharon-extra-plugins), and the openssl and gcm plugins (libstrongswan-standard-plugins)
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-extra-plugins
  libstrongswan-standard-plugins
  # network namespaces, and the Linux hosts' tools in them
  iproute2 iputils-ping ethtool
  # memory errors and leaks under SA and policy churn (make valgrind)
  valgrind
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust components the checks use.
if command -v rustup >/dev/null 2>&1; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
fi
