# ipsecgw: `make demo` runs the main job, `make test` runs every check and test.
# Both first install what they need (scripts/setup.sh is idempotent: a second run is a no-op).

CARGO ?= cargo

.PHONY: setup demo test build bench fmt clippy unit interop

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

demo: setup
	$(CARGO) run --release --quiet -- demo

fmt:
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: setup
	$(CARGO) test --workspace

# Independent peers: Wireshark's ESP dissector and scapy's IPsec layer.
interop: setup
	$(CARGO) build --release --quiet
	/usr/bin/python3 tests/interop/run.py target/release/ipsecgw

test: fmt clippy unit interop

bench: setup
	$(CARGO) bench -p bench --bench crypto
