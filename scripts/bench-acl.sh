#!/usr/bin/env bash
# Compares our SPD classifier with DPDK's rte_acl (through dpdk-test-acl) on the same
# ClassBench-style rules and the same 65,536-header trace, per rule-set size, batches of 32.
# Prints one row per size: our lookups/s (median), rte_acl's (median of its runs), the ratio,
# our build time (median) and the bytes of our compiled structure.
#
#   scripts/bench-acl.sh                      # sizes 10 100 1000 10000 100000
#   SIZES="100 10000" REPS=3 scripts/bench-acl.sh
#   ACL_BIN=/path/to/acl scripts/bench-acl.sh # use an already built `acl` bench binary
set -euo pipefail

cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10 100 1000 10000 100000"}
SEED=${SEED:-1}
REPS=${REPS:-5}
ITER=${ITER:-100}
TEST_ACL=${DPDK_TEST_ACL:-$(command -v dpdk-test-acl || echo /usr/bin/dpdk-test-acl)}

if [[ -z "${ACL_BIN:-}" ]]; then
    cargo build --release --quiet -p bench --bin acl
    ACL_BIN=${CARGO_TARGET_DIR:-target}/release/acl
fi
[[ -x "$TEST_ACL" ]] || { echo "dpdk-test-acl not found (install dpdk-dev)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Runs dpdk-test-acl once and prints its pkt/sec. Unique --file-prefix per run, no hugepages.
rte_acl_rate() {
    local rules=$1 trace=$2 n=$3
    "$TEST_ACL" --no-huge -m 1024 --no-pci --file-prefix "acl$$" -l 0 --log-level=lib.eal:error -- \
        --rulesf="$rules" --tracef="$trace" --rulenum="$((n > 1 ? n : 1))" --tracenum=65536 \
        --tracestep=32 --iter="$ITER" --verbose=0 2>/dev/null |
        sed -n 's/.*cycles\/pkt, \([0-9.]*\) pkt\/sec.*/\1/p'
}

printf '%8s %16s %16s %8s %10s %14s\n' rules ours_lookups/s rte_acl_lookups/s ratio build_ms memory_bytes
for n in $SIZES; do
    "$ACL_BIN" gen "$n" "$SEED" "$work/rules" "$work/trace"
    ours=$("$ACL_BIN" measure "$n" "$SEED" "$REPS")
    rte=$(for _ in $(seq "$REPS"); do rte_acl_rate "$work/rules" "$work/trace" "$n"; done | median)
    rate=$(sed -n 's/.*lookups_per_s=\([0-9]*\).*/\1/p' <<<"$ours")
    build=$(sed -n 's/.*build_ms=\([0-9.]*\).*/\1/p' <<<"$ours")
    mem=$(sed -n 's/.*memory_bytes=\([0-9]*\).*/\1/p' <<<"$ours")
    ratio=$(awk -v a="$rate" -v b="$rte" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf '%8s %16.0f %16.0f %8s %10s %14s\n' "$n" "$rate" "${rte:-0}" "$ratio" "$build" "$mem"
    echo "  # ours: $ours" >&2
done
