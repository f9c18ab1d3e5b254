# ipsecgw: `make demo` runs the main job, `make test` runs every check and test.
# Both first install what they need (scripts/setup.sh is idempotent: a second run is a no-op).

CARGO ?= cargo

.PHONY: setup demo test build pgo secgw bench fmt clippy unit valgrind fuzz fuzz-cmin fuzz-tools

setup:
	bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# The profile-guided release binary (target/pgo/release/ipsecgw), trained on the benchmark's
# traffic: what `make bench` measures, and the binary to run on an appliance.
pgo: setup
	rustup component list --installed 2>/dev/null | grep -q '^llvm-tools' || rustup component add llvm-tools
	bash scripts/build-pgo.sh

demo: setup
	$(CARGO) run --release --quiet -- demo

fmt:
	$(CARGO) fmt --all -- --check

clippy: setup
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit, property and known-answer tests (control/tests/fuzz_replay.rs replays every fuzz corpus
# and regression input on stable), and the interop tests against independent peers
# (Wireshark's ESP dissector and scapy's IPsec layer), which are integration tests of the binary.
# Tests of crypto kernels this CPU cannot run are skipped by name, and the run says so
# (scripts/cpu-test-skips.sh).
unit: setup
	skips=$$(bash scripts/cpu-test-skips.sh) && $(CARGO) test --workspace -- $$skips

# SA and policy churn under traffic (dataplane/tests/churn.rs) under valgrind: no use after free,
# no invalid access, no definite leak.
valgrind: setup
	$(CARGO) test -p dataplane --test churn --no-run
	CHURN_OPS=2000 valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite -q \
		$$(ls -t target/debug/deps/churn-* | grep -v '\.d$$' | head -1) --nocapture

test: fmt clippy unit valgrind

# DPDK's ipsec-secgw example (sources from dpdk-doc), the contender the bench runs in the same
# rounds as ours.
secgw: setup
	dpkg -s dpdk-doc >/dev/null 2>&1 || $$([ "$$(id -u)" -eq 0 ] || echo sudo) apt-get install -y -qq --no-install-recommends dpdk-doc >/dev/null
	bash scripts/build-secgw.sh

bench: pgo secgw
	$(CARGO) bench -p bench --bench crypto
	python3 scripts/bench-table.py
	IPSECGW=target/pgo/release/ipsecgw SECGW=target/secgw/ipsec-secgw-bin bash scripts/bench-gateway.sh

# Fuzzing (libFuzzer through cargo fuzz, nightly Rust): each target of fuzz/ for FUZZ_SECONDS,
# one after the other; new inputs land in fuzz/corpus/<target>/ (shrink them with `make
# fuzz-cmin` before committing), a crash in fuzz/artifacts/<target>/ and stops the run.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= wire pipeline ike_wire ike_engine console config ctl_wire
FUZZ_FLAGS ?= -max_len=4096 -timeout=10 -rss_limit_mb=2048

fuzz-tools:
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz

fuzz: fuzz-tools
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  $(CARGO) +nightly fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) $(FUZZ_FLAGS) || exit 1; \
	done

# Keeps a small set of inputs that covers every edge (hit counts ignored, greedy set cover: the
# corpora stay at a few hundred files).
fuzz-cmin: fuzz-tools
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  $(CARGO) +nightly fuzz cmin $$t corpus/$$t -- $(FUZZ_FLAGS) -use_counters=0 -set_cover_merge=1 || exit 1; \
	done
