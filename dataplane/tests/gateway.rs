//! Two gateways, R1 and R2, as the manual's example sets them up (a LAN behind each, a WAN
//! between them), each a worker over in-memory ports with manual SAs: traffic from LAN1 leaves
//! R1 encrypted and comes out of R2 into LAN2 intact, and every policy rule of the manual
//! (levels, incoming check, IKE bypass, inner policy check, ah,esp, nested tunnels) holds.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::buf::HeapBuf;
use dataplane::bundle::Bundle;
use dataplane::classify::CacheStats;
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Transform};
use dataplane::ctl::{FromWorker, InboundSa, Retired, Ring, SaKey, Tables, ToWorker};
use dataplane::pipeline::Direction;
use dataplane::port::MemPort;
use dataplane::route::{Iface, Ifaces, NextHop, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig, SaEvent};
use dataplane::spd::{Action, IpsecProtocols, Level, Outcome, Policy, PolicyCounters, Prefix, Selector, Spd};
use dataplane::stats::DropReason;
use dataplane::wire::{Protocol, ah, esp, ethernet, icmp, ipv4};
use dataplane::worker::Worker;

type S = <RustEngine as Engine>::Session;

const LAN: u16 = 0;
const WAN: u16 = 1;
const R1_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const R2_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const H1: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
const H2: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 20);

fn mac(router: u8, port: u16) -> [u8; 6] {
    [2, 0, 0, router, 0, port as u8]
}
fn host_mac(router: u8) -> [u8; 6] {
    [2, 0, 0, router, 9, 9]
}

struct Gw<E: Engine<Session = S> = RustEngine> {
    w: Worker<MemPort, E>,
    down: Arc<Ring<ToWorker<HeapBuf, S>>>,
    up: Arc<Ring<FromWorker<HeapBuf, S>>>,
}

impl Gw {
    /// Router `n` (1 or 2): LAN 10.n.0.1/24, WAN 192.0.2.n/24, a route to the other LAN.
    fn new(n: u8, policies: Vec<Policy>) -> Gw {
        Gw::with_engine(n, policies, RustEngine)
    }
}

impl<E: Engine<Session = S>> Gw<E> {
    /// Router `n`, as [`Gw::new`], on `engine`.
    fn with_engine(n: u8, policies: Vec<Policy>, engine: E) -> Gw<E> {
        let other = 3 - n;
        let ifaces = Ifaces::new(vec![
            Iface {
                port: LAN,
                name: "lan".into(),
                mac: mac(n, LAN),
                mtu: 1500,
                addrs: vec![(Ipv4Addr::new(10, n, 0, 1), 24)],
            },
            Iface {
                port: WAN,
                name: "wan".into(),
                mac: mac(n, WAN),
                mtu: 1500,
                addrs: vec![(Ipv4Addr::new(192, 0, 2, n), 24)],
            },
        ]);
        let routes = [Route {
            prefix: Ipv4Addr::new(10, other, 0, 0),
            len: 24,
            next_hop: NextHop { port: WAN, gateway: Some(Ipv4Addr::new(192, 0, 2, other)) },
        }];
        let tables = Arc::new(Tables::new(ifaces, &routes));
        let (down, up) = (Arc::new(Ring::new(256)), Arc::new(Ring::new(256)));
        let ports = vec![MemPort::default(), MemPort::default()];
        let w = Worker::new(0, ports, engine, tables, Arc::new(Spd::new(policies)), down.clone(), up.clone());
        let mut g = Gw { w, down, up };
        g.msg(ToWorker::Neighbor { port: WAN, ip: Ipv4Addr::new(192, 0, 2, other), mac: mac(other, WAN) });
        g.msg(ToWorker::Neighbor { port: LAN, ip: Ipv4Addr::new(10, n, 0, 10 * n), mac: host_mac(n) });
        g
    }

    fn msg(&mut self, m: ToWorker<HeapBuf, S>) {
        assert!(self.down.push(m).is_ok());
        self.w.poll_once(0);
    }

    #[allow(clippy::too_many_arguments)]
    fn sa(
        &self,
        spi: u32,
        proto: IpsecProto,
        mode: Mode,
        xf: Transform,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        key_salt: u8,
    ) -> Sa<S> {
        let enc: Vec<u8> = (0..xf.cipher().key_len()).map(|i| i as u8 ^ key_salt).collect();
        let auth: Vec<u8> = (0..xf.auth().key_len()).map(|i| i as u8 ^ key_salt ^ 0x55).collect();
        let cfg = SaConfig {
            spi,
            proto,
            mode,
            src,
            dst,
            xf,
            enc_key: &enc,
            auth_key: &auth,
            replay_window: 64,
            lifetimes: Lifetimes::default(),
            dont_fragment: DontFragment::Clear,
        };
        Sa::new(&mut RustEngine, &cfg, 0).unwrap()
    }

    fn install_out(&mut self, policy_id: u32, esp: Option<Sa<S>>, ah: Option<Sa<S>>) {
        self.msg(ToWorker::Outbound { policy_id, bundle: Some(Box::new(Bundle::new(esp, ah))) });
    }

    fn install_in(&mut self, policy_id: u32, sa: Sa<S>) {
        let key = SaKey { src: sa.src(), dst: sa.dst(), proto: sa.proto(), spi: sa.spi() };
        self.msg(ToWorker::Inbound { key, sa: Some(Box::new(InboundSa { sa, policy_id })) });
    }

    /// Receives frames on a port and returns what each port sent.
    fn input(&mut self, port: u16, frames: Vec<Vec<u8>>) -> [Vec<Vec<u8>>; 2] {
        self.w.ports_mut()[port as usize].rx.extend(frames);
        while self.w.poll_once(0) > 0 {}
        let p = self.w.ports_mut();
        [std::mem::take(&mut p[0].tx), std::mem::take(&mut p[1].tx)]
    }

    fn dropped(&self, r: DropReason) -> u64 {
        self.w.stats().drops.dropped(r)
    }

    /// Returns the SA events the worker raised since the last call.
    fn up_events(&self) -> Vec<SaEvent> {
        let mut v = Vec::new();
        while let Some(m) = self.up.pop() {
            if let FromWorker::SaEvent { event, .. } = m {
                v.push(event);
            }
        }
        v
    }

    fn acquires(&self) -> Vec<u32> {
        let mut v = Vec::new();
        while let Some(m) = self.up.pop() {
            if let FromWorker::Acquire { policy_id } = m {
                v.push(policy_id);
            }
        }
        v
    }
}

fn lan_net(n: u8) -> Prefix {
    Prefix::new(u32::from(Ipv4Addr::new(10, n, 0, 0)), 24)
}

/// The manual's policy on router `n`: LAN n → other LAN, encrypt, tunnel between the WANs.
fn tunnel_policy(n: u8, level: Level, protocols: IpsecProtocols) -> Policy {
    let other = 3 - n;
    Policy {
        id: 1,
        selector: Selector { src: lan_net(n), dst: lan_net(other), ..Selector::ANY },
        action: Action::Encrypt,
        level,
        mode: Mode::Tunnel,
        sa_src: Ipv4Addr::new(192, 0, 2, n),
        sa_dst: Ipv4Addr::new(192, 0, 2, other),
        protocols,
        dont_fragment: DontFragment::Clear,
    }
}

/// Policy 2 of the nesting tests: R1's own traffic to 198.51.100.0/24 (where the inner
/// gateway of policy 1 lives) tunnelled once more, to R2.
fn outer_tunnel_policy() -> Policy {
    Policy {
        id: 2,
        selector: Selector {
            src: Prefix::host(u32::from(R1_WAN)),
            dst: Prefix::new(u32::from(Ipv4Addr::new(198, 51, 100, 0)), 24),
            ..Selector::ANY
        },
        ..tunnel_policy(1, Level::Require, IpsecProtocols::Esp)
    }
}

fn gcm() -> Transform {
    Transform::new(Cipher::AesGcm128, Auth::Null).unwrap()
}

/// R1 and R2 with the manual's ESP tunnel: R1 sends with SPI 0x100, R2 with 0x101.
fn pair(level: Level) -> (Gw, Gw) {
    let mut r1 = Gw::new(1, vec![tunnel_policy(1, level, IpsecProtocols::Esp)]);
    let mut r2 = Gw::new(2, vec![tunnel_policy(2, level, IpsecProtocols::Esp)]);
    let s = r1.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r1.install_out(1, Some(s), None);
    let s = r2.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r2.install_in(1, s);
    let s = r2.sa(0x101, IpsecProto::Esp, Mode::Tunnel, gcm(), R2_WAN, R1_WAN, 2);
    r2.install_out(1, Some(s), None);
    let s = r1.sa(0x101, IpsecProto::Esp, Mode::Tunnel, gcm(), R2_WAN, R1_WAN, 2);
    r1.install_in(1, s);
    (r1, r2)
}

fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: Protocol, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl,
        tos: 0,
        ident: 1,
        dont_frag: false,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    p[20..].copy_from_slice(payload);
    p
}

fn udp(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut u = vec![0x33u8; 8 + len];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    u[6..8].fill(0);
    u
}

fn frame(dst: [u8; 6], src: [u8; 6], l3: &[u8]) -> Vec<u8> {
    [&dst[..], &src[..], &[8, 0], l3].concat()
}

fn l3(f: &[u8]) -> &[u8] {
    assert_eq!(ethernet::Packet::new_checked(f).unwrap().ethertype(), ethernet::EtherType::Ipv4);
    &f[14..]
}

#[test]
fn lan_to_lan_traffic_crosses_the_wan_encrypted_and_arrives_intact() {
    let (mut r1, mut r2) = pair(Level::Require);
    let sent: Vec<Vec<u8>> =
        (0..40).map(|i| ip_packet(H1, H2, Protocol::Udp, 64, &udp(1000 + i, 53, i as usize * 30))).collect();
    let frames = sent.iter().map(|p| frame(mac(1, LAN), host_mac(1), p)).collect();
    let [lan1, wan1] = r1.input(LAN, frames);
    assert!(lan1.is_empty());
    assert_eq!(wan1.len(), 40);
    for f in &wan1 {
        let ip = ipv4::Packet::new_checked(l3(f)).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.protocol()), (R1_WAN, R2_WAN, Protocol::Esp));
        assert_eq!(esp::Packet::new_checked(ip.payload()).unwrap().spi(), 0x100);
        assert_eq!(&f[..6], &mac(2, WAN));
    }
    let [lan2, wan2] = r2.input(WAN, wan1);
    assert!(wan2.is_empty());
    assert_eq!(lan2.len(), 40);
    for (f, orig) in lan2.iter().zip(&sent) {
        let mut want = orig.clone();
        // Each router decrements the TTL of the inner packet once.
        want[8] -= 2;
        ipv4::Packet::new_unchecked(&mut want[..]).fill_checksum();
        assert_eq!(l3(f), &want[..]);
        assert_eq!(&f[..6], &host_mac(2));
    }
    // And back: LAN2 → LAN1 through R2 (SPI 0x101) and R1.
    let back = ip_packet(H2, H1, Protocol::Udp, 64, &udp(53, 1000, 10));
    let [_, wan2] = r2.input(LAN, vec![frame(mac(2, LAN), host_mac(2), &back)]);
    let [lan1, _] = r1.input(WAN, wan2);
    assert_eq!(lan1.len(), 1);
    assert_eq!(r1.w.stats().drops.total_dropped() + r2.w.stats().drops.total_dropped(), 0);
    let c = r1.w.pipeline().policy_counters();
    assert!(c.total(0).packets >= 41, "policy counters count matches");
}

#[test]
fn levels_decide_without_an_sa() {
    for (level, passes, acquires) in
        [(Level::Use, true, false), (Level::Acquire, true, true), (Level::Require, false, true)]
    {
        let mut r1 = Gw::new(1, vec![tunnel_policy(1, level, IpsecProtocols::Esp)]);
        let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 10));
        let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p); 3]);
        assert_eq!(wan.len(), if passes { 3 } else { 0 }, "{level:?}");
        if passes {
            assert_eq!(ipv4::Packet::new_checked(l3(&wan[0])).unwrap().protocol(), Protocol::Udp, "sent in clear");
        } else {
            assert_eq!(r1.dropped(DropReason::NoSa), 3);
        }
        assert_eq!(r1.acquires(), if acquires { vec![1] } else { vec![] }, "{level:?}: one acquire, rate-limited");
    }
}

#[test]
fn cleartext_that_should_have_been_encrypted_is_dropped() {
    let (_r1, mut r2) = pair(Level::Require);
    // H1 → H2 in clear arriving on R2's WAN: the reversed policy matches and has an SA.
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 10));
    let [lan, _] = r2.input(WAN, vec![frame(mac(2, WAN), mac(1, WAN), &p)]);
    assert!(lan.is_empty());
    assert_eq!(r2.dropped(DropReason::IncomingPolicy), 1);
    // Traffic the policy does not cover passes.
    let other = ip_packet(Ipv4Addr::new(10, 9, 0, 1), H2, Protocol::Udp, 64, &udp(1, 2, 10));
    let [lan, _] = r2.input(WAN, vec![frame(mac(2, WAN), mac(1, WAN), &other)]);
    assert_eq!(lan.len(), 1);
}

#[test]
fn a_burst_keeps_each_packet_with_its_own_key_when_the_incoming_check_drops_some() {
    // Input parses each header once and the outbound SPD takes the key from there: a burst
    // mixing packets the incoming check drops (H2 → H1 in clear, which should have come
    // encrypted) with packets to encrypt (H1 → H2) and packets in clear (10.9.0.1 → H2) must
    // keep every packet with its own key once the dropped ones are gone.
    let (mut r1, _r2) = pair(Level::Require);
    let stranger = Ipv4Addr::new(10, 9, 0, 1);
    let kinds = [0, 1, 2, 1, 0, 2, 2, 1, 0, 0, 2];
    let frames: Vec<Vec<u8>> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (src, dst) = [(stranger, H2), (H2, H1), (H1, H2)][*k];
            frame(mac(1, LAN), host_mac(1), &ip_packet(src, dst, Protocol::Udp, 64, &udp(1, 2, 10 + i)))
        })
        .collect();
    let [_, wan] = r1.input(LAN, frames);
    assert_eq!(r1.dropped(DropReason::IncomingPolicy), 3);
    let mut clear = Vec::new();
    let mut sealed = 0;
    for f in &wan {
        let ip = ipv4::Packet::new_checked(l3(f)).unwrap();
        match ip.protocol() {
            Protocol::Esp => {
                assert_eq!((ip.src_addr(), ip.dst_addr()), (R1_WAN, R2_WAN));
                sealed += 1;
            }
            Protocol::Udp => {
                assert_eq!(ip.src_addr(), stranger);
                clear.push(ip.payload().len() - 8 - 10);
            }
            p => panic!("unexpected {p:?}"),
        }
    }
    assert_eq!(sealed, 4);
    // The clear ones are the strangers' packets, in order (told apart by their lengths).
    assert_eq!(clear, [0, 4, 8, 9]);
}

#[test]
fn a_ttl_runs_out_only_for_packets_the_incoming_check_lets_through() {
    // Input decrements the TTL of packets to forward as it parses them, and sets aside those
    // whose TTL ran out; the incoming check still comes first for both.
    let (mut r1, _r2) = pair(Level::Require);
    let stranger = Ipv4Addr::new(10, 9, 0, 1);
    let expired = ip_packet(H1, H2, Protocol::Udp, 1, &udp(1, 2, 11));
    let frames = [
        ip_packet(H2, H1, Protocol::Udp, 1, &udp(1, 2, 10)),
        expired.clone(),
        ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 12)),
        ip_packet(stranger, H2, Protocol::Udp, 2, &udp(1, 2, 13)),
    ]
    .map(|p| frame(mac(1, LAN), host_mac(1), &p));
    let [lan, wan] = r1.input(LAN, frames.to_vec());
    assert_eq!(r1.dropped(DropReason::IncomingPolicy), 1, "should have come encrypted: no ICMP error");
    assert_eq!(r1.dropped(DropReason::TtlExceeded), 1);
    assert_eq!(lan.len(), 1);
    let ip = ipv4::Packet::new_checked(l3(&lan[0])).unwrap();
    assert_eq!((ip.protocol(), ip.dst_addr()), (Protocol::Icmp, H1));
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(u8::from(m.msg_type()), 11, "time exceeded");
    assert_eq!(&m.data()[..20], &expired[..20], "quotes the header as received");
    let mut sent: Vec<(Protocol, u8)> = wan
        .iter()
        .map(|f| {
            let ip = ipv4::Packet::new_checked(l3(f)).unwrap();
            (ip.protocol(), ip.ttl())
        })
        .collect();
    sent.sort_by_key(|&(p, _)| u8::from(p));
    assert_eq!(sent, [(Protocol::Udp, 1), (Protocol::Esp, 64)]);
}

#[test]
fn ike_bypasses_the_spd_both_ways() {
    let mut r1 =
        Gw::new(1, vec![Policy { selector: Selector::ANY, ..tunnel_policy(1, Level::Require, IpsecProtocols::Esp) }]);
    // IKE from R2 to R1 is punted, not dropped by the incoming check or the require level.
    let ike = ip_packet(R2_WAN, R1_WAN, Protocol::Udp, 64, &udp(500, 500, 40));
    r1.input(WAN, vec![frame(mac(1, WAN), mac(2, WAN), &ike)]);
    let mut punted = 0;
    while let Some(m) = r1.up.pop() {
        if let FromWorker::Punt { buf, .. } = m {
            punted += 1;
            // The control plane answers from port 500: originated here, it bypasses the SPD.
            let mut reply = buf;
            {
                use dataplane::buf::PacketBuf;
                let d = reply.data_mut();
                let mut ip = ipv4::Packet::new_unchecked(d);
                ip.set_src_addr(R1_WAN);
                ip.set_dst_addr(R2_WAN);
                ip.fill_checksum();
            }
            r1.msg(ToWorker::Originate { buf: reply });
        }
    }
    assert_eq!(punted, 1);
    let wan = std::mem::take(&mut r1.w.ports_mut()[WAN as usize].tx);
    assert_eq!(wan.len(), 1, "sent in clear despite require without SA");
    assert_eq!(ipv4::Packet::new_checked(l3(&wan[0])).unwrap().protocol(), Protocol::Udp);
    assert_eq!(r1.dropped(DropReason::NoSa), 0);
}

#[test]
fn decrypted_packets_must_match_the_policy_of_their_sa() {
    let (mut r1, mut r2) = pair(Level::Require);
    // R1 is made to encrypt traffic its policy's peer does not cover: 10.1.0.10 → 10.2.0.20 is
    // fine, but a packet from 10.7.0.1 tunnelled with the same SA must be refused by R2.
    let wide =
        Selector { src: Prefix::new(u32::from(Ipv4Addr::new(10, 0, 0, 0)), 8), dst: lan_net(2), ..Selector::ANY };
    let mut r1b = Gw::new(1, vec![Policy { selector: wide, ..tunnel_policy(1, Level::Require, IpsecProtocols::Esp) }]);
    let s = r1b.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r1b.install_out(1, Some(s), None);
    let stray = ip_packet(Ipv4Addr::new(10, 7, 0, 1), H2, Protocol::Udp, 64, &udp(1, 2, 10));
    let [_, wan] = r1b.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &stray)]);
    assert_eq!(wan.len(), 1);
    let [lan, _] = r2.input(WAN, wan);
    assert!(lan.is_empty());
    assert_eq!(r2.dropped(DropReason::InnerPolicyMismatch), 1);
    let _ = &mut r1;
}

#[test]
fn unknown_spi_is_dropped() {
    let (mut r1, mut r2) = pair(Level::Require);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 10));
    let [_, mut wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
    wan[0][14 + 20 + 3] ^= 0xff; // SPI
    let [lan, _] = r2.input(WAN, wan);
    assert!(lan.is_empty());
    assert_eq!(r2.dropped(DropReason::UnknownSpi), 1);
}

#[test]
fn ah_esp_policy_applies_esp_then_ah() {
    let mut r1 = Gw::new(1, vec![tunnel_policy(1, Level::Require, IpsecProtocols::AhEsp)]);
    let mut r2 = Gw::new(2, vec![tunnel_policy(2, Level::Require, IpsecProtocols::AhEsp)]);
    let cbc = Transform::new(Cipher::AesCbc128, Auth::Null).unwrap();
    let sha = Transform::auth_only(Auth::HmacSha1_96).unwrap();
    let e = r1.sa(0x200, IpsecProto::Esp, Mode::Tunnel, cbc, R1_WAN, R2_WAN, 3);
    let a = r1.sa(0x201, IpsecProto::Ah, Mode::Transport, sha, R1_WAN, R2_WAN, 4);
    r1.install_out(1, Some(e), Some(a));
    let e = r2.sa(0x200, IpsecProto::Esp, Mode::Tunnel, cbc, R1_WAN, R2_WAN, 3);
    r2.install_in(1, e);
    let a = r2.sa(0x201, IpsecProto::Ah, Mode::Transport, sha, R1_WAN, R2_WAN, 4);
    r2.install_in(1, a);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 100));
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
    let ip = ipv4::Packet::new_checked(l3(&wan[0])).unwrap();
    assert_eq!(ip.protocol(), Protocol::Ah);
    assert_eq!(ah::Packet::new_checked(ip.payload()).unwrap().next_header(), Protocol::Esp);
    let [lan, _] = r2.input(WAN, wan);
    assert_eq!(lan.len(), 1, "{:?}", r2.w.stats().drops.nonzero().collect::<Vec<_>>());
}

/// The gateway behind R1 that the nested tunnels' inner SA goes to.
const INNER_GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

/// Policy 1 tunnels LAN1 → LAN2 to [`INNER_GW`]; policy 2 tunnels R1 → 198.51.100.0/24 to R2.
fn nested_policies() -> (Policy, Policy) {
    (Policy { sa_dst: INNER_GW, ..tunnel_policy(1, Level::Require, IpsecProtocols::Esp) }, outer_tunnel_policy())
}

/// Installs on R1 the SAs of [`nested_policies`]: 0x300 to [`INNER_GW`], 0x301 to R2.
fn install_nested_sas(r1: &mut Gw) {
    let s = r1.sa(0x300, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, INNER_GW, 5);
    r1.install_out(1, Some(s), None);
    let s = r1.sa(0x301, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 6);
    r1.install_out(2, Some(s), None);
}

#[test]
fn nested_tunnels_encrypt_twice_and_loop_avoidance_stops_the_second_pass() {
    // Policy 1 tunnels LAN1 → LAN2 to 198.51.100.2 (an inner gateway); policy 2 tunnels
    // everything R1 → 198.51.100.0/24 again to R2: the encrypted packet, processed again as
    // locally originated, matches policy 2 and is encrypted a second time. After that it
    // matches policy 2 again and goes out as it is.
    let (p1, p2) = nested_policies();
    let mut r1 = Gw::new(1, vec![p1, p2]);
    install_nested_sas(&mut r1);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 20));
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
    assert_eq!(wan.len(), 1, "{:?}", r1.w.stats().drops.nonzero().collect::<Vec<_>>());
    let outer = ipv4::Packet::new_checked(l3(&wan[0])).unwrap();
    assert_eq!((outer.dst_addr(), outer.protocol()), (R2_WAN, Protocol::Esp));
    assert_eq!(esp::Packet::new_checked(outer.payload()).unwrap().spi(), 0x301);
    // R2 unwraps both layers: outer SA to R2, inner SA to 198.51.100.2 is not ours, so R2
    // forwards the inner ESP packet on (here: no route, counted).
    let mirror = Policy {
        selector: Selector {
            src: Prefix::new(u32::from(Ipv4Addr::new(198, 51, 100, 0)), 24),
            dst: Prefix::host(u32::from(R1_WAN)),
            ..Selector::ANY
        },
        ..tunnel_policy(2, Level::Require, IpsecProtocols::Esp)
    };
    let mut r2 = Gw::new(2, vec![Policy { id: 2, ..mirror }]);
    let s = r2.sa(0x301, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 6);
    r2.install_in(2, s);
    r2.input(WAN, wan);
    assert_eq!(r2.dropped(DropReason::NoRoute), 1, "{:?}", r2.w.stats().drops.nonzero().collect::<Vec<_>>());
}

/// Whether sealed packets go through the SPD again is decided per bundle when it is installed
/// and again when the SPD is swapped: a policy added later for the tunnel's outer packets
/// encrypts them a second time, and its removal stops that.
#[test]
fn an_spd_swap_decides_again_whether_sealed_packets_are_checked() {
    let (p1, p2) = nested_policies();
    let mut r1 = Gw::new(1, vec![p1]);
    install_nested_sas(&mut r1);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 20));
    // Sealed once, for 198.51.100.2, which R1 has no route to.
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
    assert!(wan.is_empty());
    assert_eq!(r1.dropped(DropReason::NoRoute), 1);
    // With the outer policy, sealed again to R2.
    r1.msg(ToWorker::spd(Arc::new(Spd::new(vec![p1, p2]))));
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
    assert_eq!(wan.len(), 1, "{:?}", r1.w.stats().drops.nonzero().collect::<Vec<_>>());
    let outer = ipv4::Packet::new_checked(l3(&wan[0])).unwrap();
    assert_eq!((outer.dst_addr(), esp::Packet::new_checked(outer.payload()).unwrap().spi()), (R2_WAN, 0x301));
    // Without it again, once.
    r1.msg(ToWorker::spd(Arc::new(Spd::new(vec![p1]))));
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
    assert!(wan.is_empty());
    assert_eq!(r1.dropped(DropReason::NoRoute), 2);
}

/// Manual: a packet is never encrypted again by the rule that just encrypted it. The tunnel's
/// own packets (R1 to 10.2.0.254, inside the policy's destination) match the policy that
/// sealed them: they go out once, as they are, not sealed again until the nesting limit.
#[test]
fn a_tunnel_whose_packets_match_its_own_policy_seals_once() {
    let far = Ipv4Addr::new(10, 2, 0, 254);
    let p = Policy {
        selector: Selector { dst: lan_net(2), ..Selector::ANY },
        sa_dst: far,
        ..tunnel_policy(1, Level::Require, IpsecProtocols::Esp)
    };
    let mut r1 = Gw::new(1, vec![p]);
    let s = r1.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, far, 1);
    r1.install_out(1, Some(s), None);
    let inner = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 20));
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &inner)]);
    assert_eq!(wan.len(), 1, "{:?}", r1.w.stats().drops.nonzero().collect::<Vec<_>>());
    let outer = ipv4::Packet::new_checked(l3(&wan[0])).unwrap();
    assert_eq!((outer.src_addr(), outer.dst_addr(), outer.protocol()), (R1_WAN, far, Protocol::Esp));
    // One layer: as long as the same packet sealed once by the LAN-to-LAN policy.
    let (mut once, _) = pair(Level::Require);
    let [_, want] = once.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &inner)]);
    assert_eq!(want.len(), 1);
    assert_eq!(outer.total_len(), ipv4::Packet::new_checked(l3(&want[0])).unwrap().total_len());
}

#[test]
fn workers_report_their_sas() {
    let (mut r1, _r2) = pair(Level::Require);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1, 2, 10));
    r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p); 5]);
    r1.msg(ToWorker::Snapshot);
    let mut snaps = None;
    while let Some(m) = r1.up.pop() {
        if let FromWorker::Snapshot(v) = m {
            snaps = Some(v);
        }
    }
    let mut snaps = snaps.expect("snapshot answered");
    snaps.sort_by_key(|s| s.spi);
    assert_eq!(snaps.len(), 2);
    assert_eq!(
        (snaps[0].spi, snaps[0].direction, snaps[0].counters.packets, snaps[0].seq),
        (0x100, Direction::Out, 5, 5)
    );
    assert_eq!((snaps[1].spi, snaps[1].direction, snaps[1].src, snaps[1].dst), (0x101, Direction::In, R2_WAN, R1_WAN));
}

/// Reporting thousands of SAs at once stalled the worker for milliseconds: a snapshot goes up
/// a few SAs per round, every SA once, those removed meanwhile left out.
#[test]
fn snapshots_go_up_a_few_sas_per_round() {
    let mut r1 = Gw::new(1, vec![tunnel_policy(1, Level::Require, IpsecProtocols::Esp)]);
    for i in 0..20u32 {
        let out = r1.sa(0x1000 + i, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
        r1.install_out(100 + i, Some(out), None);
        let inb = r1.sa(0x2000 + i, IpsecProto::Esp, Mode::Tunnel, gcm(), R2_WAN, R1_WAN, 2);
        r1.install_in(100 + i, inb);
    }
    while r1.up.pop().is_some() {}
    let chunks = |r: &Gw| {
        let mut v = Vec::new();
        while let Some(m) = r.up.pop() {
            if let FromWorker::Snapshot(s) = m {
                v.push(s);
            }
        }
        v
    };
    r1.msg(ToWorker::Snapshot);
    let first = chunks(&r1);
    assert_eq!(first.len(), 1, "one chunk per round");
    assert!(!first[0].is_empty() && first[0].len() <= 8, "{} SAs in a round", first[0].len());
    let mut seen: Vec<u32> = first[0].iter().map(|s| s.spi).collect();
    // An inbound SA not reported yet goes away: the walk skips it.
    let gone = (0x2000..0x2014).find(|spi| !seen.contains(spi)).expect("some inbound SA still to come");
    let key = SaKey { src: R2_WAN, dst: R1_WAN, proto: IpsecProto::Esp, spi: gone };
    r1.msg(ToWorker::Inbound { key, sa: None });
    for _ in 0..10 {
        r1.w.poll_once(0);
    }
    seen.extend(chunks(&r1).iter().flatten().map(|s| s.spi));
    seen.sort_unstable();
    let want: Vec<u32> = (0x1000..0x1014).chain((0x2000..0x2014).filter(|&s| s != gone)).collect();
    assert_eq!(seen, want, "every SA once");
    r1.w.poll_once(0);
    assert!(chunks(&r1).is_empty(), "the walk is over");
}

#[test]
fn nat_traversal_carries_esp_in_udp_4500_and_sorts_what_else_arrives_there() {
    use dataplane::sa::UdpEncap;
    let mut r1 = Gw::new(1, vec![tunnel_policy(1, Level::Require, IpsecProtocols::Esp)]);
    let mut r2 = Gw::new(2, vec![tunnel_policy(2, Level::Require, IpsecProtocols::Esp)]);
    let encap = Some(UdpEncap { src_port: 4500, dst_port: 4500 });
    let mut s = r1.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    s.set_udp_encap(encap);
    r1.install_out(1, Some(s), None);
    let mut s = r2.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    s.set_udp_encap(encap);
    r2.install_in(1, s);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(7, 8, 100));
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p); 3]);
    assert_eq!(wan.len(), 3);
    assert_eq!(ipv4::Packet::new_checked(l3(&wan[0])).unwrap().protocol(), Protocol::Udp);
    let [lan, _] = r2.input(WAN, wan);
    assert_eq!(lan.len(), 3, "{:?}", r2.w.stats().drops.nonzero().collect::<Vec<_>>());
    // A keepalive is consumed; IKE behind the non-ESP marker goes to the control plane.
    let keepalive = ip_packet(R1_WAN, R2_WAN, Protocol::Udp, 64, &[&udp(4500, 4500, 1)[..8], &[0xff]].concat());
    let mut ike = udp(4500, 4500, 40);
    ike[8..12].fill(0);
    let ike = ip_packet(R1_WAN, R2_WAN, Protocol::Udp, 64, &ike);
    let punted_before = r2.w.stats().punted;
    r2.input(WAN, vec![frame(mac(2, WAN), mac(1, WAN), &keepalive), frame(mac(2, WAN), mac(1, WAN), &ike)]);
    assert_eq!(r2.dropped(DropReason::NatKeepalive), 1);
    assert_eq!(r2.w.stats().punted, punted_before + 1);
}

/// An outbound GCM SA from R1 to R2 with time lifetimes, built on another thread's clock (0).
fn timed_sa(spi: u32, soft_secs: u64, hard_secs: u64) -> Sa<S> {
    let enc: Vec<u8> = (0..20).collect();
    let cfg = SaConfig {
        spi,
        proto: IpsecProto::Esp,
        mode: Mode::Tunnel,
        src: R1_WAN,
        dst: R2_WAN,
        xf: gcm(),
        enc_key: &enc,
        auth_key: &[],
        replay_window: 64,
        lifetimes: Lifetimes { soft_secs, hard_secs, ..Lifetimes::default() },
        dont_fragment: DontFragment::Clear,
    };
    Sa::new(&mut RustEngine, &cfg, 0).unwrap()
}

/// Sends one packet from H1 to H2 into R1 at `at_ms`; returns the packets R1 sent to the WAN.
fn send_at(r1: &mut Gw, at_ms: u64) -> usize {
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1000, 53, 10));
    r1.w.ports_mut()[LAN as usize].rx.push_back(frame(mac(1, LAN), host_mac(1), &p));
    while r1.w.poll_once(at_ms) > 0 {}
    std::mem::take(&mut r1.w.ports_mut()[WAN as usize].tx).len()
}

#[test]
fn sa_time_lifetimes_start_when_the_worker_installs_the_sa() {
    // The worker's clock is far from zero (TSC-based in production); the SA was built elsewhere.
    let t0_ms = 5_000_000_000u64;
    let mut r1 = Gw::new(1, vec![tunnel_policy(1, Level::Require, IpsecProtocols::Esp)]);
    let sa = timed_sa(0x100, 10, 20);
    assert!(
        r1.down.push(ToWorker::Outbound { policy_id: 1, bundle: Some(Box::new(Bundle::new(Some(sa), None))) }).is_ok()
    );
    r1.w.poll_once(t0_ms);
    assert_eq!(send_at(&mut r1, t0_ms + 1000), 1, "a fresh SA seals");
    assert!(!r1.up_events().contains(&SaEvent::SoftExpired));
    assert_eq!(send_at(&mut r1, t0_ms + 11_000), 1, "past the soft lifetime it still seals");
    assert!(r1.up_events().contains(&SaEvent::SoftExpired));
    assert_eq!(send_at(&mut r1, t0_ms + 21_000), 0, "past the hard lifetime it stops");
    assert!(r1.up_events().contains(&SaEvent::HardExpired));
}

#[test]
fn idle_sas_expire_without_traffic_a_bounded_number_per_round() {
    let mut r2 = Gw::new(2, vec![tunnel_policy(2, Level::Require, IpsecProtocols::Esp)]);
    let n = 100;
    for spi in 0..n {
        let sa = timed_sa(0x1000 + spi, 5, 10);
        let key = SaKey { src: sa.src(), dst: sa.dst(), proto: sa.proto(), spi: sa.spi() };
        assert!(r2.down.push(ToWorker::Inbound { key, sa: Some(Box::new(InboundSa { sa, policy_id: 2 })) }).is_ok());
    }
    // Installed at 0; no packet arrives at any time below.
    while !r2.down.is_empty() {
        r2.w.poll_once(0);
    }
    r2.w.poll_once(4_999);
    assert!(r2.up_events().is_empty(), "nothing is due before the soft lifetime");
    for (at_ms, event) in [(5_000, SaEvent::SoftExpired), (10_000, SaEvent::HardExpired)] {
        r2.w.poll_once(at_ms);
        let first = r2.up_events();
        assert!(!first.is_empty() && first.len() < n as usize, "one round expires some, not all: {}", first.len());
        let mut all = first;
        let mut rounds = 1;
        loop {
            r2.w.poll_once(at_ms);
            let more = r2.up_events();
            if more.is_empty() {
                break;
            }
            all.extend(more);
            rounds += 1;
        }
        assert!(all.iter().all(|e| *e == event), "{all:?}");
        assert_eq!(all.len(), n as usize, "every SA expires once, in {rounds} rounds");
    }
}

#[test]
fn a_replaced_sa_keeps_its_own_lifetimes() {
    let mut r1 = Gw::new(1, vec![tunnel_policy(1, Level::Require, IpsecProtocols::Esp)]);
    let install = |r1: &mut Gw, at_ms: u64| {
        // The same SPI both times: the first SA's deadlines then find the second one.
        let bundle = Some(Box::new(Bundle::new(Some(timed_sa(0x100, 0, 10)), None)));
        assert!(r1.down.push(ToWorker::Outbound { policy_id: 1, bundle }).is_ok());
        r1.w.poll_once(at_ms);
    };
    install(&mut r1, 0);
    install(&mut r1, 8_000);
    assert_eq!(send_at(&mut r1, 10_000), 1, "the first SA's hard lifetime does not end the second");
    assert_eq!(send_at(&mut r1, 17_000), 1);
    assert!(r1.up_events().is_empty());
    assert_eq!(send_at(&mut r1, 18_000), 0, "the second SA ends ten seconds after its own installation");
    assert_eq!(r1.up_events(), [SaEvent::HardExpired]);
}

#[test]
fn one_burst_over_several_policies_seals_each_with_its_sa_and_nests_only_what_a_policy_matches() {
    // One policy tunnels LAN1 → one half of 10.2.0.0/24 to an inner gateway, whose tunnel
    // policy 2 nests in a second tunnel to R2; another tunnels LAN1 → the other half straight
    // to R2, and its outer header matches no policy. One burst mixes both: the policies' SAs
    // seal their packets in one crypto submission, and the pass over the sealed packets
    // encrypts again only those sealed for the inner gateway. Run twice, the nesting policy
    // first (policy 1) and then last (policy 3): a burst's groups follow the policies' order.
    // The inner gateway's network lies below R2's address, so the bounding box of the rules
    // leaves R2 out: the direct tunnel's packets skip the second pass, the others take it.
    let inner_gw = Ipv4Addr::new(172, 16, 0, 2);
    let half = |a: u8| Prefix::new(u32::from(Ipv4Addr::new(10, 2, 0, a)), 25);
    let base = tunnel_policy(1, Level::Require, IpsecProtocols::Esp);
    let outer = outer_tunnel_policy();
    let p2 = Policy { selector: Selector { dst: Prefix::new(u32::from(inner_gw), 24), ..outer.selector }, ..outer };
    let cbc = Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).unwrap();
    let far = [Ipv4Addr::new(10, 2, 0, 20), Ipv4Addr::new(10, 2, 0, 200)];
    let mut wan = Vec::new();
    for nest_first in [true, false] {
        let (to_inner, to_r2) = if nest_first { (1, 3) } else { (3, 1) };
        let dst = |id| if id == 1 { half(0) } else { half(128) };
        let p1 = Policy {
            sa_dst: if nest_first { inner_gw } else { R2_WAN },
            selector: Selector { dst: dst(1), ..base.selector },
            ..base
        };
        let p3 = Policy {
            id: 3,
            sa_dst: if nest_first { R2_WAN } else { inner_gw },
            selector: Selector { dst: dst(3), ..base.selector },
            ..base
        };
        let mut r1 = Gw::new(1, vec![p1, p2, p3]);
        let s = r1.sa(0x300, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, inner_gw, 5);
        r1.install_out(to_inner, Some(s), None);
        let s = r1.sa(0x301, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 6);
        r1.install_out(2, Some(s), None);
        let s = r1.sa(0x302, IpsecProto::Esp, Mode::Tunnel, cbc, R1_WAN, R2_WAN, 7);
        r1.install_out(to_r2, Some(s), None);
        let frames: Vec<Vec<u8>> = (0..8)
            .map(|i| frame(mac(1, LAN), host_mac(1), &ip_packet(H1, far[i % 2], Protocol::Udp, 64, &udp(1, 2, 20 + i))))
            .collect();
        [_, wan] = r1.input(LAN, frames);
        assert_eq!(wan.len(), 8, "{:?}", r1.w.stats().drops.nonzero().collect::<Vec<_>>());
        let mut spis: Vec<u32> = wan
            .iter()
            .map(|f| {
                let outer = ipv4::Packet::new_checked(l3(f)).unwrap();
                assert_eq!((outer.dst_addr(), outer.protocol()), (R2_WAN, Protocol::Esp));
                esp::Packet::new_checked(outer.payload()).unwrap().spi()
            })
            .collect();
        spis.sort();
        assert_eq!(spis, [0x301, 0x301, 0x301, 0x301, 0x302, 0x302, 0x302, 0x302]);
    }
    // R2 opens policy 3's packets with the SA of 0x302: each was sealed with its own keys.
    let mirror = Policy {
        id: 3,
        selector: Selector {
            src: Prefix::new(u32::from(Ipv4Addr::new(10, 2, 0, 0)), 24),
            dst: lan_net(1),
            ..Selector::ANY
        },
        ..tunnel_policy(2, Level::Require, IpsecProtocols::Esp)
    };
    let mut r2 = Gw::new(2, vec![mirror]);
    let s = r2.sa(0x302, IpsecProto::Esp, Mode::Tunnel, cbc, R1_WAN, R2_WAN, 7);
    r2.install_in(3, s);
    let theirs: Vec<Vec<u8>> =
        wan.into_iter().filter(|f| esp::Packet::new_checked(&l3(f)[20..]).unwrap().spi() == 0x302).collect();
    let mut lan = Vec::new();
    for f in theirs {
        let [l, _] = r2.input(WAN, vec![f]);
        lan.extend(l);
    }
    // R2's LAN route is not set up for 10.2.0.128/25 hosts' neighbours: count what decrypted.
    let opened = lan.len() as u64 + r2.w.stats().punted;
    assert_eq!(opened, 4, "{:?}", r2.w.stats().drops.nonzero().collect::<Vec<_>>());
}

/// One burst of ESP from two SAs, interleaved: the inbound stage opens it SA by SA, each
/// packet with its own SA's keys, and loses none of the packets it sets aside for a later SA.
#[test]
fn one_burst_over_two_inbound_sas_opens_every_packet_with_its_own_sa() {
    // Two policies each way, told apart by the DNS-like port: 53 through SPI 0x100, 54 through
    // SPI 0x200, with different keys.
    let by_port = |n: u8, id: u32, port: u16| {
        let p = tunnel_policy(n, Level::Require, IpsecProtocols::Esp);
        let selector =
            if n == 1 { Selector { dst_port: port, ..p.selector } } else { Selector { src_port: port, ..p.selector } };
        Policy { id, selector, ..p }
    };
    let mut r1 = Gw::new(1, vec![by_port(1, 1, 53), by_port(1, 2, 54)]);
    let mut r2 = Gw::new(2, vec![by_port(2, 1, 53), by_port(2, 2, 54)]);
    for (id, spi, salt) in [(1, 0x100, 1), (2, 0x200, 3)] {
        let s = r1.sa(spi, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, salt);
        r1.install_out(id, Some(s), None);
        let s = r2.sa(spi, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, salt);
        r2.install_in(id, s);
    }
    let sent: Vec<Vec<u8>> =
        (0..12).map(|i| ip_packet(H1, H2, Protocol::Udp, 64, &udp(1000 + i, 53 + i % 2, 20 + i as usize))).collect();
    let [_, wan] = r1.input(LAN, sent.iter().map(|p| frame(mac(1, LAN), host_mac(1), p)).collect());
    let spis: Vec<u32> = wan
        .iter()
        .map(|f| esp::Packet::new_checked(ipv4::Packet::new_checked(l3(f)).unwrap().payload()).unwrap().spi())
        .collect();
    assert_eq!(spis.iter().filter(|&&s| s == 0x100).count(), 6, "{spis:x?}");
    assert_eq!(spis.iter().filter(|&&s| s == 0x200).count(), 6, "{spis:x?}");
    // R2 gets them as one burst.
    let [lan, _] = r2.input(WAN, wan);
    assert_eq!(lan.len(), 12, "{:?}", r2.w.stats().drops.nonzero().collect::<Vec<_>>());
    let mut got: Vec<Vec<u8>> = lan.iter().map(|f| l3(f).to_vec()).collect();
    let mut want: Vec<Vec<u8>> = sent
        .into_iter()
        .map(|mut p| {
            // Each router decrements the TTL of the inner packet once.
            p[8] -= 2;
            ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
            p
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn outbound_sas_follow_their_policy_id_across_spd_changes() {
    let encrypt = tunnel_policy(1, Level::Require, IpsecProtocols::Esp);
    let other = |id| Policy {
        id,
        selector: Selector { dst: lan_net(9), ..Selector::ANY },
        ..Policy::accept(id, Selector::ANY)
    };
    // The SA arrives before its policy: the worker keeps it aside.
    let mut r1 = Gw::new(1, vec![]);
    let s = r1.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r1.install_out(1, Some(s), None);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1000, 53, 10));
    let send = |r: &mut Gw| {
        let [_, wan] = r.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
        wan.first().map(|f| {
            let ip = ipv4::Packet::new_checked(l3(f)).unwrap();
            match ip.protocol() {
                Protocol::Esp => Some(esp::Packet::new_checked(ip.payload()).unwrap().seq_number()),
                _ => None,
            }
        })
    };
    assert_eq!(send(&mut r1), Some(None), "no policy: in clear");
    // The policy comes second in the list, then first after another change, then goes and
    // comes back: the same SA seals every time, its sequence numbers carry on.
    let spds = [vec![other(7), encrypt], vec![encrypt, other(7), other(8)], vec![other(8)], vec![encrypt]];
    let want = [Some(Some(1)), Some(Some(2)), Some(None), Some(Some(3))];
    for (mut spd, want) in spds.into_iter().zip(want) {
        // Eight more policies for other networks, so that the SPD has too many rules to be
        // scanned (more than eight) and its answers go through the flow cache.
        spd.extend((9..17).map(other));
        r1.msg(ToWorker::spd(Arc::new(Spd::new(spd))));
        assert_eq!(send(&mut r1), want);
    }
    let mut seen = Vec::new();
    r1.w.pipeline().for_each_sa(|d, id, sa| seen.push((d, id, sa.spi())));
    assert_eq!(seen, vec![(Direction::Out, 1, 0x100)]);
    // Removed: level require drops.
    r1.msg(ToWorker::Outbound { policy_id: 1, bundle: None });
    assert_eq!(send(&mut r1), None);
    assert_eq!(r1.dropped(DropReason::NoSa), 1);
    r1.w.pipeline().for_each_sa(|_, id, _| panic!("SA of policy {id} left"));
    // The flow cache: a miss under each SPD whose rules could match the packet (a new SPD
    // forgets the last one's answers), then a hit for the same flow under the same SPD.
    assert_eq!(r1.w.stats().outbound_cache, CacheStats { hits: 1, misses: 3 });
}

#[test]
fn an_spd_swap_hands_back_the_old_spd_and_its_counters() {
    let encrypt = tunnel_policy(1, Level::Require, IpsecProtocols::Esp);
    let first = Arc::new(Spd::new(vec![encrypt]));
    let mut r1 = Gw::new(1, Vec::new());
    r1.msg(ToWorker::spd(Arc::clone(&first)));
    let s = r1.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r1.install_out(1, Some(s), None);
    let p = ip_packet(H1, H2, Protocol::Udp, 64, &udp(1000, 53, 10));
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p); 2]);
    assert_eq!(wan.len(), 2);
    let encrypted = |c: &PolicyCounters| c.get(0, Outcome::Encrypted).packets;
    assert_eq!(encrypted(r1.w.pipeline().policy_counters()), 2);
    while r1.up.pop().is_some() {}
    // The control plane made the new counters; the worker returns the old ones with the old
    // SPD, to be freed off the worker.
    r1.msg(ToWorker::spd(Arc::new(Spd::new(vec![encrypt]))));
    let mut retired = None;
    while let Some(m) = r1.up.pop() {
        if let FromWorker::Retired(Retired::Spd(spd, counters)) = m {
            retired = Some((spd, counters));
        }
    }
    let (spd, counters) = retired.expect("the old SPD comes back");
    assert!(Arc::ptr_eq(&spd, &first));
    assert_eq!(encrypted(&counters), 2);
    assert_eq!(encrypted(r1.w.pipeline().policy_counters()), 0);
    // Counters made for another SPD are not used: the worker makes its own.
    let other = Policy { id: 2, action: Action::Accept, ..encrypt };
    r1.msg(ToWorker::Spd { spd: Arc::new(Spd::new(vec![encrypt, other])), counters: Box::new(PolicyCounters::new(1)) });
    assert_eq!(r1.w.pipeline().policy_counters().len(), 2);
    let [_, wan] = r1.input(LAN, vec![frame(mac(1, LAN), host_mac(1), &p)]);
    assert_eq!(wan.len(), 1);
    assert_eq!(encrypted(r1.w.pipeline().policy_counters()), 1);
}

thread_local! {
    /// The test's clock: one tick per read, and whatever the engine below adds.
    static TICKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn ticks() -> u64 {
    TICKS.with(|t| {
        t.set(t.get() + 1);
        t.get()
    })
}

/// Ticks of the test's clock each call of [`SlowEngine`] takes.
const ENGINE_TICKS: u64 = 1_000;

/// The software engine, each of whose calls takes [`ENGINE_TICKS`] of the test's clock.
struct SlowEngine;

impl Engine for SlowEngine {
    type Session = S;
    fn name(&self) -> &'static str {
        "slow"
    }
    fn session(&mut self, xf: Transform, enc: &[u8], auth: &[u8]) -> Result<S, dataplane::crypto::KeyError> {
        RustEngine.session(xf, enc, auth)
    }
    fn seal(&mut self, s: &S, jobs: &mut [dataplane::crypto::Job<'_>]) {
        TICKS.with(|t| t.set(t.get() + ENGINE_TICKS));
        RustEngine.seal(s, jobs);
    }
    fn open(&mut self, s: &S, jobs: &mut [dataplane::crypto::Job<'_>]) {
        TICKS.with(|t| t.set(t.get() + ENGINE_TICKS));
        RustEngine.open(s, jobs);
    }
}

/// `runtime`'s crypto stage holds the time of the engine's calls, sealing and opening, and the
/// ipsec stage the rest of the IPsec work, without it.
#[test]
fn the_crypto_stage_holds_the_engines_time_and_the_ipsec_stage_the_rest() {
    use dataplane::pipeline::Stage;
    let policy = |n| tunnel_policy(n, Level::Require, IpsecProtocols::Esp);
    let mut r1 = Gw::with_engine(1, vec![policy(1)], SlowEngine);
    let mut r2 = Gw::with_engine(2, vec![policy(2)], SlowEngine);
    r1.w.set_clock(ticks);
    r2.w.set_clock(ticks);
    let s = r1.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r1.install_out(1, Some(s), None);
    let s = r2.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r2.install_in(1, s);
    let frames =
        (0..8).map(|i| frame(mac(1, LAN), host_mac(1), &ip_packet(H1, H2, Protocol::Udp, 64, &udp(i, 53, 40))));
    let [_, wan] = r1.input(LAN, frames.collect());
    assert_eq!(wan.len(), 8);
    let [lan, _] = r2.input(WAN, wan);
    assert_eq!(lan.len(), 8);
    for (name, r) in [("sealing", &r1), ("opening", &r2)] {
        let rt = &r.w.stats().runtime;
        let (crypto, ipsec) = (Stage::Crypto as usize, Stage::Ipsec as usize);
        assert_eq!((rt.packets[crypto], rt.calls[crypto], rt.packets[ipsec]), (8, 1, 8), "{name}");
        // One engine call for the burst, read between two ticks.
        assert_eq!(rt.cycles[crypto], ENGINE_TICKS + 1, "{name}");
        assert!(rt.cycles[ipsec] > 0 && rt.cycles[ipsec] < ENGINE_TICKS, "{name}: {}", rt.table());
        assert!(rt.table().contains("\ncrypto "), "{name}");
    }
}

/// [`SlowEngine`], but sealing jobs of more than 100 bytes alone as they are framed, as
/// ipsec-mb seals long AES-GCM packets; each such job also takes [`ENGINE_TICKS`].
struct AloneEngine;

impl Engine for AloneEngine {
    type Session = S;
    fn name(&self) -> &'static str {
        "alone"
    }
    fn session(&mut self, xf: Transform, enc: &[u8], auth: &[u8]) -> Result<S, dataplane::crypto::KeyError> {
        RustEngine.session(xf, enc, auth)
    }
    fn seal(&mut self, s: &S, jobs: &mut [dataplane::crypto::Job<'_>]) {
        SlowEngine.seal(s, jobs);
    }
    fn open(&mut self, s: &S, jobs: &mut [dataplane::crypto::Job<'_>]) {
        SlowEngine.open(s, jobs);
    }
    fn seals_alone_from(&self, _: &S) -> Option<u32> {
        Some(101)
    }
    fn seal_alone(&mut self, s: &S, job: &mut dataplane::crypto::Job<'_>) {
        assert!(job.cipher.len > 100, "a job of {} bytes was sealed alone", job.cipher.len);
        SlowEngine.seal(s, std::slice::from_mut(job));
    }
}

/// Jobs the engine seals alone are sealed as they are framed: their time is the ipsec stage's,
/// the crypto stage keeps the burst's one call for the others, and `runtime` says how many were
/// sealed alone. The peer opens every packet.
#[test]
fn jobs_sealed_alone_are_timed_in_the_ipsec_stage() {
    use dataplane::pipeline::Stage;
    let policy = |n| tunnel_policy(n, Level::Require, IpsecProtocols::Esp);
    let mut r1 = Gw::with_engine(1, vec![policy(1)], AloneEngine);
    let mut r2 = Gw::with_engine(2, vec![policy(2)], SlowEngine);
    r1.w.set_clock(ticks);
    let s = r1.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r1.install_out(1, Some(s), None);
    let s = r2.sa(0x100, IpsecProto::Esp, Mode::Tunnel, gcm(), R1_WAN, R2_WAN, 1);
    r2.install_in(1, s);
    // Short and long packets alternate: three short, five long.
    let frames = (0..8).map(|i| {
        let len = if i % 2 == 0 && i < 6 { 40 } else { 400 };
        frame(mac(1, LAN), host_mac(1), &ip_packet(H1, H2, Protocol::Udp, 64, &udp(i, 53, len)))
    });
    let [_, wan] = r1.input(LAN, frames.collect());
    assert_eq!(wan.len(), 8);
    let [lan, _] = r2.input(WAN, wan);
    assert_eq!(lan.len(), 8);
    let rt = &r1.w.stats().runtime;
    let (crypto, ipsec) = (Stage::Crypto as usize, Stage::Ipsec as usize);
    assert_eq!((rt.packets[crypto], rt.calls[crypto], rt.packets[ipsec], rt.sealed_alone), (3, 1, 8, 5));
    assert_eq!(rt.cycles[crypto], ENGINE_TICKS + 1, "{}", rt.table());
    assert!((5 * ENGINE_TICKS..6 * ENGINE_TICKS).contains(&rt.cycles[ipsec]), "{}", rt.table());
    assert!(rt.table().contains("the crypto of 5 jobs sealed one by one"), "{}", rt.table());
    r1.w.publish();
    assert_eq!(r1.w.stats_cell().load().runtime, *rt);
}
