//! SA and policy churn while traffic flows: a worker on its own thread seals a LAN host's traffic
//! with one policy's SA while the control side, on the test's thread, installs and removes other
//! policies' SAs and swaps the SPD as fast as it can, freeing what the worker hands back. Not a
//! packet of the unchanged SA may be lost or reordered, and nothing else may be dropped. Under
//! valgrind (`make valgrind`) the same run proves there is no use after free and no leak.
//!
//! `CHURN_OPS` sets the number of control operations (default 20,000).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use dataplane::buf::HeapBuf;
use dataplane::bundle::Bundle;
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Transform};
use dataplane::ctl::{FromWorker, InboundSa, Ring, SaKey, Tables, ToWorker};
use dataplane::port::MemPort;
use dataplane::route::{Iface, Ifaces, NextHop, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};
use dataplane::spd::{Action, IpsecProtocols, Level, Policy, Prefix, Selector, Spd};
use dataplane::wire::{esp, ipv4};
use dataplane::worker::Worker;

type S = <RustEngine as Engine>::Session;

const LAN: u16 = 0;
const WAN: u16 = 1;
const R1_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const R2_WAN: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const LAN_MAC: [u8; 6] = [2, 0, 0, 1, 0, 0];
const WAN_MAC: [u8; 6] = [2, 0, 0, 1, 0, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 2, 0, 1];
const HOST_MAC: [u8; 6] = [2, 0, 0, 1, 9, 9];
/// The SPI of the SA that never changes.
const STEADY_SPI: u32 = 0x100;

fn prefix(a: [u8; 4], len: u8) -> Prefix {
    Prefix::new(u32::from(Ipv4Addr::from(a)), len)
}

/// An encrypt policy `id` from 10.1.0.0/24 to `dst`, tunnel between the WANs.
fn policy(id: u32, dst: Prefix) -> Policy {
    Policy {
        id,
        selector: Selector { src: prefix([10, 1, 0, 0], 24), dst, ..Selector::ANY },
        action: Action::Encrypt,
        level: Level::Require,
        mode: Mode::Tunnel,
        sa_src: R1_WAN,
        sa_dst: R2_WAN,
        protocols: IpsecProtocols::Esp,
        dont_fragment: DontFragment::Clear,
    }
}

fn sa(spi: u32, src: Ipv4Addr, dst: Ipv4Addr) -> Sa<S> {
    let key: Vec<u8> = (0..20).map(|i| (i as u32 ^ spi) as u8).collect();
    let cfg = SaConfig {
        spi,
        proto: IpsecProto::Esp,
        mode: Mode::Tunnel,
        src,
        dst,
        xf: Transform::new(Cipher::AesGcm128, Auth::Null).unwrap(),
        enc_key: &key,
        auth_key: &[],
        replay_window: 64,
        lifetimes: Lifetimes::default(),
        dont_fragment: DontFragment::Clear,
    };
    Sa::new(&mut RustEngine, &cfg, 0).unwrap()
}

/// A UDP packet from the LAN host to 10.2.0.20 in an Ethernet frame to the gateway.
fn lan_frame(n: u16) -> Vec<u8> {
    let payload = 16 + usize::from(n % 64);
    let mut p = vec![0u8; 20 + 8 + payload];
    ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 1, 0, 10),
        dst_addr: Ipv4Addr::new(10, 2, 0, 20),
        protocol: dataplane::wire::Protocol::Udp,
        payload_len: 8 + payload,
        ttl: 64,
        tos: 0,
        ident: n,
        dont_frag: false,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    p[20..22].copy_from_slice(&1000u16.to_be_bytes());
    p[22..24].copy_from_slice(&53u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    let mut f = LAN_MAC.to_vec();
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&p);
    f
}

#[test]
fn sa_and_policy_churn_loses_nothing_on_the_unchanged_sa() {
    let ops: usize = std::env::var("CHURN_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let ifaces = Ifaces::new(vec![
        Iface { port: LAN, name: "lan".into(), mac: LAN_MAC, mtu: 1500, addrs: vec![(Ipv4Addr::new(10, 1, 0, 1), 24)] },
        Iface { port: WAN, name: "wan".into(), mac: WAN_MAC, mtu: 1500, addrs: vec![(R1_WAN, 24)] },
    ]);
    let routes =
        [Route { prefix: Ipv4Addr::new(10, 0, 0, 0), len: 8, next_hop: NextHop { port: WAN, gateway: Some(R2_WAN) } }];
    let steady = policy(1, prefix([10, 2, 0, 0], 24));
    let (down, up) = (Arc::new(Ring::new(4096)), Arc::new(Ring::new(4096)));
    let ports = vec![MemPort::default(), MemPort::default()];
    let tables = Arc::new(Tables::new(ifaces, &routes));
    let mut w: Worker<MemPort, RustEngine> =
        Worker::new(0, ports, RustEngine, tables, Arc::new(Spd::new(vec![steady])), down.clone(), up.clone());
    let push = |m: ToWorker<HeapBuf, S>| {
        let mut m = m;
        while let Err(back) = down.push(m) {
            m = back;
            std::thread::yield_now();
        }
    };
    push(ToWorker::Neighbor { port: WAN, ip: R2_WAN, mac: PEER_MAC });
    push(ToWorker::Outbound {
        policy_id: 1,
        bundle: Some(Box::new(Bundle::new(Some(sa(STEADY_SPI, R1_WAN, R2_WAN)), None))),
    });

    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let worker = {
        let (stop, progress, down) = (stop.clone(), progress.clone(), down.clone());
        std::thread::spawn(move || {
            // The worker's own traffic: a burst in, a poll, what came out checked.
            let (mut sent, mut sealed, mut next_seq) = (0u64, 0u64, 1u32);
            let mut n = 0u16;
            while !stop.load(Ordering::Relaxed) || !w.ports_mut()[LAN as usize].rx.is_empty() {
                if !stop.load(Ordering::Relaxed) {
                    for _ in 0..8 {
                        n = n.wrapping_add(1);
                        w.ports_mut()[LAN as usize].rx.push_back(lan_frame(n));
                        sent += 1;
                    }
                }
                w.poll_once(0);
                for f in std::mem::take(&mut w.ports_mut()[WAN as usize].tx) {
                    let ip = ipv4::Packet::new_checked(&f[14..]).expect("IPv4 out of the WAN");
                    let e = esp::Packet::new_checked(ip.payload()).expect("ESP");
                    assert_eq!(e.spi(), STEADY_SPI, "sealed by the unchanged SA");
                    assert_eq!(e.seq_number(), next_seq, "no packet lost or reordered");
                    next_seq += 1;
                    sealed += 1;
                }
                progress.store(sealed, Ordering::Relaxed);
            }
            // Every control message still queued is applied, so what it replaced comes back.
            while !down.is_empty() {
                w.poll_once(0);
            }
            let drops = w.stats().drops.total_dropped();
            (sent, sealed, drops)
        })
    };

    // Traffic flows before the churn starts (under valgrind the threads take turns).
    while progress.load(Ordering::Relaxed) < 100 {
        std::thread::yield_now();
    }
    // The control side: other policies' SAs in and out, and SPD swaps, as fast as it goes.
    let start = Instant::now();
    let mut retired = 0u64;
    let mut extra: Vec<Policy> = Vec::new();
    for i in 0..ops {
        let id = 2 + (i % 64) as u32;
        let dst = prefix([10, 100 + (i % 64) as u8, 0, 0], 24);
        match i % 4 {
            0 => push(ToWorker::Outbound {
                policy_id: id,
                bundle: Some(Box::new(Bundle::new(Some(sa(0x1000 + i as u32, R1_WAN, R2_WAN)), None))),
            }),
            1 => {
                let s = sa(0x8000_0000 | i as u32, R2_WAN, R1_WAN);
                let key = SaKey { src: R2_WAN, dst: R1_WAN, proto: IpsecProto::Esp, spi: s.spi() };
                push(ToWorker::Inbound { key, sa: Some(Box::new(InboundSa { sa: s, policy_id: id })) });
                let old = SaKey { spi: 0x8000_0000 | (i as u32).wrapping_sub(4), ..key };
                push(ToWorker::Inbound { key: old, sa: None });
            }
            2 => {
                // The SPD: the steady policy first, then a changing set behind it.
                if extra.len() < 32 {
                    extra.push(policy(id, dst));
                } else {
                    extra.remove(i % 32);
                }
                let list = std::iter::once(steady).chain(extra.iter().copied()).collect();
                push(ToWorker::spd(Arc::new(Spd::new(list))));
            }
            _ => push(ToWorker::Outbound { policy_id: id, bundle: None }),
        }
        // Free what the worker hands back, here, off the worker.
        while let Some(m) = up.pop() {
            if let FromWorker::Retired(_) = m {
                retired += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (sent, sealed, drops) = worker.join().expect("the worker thread");
    while let Some(m) = up.pop() {
        if let FromWorker::Retired(_) = m {
            retired += 1;
        }
    }
    println!(
        "{ops} control operations in {secs:.2} s ({:.0}/s) while {sent} packets were sealed; {retired} retired objects freed off the worker",
        ops as f64 / secs
    );
    assert_eq!(sealed, sent, "every packet of the unchanged SA came out");
    assert_eq!(drops, 0, "nothing dropped");
    assert!(retired as usize >= ops / 2, "replaced objects came back to be freed: {retired}");
}
