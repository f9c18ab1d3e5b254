//! Nanoseconds per packet of AES-128-CBC + HMAC-SHA1-96 sealed in engine calls of k packets of
//! one SA, on the library's lanes and on `CbcSha1X16` where the CPU runs it: where the batch
//! starts to pay (`MIN_X16` and `min_lanes` in the engine, which apply to the second column,
//! so that its rounds below them run on the library too).
//!
//! `cargo run --release -p bench --example cbc_x16_rounds` (best of 7 runs of 2,000 calls,
//! the two engines alternating).

use bench::rounds::seal_ns_per_packet;
use dataplane::crypto::ipsec_mb::MbEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Job, Region, Transform};

fn ns_per_packet(e: &mut MbEngine, xf: Transform, size: usize, k: usize) -> f64 {
    let s = e.session(xf, &[7; 16], &[9; 20]).expect("session");
    let ct = size.next_multiple_of(16);
    let mut bufs = vec![vec![0x5a_u8; 8 + 16 + ct + 16]; k];
    seal_ns_per_packet(e, &s, &mut bufs, 2000, |b| {
        Job::new(b, Region::new(24, ct), Region::new(0, 24 + ct), 8, 24 + ct)
    })
}

fn main() {
    let xf = Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).expect("transform");
    let mut lib = MbEngine::new().expect("ipsec-mb").with_cbc_x16(false);
    let mut x16 = MbEngine::new().expect("ipsec-mb");
    println!("{}", x16.describe());
    println!("| bytes | packets per call | library ns/packet | with CbcSha1X16 ns/packet |");
    println!("|---|---|---|---|");
    for size in [64, 512, 1408] {
        for k in [2, 3, 4, 5, 6, 8, 12, 16, 32] {
            let (mut a, mut b) = (f64::MAX, f64::MAX);
            for _ in 0..7 {
                a = a.min(ns_per_packet(&mut lib, xf, size, k));
                b = b.min(ns_per_packet(&mut x16, xf, size, k));
            }
            println!("| {size} | {k} | {a:.0} | {b:.0} |");
        }
    }
}
