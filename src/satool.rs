//! `ipsecgw sa`: applies one manually keyed SA to every packet of a pcap file, through the same
//! dataplane ESP/AH stages and crypto engines the workers run. It exists so that other IPsec
//! implementations (Wireshark's dissector, scapy, a peer's captures) can check ours offline.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use dataplane::buf::{BURST, Burst, HeapBuf, PacketBuf};
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, KeyError, Transform};
use dataplane::replay::{DEFAULT_WINDOW, MAX_WINDOW};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};
use dataplane::stats::Stats;

use crate::pcap::{Capture, PcapError, Record};

const USAGE: &str = "usage: ipsecgw sa seal|open --proto esp|ah --mode tunnel|transport --spi N
                      --src A.B.C.D --dst A.B.C.D [--enc CIPHER:HEXKEY] [--auth AUTH:HEXKEY]
                      [--engine rust|ipsec-mb] [--seq N] [--window N] IN.pcap OUT.pcap

Seals (encapsulates) or opens (decapsulates) every packet of IN.pcap with one SA and writes the
survivors to OUT.pcap, keeping timestamps and Ethernet headers.

  --proto      esp or ah
  --mode       tunnel (the whole packet inside a new header from --src to --dst) or transport
               (the packet's own payload; only packets from --src to --dst)
  --spi        security parameter index, decimal or 0x hex
  --src/--dst  sa-src and sa-dst
  --enc        ESP cipher and key: null, des-cbc, 3des-cbc, aes-cbc-128, aes-cbc-192,
               aes-cbc-256, aes-gcm-128, aes-gcm-256 (GCM: the key is AES key || 4-byte salt);
               default null
  --auth       integrity and key: null, md5hmac, sha1hmac, sha256hmac; default null
  --engine     crypto engine: rust (RustCrypto, default) or ipsec-mb (x86-64 only)
  --seq        seal: the last sequence number already sent (the first packet gets N+1); default 0
  --window     open: anti-replay window in packets, 0 to disable; default 64, at most 1024

Pcap files: classic libpcap, either byte order, micro- or nanosecond timestamps; link types
Ethernet (1; non-IPv4 frames are skipped), raw IP (101) and IPv4 (228). OUT.pcap has the link
type, byte order and precision of IN.pcap.

Prints one line of totals and every drop reason to stderr. Exit status: 0 when every packet of
IN.pcap was written, 1 when some were dropped or skipped, 2 on a usage or configuration error.
";

/// Packets of a pcap beyond the headroom a fresh buffer has: room for the ESP trailer (padding
/// of up to one AES block, pad length, next header, a 16-byte ICV) after packets of any length,
/// not only those that fit a 2 KiB mbuf.
const TAILROOM: usize = 64;

/// Why `ipsecgw sa` could not run.
#[derive(Debug)]
enum Error {
    /// The command line is wrong.
    Usage(String),
    /// The keys do not suit the algorithms.
    Key(KeyError),
    /// The input could not be read or the output written.
    Pcap(PathBuf, PcapError),
    /// The requested engine could not start.
    Engine(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m} (see `ipsecgw sa --help`)"),
            Error::Key(e) => write!(f, "{e}"),
            Error::Pcap(p, e) => write!(f, "{}: {e}", p.display()),
            Error::Engine(e) => write!(f, "{e}"),
        }
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Key(e)
    }
}

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// Seal or open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Seal,
    Open,
}

/// Which engine does the crypto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EngineKind {
    Rust,
    IpsecMb,
}

/// The parsed command line (no `Debug`: it holds keys).
struct Options {
    dir: Direction,
    proto: IpsecProto,
    mode: Mode,
    spi: u32,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    xf: Transform,
    enc_key: Vec<u8>,
    auth_key: Vec<u8>,
    engine: EngineKind,
    seq: u32,
    window: u32,
    input: PathBuf,
    output: PathBuf,
}

/// Runs `ipsecgw sa` with the arguments after `sa`.
pub fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = parse(args).and_then(|opts| {
        let label = match opts.dir {
            Direction::Seal => "seal",
            Direction::Open => "open",
        };
        let report = match opts.engine {
            EngineKind::Rust => run(&opts, &mut RustEngine),
            EngineKind::IpsecMb => run_mb(&opts),
        }?;
        Ok((label, report))
    });
    match result {
        Ok((label, r)) => {
            let dropped = r.stats.total_dropped();
            eprintln!(
                "ipsecgw sa {label}: {} packets read, {} written, {dropped} dropped, {} non-IPv4 frames skipped",
                r.read, r.written, r.skipped
            );
            for (reason, n) in r.stats.nonzero() {
                eprintln!("  {}: {n}", reason.label());
            }
            if dropped == 0 && r.skipped == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("ipsecgw sa: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn run_mb(opts: &Options) -> Result<Report, Error> {
    let mut engine = dataplane::crypto::ipsec_mb::MbEngine::new().map_err(|e| Error::Engine(e.to_string()))?;
    run(opts, &mut engine)
}

#[cfg(not(target_arch = "x86_64"))]
fn run_mb(_opts: &Options) -> Result<Report, Error> {
    Err(Error::Engine("the ipsec-mb engine exists only on x86-64; use --engine rust".into()))
}

/// What a run did.
struct Report {
    read: usize,
    written: usize,
    skipped: usize,
    stats: Stats,
}

/// A packet buffer that remembers which record of the input it came from, so that survivors of
/// a burst (which the stages compact) find their timestamp and Ethernet header again.
struct Tagged {
    buf: HeapBuf,
    record: usize,
}

impl PacketBuf for Tagged {
    fn data(&self) -> &[u8] {
        self.buf.data()
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.buf.data_mut()
    }
    fn headroom(&self) -> usize {
        self.buf.headroom()
    }
    fn tailroom(&self) -> usize {
        self.buf.tailroom()
    }
    fn prepend(&mut self, n: usize) -> bool {
        self.buf.prepend(n)
    }
    fn append(&mut self, n: usize) -> bool {
        self.buf.append(n)
    }
    fn adj(&mut self, n: usize) -> bool {
        self.buf.adj(n)
    }
    fn trim(&mut self, n: usize) -> bool {
        self.buf.trim(n)
    }
}

/// Reads the input, applies the SA burst by burst, writes the survivors.
fn run<E: Engine>(opts: &Options, engine: &mut E) -> Result<Report, Error> {
    let input = Capture::read_file(&opts.input).map_err(|e| Error::Pcap(opts.input.clone(), e))?;
    let cfg = SaConfig {
        spi: opts.spi,
        proto: opts.proto,
        mode: opts.mode,
        src: opts.src,
        dst: opts.dst,
        xf: opts.xf,
        enc_key: &opts.enc_key,
        auth_key: &opts.auth_key,
        replay_window: opts.window,
        lifetimes: Lifetimes::default(),
        dont_fragment: DontFragment::Clear,
    };
    let mut sa = Sa::new(engine, &cfg, 0)?;
    sa.set_seq(opts.seq);
    let mut stats = Stats::default();
    let mut output = Capture::new(input.link, input.order, input.precision);
    for (first, chunk) in input.records.chunks(BURST).enumerate().map(|(i, c)| (i * BURST, c)) {
        let mut burst: Burst<Tagged> = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let room = HeapBuf::ROOM.max(HeapBuf::HEADROOM + r.packet.len() + TAILROOM);
                Tagged { buf: HeapBuf::with_room(&r.packet, HeapBuf::HEADROOM, room), record: first + i }
            })
            .collect();
        match (opts.dir, opts.proto) {
            (Direction::Seal, IpsecProto::Esp) => dataplane::esp::seal(&mut sa, engine, &mut burst, &mut stats),
            (Direction::Open, IpsecProto::Esp) => dataplane::esp::open(&mut sa, engine, &mut burst, &mut stats),
            (Direction::Seal, IpsecProto::Ah) => dataplane::ah::seal(&mut sa, engine, &mut burst, &mut stats),
            (Direction::Open, IpsecProto::Ah) => dataplane::ah::open(&mut sa, engine, &mut burst, &mut stats),
        }
        for p in &burst {
            let r = &input.records[p.record];
            output.records.push(Record { ts_sec: r.ts_sec, ts_frac: r.ts_frac, eth: r.eth, packet: p.data().to_vec() });
        }
    }
    output.write_file(&opts.output).map_err(|e| Error::Pcap(opts.output.clone(), e))?;
    Ok(Report {
        read: input.records.len() + input.skipped,
        written: output.records.len(),
        skipped: input.skipped,
        stats,
    })
}

/// Parses the arguments after `sa`.
fn parse(args: &[String]) -> Result<Options, Error> {
    let mut it = args.iter();
    let dir = match it.next().map(String::as_str) {
        Some("seal") => Direction::Seal,
        Some("open") => Direction::Open,
        Some(other) => return Err(usage(format!("unknown action `{other}`: expected seal or open"))),
        None => return Err(usage("missing action: seal or open")),
    };
    let (mut proto, mut mode, mut spi, mut src, mut dst) = (None, None, None, None, None);
    let (mut enc, mut auth, mut engine, mut seq, mut window) = (None, None, None, None, None);
    let mut files = Vec::new();
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            files.push(PathBuf::from(arg));
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let value = match inline.or_else(|| it.next().cloned()) {
            Some(v) => v,
            None => return Err(usage(format!("{name} needs a value"))),
        };
        let slot = match name {
            "--proto" => &mut proto,
            "--mode" => &mut mode,
            "--spi" => &mut spi,
            "--src" => &mut src,
            "--dst" => &mut dst,
            "--enc" => &mut enc,
            "--auth" => &mut auth,
            "--engine" => &mut engine,
            "--seq" => &mut seq,
            "--window" => &mut window,
            _ => return Err(usage(format!("unknown option `{name}`"))),
        };
        if slot.replace(value).is_some() {
            return Err(usage(format!("{name} given twice")));
        }
    }
    let [input, output]: [PathBuf; 2] = files
        .try_into()
        .map_err(|f: Vec<PathBuf>| usage(format!("expected IN.pcap and OUT.pcap, got {} file names", f.len())))?;
    let need = |v: Option<String>, name: &str| v.ok_or_else(|| usage(format!("missing {name}")));
    let proto = match need(proto, "--proto")?.as_str() {
        "esp" => IpsecProto::Esp,
        "ah" => IpsecProto::Ah,
        p => return Err(usage(format!("unknown --proto `{p}`: expected esp or ah"))),
    };
    let mode = match need(mode, "--mode")?.as_str() {
        "tunnel" => Mode::Tunnel,
        "transport" => Mode::Transport,
        m => return Err(usage(format!("unknown --mode `{m}`: expected tunnel or transport"))),
    };
    let spi = parse_u32(&need(spi, "--spi")?, "--spi")?;
    let src = parse_addr(&need(src, "--src")?, "--src")?;
    let dst = parse_addr(&need(dst, "--dst")?, "--dst")?;
    let (cipher, enc_key) = match enc {
        Some(s) => parse_alg(&s, "--enc", Cipher::from_name)?,
        None => (Cipher::Null, Vec::new()),
    };
    let (auth, auth_key) = match auth {
        Some(s) => parse_alg(&s, "--auth", Auth::from_name)?,
        None => (Auth::Null, Vec::new()),
    };
    let xf = match proto {
        IpsecProto::Esp => Transform::new(cipher, auth)?,
        IpsecProto::Ah if cipher != Cipher::Null => return Err(usage("AH does not encrypt: drop --enc")),
        // RFC 4302 has no null integrity: an AH SA without an ICV protects nothing.
        IpsecProto::Ah if auth == Auth::Null => return Err(usage("AH needs --auth md5hmac, sha1hmac or sha256hmac")),
        IpsecProto::Ah => Transform::auth_only(auth)?,
    };
    let engine = match engine.as_deref() {
        None | Some("rust") => EngineKind::Rust,
        Some("ipsec-mb") => EngineKind::IpsecMb,
        Some(e) => return Err(usage(format!("unknown --engine `{e}`: expected rust or ipsec-mb"))),
    };
    if dir == Direction::Open && seq.is_some() {
        return Err(usage("--seq applies to seal: an inbound SA has no sequence number to send"));
    }
    if dir == Direction::Seal && window.is_some() {
        return Err(usage("--window applies to open: an outbound SA has no replay window"));
    }
    let seq = seq.map(|s| parse_u32(&s, "--seq")).transpose()?.unwrap_or(0);
    let window = window.map(|w| parse_u32(&w, "--window")).transpose()?.unwrap_or(DEFAULT_WINDOW);
    if window > MAX_WINDOW {
        return Err(usage(format!("--window {window} is larger than the largest window, {MAX_WINDOW}")));
    }
    Ok(Options { dir, proto, mode, spi, src, dst, xf, enc_key, auth_key, engine, seq, window, input, output })
}

/// Parses a decimal or `0x` hexadecimal 32-bit number.
fn parse_u32(s: &str, name: &str) -> Result<u32, Error> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| usage(format!("{name} `{s}` is not a 32-bit number (decimal or 0x hex)")))
}

fn parse_addr(s: &str, name: &str) -> Result<Ipv4Addr, Error> {
    s.parse().map_err(|_| usage(format!("{name} `{s}` is not an IPv4 address")))
}

/// Parses `NAME:HEXKEY` (or a bare `null`) with `from_name` for the algorithm.
fn parse_alg<A>(s: &str, name: &str, from_name: fn(&str) -> Option<A>) -> Result<(A, Vec<u8>), Error> {
    let (alg, hex_key) = s.split_once(':').unwrap_or((s, ""));
    let a = from_name(alg).ok_or_else(|| usage(format!("{name}: unknown algorithm `{alg}`")))?;
    let digits = hex_key.strip_prefix("0x").unwrap_or(hex_key);
    let key = hex::decode(digits).map_err(|_| usage(format!("{name}: the key of {alg} must be hex digits")))?;
    Ok((a, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::{ByteOrder, LinkType, TsPrecision};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_a_full_command_line() {
        let o = parse(&args(
            "seal --proto esp --mode tunnel --spi 0x1000 --src 10.0.0.1 --dst 10.0.0.2 \
             --enc aes-gcm-128:000102030405060708090a0b0c0d0e0f01020304 --engine ipsec-mb --seq 41 in.pcap out.pcap",
        ))
        .unwrap();
        assert_eq!(
            (o.dir, o.proto, o.mode, o.spi, o.seq),
            (Direction::Seal, IpsecProto::Esp, Mode::Tunnel, 0x1000, 41)
        );
        assert_eq!(o.xf, Transform::new(Cipher::AesGcm128, Auth::Null).unwrap());
        assert_eq!((o.enc_key.len(), o.auth_key.len(), o.engine), (20, 0, EngineKind::IpsecMb));
        assert_eq!((o.input, o.output), (PathBuf::from("in.pcap"), PathBuf::from("out.pcap")));
        assert_eq!(o.window, DEFAULT_WINDOW);
    }

    /// Returns an IPv4/UDP packet from 10.0.0.1 to 10.0.0.2 with `n` payload bytes.
    fn udp(n: usize) -> Vec<u8> {
        let total = 28 + n;
        let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        let sum = ipv4_checksum(&p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(&[0x10, 0x00, 0x20, 0x00, 0, (8 + n) as u8, 0, 0]);
        p.extend((0..n).map(|i| i as u8));
        p
    }

    fn ipv4_checksum(h: &[u8]) -> u16 {
        let mut sum: u32 = h.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn seals_and_opens_a_capture_keeping_timestamps_and_ethernet_headers() {
        let dir = std::env::temp_dir().join(format!("ipsecgw-satool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (plain, sealed, opened) = (dir.join("plain.pcap"), dir.join("sealed.pcap"), dir.join("opened.pcap"));
        let mut cap = Capture::new(LinkType::Ethernet, ByteOrder::Big, TsPrecision::Nanos);
        for (i, n) in [0usize, 1, 100, 1400].into_iter().enumerate() {
            let mut eth = [i as u8; 14];
            eth[12..].copy_from_slice(&[0x08, 0x00]);
            cap.records.push(Record { ts_sec: i as u32, ts_frac: 7, eth: Some(eth), packet: udp(n) });
        }
        cap.write_file(&plain).unwrap();
        let sa = "--proto esp --mode transport --spi 0x99 --src 10.0.0.1 --dst 10.0.0.2 \
                  --enc aes-cbc-256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f --auth md5hmac:0x00112233445566778899aabbccddeeff";
        let run_one = |cmd: String| {
            let opts = parse(&args(&cmd)).unwrap();
            run(&opts, &mut RustEngine).unwrap()
        };
        let r = run_one(format!("seal {sa} --seq 9 {} {}", plain.display(), sealed.display()));
        assert_eq!((r.read, r.written, r.stats.total_dropped()), (4, 4, 0));
        let s = Capture::read_file(&sealed).unwrap();
        assert_eq!((s.link, s.order, s.precision), (cap.link, cap.order, cap.precision));
        assert!(s.records.iter().all(|r| r.packet[9] == 50), "ESP");
        assert_eq!(u32::from_be_bytes(s.records[0].packet[24..28].try_into().unwrap()), 10, "--seq 9: first is 10");
        let r = run_one(format!("open {sa} {} {}", sealed.display(), opened.display()));
        assert_eq!((r.written, r.stats.total_dropped()), (4, 0));
        assert_eq!(Capture::read_file(&opened).unwrap().records, cap.records);
        // Replayed: the same packets again in one capture are dropped by the window.
        let mut twice = s.clone();
        twice.records.extend(s.records.clone());
        twice.write_file(&sealed).unwrap();
        let r = run_one(format!("open {sa} {} {}", sealed.display(), opened.display()));
        assert_eq!((r.written, r.stats.dropped(dataplane::stats::DropReason::Replayed)), (4, 4));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_command_lines() {
        let base = "--mode transport --spi 7 --src 1.1.1.1 --dst 2.2.2.2";
        for bad in [
            format!("frob --proto esp {base} --auth sha1hmac:00 a b"),
            format!("seal --proto esp {base} --auth sha1hmac:00 a"),
            format!("seal --proto esp {base} --auth sha2hmac:00 a b"),
            format!("seal --proto esp {base} --auth sha1hmac:0g a b"),
            format!("seal --proto esp {base} a b"),
            format!("seal --proto ah {base} --enc aes-cbc-128:00 --auth md5hmac:00 a b"),
            format!("seal --proto ah {base} a b"),
            format!("open --proto esp {base} --auth md5hmac:00 --seq 3 a b"),
            format!("seal --proto esp {base} --auth md5hmac:00 --window 3 a b"),
            format!("open --proto esp {base} --auth md5hmac:00 --window 5000 a b"),
            format!("seal --proto esp {base} --spi 8 --auth md5hmac:00 a b"),
            format!("seal --proto esp {base} --enc aes-gcm-128:00 --auth md5hmac:00 a b"),
            "seal --proto esp --mode tunnel --spi 4294967296 --src 1.1.1.1 --dst 2.2.2.2 a b".to_string(),
        ] {
            assert!(parse(&args(&bad)).is_err(), "{bad}");
        }
    }
}
