//! Tests of the policy semantics, one per rule of the manual, and a property test against a
//! direct reading of the manual over the policy list.

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ESP: u8 = 50;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap_or((s, "32"));
    Prefix::new(u32::from(ip(a)), l.parse().unwrap())
}

fn sel(src: &str, dst: &str) -> Selector {
    Selector { src: net(src), dst: net(dst), ..Selector::ANY }
}

fn encrypt(id: u32, selector: Selector, level: Level, sa_src: &str, sa_dst: &str) -> Policy {
    Policy {
        action: Action::Encrypt,
        level,
        mode: Mode::Tunnel,
        sa_src: ip(sa_src),
        sa_dst: ip(sa_dst),
        ..Policy::accept(id, selector)
    }
}

fn key(src: &str, dst: &str, proto: u8, sp: u16, dp: u16) -> Key {
    Key::new(ip(src), ip(dst), proto, sp, dp)
}

fn out1(spd: &Spd, (key, pkt): (Key, Outgoing), has_sa: bool, c: &mut PolicyCounters) -> Decision {
    let mut d = [Decision::CLEAR];
    spd.outbound(&[key], &[pkt], |_| has_sa, c, &mut FlowCache::new(4), &mut d);
    d[0]
}

fn fwd(key: Key) -> (Key, Outgoing) {
    (key, Outgoing { len: 100, local: false, prev: None })
}

fn local(key: Key, prev: Option<PolicyIdx>) -> (Key, Outgoing) {
    (key, Outgoing { len: 100, local: true, prev })
}

/// Splits packets into the keys and the rest, as `Spd::outbound` takes them.
fn split(pkts: &[(Key, Outgoing)]) -> (Vec<Key>, Vec<Outgoing>) {
    pkts.iter().copied().unzip()
}

fn in1(spd: &Spd, key: Key, to_us: bool, has_sa: bool, c: &mut PolicyCounters) -> Decision {
    let mut d = [Decision::CLEAR];
    spd.incoming(&[key], &[Incoming { len: 60, to_us }], |_| has_sa, c, &mut FlowCache::new(4), &mut d);
    d[0]
}

const fn clear() -> Decision {
    Decision::CLEAR
}

fn encrypted(p: PolicyIdx) -> Decision {
    Decision { verdict: Verdict::Encrypt(p), acquire: None }
}

fn dropped(r: DropReason) -> Decision {
    Decision::drop(r)
}

#[test]
fn spd_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Spd>();
    check::<std::sync::Arc<Spd>>();
}

#[test]
fn no_policy_means_clear_and_first_match_wins() {
    let spd = Spd::new(vec![]);
    let mut c = spd.counters();
    assert_eq!(out1(&spd, fwd(key("10.0.0.1", "10.0.1.1", TCP, 1, 2)), true, &mut c), clear());

    let spd = Spd::new(vec![
        Policy { action: Action::Drop, ..Policy::accept(7, sel("10.0.0.0/24", "10.0.1.0/24")) },
        Policy::accept(8, sel("10.0.0.0/16", "0.0.0.0/0")),
        encrypt(9, Selector::ANY, Level::Require, "1.1.1.1", "2.2.2.2"),
    ]);
    let mut c = spd.counters();
    assert_eq!(out1(&spd, fwd(key("10.0.0.1", "10.0.1.1", TCP, 1, 2)), true, &mut c), dropped(DropReason::PolicyDrop));
    assert_eq!(out1(&spd, fwd(key("10.0.5.1", "10.0.1.1", TCP, 1, 2)), true, &mut c), clear());
    assert_eq!(out1(&spd, fwd(key("10.9.5.1", "10.0.1.1", TCP, 1, 2)), true, &mut c), encrypted(2));
    assert_eq!(c.get(0, Outcome::Dropped), Count { packets: 1, bytes: 100 });
    assert_eq!(c.get(1, Outcome::Accepted).packets, 1);
    assert_eq!(c.get(2, Outcome::Encrypted).packets, 1);
    assert_eq!(spd.policy(2).unwrap().id, 9);
}

#[test]
fn levels_without_and_with_sa() {
    let k = key("10.1.0.1", "10.2.0.1", UDP, 1000, 53);
    for (level, without) in [
        (Level::Use, Decision::CLEAR),
        (Level::Acquire, Decision { verdict: Verdict::Clear, acquire: Some(0) }),
        (Level::Require, Decision { verdict: Verdict::Drop(DropReason::NoSa), acquire: Some(0) }),
    ] {
        let spd = Spd::new(vec![encrypt(1, sel("10.1.0.0/16", "10.2.0.0/16"), level, "1.1.1.1", "2.2.2.2")]);
        let mut c = spd.counters();
        assert_eq!(out1(&spd, fwd(k), false, &mut c), without, "{level:?} without SA");
        assert_eq!(out1(&spd, fwd(k), true, &mut c), encrypted(0), "{level:?} with SA");
        let no_sa = if level == Level::Require { Outcome::DroppedNoSa } else { Outcome::ClearNoSa };
        assert_eq!(c.get(0, no_sa).packets, 1);
        assert_eq!(c.get(0, Outcome::Encrypted).packets, 1);
        assert_eq!(c.total(0), Count { packets: 2, bytes: 200 });
    }
}

#[test]
fn has_sa_is_asked_about_the_matched_policy() {
    let spd = Spd::new(vec![
        encrypt(1, sel("10.1.0.0/16", "10.2.0.0/16"), Level::Require, "1.1.1.1", "2.2.2.2"),
        encrypt(2, sel("10.1.0.0/16", "10.3.0.0/16"), Level::Require, "1.1.1.1", "3.3.3.3"),
    ]);
    let mut c = spd.counters();
    let flags = [false, true];
    let pkts = [fwd(key("10.1.0.1", "10.2.0.1", TCP, 1, 2)), fwd(key("10.1.0.1", "10.3.0.1", TCP, 1, 2))];
    let mut d = [Decision::CLEAR; 2];
    let (keys, pkts) = split(&pkts);
    spd.outbound(&keys, &pkts, |p| flags[p as usize], &mut c, &mut FlowCache::new(64), &mut d);
    assert_eq!(d, [Decision { verdict: Verdict::Drop(DropReason::NoSa), acquire: Some(0) }, encrypted(1)]);
}

#[test]
fn ike_bypass_only_for_local_udp_500_and_4500() {
    let spd = Spd::new(vec![encrypt(1, Selector::ANY, Level::Require, "1.1.1.1", "2.2.2.2")]);
    let mut c = spd.counters();
    let bypass = Decision { verdict: Verdict::Bypass, acquire: None };
    let require = Decision { verdict: Verdict::Drop(DropReason::NoSa), acquire: Some(0) };
    for port in [IKE_PORT, IKE_NATT_PORT] {
        let ike = key("1.1.1.1", "2.2.2.2", UDP, port, port);
        assert_eq!(out1(&spd, local(ike, None), false, &mut c), bypass);
        // Forwarded IKE of other hosts is ordinary traffic.
        assert_eq!(out1(&spd, fwd(ike), false, &mut c), require);
        // TCP port 500 is not IKE.
        assert_eq!(out1(&spd, local(key("1.1.1.1", "2.2.2.2", TCP, port, port), None), false, &mut c), require);
        // Only the source port counts outbound.
        assert_eq!(out1(&spd, local(key("1.1.1.1", "2.2.2.2", UDP, 1234, port), None), false, &mut c), require);
    }
    assert_eq!(c.total(0).packets, 6, "bypassed packets are not counted on the policy");

    // Inbound: to us with UDP destination port 500/4500 skips the incoming check.
    for port in [IKE_PORT, IKE_NATT_PORT] {
        let ike = key("2.2.2.2", "1.1.1.1", UDP, port, port);
        assert_eq!(in1(&spd, ike, true, true, &mut c), bypass);
        assert_eq!(in1(&spd, ike, false, true, &mut c), dropped(DropReason::IncomingPolicy));
        assert_eq!(
            in1(&spd, key("2.2.2.2", "1.1.1.1", UDP, port, 9), true, true, &mut c),
            dropped(DropReason::IncomingPolicy)
        );
    }
}

#[test]
fn nested_encryption_and_loop_avoidance() {
    // Policy 0 tunnels the subnets to gateway 2.2.2.2; policy 1 tunnels everything between the
    // gateways again through 3.3.3.3 -> 4.4.4.4.
    let spd = Spd::new(vec![
        encrypt(1, sel("10.1.0.0/16", "10.2.0.0/16"), Level::Require, "1.1.1.1", "2.2.2.2"),
        encrypt(2, sel("1.1.1.1", "2.2.2.2"), Level::Require, "3.3.3.3", "4.4.4.4"),
    ]);
    let mut c = spd.counters();
    let inner = key("10.1.0.1", "10.2.0.1", TCP, 1000, 80);
    assert_eq!(out1(&spd, fwd(inner), true, &mut c), encrypted(0));
    // The tunnel packet is processed again as locally originated and encrypted once more.
    let outer = key("1.1.1.1", "2.2.2.2", ESP, 0, 0);
    assert_eq!(out1(&spd, local(outer, Some(0)), true, &mut c), encrypted(1));
    let outer2 = key("3.3.3.3", "4.4.4.4", ESP, 0, 0);
    assert_eq!(out1(&spd, local(outer2, Some(1)), true, &mut c), clear());

    // A tunnel whose own outer packets match it: the second pass goes out unencrypted.
    let spd = Spd::new(vec![encrypt(1, sel("0.0.0.0/0", "0.0.0.0/0"), Level::Require, "1.1.1.1", "2.2.2.2")]);
    let mut c = spd.counters();
    assert_eq!(out1(&spd, fwd(inner), true, &mut c), encrypted(0));
    assert_eq!(out1(&spd, local(outer, Some(0)), true, &mut c), clear());
    assert_eq!(c.get(0, Outcome::LoopClear).packets, 1);
    // The same packet without the history would be encrypted again.
    assert_eq!(out1(&spd, local(outer, None), true, &mut c), encrypted(0));
}

#[test]
fn transport_mode_applies_only_between_sa_src_and_sa_dst() {
    let transport = Policy {
        mode: Mode::Transport,
        ..encrypt(1, sel("10.0.0.0/24", "10.0.1.0/24"), Level::Require, "10.0.0.1", "10.0.1.1")
    };
    let spd = Spd::new(vec![transport, Policy { action: Action::Drop, ..Policy::accept(2, Selector::ANY) }]);
    let mut c = spd.counters();
    assert_eq!(out1(&spd, local(key("10.0.0.1", "10.0.1.1", TCP, 1, 2), None), true, &mut c), encrypted(0));
    // Other hosts of the same subnets are not this policy's: they go on to the next rule.
    assert_eq!(out1(&spd, fwd(key("10.0.0.5", "10.0.1.1", TCP, 1, 2)), true, &mut c), dropped(DropReason::PolicyDrop));
    assert_eq!(out1(&spd, fwd(key("10.0.0.1", "10.0.1.9", TCP, 1, 2)), true, &mut c), dropped(DropReason::PolicyDrop));
    // Reversed for the incoming check: only sa-dst -> sa-src cleartext is refused.
    assert_eq!(
        in1(&spd, key("10.0.1.1", "10.0.0.1", TCP, 2, 1), true, true, &mut c),
        dropped(DropReason::IncomingPolicy)
    );
    assert_eq!(in1(&spd, key("10.0.1.7", "10.0.0.1", TCP, 2, 1), true, true, &mut c), clear());

    // SA addresses outside the selector: the policy can never apply.
    let never = Policy {
        mode: Mode::Transport,
        ..encrypt(1, sel("10.0.0.0/24", "10.0.1.0/24"), Level::Require, "192.168.0.1", "10.0.1.1")
    };
    let spd = Spd::new(vec![never]);
    let mut c = spd.counters();
    assert_eq!(out1(&spd, fwd(key("192.168.0.1", "10.0.1.1", TCP, 1, 2)), true, &mut c), clear());
    assert_eq!(out1(&spd, fwd(key("10.0.0.1", "10.0.1.1", TCP, 1, 2)), true, &mut c), clear());

    // Tunnel mode has no such condition.
    let tunnel = encrypt(1, sel("10.0.0.0/24", "10.0.1.0/24"), Level::Require, "192.168.0.1", "10.0.1.1");
    let spd = Spd::new(vec![tunnel]);
    let mut c = spd.counters();
    assert_eq!(out1(&spd, fwd(key("10.0.0.5", "10.0.1.9", TCP, 1, 2)), true, &mut c), encrypted(0));
}

#[test]
fn incoming_check_uses_reversed_selectors() {
    let web = Selector { dst_port: 80, protocol: Some(TCP), ..sel("10.1.0.0/16", "10.2.0.0/16") };
    let spd = Spd::new(vec![encrypt(1, web, Level::Require, "1.1.1.1", "2.2.2.2")]);
    let mut c = spd.counters();
    // The reply direction of the policy's traffic, in clear, while an SA exists: dropped.
    let reply = key("10.2.0.5", "10.1.0.7", TCP, 80, 40000);
    assert_eq!(in1(&spd, reply, false, true, &mut c), dropped(DropReason::IncomingPolicy));
    assert_eq!(in1(&spd, reply, true, true, &mut c), dropped(DropReason::IncomingPolicy));
    assert_eq!(c.get(0, Outcome::IncomingDropped), Count { packets: 2, bytes: 120 });
    // Without a valid SA it had no way to arrive encrypted: passed.
    assert_eq!(in1(&spd, reply, false, false, &mut c), clear());
    assert_eq!(c.get(0, Outcome::IncomingPassed).packets, 1);
    // The outgoing orientation, or another port, does not match the reversed selector.
    assert_eq!(in1(&spd, key("10.1.0.7", "10.2.0.5", TCP, 40000, 80), false, true, &mut c), clear());
    assert_eq!(in1(&spd, key("10.2.0.5", "10.1.0.7", TCP, 81, 40000), false, true, &mut c), clear());

    // Only an encrypt policy can refuse: an earlier accept or drop policy lets it through.
    let spd = Spd::new(vec![
        Policy::accept(1, sel("10.1.0.7", "10.2.0.5")),
        Policy { action: Action::Drop, ..Policy::accept(2, sel("10.1.0.8", "10.2.0.5")) },
        encrypt(3, sel("10.1.0.0/16", "10.2.0.0/16"), Level::Require, "1.1.1.1", "2.2.2.2"),
    ]);
    let mut c = spd.counters();
    assert_eq!(in1(&spd, key("10.2.0.5", "10.1.0.7", UDP, 1, 2), false, true, &mut c), clear());
    assert_eq!(in1(&spd, key("10.2.0.5", "10.1.0.8", UDP, 1, 2), false, true, &mut c), clear());
    assert_eq!(
        in1(&spd, key("10.2.0.5", "10.1.0.9", UDP, 1, 2), false, true, &mut c),
        dropped(DropReason::IncomingPolicy)
    );
}

#[test]
fn decrypted_packets_must_match_their_policy() {
    let web = Selector { dst_port: 80, protocol: Some(TCP), ..sel("10.1.0.0/16", "10.2.0.0/16") };
    let spd = Spd::new(vec![
        encrypt(1, web, Level::Require, "1.1.1.1", "2.2.2.2"),
        encrypt(2, Selector::ANY, Level::Require, "1.1.1.1", "3.3.3.3"),
    ]);
    let mut c = spd.counters();
    let pkts = [
        Decrypted { key: key("10.2.0.5", "10.1.0.7", TCP, 80, 40000), len: 10, policy: 0 },
        // Right addresses, wrong port for policy 0 (though policy 1 would match it).
        Decrypted { key: key("10.2.0.5", "10.1.0.7", TCP, 81, 40000), len: 10, policy: 0 },
        // Outgoing orientation: not what the peer sends us.
        Decrypted { key: key("10.1.0.7", "10.2.0.5", TCP, 40000, 80), len: 10, policy: 0 },
        Decrypted { key: key("10.1.0.7", "10.2.0.5", TCP, 40000, 80), len: 10, policy: 1 },
        Decrypted { key: key("10.2.0.5", "10.1.0.7", TCP, 80, 40000), len: 10, policy: 99 },
    ];
    let mut d = [Decision::CLEAR; 5];
    spd.decrypted(&pkts, &mut c, &mut d);
    let mismatch = dropped(DropReason::InnerPolicyMismatch);
    assert_eq!(d, [clear(), mismatch, mismatch, clear(), mismatch]);
    assert_eq!(c.get(0, Outcome::InnerMatched).packets, 1);
    assert_eq!(c.get(0, Outcome::InnerMismatch).packets, 2);
    assert_eq!(c.get(1, Outcome::InnerMatched).packets, 1);
}

#[test]
fn ports_match_only_tcp_and_udp() {
    let dns = Selector { dst_port: 53, ..sel("10.1.0.0/16", "10.2.0.0/16") };
    let icmp_port = Selector { dst_port: 53, protocol: Some(ICMP), ..sel("10.1.0.0/16", "10.2.0.0/16") };
    let spd = Spd::new(vec![
        Policy { action: Action::Drop, ..Policy::accept(1, dns) },
        Policy { action: Action::Drop, ..Policy::accept(2, icmp_port) },
    ]);
    let mut c = spd.counters();
    let drop = dropped(DropReason::PolicyDrop);
    assert_eq!(out1(&spd, fwd(key("10.1.0.1", "10.2.0.1", UDP, 5000, 53)), true, &mut c), drop);
    assert_eq!(out1(&spd, fwd(key("10.1.0.1", "10.2.0.1", TCP, 5000, 53)), true, &mut c), drop);
    assert_eq!(out1(&spd, fwd(key("10.1.0.1", "10.2.0.1", UDP, 5000, 54)), true, &mut c), clear());
    // ICMP has no ports: a port selector never matches it, whatever its protocol field says.
    assert_eq!(out1(&spd, fwd(key("10.1.0.1", "10.2.0.1", ICMP, 0, 53)), true, &mut c), clear());
    assert_eq!(out1(&spd, fwd(key("10.1.0.1", "10.2.0.1", ICMP, 0, 0)), true, &mut c), clear());
}

#[test]
fn bursts_longer_than_a_burst_and_counter_merge() {
    let spd = Spd::new(vec![encrypt(1, sel("10.1.0.0/16", "10.2.0.0/16"), Level::Acquire, "1.1.1.1", "2.2.2.2")]);
    // Two whole bursts and a part: the decisions are made chunk by chunk.
    let n = 2 * BURST + 6;
    let pkts: Vec<(Key, Outgoing)> = (0..n as u32)
        .map(|i| fwd(Key { src: 0x0a01_0000 + i, dst: 0x0a02_0000 + (i % 2) * 0x100_0000, ..Key::default() }))
        .collect();
    let (keys, pkts) = split(&pkts);
    let mut d = vec![Decision::CLEAR; n];
    let mut a = spd.counters();
    spd.outbound(&keys, &pkts, |_| false, &mut a, &mut FlowCache::new(64), &mut d);
    for (i, d) in d.iter().enumerate() {
        let want = if i % 2 == 0 { Some(0) } else { None };
        assert_eq!(d.acquire, want, "packet {i}");
        assert_eq!(d.verdict, Verdict::Clear);
    }
    let mut b = spd.counters();
    spd.outbound(&keys[..10], &pkts[..10], |_| true, &mut b, &mut FlowCache::new(64), &mut d[..10]);
    a.merge(&b);
    assert_eq!(a.get(0, Outcome::ClearNoSa), Count { packets: n as u64 / 2, bytes: n as u64 / 2 * 100 });
    assert_eq!(a.get(0, Outcome::Encrypted), Count { packets: 5, bytes: 500 });
    assert_eq!(a.get(5, Outcome::Encrypted), Count::default());
}

/// Reads the manual directly: does `p` match `k` (outgoing orientation unless `reversed`)?
fn reference_match(p: &Policy, k: &Key, reversed: bool) -> bool {
    let s = &p.selector;
    let (src, dst, sp, dp) =
        if reversed { (k.dst, k.src, k.dst_port, k.src_port) } else { (k.src, k.dst, k.src_port, k.dst_port) };
    let has_ports = k.proto == TCP || k.proto == UDP;
    let ports_ok = (s.src_port == 0 && s.dst_port == 0)
        || (has_ports && (s.src_port == 0 || s.src_port == sp) && (s.dst_port == 0 || s.dst_port == dp));
    let proto_ok = s.protocol.is_none_or(|x| x == k.proto);
    // `src`/`dst` are in the outgoing orientation here, like sa-src and sa-dst.
    let transport_ok = p.action != Action::Encrypt
        || p.mode == Mode::Tunnel
        || (src == u32::from(p.sa_src) && dst == u32::from(p.sa_dst));
    // Transport narrowing replaces the selector's addresses with the SA's, which must lie in it.
    let transport_in_sel = p.action != Action::Encrypt
        || p.mode == Mode::Tunnel
        || (s.src.contains(u32::from(p.sa_src)) && s.dst.contains(u32::from(p.sa_dst)));
    s.src.contains(src) && s.dst.contains(dst) && ports_ok && proto_ok && transport_ok && transport_in_sel
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    let addr = prop::sample::select(vec![0x0a00_0001u32, 0x0a00_0002, 0x0a00_0101, 0x0a01_0001, 0xc0a8_0001]);
    let pfx = (addr.clone(), prop::sample::select(vec![0u8, 8, 16, 24, 31, 32])).prop_map(|(a, l)| Prefix::new(a, l));
    let port = prop::sample::select(vec![0u16, 0, 500, 4500, 80]);
    let proto = prop::sample::select(vec![None, Some(TCP), Some(UDP), Some(ICMP)]);
    let action = prop::sample::select(vec![Action::Accept, Action::Drop, Action::Encrypt, Action::Encrypt]);
    let level = prop::sample::select(vec![Level::Use, Level::Acquire, Level::Require]);
    let mode = prop::sample::select(vec![Mode::Tunnel, Mode::Transport]);
    (pfx.clone(), pfx, port.clone(), port, proto, action, level, mode, addr.clone(), addr).prop_map(
        |(src, dst, src_port, dst_port, protocol, action, level, mode, sa_src, sa_dst)| Policy {
            id: 0,
            selector: Selector { src, src_port, dst, dst_port, protocol },
            action,
            level,
            mode,
            sa_src: Ipv4Addr::from(sa_src),
            sa_dst: Ipv4Addr::from(sa_dst),
            protocols: IpsecProtocols::Esp,
            dont_fragment: DontFragment::Clear,
        },
    )
}

fn key_strategy() -> impl Strategy<Value = (Key, bool, Option<u32>, bool)> {
    let addr =
        prop::sample::select(vec![0x0a00_0001u32, 0x0a00_0002, 0x0a00_0101, 0x0a01_0001, 0xc0a8_0001, 0x0b00_0001]);
    let port = prop::sample::select(vec![0u16, 500, 4500, 80, 1234]);
    let proto = prop::sample::select(vec![TCP, UDP, ICMP, ESP]);
    (addr.clone(), addr, port.clone(), port, proto, any::<bool>(), prop::option::of(0u32..8), any::<bool>()).prop_map(
        |(src, dst, sp, dp, proto, local, prev, sa)| {
            let (sp, dp) = if proto == TCP || proto == UDP { (sp, dp) } else { (0, 0) };
            (Key { src, dst, proto, src_port: sp, dst_port: dp }, local, prev, sa)
        },
    )
}

thread_local! {
    /// Flow caches kept across the cases, so that stale answers of earlier SPDs (the keys come
    /// from a small set) would show: a tiny outbound one that keeps evicting, a roomy incoming one.
    static CACHES: std::cell::RefCell<(FlowCache, FlowCache)> =
        std::cell::RefCell::new((FlowCache::new(4), FlowCache::new(4096)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_a_direct_reading_of_the_manual(
        policies in prop::collection::vec(policy_strategy(), 0..12),
        pkts in prop::collection::vec(key_strategy(), 1..40),
        sa_bits in any::<u16>(),
    ) {
        let spd = Spd::new(policies.clone());
        let has_sa = |p: PolicyIdx| sa_bits & (1 << (p % 16)) != 0;
        let mut c = spd.counters();
        for &(k, local, prev, to_us) in &pkts {
            // Outbound.
            let mut d = [Decision::CLEAR];
            CACHES.with_borrow_mut(|(o, _)| spd.outbound(&[k], &[Outgoing { len: 1, local, prev }], has_sa, &mut c, o, &mut d));
            let want = if local && k.proto == UDP && (k.src_port == 500 || k.src_port == 4500) {
                Decision::BYPASS
            } else {
                match policies.iter().position(|p| reference_match(p, &k, false)) {
                    None => Decision::CLEAR,
                    Some(i) => {
                        let i = i as u32;
                        let p = &policies[i as usize];
                        match p.action {
                            Action::Accept => Decision::CLEAR,
                            Action::Drop => Decision::drop(DropReason::PolicyDrop),
                            Action::Encrypt if prev == Some(i) => Decision::CLEAR,
                            Action::Encrypt if has_sa(i) => encrypted(i),
                            Action::Encrypt => match p.level {
                                Level::Use => Decision::CLEAR,
                                Level::Acquire => Decision { verdict: Verdict::Clear, acquire: Some(i) },
                                Level::Require => Decision { verdict: Verdict::Drop(DropReason::NoSa), acquire: Some(i) },
                            },
                        }
                    }
                }
            };
            prop_assert_eq!(d[0], want, "outbound {:?} local={} prev={:?}", k, local, prev);

            // Incoming check.
            let mut d = [Decision::CLEAR];
            CACHES.with_borrow_mut(|(_, i)| spd.incoming(&[k], &[Incoming { len: 1, to_us }], has_sa, &mut c, i, &mut d));
            let want = if to_us && k.proto == UDP && (k.dst_port == 500 || k.dst_port == 4500) {
                Decision::BYPASS
            } else {
                match policies.iter().position(|p| reference_match(p, &k, true)) {
                    Some(i) if policies[i].action == Action::Encrypt && has_sa(i as u32) => Decision::drop(DropReason::IncomingPolicy),
                    _ => Decision::CLEAR,
                }
            };
            prop_assert_eq!(d[0], want, "incoming {:?} to_us={}", k, to_us);

            // Decrypted, against every policy.
            for (i, p) in policies.iter().enumerate() {
                let mut d = [Decision::CLEAR];
                spd.decrypted(&[Decrypted { key: k, len: 1, policy: i as u32 }], &mut c, &mut d);
                let want = if reference_match(p, &k, true) { Decision::CLEAR } else { Decision::drop(DropReason::InnerPolicyMismatch) };
                prop_assert_eq!(d[0], want, "decrypted {:?} policy {}", k, i);
            }
        }
    }

    #[test]
    fn a_burst_decides_and_counts_as_its_packets_one_by_one(
        policies in prop::collection::vec(policy_strategy(), 1..8),
        pkts in prop::collection::vec((key_strategy(), 1..2000u32), 1..(2 * BURST + 10)),
        sa_bits in any::<u16>(),
    ) {
        // Interleaved policies, outcomes and lengths, in bursts of up to two and a bit: the
        // decisions and counts are those of the packets sent one by one.
        let spd = Spd::new(policies);
        let has_sa = |p: PolicyIdx| sa_bits & (1 << (p % 16)) != 0;
        let (keys, all): (Vec<Key>, Vec<Outgoing>) =
            pkts.iter().map(|&((key, local, prev, _), len)| (key, Outgoing { len, local, prev })).unzip();
        let mut one = spd.counters();
        let mut want = Vec::new();
        for (k, p) in keys.iter().zip(&all) {
            let mut d = [Decision::CLEAR];
            spd.outbound(std::slice::from_ref(k), std::slice::from_ref(p), has_sa, &mut one, &mut FlowCache::new(64), &mut d);
            want.push(d[0]);
        }
        let mut burst = spd.counters();
        let mut got = vec![Decision::CLEAR; all.len()];
        spd.outbound(&keys, &all, has_sa, &mut burst, &mut FlowCache::new(64), &mut got);
        prop_assert_eq!(got, want);
        prop_assert_eq!(burst, one);
    }
}
