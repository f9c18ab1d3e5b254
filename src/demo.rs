//! `ipsecgw demo`: two gateways, R1 and R2, with the manual's topology on DPDK virtual devices
//! (a LAN behind each, a WAN between them, all crossed `net_ring` pairs in one process), manual
//! SAs configured from RouterOS-style config files, and a built-in traffic generator on each
//! LAN whose packets must come out of the other LAN intact. R1's worker runs alone on lcore 1;
//! R2's worker, both LAN hosts and the slow paths share the main lcore.

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dataplane::buf::{BURST, Burst, PacketBuf};
use dataplane::pipeline::{Direction, WorkerStats};
use dataplane::port::Port;
use dataplane::stats::DropReason;
use dataplane::wire::{Protocol, arp, ethernet, ipv4, udp};
use dataplane::worker::Cadence;
use ipsecgw::dpdk::{Eal, EthPort, EthQueue, Mbuf, Mempool, PoolConfig, PortConfig, lcore, shutdown};
use ipsecgw::gateway::{Gateway, Setup};

const USAGE: &str = "usage: ipsecgw demo [--seconds N] [--size BYTES] [--r1 FILE] [--r2 FILE]
  --seconds N   how long traffic runs (default 5)
  --size BYTES  Ethernet frame size of the generated packets, 64..=1514 (default 64)
  --r1, --r2    the routers' configurations (default tests/fixtures/demo/r1.rsc and r2.rsc; `builtin` for the same in code)";

struct Args {
    seconds: u64,
    size: usize,
    r1: String,
    r2: String,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a =
        Args { seconds: 5, size: 64, r1: "tests/fixtures/demo/r1.rsc".into(), r2: "tests/fixtures/demo/r2.rsc".into() };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = val()?.parse().map_err(|_| "--seconds takes a number")?,
            "--size" => a.size = val()?.parse().map_err(|_| "--size takes a number")?,
            "--r1" => a.r1 = val()?,
            "--r2" => a.r2 = val()?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(64..=1514).contains(&a.size) {
        return Err("--size must be 64..=1514".into());
    }
    Ok(a)
}

pub fn run(args: &[String]) -> ExitCode {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("demo: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match demo(&a) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A host on a LAN: answers ARP for its address, sends UDP to the far host through its
/// gateway, and checks what arrives.
struct Host {
    q: EthQueue,
    pool: Mempool,
    ip: Ipv4Addr,
    mac: [u8; 6],
    peer: Ipv4Addr,
    frame: Vec<u8>,
    seq: u64,
    sent: u64,
    refused: u64,
    got: u64,
    got_bytes: u64,
    bad: u64,
}

/// Bytes of the frame after the sequence number that a receiver checks.
const PATTERN_AT: usize = 14 + 20 + 8 + 8;

impl Host {
    fn new(q: EthQueue, pool: Mempool, ip: Ipv4Addr, peer: Ipv4Addr, gw_mac: [u8; 6], size: usize) -> Host {
        let mac = [2, 0x42, 0, 0, 0, ip.octets()[1]];
        let mut frame = vec![0u8; size];
        let ip_len = size - 14;
        {
            let mut eth = ethernet::Packet::new_unchecked(&mut frame[..]);
            eth.set_dst_addr(ethernet::Address(gw_mac));
            eth.set_src_addr(ethernet::Address(mac));
            eth.set_ethertype(ethernet::EtherType::Ipv4);
        }
        ipv4::Repr {
            src_addr: ip,
            dst_addr: peer,
            protocol: Protocol::Udp,
            payload_len: ip_len - 20,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut frame[14..]));
        udp::Repr { src_port: 5000, dst_port: 5001, payload_len: ip_len - 28 }
            .emit(&mut udp::Packet::new_unchecked(&mut frame[34..]));
        for (i, b) in frame[PATTERN_AT.min(size)..].iter_mut().enumerate() {
            *b = i as u8;
        }
        Host { q, pool, ip, mac, peer, frame, seq: 0, sent: 0, refused: 0, got: 0, got_bytes: 0, bad: 0 }
    }

    /// Sends one burst of generated packets.
    fn send(&mut self) {
        let mut b: Burst<Mbuf> = Burst::new();
        if !self.pool.alloc_bulk(&mut b, BURST) {
            return;
        }
        for m in b.iter_mut() {
            if !m.append(self.frame.len()) {
                continue;
            }
            let d = m.data_mut();
            d.copy_from_slice(&self.frame);
            self.seq += 1;
            // Flows differ by source port, as a generator's would; the sequence number rides in
            // the payload.
            d[34..36].copy_from_slice(&(5000 + (self.seq % 64) as u16).to_be_bytes());
            if d.len() >= PATTERN_AT {
                d[42..50].copy_from_slice(&self.seq.to_be_bytes());
            }
        }
        let n = b.len();
        let sent = self.q.tx_burst(&mut b);
        self.sent += sent as u64;
        self.refused += (n - sent) as u64;
    }

    /// Receives what arrived: answers ARP, checks the UDP packets.
    fn receive(&mut self) {
        let mut rx: Burst<Mbuf> = Burst::new();
        self.q.rx_burst(&mut rx);
        let mut replies: Burst<Mbuf> = Burst::new();
        for mut m in rx.drain(..) {
            let is_arp =
                ethernet::Packet::new_checked(m.data()).is_ok_and(|e| e.ethertype() == ethernet::EtherType::Arp);
            if is_arp {
                if self.arp_reply(m.data_mut()) {
                    replies.push(m);
                }
                continue;
            }
            if self.check(m.data()) {
                self.got += 1;
                self.got_bytes += m.len() as u64;
            } else {
                self.bad += 1;
            }
        }
        if !replies.is_empty() {
            self.q.tx_burst(&mut replies);
        }
    }

    fn arp_reply(&self, f: &mut [u8]) -> bool {
        let Ok(r) = arp::Packet::new_checked(&f[14..]).and_then(|p| arp::Repr::parse(&p)) else { return false };
        if r.operation != arp::Operation::Request || r.target_protocol_addr != self.ip {
            return false;
        }
        arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: ethernet::Address(self.mac),
            source_protocol_addr: self.ip,
            target_hardware_addr: r.source_hardware_addr,
            target_protocol_addr: r.source_protocol_addr,
        }
        .emit(&mut arp::Packet::new_unchecked(&mut f[14..]));
        let mut eth = ethernet::Packet::new_unchecked(f);
        eth.set_dst_addr(r.source_hardware_addr);
        eth.set_src_addr(ethernet::Address(self.mac));
        true
    }

    /// Checks an arriving frame: from the far host to us, through two routers (TTL 62), the
    /// header checksum right, and the payload exactly as generated.
    fn check(&self, f: &[u8]) -> bool {
        if f.len() != self.frame.len() || f[..6] != self.mac {
            return false;
        }
        let Ok(ip) = ipv4::Packet::new_checked(&f[14..]) else { return false };
        let header_ok =
            ip.verify_checksum() && ip.src_addr() == self.peer && ip.dst_addr() == self.ip && ip.ttl() == 62;
        header_ok && (f.len() <= PATTERN_AT || f[PATTERN_AT..].iter().enumerate().all(|(i, &b)| b == i as u8))
    }
}

/// Counters at one instant, for rates.
#[derive(Clone, Default)]
struct Snap {
    r1: WorkerStats,
    r2: WorkerStats,
    h1_got: u64,
    h1_bytes: u64,
    h2_got: u64,
    h2_bytes: u64,
    h1_sent: u64,
    h2_sent: u64,
}

fn rate(n: u64, dt: f64) -> f64 {
    n as f64 / dt
}

fn drops_line(s: &WorkerStats) -> String {
    let v: Vec<String> = s.drops.nonzero().map(|(r, n)| format!("{}={n}", r.label())).collect();
    if v.is_empty() { "none".into() } else { v.join(" ") }
}

fn demo(a: &Args) -> Result<bool, String> {
    let r1_setup = load(&a.r1, "R1")?;
    let r2_setup = load(&a.r2, "R2")?;
    shutdown::install().map_err(|e| e.to_string())?;
    let prefix = format!("ipsecgw_demo_{}", std::process::id());
    let eal_args = ["--no-huge", "-m", "1024", "--no-pci", "--no-telemetry", "--file-prefix", &prefix, "-l", "0,1"];
    let eal = Eal::init(eal_args).map_err(|e| e.to_string())?;
    let result = run_demo(&eal, a, r1_setup, r2_setup);
    drop(eal);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    result
}

fn load(path: &str, name: &str) -> Result<Setup, String> {
    if path == "builtin" {
        return Ok(crate::builtin::setup(if name == "R1" { 1 } else { 2 }));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut s = crate::config::setup_from_script(&text).map_err(|e| format!("{path}: {e}"))?;
    s.name = name.into();
    Ok(s)
}

fn run_demo(eal: &Eal, a: &Args, r1_setup: Setup, r2_setup: Setup) -> Result<bool, String> {
    let pool =
        Mempool::create(eal, &PoolConfig { mbufs: 16383, ..PoolConfig::default() }).map_err(|e| e.to_string())?;
    // The links: LAN1 (host h1 ↔ R1), WAN (R1 ↔ R2), LAN2 (R2 ↔ host h2); the config files
    // name the gateway ends net_ring_r1lan, net_ring_r1wan, net_ring_r2wan, net_ring_r2lan.
    let slots = 4096;
    let [h1_dev, _] = EthPort::ring_pair(eal, "h1", "r1lan", 1, slots).map_err(|e| e.to_string())?;
    EthPort::ring_pair(eal, "r1wan", "r2wan", 1, slots).map_err(|e| e.to_string())?;
    let [_, h2_dev] = EthPort::ring_pair(eal, "r2lan", "h2", 1, slots).map_err(|e| e.to_string())?;
    let mut r1 = Gateway::open(eal, &pool, &r1_setup)?;
    let mut r2 = Gateway::open(eal, &pool, &r2_setup)?;
    let mut h1_port = EthPort::open(eal, &h1_dev, &pool, &PortConfig::default()).map_err(|e| e.to_string())?;
    let mut h2_port = EthPort::open(eal, &h2_dev, &pool, &PortConfig::default()).map_err(|e| e.to_string())?;
    h1_port.start().map_err(|e| e.to_string())?;
    h2_port.start().map_err(|e| e.to_string())?;
    let lan_ip = |s: &Setup| s.ifaces.first().and_then(|i| i.addrs.first()).map(|&(a, _)| a).ok_or("no LAN address");
    let (r1_lan, r2_lan) = (lan_ip(&r1_setup)?, lan_ip(&r2_setup)?);
    // The hosts: .10 on LAN1 and .20 on LAN2, sending to each other through their gateways.
    let h1_ip = Ipv4Addr::from(u32::from(r1_lan) & 0xffff_ff00 | 10);
    let h2_ip = Ipv4Addr::from(u32::from(r2_lan) & 0xffff_ff00 | 20);
    let mac_of = |gw: &Gateway| gw.mac(0).unwrap_or_default();
    let mut h1 =
        Host::new(h1_port.queue(0).map_err(|e| e.to_string())?, pool.clone(), h1_ip, h2_ip, mac_of(&r1), a.size);
    let mut h2 =
        Host::new(h2_port.queue(0).map_err(|e| e.to_string())?, pool.clone(), h2_ip, h1_ip, mac_of(&r2), a.size);

    println!("ipsecgw demo: UDP frames of {} bytes for {} s", a.size, a.seconds);
    println!("  LAN1 {h1_ip} --- R1 [{}] ==ESP== R2 [{}] --- LAN2 {h2_ip}", r1_setup.name, r2_setup.name);
    println!("  R1 worker on lcore 1; R2 worker, the hosts and the slow paths on lcore 0\n");

    let tsc_hz = lcore::tsc_hz();
    let now_ms = move || lcore::tsc() / (tsc_hz / 1000).max(1);
    let mut w1 = r1.take_worker().ok_or("R1 worker")?;
    let job = lcore::launch(eal, 1, move || {
        w1.run(shutdown::requested, now_ms, 64);
        w1
    })
    .map_err(|e| e.to_string())?;
    let mut w2 = r2.take_worker().ok_or("R2 worker")?;

    // Let ARP settle before the traffic starts: one burst each way, then the gateways resolve
    // their next hops (the first packets wait in the slow paths meanwhile).
    h1.send();
    h2.send();
    let settle = Instant::now() + Duration::from_millis(300);
    while Instant::now() < settle {
        let t = now_ms();
        w2.poll_once(t);
        h1.receive();
        h2.receive();
        r1.poll_slow(t);
        r2.poll_slow(t);
    }
    let (warm1, warm2) = (h1.got, h2.got);
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut last = Snap::default();
    let mut last_t = start;
    let mut next_print = start + Duration::from_secs(1);
    let mut slow_turn = Cadence::new(64, now_ms());
    while Instant::now() < end && !shutdown::requested() {
        let t = now_ms();
        h1.send();
        h2.send();
        for _ in 0..2 {
            w2.poll_once(t);
        }
        h1.receive();
        h2.receive();
        if slow_turn.due(t) {
            w2.publish();
            r1.poll_slow(t);
            r2.poll_slow(t);
        }
        if Instant::now() >= next_print {
            next_print += Duration::from_secs(1);
            w2.publish();
            let snap = Snap {
                r1: r1.stats(),
                r2: r2.stats(),
                h1_got: h1.got,
                h1_bytes: h1.got_bytes,
                h2_got: h2.got,
                h2_bytes: h2.got_bytes,
                h1_sent: h1.sent,
                h2_sent: h2.sent,
            };
            let now = Instant::now();
            print_rates(now.duration_since(start).as_secs(), &last, &snap, now.duration_since(last_t).as_secs_f64());
            // The installed SAs: R1's as its worker reported them (asked a second ago, answered
            // through the slow path), R2's read directly from its worker on this lcore.
            let mut r1_sas = r1.slow.take_snapshots();
            r1_sas.sort_by_key(|s| (s.direction == Direction::In, s.spi));
            let r1_line: Vec<String> = r1_sas.iter().map(sa_brief).collect();
            let mut r2_line = Vec::new();
            w2.pipeline().for_each_sa(|dir, _, sa| {
                r2_line.push(format!(
                    "{} spi={} {}pkts",
                    if dir == Direction::Out { "out" } else { "in" },
                    sa.spi(),
                    sa.counters().packets
                ))
            });
            r2_line.sort();
            println!("        SAs R1: {} | R2: {}", r1_line.join(", "), r2_line.join(", "));
            r1.request_snapshot();
            last = snap;
            last_t = now;
        }
    }
    shutdown::request();
    let w1 = job.join();
    // Drain what is in flight, so that every mbuf is back in the pool at the end.
    let mut w1 = w1;
    for _ in 0..256 {
        w1.poll_once(now_ms());
        w2.poll_once(now_ms());
        h1.receive();
        h2.receive();
        r1.poll_slow(now_ms());
        r2.poll_slow(now_ms());
    }
    println!("\n  (warm-up: {warm1} and {warm2} packets delivered while ARP settled, before the clock)");
    w2.publish();
    let total = start.elapsed().as_secs_f64();
    println!("\n== totals over {total:.1} s");
    let (s1, s2) = (w1.stats().clone(), w2.stats().clone());
    for (name, h, other) in [("LAN1 -> LAN2", &h1, &h2), ("LAN2 -> LAN1", &h2, &h1)] {
        println!(
            "  {name}: sent {} (refused by the full LAN ring {}), delivered intact {} ({:.3} Mpps), corrupted {}",
            h.sent,
            h.refused,
            other.got,
            rate(other.got, total) / 1e6,
            other.bad
        );
    }
    for (name, s) in [("R1", &s1), ("R2", &s2)] {
        println!(
            "  {name} worker: rx {} tx {} forwarded {} punted {} arp-replies {} | drops: {}",
            s.rx_packets,
            s.tx_packets,
            s.forwarded,
            s.punted,
            s.arp_replies,
            drops_line(s)
        );
    }
    println!("\n== installed SAs");
    for (name, w) in [("R1", &w1), ("R2", &w2)] {
        println!("  {name}:");
        w.pipeline().for_each_sa(|dir, policy_id, sa| {
            let xf = sa.transform();
            let c = sa.counters();
            println!(
                "    spi={} sa-type={} direction={} state={} enc-algorithm={} auth-algorithm={} src-address={} \
                 dst-address={} policy-id={policy_id} current-bytes={} packets={}",
                sa.spi(),
                if sa.proto() == dataplane::sa::IpsecProto::Esp { "esp" } else { "ah" },
                if dir == Direction::Out { "out" } else { "in" },
                format!("{:?}", sa.state()).to_lowercase(),
                xf.cipher().name(),
                xf.auth().name(),
                sa.src(),
                sa.dst(),
                c.bytes,
                c.packets
            );
        });
    }
    r1.stop();
    r2.stop();
    h1_port.stop().ok();
    h2_port.stop().ok();
    let ok = h1.bad == 0 && h2.bad == 0 && h1.got > 0 && h2.got > 0 && s1.drops.dropped(DropReason::AuthFailed) == 0;
    println!(
        "\ndemo: {}",
        if ok { "traffic crossed the WAN encrypted and came out intact both ways" } else { "FAILED" }
    );
    Ok(ok)
}

fn sa_brief(s: &dataplane::ctl::SaSnapshot) -> String {
    format!("{} spi={} {}pkts", if s.direction == Direction::Out { "out" } else { "in" }, s.spi, s.counters.packets)
}

fn print_rates(t: u64, a: &Snap, b: &Snap, dt: f64) {
    let mpps = |x: u64, y: u64| rate(y - x, dt) / 1e6;
    let gbps = |x: u64, y: u64| rate(y - x, dt) * 8.0 / 1e9;
    println!(
        "t={t:>2}s  LAN1->LAN2 {:.3} Mpps {:.3} Gbit/s | LAN2->LAN1 {:.3} Mpps {:.3} Gbit/s",
        mpps(a.h2_got, b.h2_got),
        gbps(a.h2_bytes, b.h2_bytes),
        mpps(a.h1_got, b.h1_got),
        gbps(a.h1_bytes, b.h1_bytes),
    );
    for (name, x, y) in [("R1 (lcore 1)", &a.r1, &b.r1), ("R2 (lcore 0)", &a.r2, &b.r2)] {
        println!(
            "        {name}: rx {:.3} Mpps tx {:.3} Mpps {:.3} Gbit/s | drops: {}",
            mpps(x.rx_packets, y.rx_packets),
            mpps(x.tx_packets, y.tx_packets),
            gbps(x.tx_bytes, y.tx_bytes),
            drops_line(y)
        );
    }
    let _ = (a.h1_sent, b.h2_sent);
}
