//! A seeded ClassBench-style generator of ACL rule sets and packet traces for the classifier
//! benches, and writers of the same rules and trace in `dpdk-test-acl`'s formats, so that our
//! classifier and DPDK's `rte_acl` are measured on identical inputs.
//!
//! The shape follows ClassBench's ACL seeds (Taylor and Turner, "ClassBench: a packet
//! classification benchmark"): prefix pairs drawn from a hierarchy of networks so that rules
//! nest and overlap, destination prefixes mostly long (/32 and /24), source prefixes more often
//! short or wildcard; source ports almost always any; destination ports exact, any, the
//! ephemeral range 1024-65535, the well-known range 0-1023 or an arbitrary range; protocols TCP,
//! UDP or any. Traces pick a rule and a random header inside it (ClassBench's trace generator),
//! with some fully random headers that mostly match nothing or a wide rule.

use std::io::{self, Write};

use dataplane::classify::{Key, PortRange, Prefix, Rule};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Is the number of headers in a trace: `dpdk-test-acl` reads 65,536 by default.
pub const TRACE_LEN: usize = 1 << 16;

/// A seeded random source with the few draws the generator needs.
struct Rng(ChaCha8Rng);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.0.next_u32()) * u64::from(n)) >> 32) as u32
    }

    fn u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    /// Picks an index by weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// Source prefix lengths and their weights (per mille).
const SRC_LENS: [(u8, u32); 8] = [(0, 120), (8, 30), (12, 20), (16, 100), (20, 40), (24, 280), (28, 60), (32, 350)];
/// Destination prefix lengths and their weights (per mille).
const DST_LENS: [(u8, u32); 7] = [(0, 40), (8, 10), (16, 60), (20, 40), (24, 250), (28, 50), (32, 550)];
/// Well-known destination ports exact-match rules favour (the rest are random).
const COMMON_PORTS: [u16; 12] = [20, 21, 22, 23, 25, 53, 80, 110, 123, 143, 443, 8080];

/// The network hierarchy prefixes are drawn from: a few /8s, each with a few /16s, each with a
/// few /24s, so that a rule's /24 often sits inside another rule's /16.
struct Networks {
    nets24: Vec<u32>,
}

impl Networks {
    fn new(rng: &mut Rng, rules: usize) -> Networks {
        // About one /24 per 8 rules: many rules share networks, as in real ACLs.
        let n24 = (rules / 8).clamp(4, 1 << 16);
        let n8 = (n24 / 64).clamp(2, 64);
        let tops: Vec<u32> = (0..n8).map(|_| (1 + rng.below(223)) << 24).collect();
        let n16 = (n24 / 8).clamp(2, 4096);
        let nets16: Vec<u32> = (0..n16).map(|_| tops[rng.below(n8 as u32) as usize] | (rng.below(256) << 16)).collect();
        let nets24 = (0..n24).map(|_| nets16[rng.below(n16 as u32) as usize] | (rng.below(256) << 8)).collect();
        Networks { nets24 }
    }

    fn prefix(&self, rng: &mut Rng, len: u8) -> Prefix {
        let base = self.nets24[rng.below(self.nets24.len() as u32) as usize];
        Prefix::new(base | rng.below(256), len)
    }
}

fn dst_port(rng: &mut Rng) -> PortRange {
    match rng.weighted(&[40, 15, 25, 12, 5, 3]) {
        0 => PortRange::exact(COMMON_PORTS[rng.below(COMMON_PORTS.len() as u32) as usize]),
        1 => PortRange::exact(rng.below(65536) as u16),
        2 => PortRange::ANY,
        3 => PortRange { lo: 1024, hi: 65535 },
        4 => PortRange { lo: 0, hi: 1023 },
        _ => {
            let lo = rng.below(60000) as u16;
            PortRange { lo, hi: lo + rng.below(5000) as u16 }
        }
    }
}

fn src_port(rng: &mut Rng) -> PortRange {
    match rng.weighted(&[92, 5, 3]) {
        0 => PortRange::ANY,
        1 => PortRange { lo: 1024, hi: 65535 },
        _ => PortRange::exact(COMMON_PORTS[rng.below(COMMON_PORTS.len() as u32) as usize]),
    }
}

/// Generates `n` rules from `seed`; the same seed always gives the same list. No rule matches
/// every address pair, so every rule of the list can be first for some packet.
pub fn rules(n: usize, seed: u64) -> Vec<Rule> {
    let mut rng = Rng(ChaCha8Rng::seed_from_u64(seed));
    let nets = Networks::new(&mut rng, n);
    let src_w: Vec<u32> = SRC_LENS.iter().map(|l| l.1).collect();
    let dst_w: Vec<u32> = DST_LENS.iter().map(|l| l.1).collect();
    (0..n)
        .map(|_| {
            let src_len = SRC_LENS[rng.weighted(&src_w)].0;
            let src = nets.prefix(&mut rng, src_len);
            let mut dst_len = DST_LENS[rng.weighted(&dst_w)].0;
            if src_len == 0 && dst_len == 0 {
                // A rule matching every address pair hides every later rule: an ACL keeps such a
                // default for its end, so within the list one address is always narrowed.
                dst_len = 8;
            }
            let dst = nets.prefix(&mut rng, dst_len);
            match rng.weighted(&[70, 20, 10]) {
                0 => Rule { src, dst, src_port: src_port(&mut rng), dst_port: dst_port(&mut rng), proto: Some(6) },
                1 => Rule { src, dst, src_port: src_port(&mut rng), dst_port: dst_port(&mut rng), proto: Some(17) },
                _ => Rule { src, dst, src_port: PortRange::ANY, dst_port: PortRange::ANY, proto: None },
            }
        })
        .collect()
}

/// Generates a trace of `len` keys for `rules` from `seed`: 90% inside a random rule, 10% random.
pub fn trace(rules: &[Rule], len: usize, seed: u64) -> Vec<Key> {
    let mut rng = Rng(ChaCha8Rng::seed_from_u64(seed ^ 0x0074_7261_6365));
    let inside = |rng: &mut Rng, p: &Prefix| {
        let host = if p.len >= 32 { 0 } else { u32::MAX >> p.len };
        p.first() | (rng.u32() & host)
    };
    let port = |rng: &mut Rng, r: &PortRange| r.lo + rng.below(u32::from(r.hi - r.lo) + 1) as u16;
    (0..len)
        .map(|_| {
            if rules.is_empty() || rng.below(10) == 0 {
                let proto = [6, 17, 1][rng.below(3) as usize];
                return Key {
                    src: rng.u32(),
                    dst: rng.u32(),
                    proto,
                    src_port: rng.u32() as u16,
                    dst_port: rng.u32() as u16,
                };
            }
            let r = &rules[rng.below(rules.len() as u32) as usize];
            Key {
                src: inside(&mut rng, &r.src),
                dst: inside(&mut rng, &r.dst),
                proto: r.proto.unwrap_or([6, 17][rng.below(2) as usize]),
                src_port: port(&mut rng, &r.src_port),
                dst_port: port(&mut rng, &r.dst_port),
            }
        })
        .collect()
}

fn dotted(a: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}

/// Writes `rules` in `dpdk-test-acl`'s ClassBench rule format, one per line, in priority order:
/// `@src/len dst/len sport_lo : sport_hi dport_lo : dport_hi proto/mask`.
pub fn write_dpdk_rules(rules: &[Rule], mut w: impl Write) -> io::Result<()> {
    for r in rules {
        let (proto, mask) = r.proto.map_or((0, 0), |p| (p, 0xff));
        writeln!(
            w,
            "@{}/{} {}/{} {} : {} {} : {} 0x{:02x}/0x{:02x}",
            dotted(r.src.first()),
            r.src.len,
            dotted(r.dst.first()),
            r.dst.len,
            r.src_port.lo,
            r.src_port.hi,
            r.dst_port.lo,
            r.dst_port.hi,
            proto,
            mask
        )?;
    }
    Ok(())
}

/// Writes `keys` in `dpdk-test-acl`'s trace format: `src dst sport dport proto`, addresses as
/// host-order integers.
pub fn write_dpdk_trace(keys: &[Key], mut w: impl Write) -> io::Result<()> {
    for k in keys {
        writeln!(w, "{} {} {} {} {}", k.src, k.dst, k.src_port, k.dst_port, k.proto)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::classify::linear_first_match;

    #[test]
    fn seeded_and_mostly_matching() {
        let r = rules(500, 1);
        assert_eq!(r, rules(500, 1));
        assert_ne!(r, rules(500, 2));
        let t = trace(&r, 2000, 1);
        let matched = t.iter().filter(|k| linear_first_match(&r, k).is_some()).count();
        assert!(matched > 1700, "{matched} of 2000 match");
    }

    #[test]
    fn dpdk_formats() {
        let r = [Rule { proto: Some(6), ..Rule::ANY }, Rule::ANY];
        let mut out = Vec::new();
        write_dpdk_rules(&r, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x06/0xff\n@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x00/0x00\n"
        );
        let mut out = Vec::new();
        write_dpdk_trace(&[Key { src: 1, dst: 2, proto: 17, src_port: 3, dst_port: 4 }], &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "1 2 3 4 17\n");
    }
}
