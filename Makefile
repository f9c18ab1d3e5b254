# ipsecgw: `make demo` runs the main job, `make test` runs every check and test.
# Both first install what they need (scripts/setup.sh is idempotent: a second run is a no-op).

CARGO ?= cargo

.PHONY: setup demo test build bench fmt clippy unit

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

# Unit, property and known-answer tests, and the interop tests against independent peers
# (Wireshark's ESP dissector and scapy's IPsec layer), which are integration tests of the binary.
unit: setup
	$(CARGO) test --workspace

test: fmt clippy unit

bench: setup
	$(CARGO) bench -p bench --bench crypto
	python3 scripts/bench-table.py
	bash scripts/bench-gateway.sh
