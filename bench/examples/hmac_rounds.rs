//! Nanoseconds per packet of AES-128-CBC + HMAC-SHA1-96 sealed in engine calls of k packets,
//! on the default ipsec-mb engine and on one that hashes on the SSE manager's SHA extensions:
//! where the AVX-512 manager's sixteen lanes stop paying (`SMALL_ROUND` in the engine).
//!
//! `cargo run --release -p bench --example hmac_rounds` (best of 7 runs of 2,000 calls).

use bench::rounds::seal_ns_per_packet;
use dataplane::crypto::ipsec_mb::{HmacLanes, MbEngine};
use dataplane::crypto::{Auth, Cipher, Engine, Job, Region, Transform};

fn ns_per_packet(lanes: HmacLanes, xf: Transform, size: usize, k: usize) -> f64 {
    let mut e = MbEngine::with_hmac_lanes(lanes).expect("ipsec-mb");
    let s = e.session(xf, &[7; 16], &[9; 20]).expect("session");
    let ct = size.next_multiple_of(16);
    let mut bufs = vec![vec![0x5a_u8; 8 + 16 + ct + 16]; k];
    let mut best = f64::MAX;
    for _ in 0..7 {
        let ns = seal_ns_per_packet(&mut e, &s, &mut bufs, 2000, |b| {
            Job::new(b, Region::new(24, ct), Region::new(0, 24 + ct), 8, 24 + ct)
        });
        best = best.min(ns);
    }
    best
}

fn main() {
    let xf = Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).expect("transform");
    println!("{}", MbEngine::new().expect("ipsec-mb").describe());
    println!("| bytes | packets per call | default engine ns/packet | SHA extensions ns/packet |");
    println!("|---|---|---|---|");
    for size in [64, 512, 1420] {
        for k in [1, 2, 4, 8, 16, 32, 64] {
            let a = ns_per_packet(HmacLanes::Auto, xf, size, k);
            let b = ns_per_packet(HmacLanes::ShaNi, xf, size, k);
            println!("| {size} | {k} | {a:.0} | {b:.0} |");
        }
    }
}
