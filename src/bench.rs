//! `ipsecgw bench`: the gateway's throughput with one worker, measured the way users measure
//! DPDK's ipsec-secgw: plain (outbound) or pre-encrypted (inbound) frames replayed by `net_pcap`
//! with `infinite_rx=1` into the gateway, sent out to `net_null`; Mpps, Gbit/s and cycles per
//! packet from the gateway's own counters over a measured window after a warm-up (outbound, also
//! with the same frames from the built-in generator, [`Generator`], which writes only their
//! headers into recycled buffers where `net_pcap` copies every byte); and in the
//! same run the crypto ceiling of `dpdk-test-crypto-perf` (aesni_mb, same algorithm and payload
//! size), with our rate as a fraction of it, and our crypto engine alone on the same payloads
//! against the same ceiling: the most any gateway built on the engine could reach. Each round
//! runs in a child process (one EAL per process); rounds interleave ours and the ceiling, and
//! medians are reported.

use std::net::Ipv4Addr;
use std::process::{Command, ExitCode};
use std::time::Duration;

use dataplane::buf::{BURST, Burst, HeapBuf, PacketBuf};
use dataplane::crypto::ipsec_mb::MbEngine;
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Job, JobStatus, Region, Transform};
use dataplane::pipeline::{Direction, Runtime};
use dataplane::route::{NextHop, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};
use dataplane::spd::{Action, IpsecProtocols, Level, Policy, Prefix, Selector};
use dataplane::stats::Stats;
use dataplane::wire::{Protocol, ipv4, udp};
use ipsecgw::dpdk::{Eal, Generator, Mempool, PoolConfig, lcore, shutdown};
use ipsecgw::gateway::{Gateway, IfaceSetup, SaSetup, Setup};

use crate::{pcap, secgw};

const USAGE: &str = "usage: ipsecgw bench [--transform T] [--size N|imix] [--direction out|in] [--seconds S]
                      [--warmup S] [--rounds R] [--no-ceiling]
  --transform   aes-gcm-128 (default), aes-gcm-256, aes-cbc-128+sha1, aes-cbc-256+sha256,
                3des+sha1, null+sha1
  --size        Ethernet frame size of the plain packets: 64 (default), 512, 1420..., or imix
                (7:4:1 of 64, 570 and 1518 bytes)
  --direction   out: encrypt LAN to WAN (default), fed by net_pcap and, in turn, by the
                built-in generator; in: decrypt pre-encrypted frames (net_pcap only)
  --seconds     measured window per round (default 3), after --warmup seconds (default 1)
  --rounds      interleaved rounds of ours and dpdk-test-crypto-perf (default 3)
  --policies N  N policies with their own SA pairs, traffic spread over all of them (default 1);
                the round also measures how fast new SAs install through the rings and (outbound)
                one policy on the built-in generator: the policies' cost, within each round
  --secgw PATH  also DPDK's ipsec-secgw (scripts/build-secgw.sh builds it) on the same frames,
                each round (outbound)
  --hugepages   run every DPDK process (ours, crypto-perf, ipsec-secgw) on hugepages instead of
                --no-huge: needs 512 free 2 MiB pages and hugetlbfs mounted";

/// The device replaying the capture.
const PCAP_DEV: &str = "net_pcap0";
/// The device whose queue the built-in generator stands in for (it receives nothing itself).
const GEN_DEV: &str = "net_null1";

#[derive(Clone, Debug)]
struct Args {
    transform: String,
    size: String,
    inbound: bool,
    seconds: u64,
    warmup: u64,
    rounds: u32,
    ceiling: bool,
    policies: u32,
    secgw: Option<std::path::PathBuf>,
    hugepages: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        transform: "aes-gcm-128".into(),
        size: "64".into(),
        inbound: false,
        seconds: 3,
        warmup: 1,
        rounds: 3,
        ceiling: true,
        policies: 1,
        secgw: None,
        hugepages: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--transform" => a.transform = val()?,
            "--size" => a.size = val()?,
            "--direction" => {
                a.inbound = match val()?.as_str() {
                    "in" => true,
                    "out" => false,
                    d => return Err(format!("--direction takes in or out, not {d}")),
                }
            }
            "--seconds" => a.seconds = val()?.parse().map_err(|_| "--seconds takes a number")?,
            "--warmup" => a.warmup = val()?.parse().map_err(|_| "--warmup takes a number")?,
            "--rounds" => a.rounds = val()?.parse().map_err(|_| "--rounds takes a number")?,
            "--no-ceiling" => a.ceiling = false,
            "--policies" => {
                a.policies = val()?.parse().map_err(|_| "--policies takes a number")?;
                if !(1..=60000).contains(&a.policies) {
                    return Err("--policies must be 1..=60000".into());
                }
            }
            "--secgw" => a.secgw = Some(val()?.into()),
            "--hugepages" => a.hugepages = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    transform(&a.transform)?;
    sizes(&a.size)?;
    Ok(a)
}

fn to_args(a: &Args) -> Vec<String> {
    let mut v = vec![
        "--transform".into(),
        a.transform.clone(),
        "--size".into(),
        a.size.clone(),
        "--direction".into(),
        if a.inbound { "in".into() } else { "out".into() },
        "--seconds".into(),
        a.seconds.to_string(),
        "--warmup".into(),
        a.warmup.to_string(),
    ];
    if !a.ceiling {
        v.push("--no-ceiling".into());
    }
    v.push("--policies".into());
    v.push(a.policies.to_string());
    if a.hugepages {
        v.push("--hugepages".into());
    }
    v
}

/// EAL's memory options for every DPDK process of a bench: 1 GiB, on hugepages or (the
/// default, as these machines have none reserved) on 4 KiB pages.
pub(crate) fn eal_memory(hugepages: bool) -> &'static [&'static str] {
    if hugepages { &["--huge-unlink", "-m", "1024"] } else { &["--no-huge", "-m", "1024"] }
}

/// The glibc tunable that puts malloc's arenas on transparent huge pages (glibc 2.35 and
/// later; THP set to `madvise` or `always`): our SA state lives on the heap, as ipsec-secgw's
/// lives in DPDK's hugepage memory. 10,000 outbound SAs spread some 26 MB of bundles and key
/// blocks over 4 KiB pages, more than the L2 TLB covers: GCM 64 B took 0.935 times the cycles
/// per packet with it (12 paired rounds), while installing them took 1.3 to 2 times as long.
const HEAP_ON_HUGEPAGES: &str = "glibc.malloc.hugetlb=1";

/// Returns `GLIBC_TUNABLES` for a round of ours on hugepages: the caller's own, plus ours.
fn heap_tunables() -> String {
    match std::env::var("GLIBC_TUNABLES") {
        Ok(t) if !t.is_empty() => format!("{t}:{HEAP_ON_HUGEPAGES}"),
        _ => HEAP_ON_HUGEPAGES.to_string(),
    }
}

/// Returns the transform and its dpdk-test-crypto-perf options.
fn transform(name: &str) -> Result<(Transform, Vec<&'static str>), String> {
    let t = |c, a| Transform::new(c, a).map_err(|e| e.to_string());
    let cbc = |algo: &'static str, key: &'static str, iv: &'static str, auth: &'static str, akey, digest| {
        vec![
            "--optype",
            "cipher-then-auth",
            "--cipher-algo",
            algo,
            "--cipher-op",
            "encrypt",
            "--cipher-key-sz",
            key,
            "--cipher-iv-sz",
            iv,
            "--auth-algo",
            auth,
            "--auth-op",
            "generate",
            "--auth-key-sz",
            akey,
            "--digest-sz",
            digest,
        ]
    };
    let gcm = |key: &'static str| {
        vec![
            "--optype",
            "aead",
            "--aead-algo",
            "aes-gcm",
            "--aead-op",
            "encrypt",
            "--aead-key-sz",
            key,
            "--aead-iv-sz",
            "12",
            "--aead-aad-sz",
            "8",
            "--digest-sz",
            "16",
        ]
    };
    Ok(match name {
        "aes-gcm-128" => (t(Cipher::AesGcm128, Auth::Null)?, gcm("16")),
        "aes-gcm-256" => (t(Cipher::AesGcm256, Auth::Null)?, gcm("32")),
        "aes-cbc-128+sha1" => {
            (t(Cipher::AesCbc128, Auth::HmacSha1_96)?, cbc("aes-cbc", "16", "16", "sha1-hmac", "20", "12"))
        }
        "aes-cbc-256+sha256" => {
            (t(Cipher::AesCbc256, Auth::HmacSha256_128)?, cbc("aes-cbc", "32", "16", "sha2-256-hmac", "32", "16"))
        }
        "3des+sha1" => (t(Cipher::TdesCbc, Auth::HmacSha1_96)?, cbc("3des-cbc", "24", "8", "sha1-hmac", "20", "12")),
        "null+sha1" => (
            t(Cipher::Null, Auth::HmacSha1_96)?,
            vec![
                "--optype",
                "auth-only",
                "--auth-algo",
                "sha1-hmac",
                "--auth-op",
                "generate",
                "--auth-key-sz",
                "20",
                "--digest-sz",
                "12",
            ],
        ),
        other => return Err(format!("unknown transform {other}")),
    })
}

/// Returns the frame sizes of one replay cycle.
fn sizes(spec: &str) -> Result<Vec<usize>, String> {
    if spec == "imix" {
        // The simple IMIX: 7 x 64, 4 x 570, 1 x 1518 bytes.
        return Ok([vec![64; 7], vec![570; 4], vec![1518]].concat());
    }
    let n: usize = spec.parse().map_err(|_| format!("--size takes a number or imix, not {spec}"))?;
    if !(64..=1518).contains(&n) {
        return Err("--size must be 64..=1518".into());
    }
    Ok(vec![n])
}

pub fn main(args: &[String]) -> ExitCode {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match orchestrate(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One round's figures.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    mpps: f64,
    gbps: f64,
    cycles_per_packet: f64,
    /// The share of the window the worker thread was on a CPU (1.0 when nothing else ran).
    on_cpu: f64,
}

impl Figures {
    /// The rate as if the worker had had its core to itself.
    fn mpps_per_cpu(&self) -> f64 {
        self.mpps / self.on_cpu.min(1.0)
    }
}

/// Our rounds on one feed (`net_pcap` or the built-in generator).
#[derive(Default)]
struct Feed {
    rounds: Vec<Figures>,
    /// Per round, our rate against the ceiling's as if each had had its core to itself.
    per_cpu_ratio: Vec<f64>,
    /// The last round's per-stage accounting.
    runtime: Option<String>,
}

impl Feed {
    fn median(&self, f: impl Fn(&Figures) -> f64) -> f64 {
        median(self.rounds.iter().map(f).collect())
    }

    /// Prints the medians of the rounds as `median: {name} ...`.
    fn print_median(&self, name: &str) {
        println!(
            "median: {name} {:.3} Mpps, {:.3} Gbit/s, {:.0} cycles/packet, {:.0} on the CPU; the worker ran {:.0}% of \
             the time",
            self.median(|f| f.mpps),
            self.median(|f| f.gbps),
            self.median(|f| f.cycles_per_packet),
            self.median(|f| f.cycles_per_packet * f.on_cpu),
            100.0 * self.median(|f| f.on_cpu)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn orchestrate(a: &Args) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("ipsecgw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pcap_path = dir.join("frames.pcap");
    let (xf, _) = transform(&a.transform)?;
    let frame_sizes = sizes(&a.size)?;
    write_frames(&pcap_path, xf, &frame_sizes, a.inbound, a.policies)?;
    // With many policies (outbound), every round also runs one policy on the generator, next
    // to the row's own generator round: the machine's rate drifts over minutes, so the cost of
    // the policies is measured as a ratio within each round, not against another row.
    let baseline = (a.policies > 1 && !a.inbound).then(|| (Args { policies: 1, ..a.clone() }, dir.join("one.pcap")));
    if let Some((one, path)) = &baseline {
        write_frames(path, xf, &frame_sizes, false, one.policies)?;
    }
    let payload = crypto_payload(&frame_sizes);
    println!(
        "ipsecgw bench: {} {} frames {}, {} policies and SA pairs, one worker, net_pcap (infinite_rx){} -> \
         gateway -> net_null; {} s after {} s warm-up, {} rounds; DPDK on {}",
        a.transform,
        a.size,
        if a.inbound { "inbound (decrypt)" } else { "outbound (encrypt)" },
        a.policies,
        if a.inbound { "" } else { " and the built-in generator" },
        a.seconds,
        a.warmup,
        a.rounds,
        if a.hugepages { "hugepages (and our heap on transparent huge pages)" } else { "4 KiB pages (--no-huge)" }
    );
    let mut ours = Feed::default();
    let mut generated = Feed::default();
    let mut one_policy = Feed::default();
    let mut ceiling = Vec::new();
    let mut engine = Vec::new();
    let mut secgw_rounds: Vec<(secgw::Round, Figures)> = Vec::new();
    let secgw_bin = a.secgw.as_ref().filter(|_| !a.inbound);
    if a.secgw.is_some() && secgw_bin.is_none() {
        println!("ipsec-secgw: measured outbound only");
    }
    // One of our rounds in a child process: the capture replayed by net_pcap, or (`generator`)
    // the same frames from the built-in generator; `a` and `pcap` are the row's, or the
    // baseline's, which `label` names.
    let run_ours = |a: &Args,
                    pcap: &std::path::Path,
                    label: &str,
                    round: u32,
                    generator: bool|
     -> Result<(Figures, String), String> {
        let mut cmd = Command::new(&exe);
        cmd.arg("bench-run").args(to_args(a)).arg("--pcap").arg(pcap).args(generator.then_some("--generator"));
        if a.hugepages {
            cmd.env("GLIBC_TUNABLES", heap_tunables());
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let f = match parse_result(&text) {
            Some(f) if out.status.success() => f,
            _ => return Err(format!("round {round}: no result\n{text}{}", String::from_utf8_lossy(&out.stderr))),
        };
        println!(
            "round {round}: ours{}{label} {:.3} Mpps {:.3} Gbit/s {:.0} cycles/packet ({:.0} on the CPU: the worker ran \
             {:.0}% of the time)",
            if generator { " (built-in generator)" } else { "" },
            f.mpps,
            f.gbps,
            f.cycles_per_packet,
            f.cycles_per_packet * f.on_cpu,
            100.0 * f.on_cpu
        );
        if let Some(l) = text.lines().find(|l| l.starts_with("CACHE ")) {
            println!("round {round}: flow caches: {}", &l[6..]);
        }
        Ok((f, text))
    };
    let ours_round = |round: u32, generator: bool| run_ours(a, &pcap_path, "", round, generator);
    for round in 1..=a.rounds {
        // The two feeds take turns going first: on this machine the second of two runs in a
        // row is often slower or faster for no reason of its own.
        let feeds: &[bool] = match (a.inbound, round % 2) {
            (true, _) => &[false],
            (false, 1) => &[false, true],
            (false, _) => &[true, false],
        };
        if let Some((one, path)) = &baseline {
            one_policy.rounds.push(run_ours(one, path, " with one policy", round, true)?.0);
        }
        for &generator in feeds {
            let (f, text) = ours_round(round, generator)?;
            let feed = if generator { &mut generated } else { &mut ours };
            feed.rounds.push(f);
            feed.runtime = text.split_once("RUNTIME\n").map(|(_, t)| t.to_owned());
            if generator {
                continue;
            }
            if let Some(l) = text.lines().find(|l| l.starts_with("INSTALL ")) {
                println!("round {round}: {}", &l[8..]);
            }
            if let Some(l) = text.lines().find(|l| l.starts_with("ENGINE ")) {
                println!("round {round}: crypto engine {}", &l[7..]);
            }
        }
        let f = *ours.rounds.last().expect("pushed this round");
        if a.ceiling {
            let (c, share) = crypto_perf(a, payload)?;
            println!(
                "round {round}: dpdk-test-crypto-perf (aesni_mb, {payload} bytes) {} Mops (its worker ran {:.0}% \
                 of the time)",
                mops(c),
                100.0 * share
            );
            ceiling.push(c);
            // Our crypto engine alone on the same payload, in the same round: the most any
            // gateway built on it could reach against the ceiling.
            let e = engine_alone(xf, payload, Duration::from_millis(1500))?;
            println!(
                "round {round}: our engine alone (ipsec-mb, bursts of {BURST} ESP payloads of {payload} bytes) {} Mops",
                mops(e)
            );
            engine.push(e);
            // Both rates as if each had had its core to itself: what the ratio is on a quiet
            // machine, when other processes take turns on the cores.
            for feed in [&mut ours, &mut generated] {
                if let Some(g) = feed.rounds.last() {
                    feed.per_cpu_ratio.push(g.mpps_per_cpu() / (c / share));
                }
            }
        }
        if let Some(bin) = secgw_bin {
            let (enc, auth) = keys(xf, 1);
            // A contender that fails costs its column, not the row.
            match secgw::measure(
                bin,
                xf,
                (&enc, &auth),
                a.policies,
                &pcap_path,
                &dir,
                (a.warmup, a.seconds),
                a.hugepages,
            ) {
                Ok(r) => {
                    println!(
                        "round {round}: ipsec-secgw {} Mpps (its lcore ran {:.0}% of the time)",
                        mops(r.mpps),
                        100.0 * r.on_cpu
                    );
                    secgw_rounds.push((r, f));
                }
                Err(e) => println!("round {round}: ipsec-secgw failed: {e}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let m = ours.median(|f| f.mpps);
    println!();
    ours.print_median("ours");
    if !generated.rounds.is_empty() {
        generated.print_median("ours on the built-in generator");
    }
    if a.ceiling {
        let c = median(ceiling);
        println!(
            "median: crypto ceiling {} Mops; ours / ceiling = {:.0}%; per time on the CPU {:.0}%",
            mops(c),
            100.0 * m / c,
            100.0 * median(ours.per_cpu_ratio)
        );
        let e = median(engine);
        println!("median: our engine alone {} Mops; engine alone / ceiling = {:.0}%", mops(e), 100.0 * e / c);
        if !generated.rounds.is_empty() {
            println!(
                "median: ours on the built-in generator / ceiling = {:.0}%; per time on the CPU {:.0}%",
                100.0 * generated.median(|f| f.mpps) / c,
                100.0 * median(generated.per_cpu_ratio)
            );
        }
    }
    if !secgw_rounds.is_empty() {
        let sg = median(secgw_rounds.iter().map(|(r, _)| r.mpps).collect());
        // Per round, both rates as if each had had its core to itself.
        let per_cpu = secgw_rounds.iter().map(|(r, f)| f.mpps_per_cpu() / (r.mpps / r.on_cpu)).collect();
        println!(
            "median: ipsec-secgw {} Mpps; ours / ipsec-secgw = {:.2}; per time on the CPU {:.2}",
            mops(sg),
            m / sg,
            median(per_cpu)
        );
    }
    if !one_policy.rounds.is_empty() {
        one_policy.print_median("ours on the built-in generator with one policy");
        let factors =
            generated.rounds.iter().zip(&one_policy.rounds).map(|(n, one)| n.cycles_per_packet / one.cycles_per_packet);
        println!(
            "median: cost of {} policies on the built-in generator, cycles/packet against one policy in the same \
             round = {:.2}",
            a.policies,
            median(factors.collect())
        );
    }
    if let Some(rt) = ours.runtime {
        println!("\nper-stage cycles of the last round (the worker's own accounting):\n{rt}");
    }
    if let Some(rt) = generated.runtime {
        println!("per-stage cycles of the last round on the built-in generator:\n{rt}");
    }
    Ok(())
}

/// Formats a rate (Mops, Mpps) with three decimals, or six when it is tiny (DES).
fn mops(c: f64) -> String {
    if c < 0.01 { format!("{c:.6}") } else { format!("{c:.3}") }
}

fn parse_result(text: &str) -> Option<Figures> {
    let line = text.lines().find(|l| l.starts_with("RESULT "))?;
    let field = |k: &str| -> Option<f64> {
        line.split_whitespace().find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('='))?.parse().ok())
    };
    Some(Figures {
        mpps: field("mpps")?,
        gbps: field("gbps")?,
        cycles_per_packet: field("cpp")?,
        on_cpu: field("oncpu").unwrap_or(f64::NAN),
    })
}

/// The CPU the measured workers run on: EAL's `-l 0,1` puts lcore 1, crypto-perf's worker and
/// ours, on CPU 1 (ipsec-secgw's `-l 1` too).
const WORKER_CPU: usize = 1;

/// Returns how many millions of payloads of `payload` bytes per second our crypto engine seals
/// on a thread of its own on [`WORKER_CPU`], in bursts of [`BURST`] with one session, over
/// `window` after a short warm-up: the ESP shape (SPI and sequence number, IV, payload, ICV; GCM
/// authenticates the first 8 bytes as AAD, HMAC the whole packet), where crypto-perf's operation
/// covers the payload alone.
fn engine_alone(xf: Transform, payload: usize, window: Duration) -> Result<f64, String> {
    // A thread of its own, so that the children this process starts keep every CPU.
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut cpu = rustix::thread::CpuSet::new();
            cpu.set(WORKER_CPU);
            rustix::thread::sched_setaffinity(None, &cpu).map_err(|e| format!("pinning to CPU {WORKER_CPU}: {e}"))?;
            engine_rate(xf, payload, window)
        })
        .join()
        .map_err(|_| "the engine's thread panicked".to_string())?
    })
}

fn engine_rate(xf: Transform, payload: usize, window: Duration) -> Result<f64, String> {
    let mut engine = MbEngine::new().map_err(|e| e.to_string())?;
    let (enc, auth) = keys(xf, 1);
    let session = engine.session(xf, &enc, &auth).map_err(|e| e.to_string())?;
    let (iv, ct) = (xf.cipher().iv_len(), payload.next_multiple_of(xf.cipher().pad_align()));
    let hashed = if xf.cipher().is_aead() { 8 } else { 8 + iv + ct };
    let mut bufs = vec![vec![0x5au8; 8 + iv + ct + xf.icv_len()]; BURST];
    let mut seal_burst = || {
        let mut jobs: arrayvec::ArrayVec<Job<'_>, BURST> = bufs
            .iter_mut()
            .map(|b| Job::new(&mut b[..], Region::new(8 + iv, ct), Region::new(0, hashed), 8, 8 + iv + ct))
            .collect();
        engine.seal(&session, &mut jobs);
        jobs.iter().all(|j| j.status == JobStatus::Done)
    };
    let mut rate = |d: Duration| {
        let (t0, mut n) = (std::time::Instant::now(), 0u64);
        while t0.elapsed() < d {
            if !seal_burst() {
                return Err("our engine failed a job".to_string());
            }
            n += BURST as u64;
        }
        Ok(n as f64 / t0.elapsed().as_secs_f64() / 1e6)
    };
    rate(window / 5)?;
    rate(window)
}

/// Returns the payload the crypto ceiling is measured at: the mean inner IPv4 packet, rounded
/// up to 16 bytes (CBC needs whole blocks).
fn crypto_payload(frames: &[usize]) -> usize {
    let mean = frames.iter().map(|f| f - 14).sum::<usize>() / frames.len();
    mean.next_multiple_of(16)
}

/// Returns dpdk-test-crypto-perf's Mops and the share of its run its worker lcore thread was
/// on a CPU (from /proc, sampled while it runs; NaN if never seen).
fn crypto_perf(a: &Args, payload: usize) -> Result<(f64, f64), String> {
    let (_, opts) = transform(&a.transform)?;
    let prefix = format!("ipsecgw_cp_{}", std::process::id());
    let buf = payload.to_string();
    // Seconds per round, not hours: the library's DES runs at about 700 ops/s at 1408 bytes on
    // AMD EPYC machines (CRYPTO-NOTES.md), where 4 million ops would take 1.5 hours.
    let total_ops = if a.transform.starts_with("3des") { "500" } else { "4000000" };
    let mut child = Command::new("dpdk-test-crypto-perf")
        .args(eal_memory(a.hugepages))
        .args(["--no-pci", "--no-telemetry", "--file-prefix", &prefix, "-l", "0,1"])
        .args(["--vdev", "crypto_aesni_mb0", "--"])
        .args(["--ptest", "throughput", "--devtype", "crypto_aesni_mb", "--burst-sz", "32", "--pool-sz", "8192"])
        .args(["--total-ops", total_ops, "--buffer-sz", &buf, "--silent"])
        .args(&opts)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("dpdk-test-crypto-perf: {e} (install dpdk-dev with scripts/setup.sh)"))?;
    let task_dir = std::path::PathBuf::from(format!("/proc/{}/task", child.id()));
    let worker_cpu_ns = || -> Option<u64> {
        for t in std::fs::read_dir(&task_dir).ok()?.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.contains("worker") {
                return on_cpu_ns(&t.path().join("schedstat"));
            }
        }
        None
    };
    // Its worker thread's CPU time against wall time while it works: sampled every 20 ms, over
    // the intervals in which it ran at all (it sleeps during set-up and after the test).
    let mut prev: Option<(std::time::Instant, u64)> = None;
    let (mut busy_cpu, mut busy_wall) = (0.0, 0.0);
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if let Some(c) = worker_cpu_ns() {
            let now = std::time::Instant::now();
            if let Some((t, c0)) = prev
                && c > c0
            {
                busy_cpu += (c - c0) as f64 / 1e9;
                busy_wall += (now - t).as_secs_f64();
            }
            prev = Some((now, c));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let share = if busy_wall > 0.0 { busy_cpu / busy_wall } else { f64::NAN };
    let text = String::from_utf8_lossy(&out.stdout);
    // The result row: lcore, buffer size, burst size, enqueued, dequeued, failed enq, failed
    // deq, MOps, Gbps, cycles/buffer.
    let mops = text
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() >= 10 && cols[1] == buf).then(|| cols[7].parse::<f64>().ok()).flatten()
        })
        .next_back()
        .ok_or_else(|| {
            format!("no result from dpdk-test-crypto-perf:\n{text}{}", String::from_utf8_lossy(&out.stderr))
        })?;
    Ok((mops, share.min(1.0)))
}

/// The sending host on the gateway's LAN (10.1.0.0/24).
pub(crate) const LAN1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
/// The far LAN behind the peer, a /16: every frame goes to one of its hosts.
pub(crate) const LAN2: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 0);
/// The tunnel's ends: the gateway and its peer.
pub(crate) const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub(crate) const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Policy i's SPIs: outbound 0x10000 + i, inbound 0x20000 + i; SAs installed while forwarding
/// take 0x30000 + k.
const SPI_OUT: u32 = 0x10000;
const SPI_IN: u32 = 0x20000;
const SPI_LATE: u32 = 0x30000;

/// Returns the LAN2 host policy `i` protects (one policy per host when there are several).
pub(crate) fn lan2_host(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(LAN2) + 1 + i)
}

fn keys(xf: Transform, salt: u8) -> (Vec<u8>, Vec<u8>) {
    let k = |n: usize, s: u8| (0..n).map(|i| (i as u8).wrapping_mul(29).wrapping_add(s)).collect();
    (k(xf.cipher().key_len(), salt), k(xf.auth().key_len(), salt ^ 0x5a))
}

/// Returns how many frames the capture replays in a cycle. 132 frames (a whole number of IMIX
/// patterns, 132 source ports) stay in the cache at every size, so `rx` measures the pcap
/// driver and not memory: 1,024 frames of 1,420 bytes cost 440 to 480 cycles per frame to copy
/// in, more than the cipher's share of a 64-byte row. With more policies, one frame per policy.
pub(crate) fn capture_frames(policies: u32) -> usize {
    (132usize).max(policies as usize)
}

/// Writes one replay cycle of frames: plain LAN1 -> LAN2 UDP (outbound), or the same sealed by
/// the peer's SA (inbound). The destination MAC is broadcast: the gateway accepts it whatever
/// MAC the pcap device reports.
fn write_frames(
    path: &std::path::Path,
    xf: Transform,
    frame_sizes: &[usize],
    inbound: bool,
    policies: u32,
) -> Result<(), String> {
    let cycle = capture_frames(policies);
    let mut frames = Vec::new();
    for i in 0..cycle {
        let size = frame_sizes[i % frame_sizes.len()];
        let ip_len = size - 14;
        let mut p = vec![0u8; ip_len];
        let far = lan2_host(i as u32 % policies);
        // Outbound: LAN1 to the far host; inbound, what the peer tunnels back: the far host to LAN1.
        let (src, dst) = if inbound { (far, LAN1) } else { (LAN1, far) };
        ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: Protocol::Udp,
            payload_len: ip_len - 20,
            ttl: 64,
            tos: 0,
            ident: i as u16,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
        udp::Repr { src_port: 1024 + (i % 256) as u16, dst_port: 5001, payload_len: ip_len - 28 }
            .emit(&mut udp::Packet::new_unchecked(&mut p[20..]));
        frames.push(p);
    }
    if inbound {
        // The peer's SAs, one per policy, seal what the gateway will open.
        let (enc, auth) = keys(xf, 2);
        let mut sas = Vec::new();
        for i in 0..policies {
            let cfg = SaConfig {
                spi: SPI_IN + i,
                proto: IpsecProto::Esp,
                mode: Mode::Tunnel,
                src: PEER,
                dst: GW,
                xf,
                enc_key: &enc,
                auth_key: &auth,
                replay_window: 0,
                lifetimes: Lifetimes::default(),
                dont_fragment: DontFragment::Clear,
            };
            sas.push(Sa::new(&mut RustEngine, &cfg, 0).map_err(|e| e.to_string())?);
        }
        let mut sealed = Vec::new();
        for (i, p) in frames.iter().enumerate() {
            let mut b: Burst<HeapBuf> = [HeapBuf::from_slice(p)].into_iter().collect();
            let mut st = Stats::default();
            dataplane::esp::seal(&mut sas[i % policies as usize], &mut RustEngine, &mut b, &mut st);
            sealed.extend(b.iter().map(|p| p.data().to_vec()));
        }
        frames = sealed;
    }
    let mut eth = [0u8; 14];
    eth[..6].fill(0xff);
    eth[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    eth[12..].copy_from_slice(&[8, 0]);
    let mut cap = pcap::Capture::new(pcap::LinkType::Ethernet, pcap::ByteOrder::Little, pcap::TsPrecision::Micros);
    cap.records =
        frames.into_iter().map(|packet| pcap::Record { ts_sec: 0, ts_frac: 0, eth: Some(eth), packet }).collect();
    cap.write_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The gateway under test: LAN on port 0, WAN on port 1 (outbound: `in_dev` in, null out;
/// inbound the other way round), `policies` policies and their manual SA pairs.
fn setup(xf: Transform, inbound: bool, policies: u32, in_dev: &str) -> Setup {
    let out_dev = "net_null0";
    let (lan_dev, wan_dev) = if inbound { (out_dev, in_dev) } else { (in_dev, out_dev) };
    let (e_out, a_out) = keys(xf, 1);
    let (e_in, a_in) = keys(xf, 2);
    let sa = |policy_id, direction, spi, src, dst, enc: &[u8], auth: &[u8]| SaSetup {
        policy_id,
        direction,
        proto: IpsecProto::Esp,
        mode: Mode::Tunnel,
        spi,
        src,
        dst,
        xf,
        enc_key: zeroize::Zeroizing::new(enc.to_vec()),
        auth_key: zeroize::Zeroizing::new(auth.to_vec()),
        dont_fragment: DontFragment::Clear,
        lifetimes: Lifetimes::default(),
        // The replayed capture repeats its sequence numbers: anti-replay off, as for manual SAs.
        replay_window: 0,
        encap: None,
    };
    let lan1 = Prefix::new(u32::from(LAN1) & 0xffff_ff00, 24);
    let mut pols = Vec::new();
    let mut sas = Vec::new();
    for i in 0..policies {
        let id = i + 1;
        let dst = if policies == 1 { Prefix::new(u32::from(LAN2), 16) } else { Prefix::host(u32::from(lan2_host(i))) };
        pols.push(Policy {
            id,
            selector: Selector { src: lan1, dst, ..Selector::ANY },
            action: Action::Encrypt,
            level: Level::Require,
            mode: Mode::Tunnel,
            sa_src: GW,
            sa_dst: PEER,
            protocols: IpsecProtocols::Esp,
            dont_fragment: DontFragment::Clear,
        });
        sas.push(sa(id, Direction::Out, SPI_OUT + i, GW, PEER, &e_out, &a_out));
        sas.push(sa(id, Direction::In, SPI_IN + i, PEER, GW, &e_in, &a_in));
    }
    Setup {
        name: "bench".into(),
        ifaces: vec![
            IfaceSetup {
                name: "lan".into(),
                device: lan_dev.into(),
                addrs: vec![(Ipv4Addr::new(10, 1, 0, 1), 24)],
                mtu: 1500,
            },
            IfaceSetup { name: "wan".into(), device: wan_dev.into(), addrs: vec![(GW, 24)], mtu: 1500 },
        ],
        routes: vec![Route { prefix: LAN2, len: 16, next_hop: NextHop { port: 1, gateway: Some(PEER) } }],
        policies: pols,
        sas,
    }
}

/// `ipsecgw bench-run`: one measured round in this process (the orchestrator's child).
pub fn run_main(args: &[String]) -> ExitCode {
    let mut rest = args.to_vec();
    let Some(i) = rest.iter().position(|a| a == "--pcap") else {
        eprintln!("bench-run: --pcap FILE is required");
        return ExitCode::from(2);
    };
    let Some(pcap_path) = rest.get(i + 1).cloned() else {
        eprintln!("bench-run: --pcap FILE is required");
        return ExitCode::from(2);
    };
    rest.drain(i..i + 2);
    let generator = match rest.iter().position(|a| a == "--generator") {
        Some(g) => {
            rest.remove(g);
            true
        }
        None => false,
    };
    let a = match parse(&rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-run: {e}");
            return ExitCode::from(2);
        }
    };
    match round(&a, &pcap_path, generator) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-run: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tsc() -> u64 {
    lcore::tsc()
}

/// Returns a thread's time on a CPU so far, in nanoseconds: the first field of its
/// `/proc/<pid>/task/<tid>/schedstat`.
pub(crate) fn on_cpu_ns(schedstat: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(schedstat).ok()?.split_whitespace().next()?.parse().ok()
}

/// One round: the capture at `pcap_path` replayed by `net_pcap`, or with `generator` the same
/// frames from the built-in generator on the LAN queue (outbound only).
fn round(a: &Args, pcap_path: &str, generator: bool) -> Result<(), String> {
    let (xf, _) = transform(&a.transform)?;
    let prefix = format!("ipsecgw_bench_{}", std::process::id());
    let (in_vdev, source) = if generator {
        if a.inbound {
            return Err("the generator feeds outbound rounds only".into());
        }
        let cap = pcap::Capture::read_file(std::path::Path::new(pcap_path)).map_err(|e| format!("{pcap_path}: {e}"))?;
        let frames = cap.records.iter().map(|r| [&r.eth.unwrap_or_default()[..], &r.packet].concat()).collect();
        (format!("{GEN_DEV},no-rx=1"), Some(frames))
    } else {
        (format!("{PCAP_DEV},rx_pcap={pcap_path},infinite_rx=1"), None)
    };
    let eal_args = [
        "--no-pci",
        "--no-telemetry",
        "--file-prefix",
        &prefix,
        "-l",
        "0,1",
        "--vdev",
        &in_vdev,
        "--vdev",
        "net_null0,no-rx=1",
    ];
    let eal = Eal::init(eal_memory(a.hugepages).iter().chain(&eal_args)).map_err(|e| e.to_string())?;
    let result = measure(&eal, a, xf, source);
    drop(eal);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    result
}

fn measure(eal: &Eal, a: &Args, xf: Transform, generate: Option<Vec<Vec<u8>>>) -> Result<(), String> {
    let pool =
        Mempool::create(eal, &PoolConfig { mbufs: 32767, ..PoolConfig::default() }).map_err(|e| e.to_string())?;
    let in_dev = if generate.is_some() { GEN_DEV } else { PCAP_DEV };
    let mut want = setup(xf, a.inbound, a.policies, in_dev);
    let mut gw = Gateway::open(eal, &pool, &want)?;
    // net_null answers no ARP: the next hops are static entries.
    let peer_mac = [2, 0, 0, 0, 0, 2];
    gw.static_neighbor(1, PEER, peer_mac)?;
    gw.static_neighbor(0, LAN1, peer_mac)?;
    let mut w = gw.take_worker().ok_or("no worker")?;
    if let Some(frames) = generate {
        // Port 0 is the LAN, where outbound traffic comes in.
        w.ports_mut()[0].generate(Generator::new(&pool, &frames)?);
    }
    w.set_clock(tsc);
    let hz = lcore::tsc_hz();
    let now_ms = move || lcore::tsc() / (hz / 1000).max(1);
    // The worker thread's own CPU time, read by this thread through /proc: the cycles it spent
    // per packet even when other processes share its core (a measure that does not move with
    // the machine's other load, unlike the wall-clock rate).
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let job = lcore::launch(eal, 1, move || {
        let _ = tid_tx.send(std::fs::read_link("/proc/thread-self").ok());
        w.run(shutdown::requested, now_ms, 256);
        w
    })
    .map_err(|e| e.to_string())?;
    let schedstat = tid_rx.recv().ok().flatten().map(|p| std::path::Path::new("/proc").join(p).join("schedstat"));
    let worker_cpu_ns = || on_cpu_ns(schedstat.as_ref()?);
    std::thread::sleep(Duration::from_secs(a.warmup));
    let (s0, t0, c0) = (gw.stats(), lcore::tsc(), worker_cpu_ns());
    std::thread::sleep(Duration::from_secs(a.seconds));
    let (s1, t1, c1) = (gw.stats(), lcore::tsc(), worker_cpu_ns());
    // How fast SAs install while forwarding: as many new inbound SAs as there are policies
    // (at least 1,000), built and pushed through the ring, until the worker took them all.
    let late = a.policies.max(1000);
    let (enc, auth) = keys(xf, 3);
    for k in 0..late {
        let mut extra = want.sas[1].clone();
        extra.spi = SPI_LATE + k;
        extra.enc_key = zeroize::Zeroizing::new(enc.clone());
        extra.auth_key = zeroize::Zeroizing::new(auth.clone());
        want.sas.push(extra);
    }
    let t_install = std::time::Instant::now();
    gw.apply(&want)?;
    while gw.pending_messages() > 0 {
        std::thread::yield_now();
    }
    let install_secs = t_install.elapsed().as_secs_f64();
    shutdown::request();
    let w = job.join();
    gw.stop();
    let secs = (t1 - t0) as f64 / hz as f64;
    let pkts = s1.tx_packets - s0.tx_packets;
    let bytes = s1.tx_bytes - s0.tx_bytes;
    let mpps = pkts as f64 / secs / 1e6;
    let gbps = bytes as f64 * 8.0 / secs / 1e9;
    let cpp = if pkts == 0 { f64::NAN } else { (t1 - t0) as f64 / pkts as f64 };
    let on_cpu = match (c0, c1) {
        (Some(c0), Some(c1)) if c1 > c0 => (c1 - c0) as f64 / 1e9 / secs,
        _ => f64::NAN,
    };
    println!("RESULT mpps={mpps:.4} gbps={gbps:.4} cpp={cpp:.1} packets={pkts} oncpu={on_cpu:.3}");
    println!("ENGINE {}", w.engine());
    println!(
        "INSTALL {late} inbound SAs built and installed while forwarding in {install_secs:.3} s: {:.0} SAs/s",
        late as f64 / install_secs
    );
    // The SPD's flow caches over the measured window: with many policies, how many lookups
    // went to the classifier.
    let (o, i) = (s1.outbound_cache, s1.incoming_cache);
    let (o0, i0) = (s0.outbound_cache, s0.incoming_cache);
    println!(
        "CACHE outbound {} hits {} misses, incoming check {} hits {} misses",
        o.hits - o0.hits,
        o.misses - o0.misses,
        i.hits - i0.hits,
        i.misses - i0.misses
    );
    let drops: Vec<String> = s1.drops.nonzero().map(|(r, n)| format!("{}={n}", r.label())).collect();
    if !drops.is_empty() {
        println!("drops: {}", drops.join(" "));
    }
    let mut rt = Runtime::default();
    rt.merge(&w.stats().runtime);
    print!("RUNTIME\n{}", rt.table());
    // Every packet the window received must leave (net_null refuses none): a row whose traffic
    // is dropped or punted measures something else, and must not pass for a figure.
    let received = s1.rx_packets - s0.rx_packets;
    if pkts == 0 || received > pkts + pkts / 100 {
        let punted = s1.punted - s0.punted;
        return Err(format!("the gateway sent {pkts} of the {received} packets it received ({punted} punted)"));
    }
    Ok(())
}
