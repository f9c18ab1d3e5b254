//! The worker as a router, driven through in-memory ports: ARP, ping, forwarding, ICMP errors,
//! punts to the control plane, and the counters of every drop.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::buf::HeapBuf;
use dataplane::crypto::rust::RustEngine;
use dataplane::ctl::{FromWorker, PuntReason, Retired, Ring, Tables, ToWorker};
use dataplane::port::MemPort;
use dataplane::route::{Iface, Ifaces, NextHop, Route};
use dataplane::spd::Spd;
use dataplane::stats::DropReason;
use dataplane::wire::{Protocol, arp, ethernet, icmp, ipv4};
use dataplane::worker::Worker;

const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 1, 0x50];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];
const LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
const WAN_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 50);
const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const FAR: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 9);

type Session = <RustEngine as dataplane::crypto::Engine>::Session;

struct Rig {
    w: Worker<MemPort, RustEngine>,
    down: Arc<Ring<ToWorker<HeapBuf, Session>>>,
    up: Arc<Ring<FromWorker<HeapBuf, Session>>>,
}

fn tables(wan_mtu: u16) -> Arc<Tables> {
    let ifaces = Ifaces::new(vec![
        Iface { port: 0, name: "lan".into(), mac: LAN_MAC, mtu: 1500, addrs: vec![(LAN_IP, 24)] },
        Iface { port: 1, name: "wan".into(), mac: WAN_MAC, mtu: wan_mtu, addrs: vec![(WAN_IP, 24)] },
    ]);
    let routes =
        [Route { prefix: Ipv4Addr::new(10, 2, 0, 0), len: 24, next_hop: NextHop { port: 1, gateway: Some(GW) } }];
    Arc::new(Tables::new(ifaces, &routes))
}

fn rig(wan_mtu: u16, neighbors: bool) -> Rig {
    let down = Arc::new(Ring::new(64));
    let up = Arc::new(Ring::new(64));
    let ports = vec![MemPort::default(), MemPort::default()];
    let mut w =
        Worker::new(0, ports, RustEngine, tables(wan_mtu), Arc::new(Spd::new(vec![])), down.clone(), up.clone());
    if neighbors {
        down.push(ToWorker::Neighbor { port: 0, ip: HOST, mac: HOST_MAC }).ok().unwrap();
        down.push(ToWorker::Neighbor { port: 1, ip: GW, mac: GW_MAC }).ok().unwrap();
        w.poll_once(0);
    }
    Rig { w, down, up }
}

fn frame(dst_mac: [u8; 6], src_mac: [u8; 6], ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + l3.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: Protocol, ttl: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl,
        tos: 0,
        ident: 7,
        dont_frag: df,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    p[20..].copy_from_slice(payload);
    p
}

fn udp(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut u = vec![0u8; 8 + len];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    u
}

fn echo_request() -> Vec<u8> {
    let mut m = vec![0u8; 8 + 16];
    let mut p = icmp::Packet::new_unchecked(&mut m[..]);
    p.set_msg_type(icmp::Message::EchoRequest);
    p.set_echo_ident(0x77);
    p.set_echo_seq_no(1);
    p.fill_checksum();
    m
}

impl Rig {
    fn send(&mut self, port: usize, f: Vec<u8>) {
        self.w.ports_mut()[port].rx.push_back(f);
        self.w.poll_once(1000);
    }
    fn sent(&mut self, port: usize) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.w.ports_mut()[port].tx)
    }
    fn punts(&self) -> Vec<(u16, PuntReason)> {
        let mut v = Vec::new();
        while let Some(m) = self.up.pop() {
            if let FromWorker::Punt { port, reason, .. } = m {
                v.push((port, reason));
            }
        }
        v
    }
    fn dropped(&self, r: DropReason) -> u64 {
        self.w.stats().drops.dropped(r)
    }
}

fn l3(f: &[u8]) -> ipv4::Packet<&[u8]> {
    let eth = ethernet::Packet::new_checked(f).unwrap();
    assert_eq!(eth.ethertype(), ethernet::EtherType::Ipv4);
    let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    ip
}

#[test]
fn answers_arp_for_its_addresses_and_punts_other_arp() {
    let mut r = rig(1500, false);
    let mut req = vec![0u8; 28];
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: ethernet::Address(HOST_MAC),
        source_protocol_addr: HOST,
        target_hardware_addr: ethernet::Address([0; 6]),
        target_protocol_addr: LAN_IP,
    }
    .emit(&mut arp::Packet::new_unchecked(&mut req[..]));
    r.send(0, frame([0xff; 6], HOST_MAC, 0x0806, &req));
    let out = r.sent(0);
    assert_eq!(out.len(), 1);
    let eth = ethernet::Packet::new_checked(&out[0][..]).unwrap();
    assert_eq!((eth.dst_addr().0, eth.src_addr().0), (HOST_MAC, LAN_MAC));
    let a = arp::Repr::parse(&arp::Packet::new_checked(&out[0][14..]).unwrap()).unwrap();
    assert_eq!(a.operation, arp::Operation::Reply);
    assert_eq!((a.source_hardware_addr.0, a.source_protocol_addr), (LAN_MAC, LAN_IP));
    assert_eq!((a.target_hardware_addr.0, a.target_protocol_addr), (HOST_MAC, HOST));
    // A request for the WAN address on the LAN port is not ours to answer there.
    arp::Packet::new_unchecked(&mut req[..]).set_target_protocol_addr(WAN_IP);
    r.send(0, frame([0xff; 6], HOST_MAC, 0x0806, &req));
    assert!(r.sent(0).is_empty());
    assert_eq!(r.punts(), vec![(0, PuntReason::Arp)]);
    assert_eq!(r.w.stats().arp_replies, 1);
}

#[test]
fn replies_to_ping_for_its_addresses() {
    let mut r = rig(1500, true);
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &ip_packet(HOST, LAN_IP, Protocol::Icmp, 64, false, &echo_request())));
    let out = r.sent(0);
    assert_eq!(out.len(), 1);
    let ip = l3(&out[0]);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (LAN_IP, HOST));
    let m = icmp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((m.msg_type(), m.echo_ident(), m.echo_seq_no()), (icmp::Message::EchoReply, 0x77, 1));
    assert!(m.verify_checksum());
    assert_eq!(&out[0][..6], &HOST_MAC);
}

#[test]
fn forwards_with_ttl_decrement_to_the_resolved_gateway() {
    let mut r = rig(1500, true);
    let pkt = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1000, 2000, 100));
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &pkt));
    let out = r.sent(1);
    assert_eq!(out.len(), 1);
    assert_eq!((&out[0][..6], &out[0][6..12]), (&GW_MAC[..], &WAN_MAC[..]));
    let ip = l3(&out[0]);
    assert_eq!(ip.ttl(), 63, "decremented, checksum still valid");
    assert_eq!(&out[0][14 + 20..], &pkt[20..]);
    assert_eq!(r.w.stats().forwarded, 1);
    assert_eq!(r.w.stats().tx_packets, 1);
}

#[test]
fn punts_packets_whose_next_hop_is_unresolved() {
    let mut r = rig(1500, false);
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 3))));
    assert_eq!(r.punts(), vec![(1, PuntReason::Resolve { next_hop: GW })]);
}

#[test]
fn sends_icmp_errors_for_ttl_no_route_and_fragmentation_needed() {
    let mut r = rig(1400, true);
    let cases = [
        (ip_packet(HOST, FAR, Protocol::Udp, 1, false, &udp(1, 2, 10)), 11, 0, DropReason::TtlExceeded, 0),
        (
            ip_packet(HOST, Ipv4Addr::new(172, 16, 0, 1), Protocol::Udp, 64, false, &udp(1, 2, 10)),
            3,
            0,
            DropReason::NoRoute,
            0,
        ),
        (ip_packet(HOST, FAR, Protocol::Udp, 64, true, &udp(1, 2, 1430)), 3, 4, DropReason::FragNeeded, 1400),
    ];
    for (pkt, ty, code, reason, mtu) in cases {
        r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &pkt));
        let out = r.sent(0);
        assert_eq!(out.len(), 1, "{reason:?}");
        let ip = l3(&out[0]);
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.protocol()), (LAN_IP, HOST, Protocol::Icmp));
        let m = icmp::Packet::new_checked(ip.payload()).unwrap();
        assert!(m.verify_checksum());
        assert_eq!((u8::from(m.msg_type()), m.code()), (ty, code), "{reason:?}");
        assert_eq!(m.next_hop_mtu(), mtu);
        assert_eq!(&m.data()[..20], &pkt[..20], "quotes the original header");
        assert_eq!(m.data().len(), 28, "header plus 8 bytes");
        assert_eq!(r.dropped(reason), 1);
    }
    // No error about an ICMP error.
    let err = r.w.stats().icmp_out;
    let mut m = vec![0u8; 36];
    m[0] = 3;
    let mut p = icmp::Packet::new_unchecked(&mut m[..]);
    p.fill_checksum();
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &ip_packet(HOST, FAR, Protocol::Icmp, 1, false, &m)));
    assert!(r.sent(0).is_empty());
    assert_eq!(r.w.stats().icmp_out, err);
}

#[test]
fn each_packet_of_a_burst_to_several_destinations_goes_its_own_way() {
    // The route stage remembers the last destination's route and neighbour: runs to one
    // destination, broken by an unresolved neighbour, an unroutable packet and one to
    // fragment, must each still go their own way, in order.
    let mut r = rig(1400, true);
    r.w.set_alloc(Box::new(|| Some(HeapBuf::from_slice(&[]))));
    let other = Ipv4Addr::new(10, 1, 0, 60);
    let nowhere = Ipv4Addr::new(172, 16, 0, 1);
    let far = |sport: u16, len: usize| ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(sport, 9, len));
    let burst = [
        far(1, 10),
        far(2, 10),
        ip_packet(HOST, other, Protocol::Udp, 64, false, &udp(3, 9, 10)),
        far(4, 10),
        ip_packet(HOST, nowhere, Protocol::Udp, 64, false, &udp(5, 9, 10)),
        far(6, 1420),
        far(7, 10),
    ];
    for p in &burst {
        r.w.ports_mut()[0].rx.push_back(frame(LAN_MAC, HOST_MAC, 0x0800, p));
    }
    r.w.poll_once(1000);
    let out = r.sent(1);
    let sports: Vec<(u16, usize)> = out
        .iter()
        .map(|f| {
            assert_eq!((&f[..6], &f[6..12]), (&GW_MAC[..], &WAN_MAC[..]));
            let ip = l3(f);
            assert_eq!(ip.dst_addr(), FAR);
            let sport = if ip.frag_offset() == 0 { u16::from_be_bytes([ip.payload()[0], ip.payload()[1]]) } else { 6 };
            (sport, usize::from(ip.frag_offset()))
        })
        .collect();
    let firsts: Vec<u16> = sports.iter().map(|s| s.0).collect();
    assert_eq!(firsts, [1, 2, 4, 6, 6, 7], "{sports:?}");
    assert!(sports[4].1 > 0, "the second fragment of the large one");
    assert_eq!(r.punts(), vec![(0, PuntReason::Resolve { next_hop: other })]);
    assert_eq!(r.dropped(DropReason::NoRoute), 1);
    let back = r.sent(0);
    assert_eq!(back.len(), 1, "one net-unreachable error");
    assert_eq!(l3(&back[0]).dst_addr(), HOST);
}

#[test]
fn punts_ike_and_other_local_traffic() {
    let mut r = rig(1500, true);
    for (dport, reason) in [(500, PuntReason::Ike), (4500, PuntReason::Ike), (53, PuntReason::Local)] {
        r.send(
            1,
            frame(WAN_MAC, GW_MAC, 0x0800, &ip_packet(GW, WAN_IP, Protocol::Udp, 64, false, &udp(500, dport, 20))),
        );
        assert_eq!(r.punts(), vec![(1, reason)]);
    }
}

#[test]
fn forwards_a_header_with_options_whose_checksum_covers_them() {
    let mut r = rig(1500, true);
    // A 24-byte header (router alert option), its checksum computed over all 24 bytes.
    let plain = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 10));
    let mut p = Vec::with_capacity(plain.len() + 4);
    p.extend_from_slice(&plain[..20]);
    p.extend_from_slice(&[0x94, 4, 0, 0]);
    p.extend_from_slice(&plain[20..]);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_header_len(24);
        ip.set_total_len((plain.len() + 4) as u16);
        ip.fill_checksum();
    }
    let mut bad = p.clone();
    bad[22] ^= 1;
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &p));
    let out = r.sent(1);
    assert_eq!(out.len(), 1);
    let ip = l3(&out[0]);
    assert_eq!((ip.header_len(), ip.ttl(), usize::from(ip.total_len())), (24, 63, p.len()));
    // A changed option byte breaks the checksum: the sum covers the options.
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &bad));
    assert!(r.sent(1).is_empty());
    assert_eq!(r.dropped(DropReason::BadChecksum), 1);
}

#[test]
fn drops_what_it_must_with_a_reason() {
    let mut r = rig(1500, true);
    let good = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 10));
    let mut bad_sum = good.clone();
    bad_sum[10] ^= 1;
    let mut bad_len = good.clone();
    bad_len[3] = 200;
    r.send(0, frame([2, 9, 9, 9, 9, 9], HOST_MAC, 0x0800, &good));
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x86dd, &good));
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &bad_sum));
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &bad_len));
    // UDP without room for its ports: no policy could be checked, so it is not forwarded,
    // even with no policy installed.
    let short_udp = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &[0, 1]);
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &short_udp));
    r.send(0, vec![1, 2, 3]);
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0806, &[0u8; 10]));
    assert!(r.sent(1).is_empty() && r.sent(0).is_empty());
    assert_eq!(r.dropped(DropReason::OtherHost), 1);
    assert_eq!(r.dropped(DropReason::UnsupportedEthertype), 1);
    assert_eq!(r.dropped(DropReason::BadChecksum), 1);
    assert_eq!(r.dropped(DropReason::BadIpHeader), 1);
    assert_eq!(r.dropped(DropReason::Truncated), 2);
    assert_eq!(r.dropped(DropReason::BadArp), 1);
    // A full transmit queue is counted.
    r.w.ports_mut()[1].tx_limit = Some(1);
    for _ in 0..3 {
        r.w.ports_mut()[0].rx.push_back(frame(LAN_MAC, HOST_MAC, 0x0800, &good));
    }
    r.w.poll_once(0);
    assert_eq!(r.sent(1).len(), 1);
    assert_eq!(r.dropped(DropReason::TxQueueFull), 2);
}

#[test]
fn swapped_tables_are_retired_to_the_control_plane() {
    let mut r = rig(1500, true);
    let old = Arc::clone(r.w_tables());
    r.down.push(ToWorker::Tables(tables(1500))).ok().unwrap();
    r.w.poll_once(0);
    match r.up.pop() {
        Some(FromWorker::Retired(Retired::Tables(t))) => assert!(Arc::ptr_eq(&t, &old)),
        _ => panic!("old tables not handed back"),
    }
}

#[test]
fn published_counters_match_the_live_ones() {
    let mut r = rig(1500, true);
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 10))));
    r.send(0, vec![0]);
    r.send(1, vec![0]);
    r.w.publish();
    assert_eq!(&r.w.stats_cell().load(), r.w.stats());
    // Frames by the port they came from, including those dropped at once.
    assert_eq!(r.w.stats().rx_by_port, [2, 1]);
}

impl Rig {
    fn w_tables(&self) -> &Arc<Tables> {
        self.w.tables()
    }
}

mod slow_path {
    use super::*;
    use dataplane::buf::HeapAlloc;
    use dataplane::slowpath::SlowPath;

    fn arp_reply_from_gw() -> Vec<u8> {
        let mut rep = vec![0u8; 28];
        arp::Repr {
            operation: arp::Operation::Reply,
            source_hardware_addr: ethernet::Address(GW_MAC),
            source_protocol_addr: GW,
            target_hardware_addr: ethernet::Address(WAN_MAC),
            target_protocol_addr: WAN_IP,
        }
        .emit(&mut arp::Packet::new_checked(&mut rep[..]).unwrap());
        frame(WAN_MAC, GW_MAC, 0x0806, &rep)
    }

    /// A UDP datagram GW:500 → us:500 carrying `payload`, with its checksum filled.
    fn ike_packet(payload: &[u8]) -> Vec<u8> {
        let mut u = udp(500, 500, payload.len());
        u[8..].copy_from_slice(payload);
        let mut p = ip_packet(GW, WAN_IP, Protocol::Udp, 64, false, &u);
        dataplane::wire::udp::Packet::new_unchecked(&mut p[20..]).fill_checksum(&GW, &WAN_IP);
        p
    }

    #[test]
    fn ike_datagrams_reach_the_control_plane_and_its_datagrams_leave_as_local_traffic() {
        use std::net::SocketAddrV4;
        let mut r = rig(1500, true);
        let mut slow = SlowPath::new(tables(1500), vec![r.down.clone()], r.up.clone());
        let payload: Vec<u8> = (0..60).collect();
        r.send(1, frame(WAN_MAC, GW_MAC, 0x0800, &ike_packet(&payload)));
        // Not whole UDP: a bad checksum, a truncated datagram, a fragment.
        let mut bad_sum = ike_packet(&payload);
        bad_sum[30] ^= 1;
        let mut short = ike_packet(&payload);
        short[24..26].copy_from_slice(&100u16.to_be_bytes());
        let mut frag = ike_packet(&payload);
        frag[6] = 0x20;
        ipv4::Packet::new_unchecked(&mut frag[..]).fill_checksum();
        for p in [bad_sum, short, frag] {
            r.send(1, frame(WAN_MAC, GW_MAC, 0x0800, &p));
        }
        slow.poll(&HeapAlloc, 1000);
        let d = slow.pop_datagram().expect("the good datagram");
        assert_eq!(d.local, SocketAddrV4::new(WAN_IP, 500));
        assert_eq!(d.remote, SocketAddrV4::new(GW, 500));
        assert_eq!(d.payload, payload);
        assert_eq!(slow.pop_datagram(), None);
        // One of the bad three never looked like IKE to the worker (punted as local traffic and
        // dropped there); the slow path refuses the other two.
        let st = &slow.stats;
        assert_eq!((st.ike_in, st.ike_malformed, st.local_dropped), (3, 2, 1));
        // The answer goes out of the WAN port to the peer, as a valid UDP datagram.
        let answer = dataplane::slowpath::Datagram { local: d.local, remote: d.remote, payload: vec![7; 300] };
        assert!(slow.originate_udp(&HeapAlloc, &answer));
        r.w.poll_once(1000);
        let out = r.sent(1);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..6], &GW_MAC);
        let ip = l3(&out[0]);
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.protocol()), (WAN_IP, GW, Protocol::Udp));
        let u = dataplane::wire::udp::Packet::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum(&WAN_IP, &GW));
        assert_eq!((u.src_port(), u.dst_port(), u.payload()), (500, 500, &[7u8; 300][..]));
    }

    #[test]
    fn resolves_next_hops_holds_packets_and_teaches_the_workers() {
        let mut r = rig(1500, false);
        let mut slow = SlowPath::new(tables(1500), vec![r.down.clone()], r.up.clone());
        let pkt = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 10));
        for _ in 0..3 {
            r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &pkt));
        }
        slow.poll(&HeapAlloc, 1000);
        assert_eq!((slow.stats.held, slow.stats.arp_requests), (3, 1), "one ARP request for three packets");
        r.w.poll_once(1000);
        let out = r.sent(1);
        assert_eq!(out.len(), 1);
        let req = arp::Repr::parse(&arp::Packet::new_checked(&out[0][14..]).unwrap()).unwrap();
        assert_eq!(
            (req.operation, req.target_protocol_addr, req.source_protocol_addr),
            (arp::Operation::Request, GW, WAN_IP)
        );
        assert_eq!(&out[0][..6], &[0xff; 6]);
        // The gateway answers: the worker punts the reply, the slow path learns it, tells the
        // worker, and sends the held packets.
        r.send(1, arp_reply_from_gw());
        slow.poll(&HeapAlloc, 1100);
        r.w.poll_once(1100);
        let out = r.sent(1);
        assert_eq!(out.len(), 3, "held packets released");
        assert!(out.iter().all(|f| f[..6] == GW_MAC && f[14 + 8] == 63));
        assert_eq!(slow.stats.released, 3);
        // From now on the worker resolves by itself.
        r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &pkt));
        assert_eq!(r.sent(1).len(), 1);
        assert!(r.up.is_empty());
    }

    #[test]
    fn gives_up_on_silent_next_hops_and_bounds_what_it_holds() {
        let mut r = rig(1500, false);
        let mut slow = SlowPath::new(tables(1500), vec![r.down.clone()], r.up.clone());
        let pkt = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 10));
        r.w.ports_mut()[0].rx.extend((0..20).map(|_| frame(LAN_MAC, HOST_MAC, 0x0800, &pkt)));
        r.w.poll_once(0);
        slow.poll(&HeapAlloc, 10);
        assert_eq!((slow.stats.held, slow.stats.hold_dropped), (16, 4));
        slow.poll(&HeapAlloc, 1500);
        assert_eq!(slow.stats.arp_requests, 2, "retried after a second");
        slow.poll(&HeapAlloc, 3100);
        assert_eq!(slow.stats.hold_dropped, 20, "given up after three seconds");
        // An unsolicited reply from a host we never asked about teaches nothing.
        r.send(1, arp_reply_from_gw());
        slow.poll(&HeapAlloc, 3200);
        assert_eq!(slow.stats.arp_learned, 1, "replies addressed to us are learned");
        let mut other = arp_reply_from_gw();
        other[14 + 24..14 + 28].copy_from_slice(&[192, 0, 2, 77]);
        other[14 + 14..14 + 18].copy_from_slice(&[192, 0, 2, 66]);
        r.send(1, other);
        slow.poll(&HeapAlloc, 3300);
        assert_eq!(slow.stats.arp_learned, 1, "third-party chatter is not");
    }
}

#[test]
fn stages_are_timed_per_burst_with_the_clock_given() {
    use dataplane::pipeline::Stage;
    use std::sync::atomic::{AtomicU64, Ordering};
    static TICKS: AtomicU64 = AtomicU64::new(0);
    fn clock() -> u64 {
        TICKS.fetch_add(10, Ordering::Relaxed)
    }
    let mut r = rig(1500, true);
    r.w.set_clock(clock);
    let pkt = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 10));
    r.w.ports_mut()[0].rx.extend((0..8).map(|_| frame(LAN_MAC, HOST_MAC, 0x0800, &pkt)));
    r.w.poll_once(0);
    assert_eq!(r.sent(1).len(), 8);
    let rt = &r.w.stats().runtime;
    for st in [Stage::Rx, Stage::Input, Stage::Route, Stage::Tx] {
        assert_eq!(rt.packets[st as usize], 8, "{st:?}");
        assert!(rt.cycles[st as usize] > 0, "{st:?}");
    }
    assert!(rt.table().contains("route"));
    r.w.publish();
    assert_eq!(r.w.stats_cell().load().runtime, *rt);
}

#[test]
fn fragments_what_exceeds_the_mtu_unless_df_forbids_it() {
    let mut r = rig(600, true);
    r.w.set_alloc(Box::new(|| Some(HeapBuf::from_slice(&[]))));
    let big = ip_packet(HOST, FAR, Protocol::Udp, 64, false, &udp(1, 2, 1000));
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &big));
    let out = r.sent(1);
    assert_eq!(out.len(), 2, "1028 bytes of payload in two fragments of at most 600");
    let mut payload = Vec::new();
    for (i, f) in out.iter().enumerate() {
        assert!(f.len() - 14 <= 600);
        let ip = l3(f);
        assert_eq!((ip.more_frags(), usize::from(ip.frag_offset())), (i == 0, payload.len()));
        assert_eq!(ip.ttl(), 63);
        payload.extend_from_slice(ip.payload());
    }
    assert_eq!(payload, big[20..].to_vec());
    assert_eq!(r.w.stats().fragmented, 1);
    // Without buffers for the fragments the packet is dropped, counted.
    let mut r = rig(600, true);
    r.send(0, frame(LAN_MAC, HOST_MAC, 0x0800, &big));
    assert!(r.sent(1).is_empty());
    assert_eq!(r.dropped(DropReason::NoBuffer), 1);
}

/// The control plane makes room in the ring of a worker it still holds, before the ports start:
/// that applies the messages and touches no port (DPDK refuses, loudly, to poll a stopped one).
#[test]
fn applying_control_messages_touches_no_port() {
    let mut r = rig(1500, false);
    let ping = ip_packet(HOST, LAN_IP, Protocol::Icmp, 64, false, &echo_request());
    r.w.ports_mut()[0].rx.push_back(frame(LAN_MAC, HOST_MAC, 0x0800, &ping));
    r.down.push(ToWorker::Neighbor { port: 0, ip: HOST, mac: HOST_MAC }).ok().unwrap();
    r.down.push(ToWorker::Transmit { port: 1, buf: HeapBuf::from_slice(&[0xab; 60]) }).ok().unwrap();
    r.w.apply_control(0);
    assert!(r.down.pop().is_none(), "every message applied");
    assert_eq!(r.w.ports_mut()[0].rx.len(), 1, "nothing received");
    assert!(r.sent(1).is_empty(), "nothing transmitted yet");
    assert_eq!(r.w.stats().rx_packets, 0);
    // The first round sends the staged frame and answers the ping with the neighbour applied.
    r.w.poll_once(0);
    assert_eq!(r.sent(1), vec![vec![0xab; 60]]);
    assert_eq!(r.sent(0).len(), 1, "echo reply");
}
