# ipsecgw: `make demo` runs the main job, `make test` runs every check and test.
# Both first install what they need (scripts/setup.sh is idempotent: a second run is a no-op).

CARGO ?= cargo

.PHONY: setup demo test build bench fmt clippy unit valgrind

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

# SA and policy churn under traffic (dataplane/tests/churn.rs) under valgrind: no use after free,
# no invalid access, no definite leak.
valgrind: setup
	$(CARGO) test -p dataplane --test churn --no-run
	CHURN_OPS=2000 valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite -q \
		$$(ls -t target/debug/deps/churn-* | grep -v '\.d$$' | head -1) --nocapture

test: fmt clippy unit valgrind

bench: setup
	$(CARGO) bench -p bench --bench crypto
	python3 scripts/bench-table.py
	bash scripts/bench-gateway.sh
