//! Hostile input: random datagrams, and every datagram of real exchanges truncated, extended
//! or with bytes flipped (length field fixed up or not), delivered before the genuine copy.
//! Nothing may panic, state stays bounded, and random garbage never stops an exchange.

mod ike_support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use ike_support::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Vec<(usize, u8)>),
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        proptest::collection::vec((any::<usize>(), 1u8..=255), 1..6).prop_map(Mutation::Flip),
        any::<usize>().prop_map(Mutation::Truncate),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Extend),
    ]
}

fn apply(bytes: &[u8], m: &Mutation, fix_len: bool) -> Vec<u8> {
    // Keep the non-ESP marker of UDP 4500 in place, so the mutation reaches ISAKMP.
    let off = if bytes.starts_with(&[0, 0, 0, 0]) { 4 } else { 0 };
    let mut v = bytes.to_vec();
    match m {
        Mutation::Flip(f) => {
            for &(at, x) in f {
                let n = v.len() - off;
                v[off + at % n] ^= x;
            }
        }
        Mutation::Truncate(at) => v.truncate(off + at % (v.len() - off)),
        Mutation::Extend(more) => v.extend_from_slice(more),
    }
    if fix_len && v.len() >= off + 28 {
        let len = (v.len() - off) as u32;
        v[off + 24..off + 28].copy_from_slice(&len.to_be_bytes());
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..700), marker in any::<bool>()) {
        let (_, b) = Gw::pair();
        let mut ep = endpoint(&b, 1);
        let bytes = if marker { [&[0u8, 0, 0, 0][..], &data].concat() } else { data };
        let now = Instant::now();
        ep.handle(now, SocketAddr::V4(SocketAddrV4::new(A, 500)), &bytes);
        ep.handle(now, SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 500)), &bytes);
        while ep.poll_transmit().is_some() {}
        ep.handle_timeout(now);
        prop_assert!(ep.phase1_count() <= 1);
    }

    #[test]
    fn tampered_copies_never_panic(
        target in 1usize..14,
        m in mutation(),
        fix_len in any::<bool>(),
        aggressive in any::<bool>(),
        nat in any::<bool>(),
    ) {
        let (mut a, mut b) = Gw::pair();
        if aggressive {
            a.peer = "exchange-mode=aggressive".into();
            b.peer = a.peer.clone();
        }
        if nat {
            b.remote = NAT;
        }
        let (ea, eb) = (endpoint(&a, 11), endpoint(&b, 12));
        let id = policy_id(ea.config());
        let mut net = Net::new(ea, eb);
        if nat {
            net.nat = Some(NAT);
        }
        net.tamper = Box::new(move |p| (p.seq == target && !p.t.bytes.is_empty()).then(|| apply(&p.t.bytes, &m, fix_len)));
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        prop_assert!(net.ep[0].phase1_count() <= 2 && net.ep[1].phase1_count() <= 3);
        prop_assert!(net.sas(0).len() <= 1 && net.sas(1).len() <= 1);
        if let (Some(i), Some(r)) = (net.sas(0).first(), net.sas(1).first()) {
            assert_mirrored(i, r);
        }
    }

    #[test]
    fn garbage_does_not_stop_an_exchange(
        target in 1usize..14,
        data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        // A datagram of random bytes (not a copy of a real one) arrives before a genuine one.
        let (a, b) = Gw::pair();
        let (ea, eb) = (endpoint(&a, 21), endpoint(&b, 22));
        let id = policy_id(ea.config());
        let mut net = Net::new(ea, eb);
        net.tamper = Box::new(move |p| (p.seq == target).then(|| data.clone()));
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        prop_assert_eq!(net.sas(0).len(), 1);
        prop_assert_eq!(net.sas(1).len(), 1);
    }
}
