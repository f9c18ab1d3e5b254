//! Hostile traffic through the running gateway: its WAN port (DPDK `net_pcap`, replaying without
//! end) receives a mix of floods while its LAN port replays legitimate traffic to be sealed:
//! ESP with unknown SPIs, ESP with a valid SPI and a bad ICV, truncated frames, IPv4 headers
//! with bad lengths, fragments of ESP addressed to us, IP options, frames over the MTU, an ARP
//! storm, and an IKE flood (main-mode first messages from the configured peer's address with
//! ever new cookies, and from spoofed sources with no peer), with valid ESP among them.
//!
//! Legitimate traffic must keep flowing both ways at a measured rate, every bad packet must be
//! counted under its reason in the proportions the capture holds, half-open IKE exchanges must
//! stay bounded (the oldest give way), and neither process may grow.

mod ctl_support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use control::cli::Console;
use control::config::Config;
use control::ike::{Endpoint, EndpointConfig};
use ctl_support::{BIN, Gateway, TempDir, write_pcap, write_udp_pcap};
use rand_core::SeedableRng;

const GW_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x22];
/// The inbound SA of the configuration: SPI 258, AES-GCM-128 with k1.
const K1: &str = "000102030405060708090a0b0c0d0e0fcafebabe";

/// Per replay of the WAN capture.
const UNKNOWN_SPI: usize = 100;
const BAD_ICV: usize = 100;
const VALID_ESP: usize = 100;
const TRUNCATED: usize = 50;
const BAD_HEADER: usize = 50;
const FRAGMENTS: usize = 50;
const ARP_STORM: usize = 100;
const OPTIONS: usize = 50;
const OVERSIZED: usize = 50;
/// Measured seconds per flood, and for all of them at once.
const WINDOW_ONE: Duration = Duration::from_secs(3);
const WINDOW_ALL: Duration = Duration::from_secs(6);
const IKE_FROM_PEER: usize = 300;
const IKE_SPOOFED: usize = 200;

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (no options unless given) with its checksum.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let hlen = 20 + options.len();
    let mut p = vec![0x40 | (hlen / 4) as u8, 0];
    p.extend_from_slice(&((hlen + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An Ethernet frame to the broadcast address (the gateway takes any broadcast frame).
fn frame(src_mac: [u8; 6], ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn arp(op: u16, sender_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sender_mac);
    a.extend_from_slice(&sender.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    let mut f = frame(sender_mac, 0x0806, &a);
    f.resize(60, 0);
    f
}

/// Reads the frames of a classic little-endian pcap file.
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    let mut off = 24;
    let mut v = Vec::new();
    while off + 16 <= b.len() {
        let len = u32::from_le_bytes(b[off + 8..off + 12].try_into().unwrap()) as usize;
        v.push(b[off + 16..off + 16 + len].to_vec());
        off += 16 + len;
    }
    v
}

/// `n` valid ESP frames from the peer (SPI 258, sequence numbers 1..=n), sealed by
/// `ipsecgw sa seal` from plain UDP packets LAN2 → LAN1.
fn valid_esp(dir: &TempDir, n: usize) -> Vec<Vec<u8>> {
    let plain: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let p = ipv4(
                Ipv4Addr::new(10, 2, 0, 5),
                Ipv4Addr::new(10, 1, 0, 5),
                17,
                &[],
                &udp(53, 1000 + i as u16, &[7; 40]),
            );
            frame(PEER_MAC, 0x0800, &p)
        })
        .collect();
    let (inp, out) = (dir.path("plain.pcap"), dir.path("sealed.pcap"));
    write_pcap(&inp, &plain);
    let st = Command::new(BIN)
        .args(["sa", "seal", "--proto", "esp", "--mode", "tunnel", "--spi", "258", "--src", "192.0.2.2"])
        .args(["--dst", "192.0.2.1", "--enc", &format!("aes-gcm-128:{K1}")])
        .arg(&inp)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "ipsecgw sa seal");
    let v = read_pcap(&out);
    assert_eq!(v.len(), n);
    v
}

/// Main-mode first messages, each from a fresh initiator (its own cookies), as our own engine
/// builds them for a peer configured like the gateway's.
fn ike_first_messages(n: usize) -> Vec<Vec<u8>> {
    let mut c = Console::new(Config::new());
    for l in [
        "/ip ipsec proposal add name=p".to_string(),
        format!("/ip ipsec peer add address={GW_WAN}"),
        format!("/ip ipsec pre-shared-secret add address={GW_WAN} secret=\"x\""),
        format!(
            "/ip ipsec policy add src-address=10.3.0.0/24 dst-address=10.1.0.0/24 action=encrypt \
             sa-src-address={PEER} sa-dst-address={GW_WAN} proposal=p"
        ),
    ] {
        c.execute(&l).unwrap();
    }
    let conf = c.into_config();
    let id = conf.entries::<control::config::Policy>()[0].id;
    (0..n)
        .map(|i| {
            let seed = [i as u8, (i >> 8) as u8, 0x5a, 0xa5].repeat(8);
            let rng = rand_chacha::ChaCha12Rng::from_seed(seed.try_into().unwrap());
            let mut ep = Endpoint::new(EndpointConfig::new(PEER), conf.clone(), Box::new(rng));
            ep.acquire(Instant::now(), id).unwrap();
            ep.poll_transmit().unwrap().bytes
        })
        .collect()
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Returns `stats` as name → value, with the outbound SA's sequence number (`out-seq`) and the
/// inbound SA's packets (`in-packets`) from the same output.
fn stats(gw: &Gateway) -> HashMap<String, u64> {
    let out = gw.must(&["stats"]);
    let mut m: HashMap<String, u64> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect();
    for (spi, field, key) in [("259", "seq", "out-seq"), ("258", "packets", "in-packets")] {
        let v = out
            .lines()
            .filter(|l| l.starts_with("sa ") && l.contains(&format!(" spi={spi} ")))
            .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(&format!("{field}="))))
            .map_or(0, |v| v.parse().unwrap());
        m.insert(key.into(), v);
    }
    m
}

#[test]
fn floods_are_counted_and_legitimate_traffic_keeps_flowing() {
    let dir = TempDir::new("hostile");
    let esp = |spi: u32, body: &[u8]| {
        let mut e = spi.to_be_bytes().to_vec();
        e.extend_from_slice(&1u32.to_be_bytes());
        e.extend_from_slice(body);
        frame(PEER_MAC, 0x0800, &ipv4(PEER, GW_WAN, 50, &[], &e))
    };
    let with_checksum = |mut p: Vec<u8>| {
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        frame(PEER_MAC, 0x0800, &p)
    };
    let far = Ipv4Addr::new(198, 51, 100, 1);
    let lan_host = Ipv4Addr::new(10, 1, 0, 5);
    // Each flood: its frames for one replay, and the counter that must count them.
    let floods: Vec<(&str, Vec<Vec<u8>>, &str, usize)> = vec![
        (
            "unknown SPIs",
            (0..UNKNOWN_SPI).map(|i| esp(0x1000 + i as u32, &[0x33; 60])).collect(),
            "drop-unknown-spi",
            UNKNOWN_SPI,
        ),
        ("bad ICVs", (0..BAD_ICV).map(|i| esp(258, &[i as u8; 60])).collect(), "drop-auth-failed", BAD_ICV),
        (
            "broken IPv4 headers",
            // Cut short, and a total length beyond the frame.
            (0..TRUNCATED)
                .map(|_| frame(PEER_MAC, 0x0800, &ipv4(PEER, GW_WAN, 50, &[], &[1; 30])[..12]))
                .chain((0..BAD_HEADER).map(|_| {
                    let mut p = ipv4(PEER, GW_WAN, 50, &[], &[1; 30]);
                    p[2..4].copy_from_slice(&1400u16.to_be_bytes());
                    with_checksum(p)
                }))
                .collect(),
            "drop-bad-ip-header",
            TRUNCATED + BAD_HEADER,
        ),
        (
            "ESP fragments",
            // First fragments of ESP to us (the fast path does not reassemble).
            (0..FRAGMENTS)
                .map(|i| {
                    let mut e = 258u32.to_be_bytes().to_vec();
                    e.extend_from_slice(&[i as u8; 64]);
                    let mut p = ipv4(PEER, GW_WAN, 50, &[], &e);
                    p[6] = 0x20;
                    with_checksum(p)
                })
                .collect(),
            "drop-ip-fragment",
            FRAGMENTS,
        ),
        (
            "IP options and frames over the MTU",
            // Forwarded to the LAN host from a network no policy covers: record-route options,
            // and 1600-byte packets the gateway must fragment for the 1500-byte LAN.
            (0..OPTIONS)
                .map(|i| {
                    let rr = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1];
                    frame(PEER_MAC, 0x0800, &ipv4(far, lan_host, 17, &rr, &udp(9, 1000 + i as u16, &[5; 40])))
                })
                .chain((0..OVERSIZED).map(|i| {
                    frame(PEER_MAC, 0x0800, &ipv4(far, lan_host, 17, &[], &udp(9, 2000 + i as u16, &[6; 1572])))
                }))
                .collect(),
            "fragmented",
            OVERSIZED,
        ),
        (
            "ARP storm",
            // Requests for our address from ever new senders, and for addresses not ours.
            (0..ARP_STORM)
                .map(|i| {
                    let target = if i % 2 == 0 { GW_WAN } else { Ipv4Addr::new(192, 0, 2, 100 + (i % 50) as u8) };
                    arp(1, [0x02, 0, 0, 1, 0, i as u8], Ipv4Addr::new(192, 0, 2, 10 + (i % 80) as u8), target)
                })
                .collect(),
            "arp-replies",
            ARP_STORM / 2,
        ),
        (
            "IKE flood",
            ike_first_messages(IKE_FROM_PEER + IKE_SPOOFED)
                .into_iter()
                .enumerate()
                .map(|(i, msg)| {
                    let src = if i < IKE_FROM_PEER { PEER } else { Ipv4Addr::new(198, 51, 100, (i % 250) as u8 + 1) };
                    frame(PEER_MAC, 0x0800, &ipv4(src, GW_WAN, 17, &[], &udp(500, 500, &msg)))
                })
                .collect(),
            // Queued for the control process, or dropped when it lags: counted either way.
            "slow-path-ike-in+slow-path-ike-queue-full+drop-punt-ring-full",
            IKE_FROM_PEER + IKE_SPOOFED,
        ),
    ];
    let valid = valid_esp(&dir, VALID_ESP);
    let base = [vec![arp(2, PEER_MAC, PEER, GW_WAN)], valid].concat();
    let rate = |w: &Window, k: &str| w.d(k) as f64 / w.secs;
    let report = |name: &str, w: &Window, frames: usize| {
        println!(
            "{name}: {:.0} WAN frames/s ({:.0} replays of {frames} frames); legitimate traffic {:.0} pps sealed \
             LAN -> WAN, {:.0} pps opened WAN -> LAN",
            rate(w, "port-net_pcap1-ipackets"),
            w.loops(frames),
            rate(w, "out-seq"),
            rate(w, "in-packets")
        );
    };
    // The legitimate traffic alone, then with each flood, then with all of them at once.
    let calm = run_window(&dir, "calm", &base, WINDOW_ONE);
    report("without floods", &calm, base.len());
    let mut wan = base.clone();
    for (name, frames, counter, per_loop) in &floods {
        let mix = [base.clone(), frames.clone()].concat();
        let w = run_window(&dir, &name.replace(' ', "-"), &mix, WINDOW_ONE);
        report(name, &w, mix.len());
        let got = counter.split('+').map(|c| w.d(c)).sum::<u64>() as f64;
        let want = *per_loop as f64 * w.loops(mix.len());
        assert!(close(got, want, *per_loop), "{name}: {counter} {got}, {want:.0} expected");
        assert!(w.d("out-seq") > 1_000 && w.d("in-packets") > 1_000, "{name}: legitimate traffic flows both ways");
        wan.extend(frames.iter().cloned());
    }
    let w = run_window(&dir, "all", &wan, WINDOW_ALL);
    report("all floods at once", &w, wan.len());
    let mut reasons: Vec<(&str, u64)> = w
        .end
        .keys()
        .filter(|k| k.starts_with("drop-") || k.starts_with("slow-path-") || k.starts_with("ike-"))
        .map(|k| (k.as_str(), w.d(k)))
        .collect();
    reasons.sort();
    println!("counted in that window: {reasons:?}");
    println!("rss (dataplane, control) kB: {:?} -> {:?}", w.rss.0, w.rss.1);
    let loops = w.loops(wan.len());
    let d = |k: &str| w.d(k);
    let (sealed, opened) = (d("out-seq"), d("in-packets"));
    assert!(loops >= 5.0, "the floods ran: {loops} replays");
    assert!(sealed > 10_000 && opened > 1_000, "legitimate traffic flows both ways");
    assert!(rate(&w, "out-seq") > 0.2 * rate(&calm, "out-seq"), "the floods do not starve legitimate traffic");
    // Each kind counted per replay, in the capture's proportions.
    let near = |name: &str, per_loop: usize| {
        let got = d(name) as f64;
        let want = per_loop as f64 * loops;
        assert!(close(got, want, per_loop), "{name}: {got} counted, {want:.0} expected");
    };
    near("drop-unknown-spi", UNKNOWN_SPI);
    near("drop-auth-failed", BAD_ICV);
    // Both kinds are IPv4 headers that do not hold together.
    near("drop-bad-ip-header", TRUNCATED + BAD_HEADER);
    near("drop-ip-fragment", FRAGMENTS);
    near("in-packets", VALID_ESP);
    // Forwarded, and fragmented, not dropped: the options and the oversized packets.
    near("fragmented", OVERSIZED);
    assert!(d("slow-path-hold-dropped") == 0, "and delivered to the LAN host");
    // The storm's senders are learned once each (80 addresses), not once per request.
    assert!(w.end["slow-path-arp-learned"] <= 80 + 2, "{}", w.end["slow-path-arp-learned"]);
    // The replays are counted from what the worker received on the port, published with its
    // replies: the window's ends can each fall inside a replay, so up to two replays' worth of
    // requests may lie outside the window.
    let replies = d("arp-replies") as f64;
    let want = (ARP_STORM / 2) as f64 * (loops - 2.0);
    assert!(replies >= want, "requests for us answered: {replies}, at least {want:.0} expected");
    // IKE: half-open exchanges bounded, the rest refused.
    let s = &w.end;
    let bound = control::ike::HALF_OPEN_PER_PEER as u64;
    assert!(s["ike-phase1"] <= bound, "half-open ISAKMP SAs bounded: {}", s["ike-phase1"]);
    assert!(s["ike-evicted"] > 0, "the oldest half-open exchanges gave way");
    assert!(s["ike-dropped"] > 0, "spoofed sources without a peer refused");
    println!(
        "IKE: {} ISAKMP SAs half open, {} evicted, {} datagrams dropped",
        s["ike-phase1"], s["ike-evicted"], s["ike-dropped"]
    );
    // Bounded memory: neither process grows while the floods go on.
    let ((dp1, ctl1), (dp2, ctl2)) = w.rss;
    assert!(dp2 <= dp1 + 8 * 1024, "dataplane RSS {dp1} -> {dp2} kB");
    assert!(ctl2 <= ctl1 + 8 * 1024, "control RSS {ctl1} -> {ctl2} kB");
    assert!(!w.output.iter().any(|l| l.contains("panicked")), "{}", w.output.join("\n"));
}

/// Tells whether a count matches the capture's: within three replays or 1 %, since the counters
/// are read a moment apart while thousands of replays go by.
fn close(got: f64, want: f64, per_loop: usize) -> bool {
    (got - want).abs() <= (per_loop as f64 * 3.0).max(want * 0.01)
}

/// Counters over a measured window of one gateway run.
struct Window {
    secs: f64,
    start: HashMap<String, u64>,
    end: HashMap<String, u64>,
    /// (dataplane, control) resident sizes in kB, at the window's start and end.
    rss: ((u64, u64), (u64, u64)),
    output: Vec<String>,
}

impl Window {
    fn d(&self, k: &str) -> u64 {
        self.end.get(k).copied().unwrap_or(0) - self.start.get(k).copied().unwrap_or(0)
    }

    fn loops(&self, frames: usize) -> f64 {
        // The worker's count of the WAN port, published with the counters it explains.
        self.d("port-net_pcap1-worker-rx") as f64 / frames as f64
    }
}

/// Runs the gateway with `wan` replayed on its WAN port and a LAN host's UDP on its LAN port;
/// measures `window` once traffic flows.
fn run_window(dir: &TempDir, tag: &str, wan: &[Vec<u8>], window: Duration) -> Window {
    let wan_pcap = dir.path(&format!("wan-{tag}.pcap"));
    write_pcap(&wan_pcap, wan);
    // The LAN: a host that answers ARP (so the opened packets have somewhere to go), sending UDP.
    let (lan_arp, lan_pcap) = (dir.path("lan-arp.pcap"), dir.path("lan-in.pcap"));
    write_udp_pcap(&lan_arp, 8);
    let host = arp(2, [0x02, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 1, 0, 1));
    write_pcap(&lan_pcap, &[vec![host], read_pcap(&lan_arp)].concat());
    let lan = format!("net_pcap0,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", lan_pcap.display());
    let wan_dev = format!("net_pcap1,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", wan_pcap.display());
    let config = dir.path(&format!("gw-{tag}.rsc"));
    let ike = format!(
        "/ip ipsec proposal\nadd name=p\n/ip ipsec peer\nadd address={PEER}/32\n/ip ipsec pre-shared-secret\n\
         add address={PEER} secret=\"x\"\n/ip ipsec policy\nadd src-address=10.1.0.0/24 dst-address=10.3.0.0/24 \
         action=encrypt sa-src-address={GW_WAN} sa-dst-address={PEER} proposal=p\n"
    );
    std::fs::write(&config, ctl_support::r1_config(&lan, &wan_dev) + &ike).unwrap();
    let mut gw = Gateway::start(&config, &dir.0);
    gw.wait_until(Duration::from_secs(20), |gw| {
        let s = stats(gw);
        s["out-seq"] > 1000 && s["in-packets"] > 1000
    });
    std::thread::sleep(Duration::from_secs(1));
    let control_pid = stats(&gw)["control-pid"] as u32;
    let (t1, start) = (Instant::now(), stats(&gw));
    let rss1 = (rss_kb(gw.child.id()), rss_kb(control_pid));
    std::thread::sleep(window);
    let (t2, end) = (Instant::now(), stats(&gw));
    let rss2 = (rss_kb(gw.child.id()), rss_kb(control_pid));
    let output = gw.stop();
    Window { secs: (t2 - t1).as_secs_f64(), start, end, rss: (rss1, rss2), output }
}
