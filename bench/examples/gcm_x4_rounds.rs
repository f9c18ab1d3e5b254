//! Nanoseconds per packet of AES-128-GCM sealed in engine calls of k ESP payloads of 52 bytes
//! (a 64-byte frame's) of one SA, one at a time and four at a time (`GcmX4`) where the CPU runs
//! it.
//!
//! `cargo run --release -p bench --example gcm_x4_rounds` (best of 7 runs of 20,000 calls,
//! the two engines alternating).

use bench::rounds::seal_ns_per_packet;
use dataplane::crypto::ipsec_mb::MbEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Job, Region, Transform};

fn ns_per_packet(e: &mut MbEngine, xf: Transform, size: usize, k: usize) -> f64 {
    let s = e.session(xf, &[7; 20], &[]).expect("session");
    // ESP: SPI and sequence number (the AAD), the IV, the payload, the ICV.
    let mut bufs = vec![vec![0x5a_u8; 8 + 8 + size + 16]; k];
    seal_ns_per_packet(e, &s, &mut bufs, 20_000, |b| {
        Job::new(b, Region::new(16, size), Region::new(0, 8), 8, 16 + size)
    })
}

fn main() {
    let xf = Transform::new(Cipher::AesGcm128, Auth::Null).expect("transform");
    let mut one = MbEngine::new().expect("ipsec-mb").with_gcm_x4(false);
    let mut four = MbEngine::new().expect("ipsec-mb");
    println!("{}", four.describe());
    println!("| bytes | packets per call | one at a time ns/packet | four at a time ns/packet |");
    println!("|---|---|---|---|");
    for size in [16, 52, 64] {
        for k in [1, 4, 32, 128] {
            let (mut a, mut b) = (f64::MAX, f64::MAX);
            for _ in 0..7 {
                a = a.min(ns_per_packet(&mut one, xf, size, k));
                b = b.min(ns_per_packet(&mut four, xf, size, k));
            }
            println!("| {size} | {k} | {a:.1} | {b:.1} |");
        }
    }
}
