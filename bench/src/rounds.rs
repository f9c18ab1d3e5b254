//! Timing engine calls of k packets of one SA, for the examples that pick the engine's
//! thresholds (`bench/examples/*_rounds.rs`).

use std::time::Instant;

use dataplane::crypto::{Engine, Job};

/// Nanoseconds per packet of `calls` calls sealing `bufs` under `s`, one job a buffer, its
/// regions as `job` lays them out in it (the jobs are rebuilt each call, as a burst's are).
pub fn seal_ns_per_packet<E: Engine>(
    e: &mut E,
    s: &E::Session,
    bufs: &mut [Vec<u8>],
    calls: usize,
    job: impl for<'b> Fn(&'b mut [u8]) -> Job<'b>,
) -> f64 {
    let t = Instant::now();
    for _ in 0..calls {
        let mut jobs: Vec<Job<'_>> = bufs.iter_mut().map(|b| job(&mut b[..])).collect();
        e.seal(s, &mut jobs);
        std::hint::black_box(&jobs);
    }
    t.elapsed().as_nanos() as f64 / (calls * bufs.len()) as f64
}
