//! Criterion benches of every transform through each crypto engine at 64, 512 and 1420 bytes,
//! one packet per call and bursts of 32: the crypto alone (engine jobs over ESP-shaped
//! buffers), and the whole ESP seal/open of a burst for the transforms users run most.
//!
//! `cargo bench -p bench --bench crypto`; throughput is reported in bytes of payload.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dataplane::buf::{BURST, Burst, HeapBuf};
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Job, Region, Transform};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};
use dataplane::stats::Stats;

const SIZES: [usize; 3] = [64, 512, 1420];

fn transforms() -> Vec<(&'static str, Transform)> {
    let t = |c, a| Transform::new(c, a).expect("valid transform");
    vec![
        ("aes-gcm-128", t(Cipher::AesGcm128, Auth::Null)),
        ("aes-gcm-256", t(Cipher::AesGcm256, Auth::Null)),
        ("aes-cbc-128+sha1", t(Cipher::AesCbc128, Auth::HmacSha1_96)),
        ("aes-cbc-256+sha256", t(Cipher::AesCbc256, Auth::HmacSha256_128)),
        ("3des-cbc+sha1", t(Cipher::TdesCbc, Auth::HmacSha1_96)),
        ("des-cbc+md5", t(Cipher::DesCbc, Auth::HmacMd5_96)),
        ("null+sha1 (ah)", t(Cipher::Null, Auth::HmacSha1_96)),
    ]
}

fn key(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

/// Seals `bufs` (ESP-shaped: header, IV, payload padded to the block) in one engine call.
fn seal_jobs<E: Engine>(e: &mut E, s: &E::Session, bufs: &mut [Vec<u8>], size: usize, xf: Transform) {
    let iv = xf.cipher().iv_len();
    let ct = size.next_multiple_of(xf.cipher().pad_align());
    let mut jobs: arrayvec::ArrayVec<Job<'_>, BURST> = bufs
        .iter_mut()
        .map(|b| {
            // GCM authenticates the SPI and sequence number as AAD, HMAC the whole packet.
            let auth = if xf.cipher().is_aead() { 8 } else { 8 + iv + ct };
            Job::new(&mut b[..], Region::new(8 + iv, ct), Region::new(0, auth), 8, 8 + iv + ct)
        })
        .collect();
    e.seal(s, &mut jobs);
    black_box(&jobs);
}

fn bench_engine<E: Engine>(c: &mut Criterion, engine_name: &str, e: &mut E) {
    bench_transforms(c, engine_name, e, transforms());
}

fn bench_transforms<E: Engine>(c: &mut Criterion, engine_name: &str, e: &mut E, xfs: Vec<(&str, Transform)>) {
    for (name, xf) in xfs {
        let mut g = c.benchmark_group(format!("crypto/{name}/{engine_name}"));
        g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(900)).sample_size(20);
        let s = e.session(xf, &key(xf.cipher().key_len(), 1), &key(xf.auth().key_len(), 2)).expect("session");
        for size in SIZES {
            let len = 8 + xf.cipher().iv_len() + size.next_multiple_of(xf.cipher().pad_align()) + 16;
            for burst in [1usize, BURST] {
                let mut bufs = vec![vec![0x5au8; len]; burst];
                g.throughput(Throughput::Bytes((size * burst) as u64));
                g.bench_function(BenchmarkId::new(format!("burst{burst}"), size), |b| {
                    b.iter(|| seal_jobs(e, &s, &mut bufs, size, xf))
                });
            }
        }
        g.finish();
    }
}

fn crypto(c: &mut Criterion) {
    bench_engine(c, "rust", &mut RustEngine);
    #[cfg(target_arch = "x86_64")]
    {
        use dataplane::crypto::ipsec_mb::{GcmCode, HmacLanes, MbEngine};
        bench_engine(c, "ipsec-mb", &mut MbEngine::new().expect("ipsec-mb"));
        // AES-GCM on the library's code alone, against which the engine's own is measured.
        let gcm = transforms().into_iter().filter(|(_, xf)| xf.cipher().is_aead()).collect();
        let mut lib = MbEngine::with_code(HmacLanes::Auto, GcmCode::Library).expect("ipsec-mb");
        bench_transforms(c, "ipsec-mb-library-gcm", &mut lib, gcm);
    }
}

/// Returns a 20-byte IPv4/UDP packet of `size` bytes in all.
fn ip_packet(size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size.max(28)];
    p[0] = 0x45;
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 1, 0, 1]);
    p[16..20].copy_from_slice(&[10, 2, 0, 1]);
    dataplane::wire::ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
    p
}

fn esp_path<E: Engine>(c: &mut Criterion, engine_name: &str, e: &mut E) {
    for (name, xf) in transforms().into_iter().take(3) {
        let mut g = c.benchmark_group(format!("esp-seal/{name}/{engine_name}"));
        g.warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_millis(900)).sample_size(20);
        let (ek, ak) = (key(xf.cipher().key_len(), 1), key(xf.auth().key_len(), 2));
        let cfg = SaConfig {
            spi: 0x100,
            proto: IpsecProto::Esp,
            mode: Mode::Tunnel,
            src: "192.0.2.1".parse().unwrap(),
            dst: "192.0.2.2".parse().unwrap(),
            xf,
            enc_key: &ek,
            auth_key: &ak,
            replay_window: 64,
            lifetimes: Lifetimes::default(),
            dont_fragment: DontFragment::Clear,
        };
        let mut sa = Sa::new(e, &cfg, 0).expect("sa");
        for size in SIZES {
            let pkt = ip_packet(size);
            g.throughput(Throughput::Bytes((size * BURST) as u64));
            g.bench_function(BenchmarkId::new("burst32", size), |b| {
                b.iter_batched_ref(
                    || (0..BURST).map(|_| HeapBuf::from_slice(&pkt)).collect::<Burst<HeapBuf>>(),
                    |burst| {
                        let mut st = Stats::default();
                        dataplane::esp::seal(&mut sa, e, burst, &mut st);
                        // Keep the SA usable however long criterion runs.
                        sa.set_seq(0);
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

fn esp(c: &mut Criterion) {
    esp_path(c, "rust", &mut RustEngine);
    #[cfg(target_arch = "x86_64")]
    esp_path(c, "ipsec-mb", &mut dataplane::crypto::ipsec_mb::MbEngine::new().expect("ipsec-mb"));
}

criterion_group!(benches, crypto, esp);
criterion_main!(benches);
