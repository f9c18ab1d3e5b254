//! ESP and AH end to end over bursts: round trips for every transform, mode and length on both
//! engines (and across them), the headers produced, and every malformed or hostile input.

mod common;

use common::*;
use dataplane::buf::{Burst, HeapBuf, PacketBuf};
use dataplane::bundle::Bundle;
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Transform};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, SaEvent, SaState};
use dataplane::stats::{DropReason, Stats};
use dataplane::wire::{Protocol, ah, esp, ipv4};
use proptest::prelude::*;

macro_rules! engine_pairs {
    ($body:ident) => {{
        $body(&mut RustEngine, &mut RustEngine);
        #[cfg(target_arch = "x86_64")]
        {
            use dataplane::crypto::ipsec_mb::MbEngine;
            let (mut a, mut b) = (MbEngine::new().unwrap(), MbEngine::new().unwrap());
            $body(&mut a, &mut b);
        }
    }};
}

fn round_trip<E: Engine>(tx: &mut E, rx: &mut E, proto: IpsecProto, mode: Mode, xf: Transform, lens: &[usize]) {
    let (src, dst) = match mode {
        Mode::Tunnel => (LAN1, LAN2),
        Mode::Transport => (R1, R2),
    };
    let mut pair = PairSpec::new(proto, mode, xf).build(tx);
    for chunk in lens.chunks(32) {
        let originals: Vec<Vec<u8>> = chunk.iter().map(|&n| udp_packet(src, dst, n, 0x10, true)).collect();
        let mut b = burst_of(&originals);
        let mut st = Stats::default();
        seal(proto, &mut pair.out, tx, &mut b, &mut st);
        assert_eq!(st.total_dropped(), 0, "{xf:?} {mode:?}: {:?}", st.nonzero().collect::<Vec<_>>());
        for (p, orig) in b.iter().zip(&originals) {
            check_outer(p.data(), proto, mode, xf, orig);
        }
        open(proto, &mut pair.inb, rx, &mut b, &mut st);
        assert_eq!(st.total_dropped(), 0, "{xf:?} {mode:?}: {:?}", st.nonzero().collect::<Vec<_>>());
        let got = contents(&b);
        if mode == Mode::Tunnel {
            assert_eq!(got, originals, "{proto:?} {xf:?} tunnel");
        } else {
            // Transport: the header is rebuilt with the same fields.
            assert_eq!(got, originals, "{proto:?} {xf:?} transport");
        }
    }
    assert_eq!(pair.out.counters().packets, lens.len() as u64);
    assert_eq!(pair.inb.counters(), pair.out.counters());
}

fn check_outer(p: &[u8], proto: IpsecProto, mode: Mode, xf: Transform, orig: &[u8]) {
    let ip = ipv4::Packet::new_checked(p).expect("valid outer header");
    assert!(ip.verify_checksum());
    assert_eq!(usize::from(ip.total_len()), p.len());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (R1, R2));
    let hlen = usize::from(ip.header_len());
    match proto {
        IpsecProto::Esp => {
            assert_eq!(ip.protocol(), Protocol::Esp);
            let e = esp::Packet::new_checked(&p[hlen..]).unwrap();
            assert_eq!(e.spi(), 0x1000);
            let ct = p.len() - hlen - 8 - xf.cipher().iv_len() - xf.icv_len();
            assert_eq!(ct % xf.cipher().pad_align(), 0);
            if xf.cipher() != Cipher::Null && orig.len() >= 28 + 16 {
                // The payload does not appear in clear.
                let tail = &orig[orig.len() - 16..];
                assert!(!p.windows(16).any(|w| w == tail));
            }
        }
        IpsecProto::Ah => {
            assert_eq!(ip.protocol(), Protocol::Ah);
            let a = ah::Packet::new_checked(&p[hlen..]).unwrap();
            assert_eq!(a.spi(), 0x1000);
            assert_eq!(a.header_len(), 12 + xf.icv_len());
            let nh = if mode == Mode::Tunnel { Protocol::IpIp } else { Protocol::Udp };
            assert_eq!(a.next_header(), nh);
        }
    }
    if mode == Mode::Tunnel {
        assert_eq!(ip.ttl(), 64);
        assert_eq!(ip.tos(), 0x10, "TOS copied from the inner header");
        assert!(!ip.dont_frag(), "dont-fragment=clear");
    }
}

const SOME_LENGTHS: &[usize] = &[0, 1, 2, 3, 13, 14, 15, 16, 17, 31, 32, 33, 100, 255, 256, 1000, 1372, 1472];

#[test]
fn esp_round_trips_every_transform_and_mode() {
    fn body<E: Engine>(tx: &mut E, rx: &mut E) {
        for xf in esp_transforms() {
            for mode in [Mode::Tunnel, Mode::Transport] {
                round_trip(tx, rx, IpsecProto::Esp, mode, xf, SOME_LENGTHS);
            }
        }
    }
    engine_pairs!(body);
}

#[test]
fn ah_round_trips_every_transform_and_mode() {
    fn body<E: Engine>(tx: &mut E, rx: &mut E) {
        for xf in ah_transforms() {
            for mode in [Mode::Tunnel, Mode::Transport] {
                round_trip(tx, rx, IpsecProto::Ah, mode, xf, SOME_LENGTHS);
            }
        }
    }
    engine_pairs!(body);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn engines_interoperate_both_ways() {
    use dataplane::crypto::ipsec_mb::MbEngine;
    let mut mb = MbEngine::new().unwrap();
    let mut rust = RustEngine;
    for proto in [IpsecProto::Esp, IpsecProto::Ah] {
        let xfs = if proto == IpsecProto::Esp { esp_transforms() } else { ah_transforms() };
        for xf in xfs {
            for mode in [Mode::Tunnel, Mode::Transport] {
                let spec = PairSpec::new(proto, mode, xf);
                let (src, dst) = if mode == Mode::Tunnel { (LAN1, LAN2) } else { (R1, R2) };
                let originals: Vec<Vec<u8>> = (0..40).map(|n| udp_packet(src, dst, n * 37, 0, false)).collect();
                let mut st = Stats::default();
                // ipsec-mb seals, RustCrypto opens.
                let out = &mut spec.build(&mut mb).out;
                let inb = &mut spec.build(&mut rust).inb;
                let mut b = burst_of(&originals[..32]);
                seal(proto, out, &mut mb, &mut b, &mut st);
                let mut b2: Burst<HeapBuf> = b.iter().map(|p| HeapBuf::from_slice(p.data())).collect();
                open(proto, inb, &mut rust, &mut b2, &mut st);
                assert_eq!(contents(&b2), originals[..32].to_vec(), "mb→rust {xf:?} {mode:?}");
                // RustCrypto seals, ipsec-mb opens.
                let out = &mut spec.build(&mut rust).out;
                let inb = &mut spec.build(&mut mb).inb;
                let mut b = burst_of(&originals[32..]);
                seal(proto, out, &mut rust, &mut b, &mut st);
                let mut b2: Burst<HeapBuf> = b.iter().map(|p| HeapBuf::from_slice(p.data())).collect();
                open(proto, inb, &mut mb, &mut b2, &mut st);
                assert_eq!(contents(&b2), originals[32..].to_vec(), "rust→mb {xf:?} {mode:?}");
                assert_eq!(st.total_dropped(), 0);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any transform, mode and payload length 0..1500 survives seal then open unchanged.
    #[test]
    fn any_length_round_trips(
        proto_esp in any::<bool>(), tunnel in any::<bool>(), xf_i in 0usize..64, lens in proptest::collection::vec(0usize..1500, 1..40),
    ) {
        let (proto, xfs) = if proto_esp { (IpsecProto::Esp, esp_transforms()) } else { (IpsecProto::Ah, ah_transforms()) };
        let xf = xfs[xf_i % xfs.len()];
        let mode = if tunnel { Mode::Tunnel } else { Mode::Transport };
        round_trip(&mut RustEngine, &mut RustEngine, proto, mode, xf, &lens);
        #[cfg(target_arch = "x86_64")]
        {
            use dataplane::crypto::ipsec_mb::MbEngine;
            round_trip(&mut MbEngine::new().unwrap(), &mut MbEngine::new().unwrap(), proto, mode, xf, &lens);
        }
    }
}

fn gcm() -> Transform {
    Transform::new(Cipher::AesGcm128, Auth::Null).unwrap()
}
fn cbc_sha1() -> Transform {
    Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).unwrap()
}

/// Seals one packet and returns its bytes, with the pair for opening.
fn sealed_one(spec: &PairSpec, payload: usize) -> (Vec<u8>, common::Pair<<RustEngine as Engine>::Session>) {
    let mut pair = spec.build(&mut RustEngine);
    let (src, dst) = if spec.mode == Mode::Tunnel { (LAN1, LAN2) } else { (R1, R2) };
    let mut b = burst_of(&[udp_packet(src, dst, payload, 0, false)]);
    let mut st = Stats::default();
    seal(spec.proto, &mut pair.out, &mut RustEngine, &mut b, &mut st);
    assert_eq!(b.len(), 1);
    (b[0].data().to_vec(), pair)
}

/// Opens `packets` on `pair.inb` and returns the stats and the survivors.
fn open_all(
    spec: &PairSpec,
    pair: &mut common::Pair<<RustEngine as Engine>::Session>,
    packets: &[Vec<u8>],
) -> (Stats, Vec<Vec<u8>>) {
    let mut st = Stats::default();
    let mut b = burst_of(packets);
    open(spec.proto, &mut pair.inb, &mut RustEngine, &mut b, &mut st);
    (st, contents(&b))
}

#[test]
fn every_truncation_is_dropped_with_a_reason() {
    for (proto, xf) in [(IpsecProto::Esp, gcm()), (IpsecProto::Esp, cbc_sha1()), (IpsecProto::Ah, ah_transforms()[1])] {
        for mode in [Mode::Tunnel, Mode::Transport] {
            let spec = PairSpec::new(proto, mode, xf);
            let (p, mut pair) = sealed_one(&spec, 40);
            for cut in 0..p.len() {
                let mut t = p[..cut].to_vec();
                if t.len() >= 4 {
                    // Keep the IPv4 total length consistent with the cut, as a truncating
                    // middlebox would not: both kinds must be dropped.
                    let fixed = t.clone();
                    t[2..4].copy_from_slice(&(cut as u16).to_be_bytes());
                    if cut >= 20 {
                        ipv4::Packet::new_unchecked(&mut t[..]).fill_checksum();
                    }
                    let (st, out) = open_all(&spec, &mut pair, &[t, fixed]);
                    assert!(out.is_empty(), "{proto:?} {mode:?} cut at {cut} survived");
                    assert_eq!(st.total_dropped(), 2);
                } else {
                    let (st, out) = open_all(&spec, &mut pair, &[t]);
                    assert!(out.is_empty() && st.total_dropped() == 1);
                }
            }
            // The whole packet still opens: nothing above moved the replay window.
            let (st, out) = open_all(&spec, &mut pair, &[p]);
            assert_eq!((st.total_dropped(), out.len()), (0, 1), "{proto:?} {mode:?}");
        }
    }
}

#[test]
fn every_flipped_bit_of_the_protected_part_fails_authentication() {
    for (proto, xf) in [(IpsecProto::Esp, gcm()), (IpsecProto::Esp, cbc_sha1()), (IpsecProto::Ah, ah_transforms()[2])] {
        let spec = PairSpec::new(proto, Mode::Tunnel, xf);
        let (p, mut pair) = sealed_one(&spec, 50);
        for i in 20..p.len() {
            let mut t = p.clone();
            t[i] ^= 0x01;
            let (st, out) = open_all(&spec, &mut pair, &[t]);
            assert!(out.is_empty(), "{proto:?} byte {i}");
            let spi_byte =
                (20..24).contains(&i) && proto == IpsecProto::Esp || (24..28).contains(&i) && proto == IpsecProto::Ah;
            let want = if spi_byte { DropReason::SpiMismatch } else { DropReason::AuthFailed };
            if proto == IpsecProto::Ah && (20..22).contains(&i) {
                continue; // next header / length fields: BadAhLength or AuthFailed, both drops
            }
            let seq_byte =
                (24..28).contains(&i) && proto == IpsecProto::Esp || (28..32).contains(&i) && proto == IpsecProto::Ah;
            if seq_byte {
                assert_eq!(st.total_dropped(), 1);
                continue; // a changed sequence number: AuthFailed, or TooOld if it became 0
            }
            assert_eq!(st.dropped(want), 1, "{proto:?} byte {i}");
        }
    }
}

#[test]
fn ah_tolerates_mutable_fields_and_covers_immutable_ones() {
    for mode in [Mode::Tunnel, Mode::Transport] {
        let spec = PairSpec::new(IpsecProto::Ah, mode, ah_transforms()[1]);
        let (p, mut pair) = sealed_one(&spec, 64);
        // A router on the way decrements TTL, rewrites TOS, sets DF, and fixes the checksum.
        let mut moved = p.clone();
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut moved[..]);
            ip.set_ttl(ip.ttl() - 3);
            ip.set_tos(0xb8);
            ip.set_dont_frag(true);
            ip.fill_checksum();
        }
        let (st, out) = open_all(&spec, &mut pair, &[moved]);
        assert_eq!((st.total_dropped(), out.len()), (0, 1), "{mode:?}");
        // A changed source address is caught.
        let (p, mut pair) = sealed_one(&spec, 64);
        let mut spoofed = p.clone();
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut spoofed[..]);
            ip.set_src_addr(std::net::Ipv4Addr::new(10, 0, 0, 99));
            ip.fill_checksum();
        }
        let (st, _) = open_all(&spec, &mut pair, &[spoofed]);
        assert_eq!(st.dropped(DropReason::AuthFailed), 1, "{mode:?}");
    }
}

#[test]
fn replayed_and_too_old_packets_are_dropped() {
    let spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, gcm());
    let mut pair = spec.build(&mut RustEngine);
    let mut st = Stats::default();
    let packets: Vec<Vec<u8>> = (0..100).map(|n| udp_packet(LAN1, LAN2, n, 0, false)).collect();
    let mut sealed = Vec::new();
    for chunk in packets.chunks(32) {
        let mut b = burst_of(chunk);
        seal_rust(&mut pair.out, &mut b, &mut st);
        sealed.extend(contents(&b));
    }
    // Packet 100 arrives first, then 37 (in the window), 36 (too old), 100 again (replay),
    // and a duplicate inside one burst.
    let (st, out) = open_all(&spec, &mut pair, &[sealed[99].clone(), sealed[36].clone()]);
    assert_eq!((st.total_dropped(), out.len()), (0, 2));
    let (st, out) = open_all(&spec, &mut pair, &[sealed[35].clone(), sealed[99].clone()]);
    assert_eq!(out.len(), 0);
    assert_eq!((st.dropped(DropReason::TooOld), st.dropped(DropReason::Replayed)), (1, 1));
    let (st, out) = open_all(&spec, &mut pair, &[sealed[50].clone(), sealed[50].clone()]);
    assert_eq!((out.len(), st.dropped(DropReason::Replayed)), (1, 1));
    // A forged packet with a far-ahead sequence number does not move the window.
    let mut forged = sealed[60].clone();
    forged[24..28].copy_from_slice(&5000u32.to_be_bytes());
    let (st, _) = open_all(&spec, &mut pair, &[forged]);
    assert_eq!(st.dropped(DropReason::AuthFailed), 1);
    assert_eq!(pair.inb.replay_window().top(), 100);
    let (st, out) = open_all(&spec, &mut pair, &[sealed[60].clone()]);
    assert_eq!((st.total_dropped(), out.len()), (0, 1));
    // The SA counts the packets it delivered, and their bytes, not those it dropped.
    let delivered = [99, 36, 50, 60];
    assert_eq!(pair.inb.counters().packets, delivered.len() as u64);
    assert_eq!(pair.inb.counters().bytes, delivered.iter().map(|&i| packets[i].len() as u64).sum::<u64>());
}

/// Seals a burst with ESP on the RustCrypto engine.
fn seal_rust(sa: &mut dataplane::sa::Sa<<RustEngine as Engine>::Session>, b: &mut Burst<HeapBuf>, st: &mut Stats) {
    dataplane::esp::seal(sa, &mut RustEngine, b, st);
}

#[test]
fn unknown_spi_and_wrong_protocol_are_dropped() {
    let spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, gcm());
    let (p, mut pair) = sealed_one(&spec, 10);
    let mut other = p.clone();
    other[20..24].copy_from_slice(&0xdeadu32.to_be_bytes());
    let plain = udp_packet(LAN1, LAN2, 10, 0, false);
    let (st, out) = open_all(&spec, &mut pair, &[other, plain]);
    assert!(out.is_empty());
    assert_eq!((st.dropped(DropReason::SpiMismatch), st.dropped(DropReason::BadNextHeader)), (1, 1));
}

#[test]
fn non_ipv4_fragments_and_bad_headers_are_dropped() {
    let spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, gcm());
    let mut pair = spec.build(&mut RustEngine);
    let good = udp_packet(LAN1, LAN2, 10, 0, false);
    let mut v6 = good.clone();
    v6[0] = 0x60;
    let mut frag = good.clone();
    frag[6] = 0x20; // more fragments
    let mut ihl = good.clone();
    ihl[0] = 0x44;
    let mut long = good.clone();
    long[2..4].copy_from_slice(&2000u16.to_be_bytes());
    let mut st = Stats::default();
    let mut b = burst_of(&[v6, frag, ihl, long, vec![], good]);
    seal_rust(&mut pair.out, &mut b, &mut st);
    assert_eq!(b.len(), 1);
    assert_eq!(st.dropped(DropReason::NotIpv4), 1, "IPv6");
    assert_eq!(st.dropped(DropReason::Truncated), 1, "the empty packet");
    assert_eq!(st.dropped(DropReason::IpFragment), 1);
    assert_eq!(st.dropped(DropReason::BadIpHeader), 2);
}

#[test]
fn transport_mode_only_serves_the_sa_addresses() {
    let spec = PairSpec::new(IpsecProto::Esp, Mode::Transport, cbc_sha1());
    let mut pair = spec.build(&mut RustEngine);
    let mut st = Stats::default();
    let mut b = burst_of(&[udp_packet(LAN1, LAN2, 10, 0, false), udp_packet(R1, R2, 10, 0, false)]);
    seal_rust(&mut pair.out, &mut b, &mut st);
    assert_eq!((b.len(), st.dropped(DropReason::TransportAddrMismatch)), (1, 1));
}

#[test]
fn dont_fragment_follows_the_policy() {
    for (df, inner_df, want) in [
        (DontFragment::Clear, true, false),
        (DontFragment::Set, false, true),
        (DontFragment::Inherit, true, true),
        (DontFragment::Inherit, false, false),
    ] {
        let mut spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, gcm());
        spec.df = df;
        let mut pair = spec.build(&mut RustEngine);
        let mut st = Stats::default();
        let mut b = burst_of(&[udp_packet(LAN1, LAN2, 10, 0, inner_df)]);
        seal_rust(&mut pair.out, &mut b, &mut st);
        assert_eq!(ipv4::Packet::new_checked(b[0].data()).unwrap().dont_frag(), want, "{df:?} inner {inner_df}");
    }
}

#[test]
fn lifetimes_and_sequence_exhaustion_stop_the_sa() {
    let mut spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, gcm());
    spec.lifetimes = Lifetimes { soft_bytes: 100, hard_bytes: 200, ..Default::default() };
    let mut pair = spec.build(&mut RustEngine);
    let mut st = Stats::default();
    let packets: Vec<Vec<u8>> = (0..4).map(|_| udp_packet(LAN1, LAN2, 52, 0, false)).collect(); // 80 bytes each
    let mut b = burst_of(&packets);
    seal_rust(&mut pair.out, &mut b, &mut st);
    // All four were in flight in one burst: the hard limit applies from the next burst.
    assert_eq!(b.len(), 4);
    assert_eq!(pair.out.poll_event(), Some(SaEvent::SoftExpired));
    assert_eq!(pair.out.poll_event(), Some(SaEvent::HardExpired));
    assert_eq!(pair.out.state(), SaState::Dead);
    let mut b = burst_of(&packets);
    seal_rust(&mut pair.out, &mut b, &mut st);
    assert_eq!((b.len(), st.dropped(DropReason::SaExpired)), (0, 4));

    let spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, gcm());
    let mut pair = spec.build(&mut RustEngine);
    pair.out.set_seq(u32::MAX - 1);
    let mut b = burst_of(&packets[..3]);
    seal_rust(&mut pair.out, &mut b, &mut st);
    assert_eq!((b.len(), st.dropped(DropReason::SeqExhausted)), (1, 1));
    assert_eq!(st.dropped(DropReason::SaExpired), 4 + 1);
    assert_eq!(pair.out.poll_event(), Some(SaEvent::SeqExhausted));
}

#[test]
fn missing_headroom_or_tailroom_is_counted() {
    let spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, cbc_sha1());
    let mut pair = spec.build(&mut RustEngine);
    let p = udp_packet(LAN1, LAN2, 10, 0, false);
    let mut st = Stats::default();
    let mut b: Burst<HeapBuf> =
        [HeapBuf::with_room(&p, 10, p.len() + 100), HeapBuf::with_room(&p, 100, p.len() + 100)].into_iter().collect();
    seal_rust(&mut pair.out, &mut b, &mut st);
    assert_eq!(b.len(), 0);
    assert_eq!((st.dropped(DropReason::NoHeadroom), st.dropped(DropReason::NoTailroom)), (1, 1));
    // The numbers reserved for the dropped packets go to the next ones: no gap.
    let mut b = burst_of(&[p]);
    seal_rust(&mut pair.out, &mut b, &mut st);
    assert_eq!(esp::Packet::new_checked(&b[0].data()[20..]).unwrap().seq_number(), 1);
}

#[test]
fn bad_padding_and_next_header_are_dropped_after_authentication() {
    // Build ESP packets by hand around a chosen trailer, with a valid ICV.
    let xf = Transform::new(Cipher::Null, Auth::HmacSha1_96).unwrap();
    for (trailer, want) in [
        (&[1u8, 2, 3, 3, 4][..], None),
        (&[1, 2, 4, 3, 4][..], Some(DropReason::BadPadding)),
        (&[1, 2, 3, 9, 4][..], Some(DropReason::BadPadding)),
        (&[1, 2, 3, 3, 17][..], Some(DropReason::BadNextHeader)),
        (&[1, 2, 3, 3, 59][..], Some(DropReason::BadNextHeader)),
    ] {
        let spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, xf);
        let mut pair = spec.build(&mut RustEngine);
        let inner = udp_packet(LAN1, LAN2, 3, 0, false); // 31 bytes + 5 of trailer = 36
        let mut p = udp_packet(R1, R2, 0, 0, false)[..20].to_vec();
        p[9] = 50;
        p.extend_from_slice(&0x1000u32.to_be_bytes());
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(&inner);
        p.extend_from_slice(trailer);
        let auth_end = p.len();
        p.extend_from_slice(&[0; 12]);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
        let mut e = RustEngine;
        let s = e.session(xf, &[], &key(20, 2)).unwrap();
        let mut jobs = [dataplane::crypto::Job::new(
            &mut p[..],
            dataplane::crypto::Region::new(28, auth_end - 28),
            dataplane::crypto::Region::new(20, auth_end - 20),
            28,
            auth_end,
        )];
        e.seal(&s, &mut jobs);
        let (st, out) = open_all(&spec, &mut pair, &[p]);
        match want {
            None => assert_eq!(out, vec![inner]),
            Some(r) => assert_eq!((out.len(), st.dropped(r)), (0, 1), "{trailer:?}"),
        }
    }
}

#[test]
fn ah_esp_bundle_orders_esp_then_ah() {
    let esp_spec = PairSpec::new(IpsecProto::Esp, Mode::Tunnel, cbc_sha1());
    let mut ah_spec = PairSpec::new(IpsecProto::Ah, Mode::Transport, ah_transforms()[2]);
    ah_spec.spi = 0x2000;
    let esp_pair = esp_spec.build(&mut RustEngine);
    let ah_pair = ah_spec.build(&mut RustEngine);
    let mut out = Bundle::new(Some(esp_pair.out), Some(ah_pair.out));
    let mut inb = Bundle::new(Some(esp_pair.inb), Some(ah_pair.inb));
    let originals: Vec<Vec<u8>> = (0..5).map(|n| udp_packet(LAN1, LAN2, n * 100, 0, false)).collect();
    let mut b = burst_of(&originals);
    let mut st = Stats::default();
    out.seal(&mut RustEngine, &mut b, &mut st);
    for p in b.iter() {
        let ip = ipv4::Packet::new_checked(p.data()).unwrap();
        assert_eq!(ip.protocol(), Protocol::Ah, "AH outermost");
        assert_eq!((ip.src_addr(), ip.dst_addr()), (R1, R2));
        let a = ah::Packet::new_checked(&p.data()[20..]).unwrap();
        assert_eq!((a.next_header(), a.spi()), (Protocol::Esp, 0x2000), "ESP inside AH");
    }
    inb.open(&mut RustEngine, &mut b, &mut st);
    assert_eq!(st.total_dropped(), 0);
    assert_eq!(contents(&b), originals);
}

#[test]
fn esp_in_udp_round_trips_and_keeps_to_rfc_3948() {
    use dataplane::sa::UdpEncap;
    fn body<E: Engine>(tx: &mut E, _rx: &mut E) {
        for mode in [Mode::Tunnel, Mode::Transport] {
            for xf in [gcm(), cbc_sha1()] {
                let mut pair = PairSpec::new(IpsecProto::Esp, mode, xf).build(tx);
                let encap = UdpEncap { src_port: 4500, dst_port: 4501 };
                pair.out.set_udp_encap(Some(encap));
                pair.inb.set_udp_encap(Some(encap));
                let (src, dst) = if mode == Mode::Tunnel { (LAN1, LAN2) } else { (R1, R2) };
                let originals: Vec<Vec<u8>> = (0..10).map(|n| udp_packet(src, dst, n * 50, 0, false)).collect();
                let mut b = burst_of(&originals);
                let mut st = Stats::default();
                seal(IpsecProto::Esp, &mut pair.out, tx, &mut b, &mut st);
                for p in b.iter() {
                    let ip = ipv4::Packet::new_checked(p.data()).unwrap();
                    assert_eq!(ip.protocol(), Protocol::Udp);
                    let u = dataplane::wire::udp::Packet::new_checked(ip.payload()).unwrap();
                    assert_eq!((u.src_port(), u.dst_port(), u.checksum()), (4500, 4501, 0));
                    assert_eq!(usize::from(u.len()), ip.payload().len());
                    assert_eq!(esp::Packet::new_checked(u.payload()).unwrap().spi(), 0x1000);
                }
                let plain_esp_sa = &mut PairSpec::new(IpsecProto::Esp, mode, xf).build(tx).inb;
                let mut copy: Burst<HeapBuf> = b.iter().map(|p| HeapBuf::from_slice(p.data())).collect();
                open(IpsecProto::Esp, plain_esp_sa, tx, &mut copy, &mut st);
                assert_eq!(st.dropped(DropReason::BadNextHeader), 10, "a plain-ESP SA refuses ESP in UDP");
                open(IpsecProto::Esp, &mut pair.inb, tx, &mut b, &mut st);
                assert_eq!(contents(&b), originals, "{mode:?} {xf:?}");
            }
        }
    }
    engine_pairs!(body);
}

#[test]
fn every_sealed_packet_has_its_sas_outer_key() {
    // The worker skips the SPD for sealed packets by the SA's outer key: it must be the key of
    // what the SA actually sends, for every protocol, mode and encapsulation.
    let encaps = [None, Some(dataplane::sa::UdpEncap { src_port: 4500, dst_port: 31_000 })];
    for (proto, xf) in [
        (IpsecProto::Esp, gcm()),
        (IpsecProto::Esp, cbc_sha1()),
        (IpsecProto::Ah, Transform::auth_only(Auth::HmacSha1_96).unwrap()),
    ] {
        for mode in [Mode::Tunnel, Mode::Transport] {
            for encap in encaps.iter().filter(|e| proto == IpsecProto::Esp || e.is_none()) {
                let mut pair = PairSpec::new(proto, mode, xf).build(&mut RustEngine);
                pair.out.set_udp_encap(*encap);
                let (src, dst) = if mode == Mode::Tunnel { (LAN1, LAN2) } else { (R1, R2) };
                let mut b = burst_of(&[udp_packet(src, dst, 40, 0, false), udp_packet(src, dst, 300, 0, true)]);
                let mut st = Stats::default();
                seal(proto, &mut pair.out, &mut RustEngine, &mut b, &mut st);
                assert_eq!(b.len(), 2, "{proto:?} {mode:?} {encap:?}");
                for p in b.iter() {
                    let key = dataplane::classify::Key::from_ipv4(p.data());
                    assert_eq!(key, Some(pair.out.outer_key()), "{proto:?} {mode:?} {encap:?}");
                }
            }
        }
    }
}
