//! The classifier bench harness: writes the generated rules and trace in `dpdk-test-acl`'s
//! formats, and measures our build time, memory and lookup rate on the same inputs
//! (`scripts/bench-acl.sh` runs both and prints the comparison).
//!
//! Usage: `acl gen <rules> <seed> <rules-file> <trace-file>` | `acl measure <rules> <seed> [reps]`
//! | `acl run <rules> <seed> [passes]` (a fixed number of passes over the trace, for
//! `valgrind --tool=callgrind --toggle-collect='*classify_burst*'` instruction counts).

use std::fs::File;
use std::hint::black_box;
use std::io::BufWriter;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bench::acl;
use dataplane::classify::Classifier;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn write_files(n: usize, seed: u64, rules_path: &str, trace_path: &str) -> std::io::Result<()> {
    let rules = acl::rules(n, seed);
    let trace = acl::trace(&rules, acl::TRACE_LEN, seed);
    acl::write_dpdk_rules(&rules, BufWriter::new(File::create(rules_path)?))?;
    acl::write_dpdk_trace(&trace, BufWriter::new(File::create(trace_path)?))?;
    Ok(())
}

fn measure(n: usize, seed: u64, reps: usize) {
    let rules = acl::rules(n, seed);
    let trace = acl::trace(&rules, acl::TRACE_LEN, seed);

    // Build time: the median of several builds, fewer when one build is slow.
    let mut builds = Vec::new();
    let started = Instant::now();
    let mut c = Classifier::build(&rules);
    builds.push(started.elapsed().as_secs_f64());
    while builds.len() < reps && started.elapsed() < Duration::from_secs(5) {
        let t = Instant::now();
        c = black_box(Classifier::build(black_box(&rules)));
        builds.push(t.elapsed().as_secs_f64());
    }
    let shape = c.shape();
    // Lookups: passes over the whole trace, 32 keys per call, as dpdk-test-acl --tracestep=32.
    let mut out = [None; 32];
    let pass = |out: &mut [Option<u32>; 32]| {
        let mut matched = 0u64;
        for chunk in trace.chunks(32) {
            c.classify_burst(black_box(chunk), out);
            matched += out[..chunk.len()].iter().filter(|o| o.is_some()).count() as u64;
        }
        matched
    };
    let matched = pass(&mut out);
    let mut rates = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let mut keys = 0usize;
        while t.elapsed() < Duration::from_millis(200) {
            black_box(pass(&mut out));
            keys += trace.len();
        }
        rates.push(keys as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "rules={n} build_ms={:.3} memory_bytes={} lookups_per_s={:.0} matched={:.3} trees={} nodes={} leaves={} leaf_rules={} depth={}",
        median(builds) * 1e3,
        c.memory_bytes(),
        median(rates),
        matched as f64 / trace.len() as f64,
        shape.trees,
        shape.nodes,
        shape.leaves,
        shape.leaf_rules,
        shape.max_depth,
    );
}

/// Runs exactly `passes` passes over the trace, for instruction counts under callgrind.
fn run(n: usize, seed: u64, passes: usize) {
    let rules = acl::rules(n, seed);
    let trace = acl::trace(&rules, acl::TRACE_LEN, seed);
    let c = Classifier::build(&rules);
    let mut out = [None; 32];
    let mut matched = 0u64;
    for _ in 0..passes {
        for chunk in trace.chunks(32) {
            c.classify_burst(black_box(chunk), &mut out);
            matched += out[..chunk.len()].iter().filter(|o| o.is_some()).count() as u64;
        }
    }
    println!("rules={n} lookups={} matched={matched}", passes * trace.len());
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    match args.get(1).map(String::as_str) {
        Some("gen") if args.len() == 6 => {
            if let Err(e) = write_files(num(2, 0) as usize, num(3, 1), &args[4], &args[5]) {
                eprintln!("acl gen: {e}");
                return ExitCode::FAILURE;
            }
        }
        Some("measure") if args.len() >= 4 => measure(num(2, 0) as usize, num(3, 1), num(4, 7) as usize),
        Some("run") if args.len() >= 4 => run(num(2, 0) as usize, num(3, 1), num(4, 1) as usize),
        _ => {
            eprintln!(
                "usage: acl gen <rules> <seed> <rules-file> <trace-file> | acl measure <rules> <seed> [reps] \\
                 | acl run <rules> <seed> [passes]"
            );
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
