//! Forwarding: the IPv4 routing table compiled into a multibit trie for longest-prefix match,
//! the interfaces with their addresses, and the neighbour (ARP) cache of a worker.
//!
//! The trie has four levels of 256 entries (strides 8-8-8-8) with leaf pushing, so a lookup is
//! at most four dependent loads. It is built off the worker and swapped in whole.

use crate::fasthash::FxHashMap;
use std::net::Ipv4Addr;

/// Where a route sends packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The output port.
    pub port: u16,
    /// The gateway to resolve; `None` for a connected network (resolve the destination itself).
    pub gateway: Option<Ipv4Addr>,
}

/// A static or connected route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Network address (host bits are ignored).
    pub prefix: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
    /// Where matching packets go.
    pub next_hop: NextHop,
}

const CHILD: u32 = 1 << 31;
const EMPTY: u32 = 0;

/// An immutable longest-prefix-match table.
#[derive(Clone, Debug)]
pub struct Fib {
    tables: Vec<[u32; 256]>,
    hops: Vec<NextHop>,
}

impl Default for Fib {
    fn default() -> Self {
        Fib::build(&[])
    }
}

impl Fib {
    /// Compiles `routes`; of two routes with the same prefix and length the first wins.
    pub fn build(routes: &[Route]) -> Fib {
        let mut order: Vec<&Route> = routes.iter().filter(|r| r.len <= 32).collect();
        // Shorter prefixes first, so that longer ones overwrite them (leaf pushing).
        order.sort_by_key(|r| r.len);
        let mut fib = Fib { tables: vec![[EMPTY; 256]], hops: Vec::new() };
        let mut seen = std::collections::HashSet::new();
        for r in order {
            let net = u32::from(r.prefix) & mask(r.len);
            if !seen.insert((net, r.len)) {
                continue;
            }
            fib.hops.push(r.next_hop);
            let hop = fib.hops.len() as u32; // hop index + 1
            fib.insert(net, r.len, hop);
        }
        fib
    }

    fn insert(&mut self, net: u32, len: u8, hop: u32) {
        let last_level = if len == 0 { 0 } else { (usize::from(len) - 1) / 8 };
        let mut t = 0usize;
        for level in 0..last_level {
            let byte = ((net >> (24 - 8 * level)) & 0xff) as usize;
            let e = self.tables[t][byte];
            if e & CHILD != 0 {
                t = (e & !CHILD) as usize;
            } else {
                // Push the shorter route's hop down into the new child.
                self.tables.push([e; 256]);
                let child = self.tables.len() - 1;
                self.tables[t][byte] = CHILD | child as u32;
                t = child;
            }
        }
        let shift = 24 - 8 * last_level;
        let bits_here = usize::from(len) - 8 * last_level; // 0..=8
        let first = ((net >> shift) & 0xff) as usize;
        let span = 1usize << (8 - bits_here);
        for e in &mut self.tables[t][first..first + span] {
            debug_assert!(*e & CHILD == 0, "shorter routes never created children here");
            *e = hop;
        }
    }

    /// Returns the next hop of the longest prefix covering `dst`.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let a = u32::from(dst);
        let mut t = 0usize;
        for level in 0..4 {
            let e = self.tables[t][((a >> (24 - 8 * level)) & 0xff) as usize];
            if e & CHILD != 0 {
                t = (e & !CHILD) as usize;
                continue;
            }
            return if e == EMPTY { None } else { Some(self.hops[(e - 1) as usize]) };
        }
        None
    }

    /// Returns the bytes the table occupies.
    pub fn memory_bytes(&self) -> usize {
        self.tables.len() * std::mem::size_of::<[u32; 256]>() + self.hops.len() * std::mem::size_of::<NextHop>()
    }
}

/// Returns the network mask of a prefix length.
pub fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) }
}

/// One port as the router sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Port index (the worker's port handles are indexed the same way).
    pub port: u16,
    /// The `/interface` name.
    pub name: String,
    /// The port's Ethernet address.
    pub mac: [u8; 6],
    /// MTU of the link: the largest IPv4 packet it carries.
    pub mtu: u16,
    /// `/ip address` entries on the port: address and prefix length.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

/// The interfaces, and the routes their addresses imply.
#[derive(Clone, Debug, Default)]
pub struct Ifaces {
    ifaces: Vec<Iface>,
    /// Every address of every interface, for the per-packet "is it for us" test: one flat
    /// scan instead of one per interface (35 instructions per packet with two ports).
    local: Vec<Ipv4Addr>,
}

impl Ifaces {
    /// Collects the interfaces, indexed by port.
    pub fn new(mut ifaces: Vec<Iface>) -> Self {
        ifaces.sort_by_key(|i| i.port);
        let mut local: Vec<Ipv4Addr> = ifaces.iter().flat_map(|i| i.addrs.iter().map(|&(a, _)| a)).collect();
        local.sort();
        local.dedup();
        Ifaces { ifaces, local }
    }

    /// Returns the interface of `port`.
    #[inline]
    pub fn get(&self, port: u16) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.port == port)
    }

    /// Returns every interface.
    pub fn all(&self) -> &[Iface] {
        &self.ifaces
    }

    /// Returns true if `ip` is one of our addresses.
    #[inline]
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.local.contains(&ip)
    }

    /// Returns our address on `port` for replies sent there (the first one).
    #[inline]
    pub fn addr_on(&self, port: u16) -> Option<Ipv4Addr> {
        self.get(port).and_then(|i| i.addrs.first().map(|&(a, _)| a))
    }

    /// Returns our address on `port` in the same network as `peer`, if any.
    pub fn addr_facing(&self, port: u16, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        let i = self.get(port)?;
        let p = u32::from(peer);
        i.addrs.iter().find(|&&(a, len)| u32::from(a) & mask(len) == p & mask(len)).map(|&(a, _)| a)
    }

    /// Returns the connected routes of every address.
    pub fn connected_routes(&self) -> Vec<Route> {
        self.ifaces
            .iter()
            .flat_map(|i| {
                i.addrs.iter().map(move |&(a, len)| Route {
                    prefix: Ipv4Addr::from(u32::from(a) & mask(len)),
                    len,
                    next_hop: NextHop { port: i.port, gateway: None },
                })
            })
            .collect()
    }
}

/// A worker's neighbour cache: (port, IPv4 address) → Ethernet address. Filled between bursts
/// from the control plane's ARP results; looked up without allocating.
#[derive(Clone, Debug, Default)]
pub struct Neighbors {
    map: FxHashMap<(u16, Ipv4Addr), [u8; 6]>,
}

impl Neighbors {
    /// Records or refreshes an entry.
    pub fn insert(&mut self, port: u16, ip: Ipv4Addr, mac: [u8; 6]) {
        self.map.insert((port, ip), mac);
    }

    /// Forgets an entry.
    pub fn remove(&mut self, port: u16, ip: Ipv4Addr) {
        self.map.remove(&(port, ip));
    }

    /// Returns the Ethernet address of `ip` on `port`.
    #[inline]
    pub fn get(&self, port: u16, ip: Ipv4Addr) -> Option<[u8; 6]> {
        self.map.get(&(port, ip)).copied()
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Returns true when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(p: [u8; 4], len: u8, port: u16) -> Route {
        Route { prefix: Ipv4Addr::from(p), len, next_hop: NextHop { port, gateway: None } }
    }

    #[test]
    fn longest_prefix_wins() {
        let fib = Fib::build(&[
            r([0, 0, 0, 0], 0, 9),
            r([10, 0, 0, 0], 8, 1),
            r([10, 1, 0, 0], 16, 2),
            r([10, 1, 2, 0], 24, 3),
            r([10, 1, 2, 128], 25, 4),
            r([10, 1, 2, 200], 32, 5),
        ]);
        let port = |a: [u8; 4]| fib.lookup(Ipv4Addr::from(a)).map(|h| h.port);
        assert_eq!(port([10, 1, 2, 200]), Some(5));
        assert_eq!(port([10, 1, 2, 201]), Some(4));
        assert_eq!(port([10, 1, 2, 1]), Some(3));
        assert_eq!(port([10, 1, 3, 1]), Some(2));
        assert_eq!(port([10, 2, 0, 0]), Some(1));
        assert_eq!(port([11, 0, 0, 0]), Some(9));
        assert_eq!(Fib::build(&[r([10, 0, 0, 0], 8, 1)]).lookup(Ipv4Addr::new(11, 0, 0, 1)), None);
    }

    #[test]
    fn first_of_equal_routes_wins_and_host_bits_are_ignored() {
        let fib = Fib::build(&[r([10, 0, 0, 1], 24, 1), r([10, 0, 0, 0], 24, 2)]);
        assert_eq!(fib.lookup(Ipv4Addr::new(10, 0, 0, 77)).unwrap().port, 1);
    }

    #[test]
    fn ifaces_know_local_addresses_and_connected_routes() {
        let ifs = Ifaces::new(vec![Iface {
            port: 0,
            name: "lan".into(),
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            addrs: vec![(Ipv4Addr::new(10, 1, 0, 1), 24)],
        }]);
        assert!(ifs.is_local(Ipv4Addr::new(10, 1, 0, 1)));
        assert!(!ifs.is_local(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(ifs.connected_routes()[0].prefix, Ipv4Addr::new(10, 1, 0, 0));
        assert_eq!(ifs.addr_facing(0, Ipv4Addr::new(10, 1, 0, 9)), Some(Ipv4Addr::new(10, 1, 0, 1)));
        assert_eq!(ifs.addr_facing(0, Ipv4Addr::new(10, 2, 0, 9)), None);
    }

    proptest! {
        /// The trie agrees with a linear longest-match scan.
        #[test]
        fn agrees_with_linear_scan(
            routes in proptest::collection::vec((any::<u32>(), 0u8..=32, 0u16..8), 0..200),
            probes in proptest::collection::vec(any::<u32>(), 50),
        ) {
            let routes: Vec<Route> = routes.iter().map(|&(a, len, port)| Route {
                prefix: Ipv4Addr::from(a), len, next_hop: NextHop { port, gateway: None },
            }).collect();
            let fib = Fib::build(&routes);
            // Probe both random addresses and addresses inside the routes.
            let inside = routes.iter().map(|r| u32::from(r.prefix) | (!mask(r.len) & 0x5a5a_5a5a));
            for a in probes.into_iter().chain(inside) {
                let mut best: Option<&Route> = None;
                for r in &routes {
                    if a & mask(r.len) == u32::from(r.prefix) & mask(r.len)
                        && best.is_none_or(|b| r.len > b.len)
                    {
                        best = Some(r);
                    }
                }
                prop_assert_eq!(fib.lookup(Ipv4Addr::from(a)), best.map(|r| r.next_hop));
            }
        }
    }
}
