//! Tests of the classifier against the linear first-match scan.

use proptest::prelude::*;

use super::*;

/// Picks a prefix from a small pool of nested and overlapping networks, so random rules overlap.
fn prefix() -> impl Strategy<Value = Prefix> {
    let bases = [0x0a00_0000u32, 0x0a01_0000, 0x0a01_0200, 0xc0a8_0000, 0xc0a8_0101, 0x0000_0000, 0xffff_ffff];
    (0..bases.len(), 0u8..=32, any::<u32>(), 0..4u8).prop_map(move |(i, len, noise, kind)| match kind {
        // Mostly prefixes of the pool at any length; sometimes a random address or a wildcard.
        0 | 1 => Prefix::new(bases[i], len),
        2 => Prefix::new(noise, len),
        _ => Prefix::new(bases[i] | (noise & 0xff), [0, 8, 16, 24, 32][usize::from(len % 5)]),
    })
}

fn port_range() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        3 => Just(PortRange::ANY),
        2 => prop::sample::select(vec![0u16, 22, 53, 80, 443, 500, 1024, 4500, 65535]).prop_map(PortRange::exact),
        1 => Just(PortRange { lo: 1024, hi: 65535 }),
        1 => Just(PortRange { lo: 0, hi: 1023 }),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange { lo: a.min(b), hi: a.max(b) }),
        // Occasionally an empty range, which matches nothing.
        1 => (1u16.., 0u16..1).prop_map(|(lo, hi)| PortRange { lo, hi }),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    (
        prefix(),
        prefix(),
        port_range(),
        port_range(),
        prop_oneof![Just(None), Just(Some(6u8)), Just(Some(17)), Just(Some(1))],
    )
        .prop_map(|(src, dst, src_port, dst_port, proto)| Rule { src, dst, src_port, dst_port, proto })
}

/// Makes a key inside `rule` from random bits (so many keys match something), or a random key.
fn key_for(rules: &[Rule], pick: usize, bits: [u32; 4], proto: u8, random: bool) -> Key {
    if random || rules.is_empty() {
        return Key { src: bits[0], dst: bits[1], proto, src_port: bits[2] as u16, dst_port: bits[3] as u16 };
    }
    let r = &rules[pick % rules.len()];
    let inside = |p: &Prefix, b: u32| p.first() | (b & !Prefix::mask(p.len));
    let port = |p: &PortRange, b: u32| {
        if p.lo > p.hi { b as u16 } else { p.lo + (b % (u32::from(p.hi - p.lo) + 1)) as u16 }
    };
    Key {
        src: inside(&r.src, bits[0]),
        dst: inside(&r.dst, bits[1]),
        proto: r.proto.unwrap_or(proto),
        src_port: port(&r.src_port, bits[2]),
        dst_port: port(&r.dst_port, bits[3]),
    }
}

thread_local! {
    /// A flow cache kept from case to case (each case's classifier must make the last one's
    /// answers stale), small enough that it keeps evicting.
    static CACHE: std::cell::RefCell<FlowCache> = std::cell::RefCell::new(FlowCache::new(48));
}

fn check(rules: &[Rule], keys: &[Key]) -> Result<(), TestCaseError> {
    let c = Classifier::build(rules);
    let mut out = vec![None; keys.len()];
    c.classify_burst(keys, &mut out);
    for (k, got) in keys.iter().zip(&out) {
        let want = linear_first_match(rules, k);
        prop_assert_eq!(*got, want, "burst lookup of {:?}", k);
        prop_assert_eq!(c.classify(k), want, "single lookup of {:?}", k);
    }
    // Through the flow cache, twice: first mostly misses, then mostly hits.
    for pass in 0..2 {
        let mut cached = vec![None; keys.len()];
        CACHE.with_borrow_mut(|cache| cache.classify_burst(&c, keys, &mut cached));
        for (k, got) in keys.iter().zip(&cached) {
            prop_assert_eq!(*got, linear_first_match(rules, k), "cached lookup of {:?}, pass {}", k, pass);
        }
    }
    Ok(())
}

/// Builds a classifier of `rules` after `FEW` rules of GRE to port 9999 that the tests' UDP key
/// never matches, so that it is not few enough to be scanned and goes through the flow cache;
/// the rules' indices move up by `FEW`.
fn cached(rules: &[Rule]) -> Classifier {
    let filler = |i: u32| Rule { dst: Prefix::host(i), proto: Some(47), dst_port: PortRange::exact(9999), ..Rule::ANY };
    let all: Vec<Rule> = (0..FEW as u32).map(filler).chain(rules.iter().copied()).collect();
    let c = Classifier::build(&all);
    assert!(!c.is_few());
    c
}

#[test]
fn flow_cache_remembers_and_forgets_a_replaced_rule_list() {
    let k = Key { src: 0x0a00_0001, dst: 0x0a01_0001, proto: 17, src_port: 1024, dst_port: 53 };
    let dns = Rule { proto: Some(17), dst_port: PortRange::exact(53), ..Rule::ANY };
    let web = Rule { proto: Some(6), dst_port: PortRange::exact(80), ..Rule::ANY };
    let at = |i: u32| Some(FEW as u32 + i);
    let a = cached(&[dns]);
    let b = cached(&[web, Rule::ANY]);
    let mut cache = FlowCache::new(1024);
    let ask = |cache: &mut FlowCache, c: &Classifier| {
        let mut out = [None; 2];
        cache.classify_burst(c, &[k, k], &mut out);
        assert_eq!(out[0], out[1]);
        out[0]
    };
    assert_eq!(ask(&mut cache, &a), at(0));
    assert_eq!(cache.stats, CacheStats { hits: 0, misses: 2 });
    assert_eq!(ask(&mut cache, &a), at(0));
    assert_eq!(cache.stats, CacheStats { hits: 2, misses: 2 });
    // A new rule list: the remembered answer is stale.
    assert_eq!(ask(&mut cache, &b), at(1));
    assert_eq!(cache.stats.misses, 4);
    // Negative answers are kept too: UDP to port 53 is inside these rules' envelope (protocols
    // 6 to 47, ports 53 to 9999) and matches none.
    let tcp_dns = Rule { proto: Some(6), dst_port: PortRange::exact(53), ..Rule::ANY };
    let udp_web = Rule { proto: Some(17), dst_port: PortRange::exact(80), ..Rule::ANY };
    let none = cached(&[tcp_dns, udp_web]);
    assert_eq!(ask(&mut cache, &none), None);
    assert_eq!(ask(&mut cache, &none), None);
    assert_eq!(cache.stats, CacheStats { hits: 4, misses: 6 });
    // A key outside the envelope (ports 80 to 9999) is answered without a probe: neither a hit
    // nor a miss.
    assert_eq!(ask(&mut cache, &cached(&[web])), None);
    assert_eq!(cache.stats, CacheStats { hits: 4, misses: 6 });
    // Rebuilding the same list makes a new classifier: asked again, not trusted.
    assert_eq!(ask(&mut cache, &cached(&[dns])), at(0));
    assert_eq!(cache.stats.misses, 8);
    // A list of a few rules is scanned, not cached.
    assert_eq!(ask(&mut cache, &Classifier::build(&[web, dns])), Some(1));
    assert_eq!(cache.stats, CacheStats { hits: 4, misses: 8 });
}

fn keys_strategy(n: usize) -> impl Strategy<Value = Vec<(usize, [u32; 4], u8, bool)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            any::<[u32; 4]>(),
            prop_oneof![Just(6u8), Just(17), Just(1), any::<u8>()],
            prop::bool::weighted(0.2),
        ),
        n,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_linear_scan_few(rules in prop::collection::vec(rule(), 0..=FEW + 2), ks in keys_strategy(100)) {
        // Up to FEW live rules the classifier scans their boxes; past it, it walks trees.
        let keys: Vec<Key> = ks.iter().map(|&(pick, bits, proto, random)| key_for(&rules, pick, bits, proto, random)).collect();
        check(&rules, &keys)?;
    }

    #[test]
    fn agrees_with_linear_scan_small(rules in prop::collection::vec(rule(), 0..64), ks in keys_strategy(100)) {
        let keys: Vec<Key> = ks.iter().map(|&(p, b, pr, r)| key_for(&rules, p, b, pr, r)).collect();
        check(&rules, &keys)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_linear_scan_medium(rules in prop::collection::vec(rule(), 64..1500), ks in keys_strategy(400)) {
        let keys: Vec<Key> = ks.iter().map(|&(p, b, pr, r)| key_for(&rules, p, b, pr, r)).collect();
        check(&rules, &keys)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_linear_scan_10000_rules(rules in prop::collection::vec(rule(), 10_000), ks in keys_strategy(1000)) {
        let keys: Vec<Key> = ks.iter().map(|&(p, b, pr, r)| key_for(&rules, p, b, pr, r)).collect();
        check(&rules, &keys)?;
    }
}

#[test]
fn empty_list_matches_nothing() {
    let c = Classifier::build(&[]);
    assert!(c.is_empty());
    assert_eq!(c.classify(&Key::default()), None);
    let mut out = [Some(7); 3];
    c.classify_burst(&[Key::default(); 3], &mut out);
    assert_eq!(out, [None; 3]);
}

#[test]
fn first_rule_wins_and_wildcard_catches_the_rest() {
    let web = Rule { dst_port: PortRange::exact(80), proto: Some(6), ..Rule::ANY };
    let net = Rule { src: Prefix::new(0x0a00_0000, 8), ..Rule::ANY };
    let rules = [web, net, Rule::ANY];
    let c = Classifier::build(&rules);
    let k = |src: u32, proto: u8, dport: u16| Key { src, dst: 1, proto, src_port: 1000, dst_port: dport };
    assert_eq!(c.classify(&k(0x0a01_0101, 6, 80)), Some(0));
    assert_eq!(c.classify(&k(0x0a01_0101, 17, 80)), Some(1));
    assert_eq!(c.classify(&k(0x0b01_0101, 17, 80)), Some(2));
}

#[test]
fn port_ranges_and_exact_protocols() {
    let rules: Vec<Rule> = (0..200u16)
        .map(|i| Rule {
            dst_port: PortRange { lo: i * 100, hi: i * 100 + 49 },
            proto: Some(if i % 2 == 0 { 6 } else { 17 }),
            ..Rule::ANY
        })
        .collect();
    let c = Classifier::build(&rules);
    for port in (0..20_000u16).step_by(7) {
        for proto in [6, 17, 1] {
            let k = Key { src: 5, dst: 6, proto, src_port: 9, dst_port: port };
            assert_eq!(c.classify(&k), linear_first_match(&rules, &k), "{k:?}");
        }
    }
}

#[test]
fn key_from_ipv4_reads_ports_and_skips_later_fragments() {
    let mut p = [0u8; 28];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&28u16.to_be_bytes());
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    p[20..22].copy_from_slice(&500u16.to_be_bytes());
    p[22..24].copy_from_slice(&4500u16.to_be_bytes());
    p[24..26].copy_from_slice(&8u16.to_be_bytes());
    let k = Key::from_ipv4(&p).unwrap();
    assert_eq!((k.src, k.dst, k.proto, k.src_port, k.dst_port), (0x0a00_0001, 0x0a00_0002, 17, 500, 4500));
    assert_eq!(k.reversed().src_port, 4500);

    // A later fragment has no ports, whatever its first bytes hold.
    let mut frag = p;
    frag[6..8].copy_from_slice(&1u16.to_be_bytes());
    assert_eq!(Key::from_ipv4(&frag).unwrap().src_port, 0);

    // A first fragment whose UDP length reaches past it still yields its ports.
    let mut first = p;
    first[6] = 0x20;
    first[24..26].copy_from_slice(&1000u16.to_be_bytes());
    assert_eq!(Key::from_ipv4(&first).unwrap().dst_port, 4500);

    // Too short for the ports, too short for IPv4, not IPv4: refused, never a panic.
    let mut short = p;
    short[2..4].copy_from_slice(&22u16.to_be_bytes());
    assert_eq!(Key::from_ipv4(&short[..22]), None);
    assert_eq!(Key::from_ipv4(&p[..19]), None);
    let mut v6 = p;
    v6[0] = 0x65;
    assert_eq!(Key::from_ipv4(&v6), None);
    for n in 0..p.len() {
        let _ = Key::from_ipv4(&p[..n]);
    }

    // ICMP: no ports.
    let mut icmp = p;
    icmp[9] = 1;
    assert_eq!(Key::from_ipv4(&icmp).unwrap().dst_port, 0);

    // With options (a 24-byte header: router alert), the ports follow the options.
    let mut opts = [0u8; 32];
    opts[..20].copy_from_slice(&p[..20]);
    opts[0] = 0x46;
    opts[2..4].copy_from_slice(&32u16.to_be_bytes());
    opts[20..24].copy_from_slice(&[0x94, 4, 0, 0]);
    opts[24..32].copy_from_slice(&p[20..28]);
    let k = Key::from_ipv4(&opts).unwrap();
    assert_eq!((k.src_port, k.dst_port), (500, 4500));
    // Ports that would reach past the total length are refused.
    opts[2..4].copy_from_slice(&26u16.to_be_bytes());
    assert_eq!(Key::from_ipv4(&opts), None);
}

#[test]
fn crossed_wildcards_fall_back_to_groups_and_agree() {
    // Half the rules pin the destination and leave the source open, half the other way round:
    // one tree would copy every rule of one half into the leaves of the other, so the build
    // splits them by address width. Lookups must still agree with the scan.
    let mut x = 0x1234_5678u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let rules: Vec<Rule> = (0..4000)
        .map(|i| {
            let (a, b) = (Prefix::host(next()), Prefix::new(next(), 24));
            let (src, dst) = if i % 2 == 0 { (Prefix::ANY, a) } else { (b, Prefix::ANY) };
            Rule { src, dst, dst_port: PortRange::exact(next() as u16 % 4), proto: Some(6), ..Rule::ANY }
        })
        .collect();
    let c = Classifier::build(&rules);
    assert!(c.shape().trees > 1, "{:?}", c.shape());
    let keys: Vec<Key> = (0..3000)
        .map(|i| {
            let r = &rules[next() as usize % rules.len()];
            let pick = |p: &Prefix, r: u32| if i % 3 == 0 { r } else { p.first() | (r & !Prefix::mask(p.len)) };
            Key {
                src: pick(&r.src, next()),
                dst: pick(&r.dst, next()),
                proto: 6,
                src_port: 1,
                dst_port: if i % 4 == 0 { (i % 5) as u16 } else { r.dst_port.lo },
            }
        })
        .collect();
    let mut out = vec![None; keys.len()];
    c.classify_burst(&keys, &mut out);
    for (k, got) in keys.iter().zip(&out) {
        let want = linear_first_match(&rules, k);
        assert_eq!(*got, want, "burst lookup of {k:?}");
        assert_eq!(c.classify(k), want, "single lookup of {k:?}");
    }
    assert!(out.iter().filter(|o| o.is_some()).count() > 1000);
}

#[test]
fn keys_outside_the_rules_bounding_box_match_nothing_and_keys_inside_still_do() {
    // Two host rules far apart: the box spans them, so a key between them walks the tree (and
    // matches nothing), a key outside the box skips it, and the rules themselves still match.
    let host = |a: u32| Prefix::host(a);
    let rules = [
        Rule { src: host(0x0a01_0001), dst: host(0x0a02_0001), ..Rule::ANY },
        Rule { src: host(0x0a01_00ff), dst: host(0x0a02_00ff), proto: Some(17), ..Rule::ANY },
    ];
    let c = Classifier::build(&rules);
    let k = |src, dst, proto| Key { src, dst, proto, src_port: 1, dst_port: 2 };
    let keys = [
        k(0x0a01_0001, 0x0a02_0001, 6),
        k(0x0a01_0080, 0x0a02_0080, 17),
        k(0xc000_0201, 0x0a02_0001, 50),
        k(0x0a01_00ff, 0x0a02_00ff, 17),
        k(0x0a01_00ff, 0x0a02_00ff, 18),
    ];
    assert!(c.might_match(&keys[1]) && !c.might_match(&keys[2]));
    let mut out = [Some(9); 5];
    c.classify_burst(&keys, &mut out);
    assert_eq!(out, [Some(0), None, None, Some(1), None]);
    for (key, want) in keys.iter().zip(out) {
        assert_eq!(c.classify(key), want);
        assert_eq!(linear_first_match(&rules, key), want);
    }
    let empty = Classifier::build(&[]);
    assert!(!empty.might_match(&keys[0]));
    assert_eq!(empty.classify(&keys[0]), None);
}
