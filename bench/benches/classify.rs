//! Criterion benches of the SPD classifier on ClassBench-style ACLs of 10 to 100,000 rules:
//! bursts of 32 lookups per call over a 65,536-header trace, and the build of each rule set.
//! `scripts/bench-acl.sh` compares the same rules and trace with DPDK's `rte_acl`.
//!
//! `cargo bench -p bench --bench classify`; throughput is reported in lookups (elements).

use std::hint::black_box;
use std::time::Duration;

use bench::acl;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataplane::buf::BURST;
use dataplane::classify::Classifier;

const SIZES: [usize; 5] = [10, 100, 1_000, 10_000, 100_000];
const SEED: u64 = 1;

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(BURST as u64));
    for n in SIZES {
        let rules = acl::rules(n, SEED);
        let trace = acl::trace(&rules, acl::TRACE_LEN, SEED);
        let classifier = Classifier::build(&rules);
        let mut out = [None; BURST];
        let mut at = 0;
        g.bench_with_input(BenchmarkId::new("burst32", n), &classifier, |b, cl| {
            b.iter(|| {
                // Walk the trace in order, as dpdk-test-acl does, so caches see the same stream.
                let chunk = &trace[at..at + BURST];
                at = (at + BURST) % trace.len();
                cl.classify_burst(black_box(chunk), &mut out);
                black_box(&out);
            })
        });
    }
    g.finish();
}

fn builds(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify-build");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let rules = acl::rules(n, SEED);
        g.bench_with_input(BenchmarkId::from_parameter(n), &rules, |b, rules| {
            b.iter(|| Classifier::build(black_box(rules)))
        });
    }
    g.finish();
}

criterion_group!(benches, lookups, builds);
criterion_main!(benches);
