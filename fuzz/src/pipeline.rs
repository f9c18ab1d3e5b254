//! Target `pipeline`: a whole worker (RustEngine, in-memory ports) with real SAs installed, fed
//! a frame built from the input.
//!
//! The gateway is R2 of the manual's example: LAN 10.2.0.1/16 on port 0, WAN 192.0.2.2/24 on
//! port 1, the peer R1 at 192.0.2.1 with 10.1.0.0/16 behind it. One policy per [`SCENARIOS`]
//! entry, each with its inbound and outbound SAs: ESP tunnel (GCM, CBC+HMAC, in UDP 4500,
//! null+HMAC), AH tunnel, ah+esp, ESP and AH transport.
//!
//! Input: byte 0 picks the kind (bit 7: deliver the frame twice, a replay), byte 1 the number of
//! edits (0-3), then two bytes per edit (offset, xor) applied to the first 42 bytes of the frame
//! (Ethernet, outer IPv4, ESP header), then the body.
//! - kind 0, 1: the body is a raw frame received on the WAN (0) or the LAN (1) port.
//! - kind 2 + s: the body is sealed with scenario `s`'s SA as R1 would seal it: in tunnel mode
//!   the body is the inner packet, in transport mode the payload of an R1 → R2 packet. So
//!   decapsulation gets past the SPI lookup and the ICV check with an inner packet of the
//!   fuzzer's choosing.
//! - null-cipher scenarios take the body as the whole ESP plaintext (padding, pad length and
//!   next header included) and compute the ICV after the edits: the trailer checks, the replay
//!   window (edited sequence numbers) and the inner parse see anything.
//!
//! Every transmitted frame must be a well-formed Ethernet frame, ARP or IPv4 with a good checksum.

use std::net::Ipv4Addr;
use std::sync::Arc;

use control::ike::crypto::HashAlg;
use dataplane::buf::{Burst, HeapBuf, PacketBuf};
use dataplane::bundle::Bundle;
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Transform};
use dataplane::ctl::{FromWorker, InboundSa, Ring, SaKey, Tables, ToWorker};
use dataplane::port::MemPort;
use dataplane::route::{Iface, Ifaces, NextHop, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig, UdpEncap};
use dataplane::spd::{Action, IpsecProtocols, Level, Policy, Prefix, Selector, Spd};
use dataplane::stats::Stats;
use dataplane::wire::{Protocol, arp, ethernet, ipv4};
use dataplane::worker::Worker;

type S = <RustEngine as Engine>::Session;

const LAN: u16 = 0;
const WAN: u16 = 1;
const R1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const R2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const R1_MAC: [u8; 6] = [2, 0, 0, 1, 0, 1];
const WAN_MAC: [u8; 6] = [2, 0, 0, 2, 0, 1];
const LAN_MAC: [u8; 6] = [2, 0, 0, 2, 0, 0];
const HOST_MAC: [u8; 6] = [2, 0, 0, 2, 9, 9];
/// The bytes edits may touch: Ethernet (14), outer IPv4 (20), ESP SPI and sequence number (8).
const EDIT_SPAN: usize = 42;

/// One policy of the gateway and the SAs that serve it.
struct Scenario {
    mode: Mode,
    protocols: IpsecProtocols,
    /// ESP transform, if the policy uses ESP.
    esp: Option<Transform>,
    /// AH transform, if the policy uses AH.
    ah: Option<Transform>,
    /// The IP protocol a transport-mode policy covers (R1 ↔ R2 only).
    transport_proto: u8,
    encap: bool,
}

fn xf(c: Cipher, a: Auth) -> Option<Transform> {
    Some(Transform::new(c, a).expect("a valid ESP transform"))
}

fn ah_xf(a: Auth) -> Option<Transform> {
    Some(Transform::auth_only(a).expect("a valid AH transform"))
}

fn scenarios() -> [Scenario; 9] {
    use IpsecProtocols as P;
    let t = |protocols, esp, ah| Scenario { mode: Mode::Tunnel, protocols, esp, ah, transport_proto: 0, encap: false };
    let tr = |protocols, esp, ah, p| Scenario {
        mode: Mode::Transport,
        protocols,
        esp,
        ah,
        transport_proto: p,
        encap: false,
    };
    [
        t(P::Esp, xf(Cipher::AesGcm128, Auth::Null), None),
        t(P::Esp, xf(Cipher::AesCbc128, Auth::HmacSha1_96), None),
        t(P::Ah, None, ah_xf(Auth::HmacSha256_128)),
        t(P::AhEsp, xf(Cipher::TdesCbc, Auth::HmacMd5_96), ah_xf(Auth::HmacSha1_96)),
        Scenario { encap: true, ..t(P::Esp, xf(Cipher::AesGcm256, Auth::Null), None) },
        t(P::Esp, xf(Cipher::Null, Auth::HmacSha1_96), None),
        tr(P::Esp, xf(Cipher::AesCbc256, Auth::HmacSha256_128), None, 6),
        tr(P::Esp, xf(Cipher::Null, Auth::HmacSha1_96), None, 1),
        tr(P::Ah, None, ah_xf(Auth::HmacMd5_96), 47),
    ]
}

/// Returns the SPI of scenario `s`'s inbound SA of `proto` (outbound: plus 0x1000).
fn spi(s: usize, proto: IpsecProto) -> u32 {
    0x100 * (s as u32 + 1) + u32::from(proto == IpsecProto::Ah)
}

fn key(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(salt).wrapping_add(0x5a)).collect()
}

fn sa(sc: &Scenario, s: usize, proto: IpsecProto, outbound: bool) -> Sa<S> {
    let x = match proto {
        IpsecProto::Esp => sc.esp.expect("ESP transform"),
        IpsecProto::Ah => sc.ah.expect("AH transform"),
    };
    let salt = (s as u8) << 1 | u8::from(outbound);
    let (enc, auth) = (key(x.cipher().key_len(), salt), key(x.auth().key_len(), salt ^ 0x55));
    // In ah,esp the AH SA protects the outer packet in transport mode (RFC 4301 4.5).
    let mode = if proto == IpsecProto::Ah && sc.protocols == IpsecProtocols::AhEsp { Mode::Transport } else { sc.mode };
    let (src, dst) = if outbound { (R2, R1) } else { (R1, R2) };
    let cfg = SaConfig {
        spi: spi(s, proto) + if outbound { 0x1000 } else { 0 },
        proto,
        mode,
        src,
        dst,
        xf: x,
        enc_key: &enc,
        auth_key: &auth,
        replay_window: 64,
        lifetimes: Lifetimes::default(),
        dont_fragment: DontFragment::Clear,
    };
    let mut sa = Sa::new(&mut RustEngine, &cfg, 0).expect("a valid SA");
    if sc.encap {
        sa.set_udp_encap(Some(UdpEncap { src_port: 4500, dst_port: 4500 }));
    }
    sa
}

fn net(a: u8, b: u8, c: u8, len: u8) -> Prefix {
    Prefix::new(u32::from(Ipv4Addr::new(a, b, c, 0)), len)
}

fn policy(sc: &Scenario, s: usize) -> Policy {
    let selector = match sc.mode {
        Mode::Tunnel => Selector { src: net(10, 2, s as u8, 24), dst: net(10, 1, s as u8, 24), ..Selector::ANY },
        Mode::Transport => Selector {
            src: Prefix::host(u32::from(R2)),
            dst: Prefix::host(u32::from(R1)),
            protocol: Some(sc.transport_proto),
            ..Selector::ANY
        },
    };
    Policy {
        id: s as u32 + 1,
        selector,
        action: Action::Encrypt,
        level: Level::Require,
        mode: sc.mode,
        sa_src: R2,
        sa_dst: R1,
        protocols: sc.protocols,
        dont_fragment: DontFragment::Clear,
    }
}

struct Gateway {
    w: Worker<MemPort, RustEngine>,
    down: Arc<Ring<ToWorker<HeapBuf, S>>>,
    up: Arc<Ring<FromWorker<HeapBuf, S>>>,
}

impl Gateway {
    fn new() -> Gateway {
        let scs = scenarios();
        let ifaces = Ifaces::new(vec![
            Iface {
                port: LAN,
                name: "lan".into(),
                mac: LAN_MAC,
                mtu: 1500,
                addrs: vec![(Ipv4Addr::new(10, 2, 0, 1), 16)],
            },
            Iface { port: WAN, name: "wan".into(), mac: WAN_MAC, mtu: 1500, addrs: vec![(R2, 24)] },
        ]);
        let routes =
            [Route { prefix: Ipv4Addr::new(10, 1, 0, 0), len: 16, next_hop: NextHop { port: WAN, gateway: Some(R1) } }];
        let tables = Arc::new(Tables::new(ifaces, &routes));
        let policies = scs.iter().enumerate().map(|(s, sc)| policy(sc, s)).collect();
        let (down, up) = (Arc::new(Ring::new(256)), Arc::new(Ring::new(1024)));
        let ports = vec![MemPort::default(), MemPort::default()];
        let w = Worker::new(0, ports, RustEngine, tables, Arc::new(Spd::new(policies)), down.clone(), up.clone());
        let mut g = Gateway { w, down, up };
        g.msg(ToWorker::Neighbor { port: WAN, ip: R1, mac: R1_MAC });
        for (s, sc) in scs.iter().enumerate() {
            g.msg(ToWorker::Neighbor { port: LAN, ip: Ipv4Addr::new(10, 2, s as u8, 20), mac: HOST_MAC });
            let id = s as u32 + 1;
            let esp = sc.esp.map(|_| sa(sc, s, IpsecProto::Esp, true));
            let ah = sc.ah.map(|_| sa(sc, s, IpsecProto::Ah, true));
            g.msg(ToWorker::Outbound { policy_id: id, bundle: Some(Box::new(Bundle::new(esp, ah))) });
            for proto in [IpsecProto::Esp, IpsecProto::Ah] {
                let present = match proto {
                    IpsecProto::Esp => sc.esp.is_some(),
                    IpsecProto::Ah => sc.ah.is_some(),
                };
                if present {
                    let sa = sa(sc, s, proto, false);
                    let key = SaKey { src: sa.src(), dst: sa.dst(), proto: sa.proto(), spi: sa.spi() };
                    g.msg(ToWorker::Inbound { key, sa: Some(Box::new(InboundSa { sa, policy_id: id })) });
                }
            }
        }
        g
    }

    fn msg(&mut self, m: ToWorker<HeapBuf, S>) {
        assert!(self.down.push(m).is_ok(), "the control ring has room");
        self.w.poll_once(1000);
    }

    /// Receives `frames` on `port`, runs the worker until it is idle, checks what it sent and
    /// returns how many frames each port sent.
    fn input(&mut self, port: u16, frames: Vec<Vec<u8>>) -> [usize; 2] {
        self.w.ports_mut()[usize::from(port)].rx.extend(frames);
        let mut rounds = 0;
        while self.w.poll_once(1000) > 0 {
            rounds += 1;
            assert!(rounds < 64, "the worker keeps finding work: a packet loops");
        }
        while self.up.pop().is_some() {}
        let mut sent = [0; 2];
        for (n, p) in sent.iter_mut().zip(self.w.ports_mut()) {
            for f in std::mem::take(&mut p.tx) {
                check_sent(&f);
                *n += 1;
            }
        }
        sent
    }
}

/// Asserts that a frame the gateway sent is well formed.
fn check_sent(f: &[u8]) {
    let eth = ethernet::Packet::new_checked(f).expect("a sent frame has an Ethernet header");
    match eth.ethertype() {
        ethernet::EtherType::Ipv4 => {
            let ip = ipv4::Packet::new_checked(eth.payload()).expect("a sent IPv4 packet is well formed");
            assert!(ip.verify_checksum(), "a sent IPv4 packet has a good checksum");
            assert!(usize::from(ip.total_len()) <= 1500, "a sent packet fits the MTU");
        }
        ethernet::EtherType::Arp => {
            arp::Packet::new_checked(eth.payload()).expect("a sent ARP packet is well formed");
        }
        other => panic!("the gateway sent ethertype {other:?}"),
    }
}

fn frame(dst: [u8; 6], src: [u8; 6], l3: &[u8]) -> Vec<u8> {
    [&dst[..], &src[..], &[8, 0], l3].concat()
}

/// Builds an IPv4 header (no options) for `payload`.
fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; ipv4::HEADER_LEN + payload.len()];
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: Protocol::from(proto),
        payload_len: payload.len().min(usize::from(u16::MAX) - ipv4::HEADER_LEN),
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_frag: false,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    p[ipv4::HEADER_LEN..].copy_from_slice(payload);
    p
}

/// Seals `inner` (tunnel) or an R1 → R2 packet around `inner` (transport) with scenario `s`,
/// as R1 would; returns the IPv4 packet, or `None` if sealing refused it.
fn seal(s: usize, sc: &Scenario, inner: &[u8]) -> Option<Vec<u8>> {
    let packet = match sc.mode {
        Mode::Tunnel => inner.to_vec(),
        Mode::Transport => ip_packet(R1, R2, sc.transport_proto, inner),
    };
    if packet.len() > 2000 {
        return None;
    }
    let mut burst: Burst<HeapBuf> = Burst::new();
    burst.push(HeapBuf::from_slice(&packet));
    let mut stats = Stats::default();
    if sc.esp.is_some() {
        dataplane::esp::seal(&mut sa(sc, s, IpsecProto::Esp, false), &mut RustEngine, &mut burst, &mut stats);
    }
    if sc.ah.is_some() {
        dataplane::ah::seal(&mut sa(sc, s, IpsecProto::Ah, false), &mut RustEngine, &mut burst, &mut stats);
    }
    burst.iter().next().map(|b| b.data().to_vec())
}

/// Builds an ESP packet R1 → R2 with a null cipher and HMAC-SHA1-96 for scenario `s`: the
/// plaintext is the fuzzer's, the ICV is computed after the edits.
fn null_esp(s: usize, plaintext: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut esp = spi(s, IpsecProto::Esp).to_be_bytes().to_vec();
    esp.extend_from_slice(&1u32.to_be_bytes());
    esp.extend_from_slice(plaintext);
    let mut f = frame(WAN_MAC, R1_MAC, &ip_packet(R1, R2, 50, &esp));
    apply(&mut f, edits);
    let auth = key(Auth::HmacSha1_96.key_len(), ((s as u8) << 1) ^ 0x55);
    let icv = HashAlg::Sha1.prf(&auth, &[&f[14 + ipv4::HEADER_LEN..]]);
    f.extend_from_slice(&icv[..12]);
    fix_total_len(&mut f, 12);
    f
}

/// Grows the IPv4 total length by `more` (and refills the checksum) unless an edit broke it.
fn fix_total_len(f: &mut [u8], more: u16) {
    if let Ok(mut ip) = ipv4::Packet::new_checked(&mut f[14..]) {
        let len = ip.total_len().saturating_add(more);
        ip.set_total_len(len);
        ip.fill_checksum();
    }
}

fn apply(f: &mut [u8], edits: &[(usize, u8)]) {
    let span = f.len().min(EDIT_SPAN);
    for &(at, x) in edits {
        if span > 0 {
            f[at % span] ^= x;
        }
    }
}

/// Runs the gateway on one input.
pub fn pipeline(data: &[u8]) {
    let _ = run(data);
}

/// What one input did: the frames each port sent (LAN, WAN) and the drops by reason.
#[derive(Debug)]
pub struct Outcome {
    pub sent: [usize; 2],
    pub drops: Vec<(dataplane::stats::DropReason, u64)>,
}

/// Runs the gateway on one input and tells what it did (`None`: the input builds no frame).
pub fn run(data: &[u8]) -> Option<Outcome> {
    let [kind, n, rest @ ..] = data else { return None };
    let twice = kind & 0x80 != 0;
    let n = usize::from(n % 4);
    if rest.len() < 2 * n {
        return None;
    }
    let (edits, body) = rest.split_at(2 * n);
    let edits: Vec<(usize, u8)> = edits.chunks(2).map(|e| (usize::from(e[0]), e[1])).collect();
    let scs = scenarios();
    let mut g = Gateway::new();
    let (port, f) = match usize::from(kind & 0x7f) % (2 + scs.len()) {
        0 => (WAN, body.to_vec()),
        1 => (LAN, body.to_vec()),
        k => {
            let s = k - 2;
            let sc = &scs[s];
            if sc.esp.is_some_and(|x| x.cipher() == Cipher::Null) {
                (WAN, null_esp(s, body, &edits))
            } else {
                let ip = seal(s, sc, body)?;
                let mut f = frame(WAN_MAC, R1_MAC, &ip);
                apply(&mut f, &edits);
                (WAN, f)
            }
        }
    };
    let frames = if twice { vec![f.clone(), f] } else { vec![f] };
    let sent = g.input(port, frames);
    Some(Outcome { sent, drops: g.w.stats().drops.nonzero().collect() })
}

/// Returns valid inputs: each scenario's sealed UDP packet, the raw frames those make on the
/// WAN, cleartext LAN traffic for each policy, ARP, ICMP to the gateway, IKE.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let udp = |sport: u16, dport: u16, len: usize| {
        let mut u = vec![0x33u8; 8 + len];
        u[0..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
        u[6..8].fill(0);
        u
    };
    for (s, sc) in scenarios().iter().enumerate() {
        let k = 2 + s as u8;
        let inner = match sc.mode {
            Mode::Tunnel => {
                ip_packet(Ipv4Addr::new(10, 1, s as u8, 10), Ipv4Addr::new(10, 2, s as u8, 20), 17, &udp(1000, 53, 20))
            }
            Mode::Transport => match sc.transport_proto {
                6 => {
                    let mut t = vec![0u8; 20];
                    t[12] = 5 << 4;
                    t[13] = 0x02;
                    t
                }
                1 => vec![8, 0, 0xf7, 0xfe, 0, 1, 0, 0],
                _ => vec![0, 0, 8, 0, 1, 2, 3, 4],
            },
        };
        if sc.esp.is_some_and(|x| x.cipher() == Cipher::Null) {
            // The plaintext with a valid trailer: 2 bytes of padding to a multiple of 4.
            let next = if sc.mode == Mode::Tunnel { 4 } else { sc.transport_proto };
            let pad = (4 - (inner.len() + 2) % 4) % 4;
            let mut pt = inner.clone();
            pt.extend((1..=pad as u8).collect::<Vec<_>>());
            pt.extend_from_slice(&[pad as u8, next]);
            v.push([&[k, 0][..], &pt].concat());
            v.push([&[k | 0x80, 1, 41, 1][..], &pt].concat());
            v.push([&[0, 0][..], &null_esp(s, &pt, &[])].concat());
        } else {
            v.push([&[k, 0][..], &inner].concat());
            if let Some(ip) = seal(s, sc, &inner) {
                v.push([&[0, 0][..], &frame(WAN_MAC, R1_MAC, &ip)].concat());
            }
        }
        // Cleartext from the LAN that the policy encrypts.
        let lan = match sc.mode {
            Mode::Tunnel => {
                ip_packet(Ipv4Addr::new(10, 2, s as u8, 20), Ipv4Addr::new(10, 1, s as u8, 10), 17, &udp(53, 1000, 20))
            }
            Mode::Transport => continue,
        };
        v.push([&[1, 0][..], &frame(LAN_MAC, HOST_MAC, &lan)].concat());
    }
    // ARP request for the WAN address, ICMP echo to it, IKE from R1, a packet with options.
    let arp_req =
        [&[0xffu8; 6][..], &R1_MAC, &[8, 6], &[0, 1, 8, 0, 6, 4, 0, 1], &R1_MAC, &R1.octets(), &[0; 6], &R2.octets()]
            .concat();
    v.push([&[0, 0][..], &arp_req].concat());
    let mut echo = vec![8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4];
    dataplane::wire::icmp::Packet::new_unchecked(&mut echo[..]).fill_checksum();
    v.push([&[0, 0][..], &frame(WAN_MAC, R1_MAC, &ip_packet(R1, R2, 1, &echo))].concat());
    v.push([&[0, 0][..], &frame(WAN_MAC, R1_MAC, &ip_packet(R1, R2, 17, &udp(500, 500, 40)))].concat());
    let mut opt = ip_packet(Ipv4Addr::new(10, 1, 0, 10), Ipv4Addr::new(10, 2, 9, 9), 17, &[0; 8]);
    opt[0] = 0x46;
    opt.splice(20..20, [148u8, 4, 0, 0]);
    let len = opt.len() as u16;
    opt[2..4].copy_from_slice(&len.to_be_bytes());
    ipv4::Packet::new_unchecked(&mut opt[..]).fill_checksum();
    v.push([&[0, 0][..], &frame(WAN_MAC, R1_MAC, &opt)].concat());
    v
}
