//! Test support for the IKE engine: gateway configurations typed as console lines, and an
//! in-memory network on virtual time that shuttles datagrams between two endpoints, with loss,
//! duplication, reordering and a NAT in front of the first endpoint.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use control::cli::Console;
use control::config::{Config, Policy};
use control::ike::{ChildSa, Endpoint, EndpointConfig, Event, Transmit};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const NAT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// A gateway's settings: its address, the peer's, the LANs, and the extra arguments of each
/// `add` line.
#[derive(Clone, Debug)]
pub struct Gw {
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub lan: &'static str,
    pub remote_lan: &'static str,
    pub peer: String,
    pub proposal: String,
    pub policy: String,
    pub secret: String,
}

impl Gw {
    /// Returns the two mirrored gateways of the manual's example, with defaults.
    pub fn pair() -> (Gw, Gw) {
        let a = Gw {
            local: A,
            remote: B,
            lan: "10.1.0.0/24",
            remote_lan: "10.2.0.0/24",
            peer: String::new(),
            proposal: String::new(),
            policy: "tunnel=yes".into(),
            secret: "gwejimezyfopmekun".into(),
        };
        let b = Gw { local: B, remote: A, lan: "10.2.0.0/24", remote_lan: "10.1.0.0/24", ..a.clone() };
        (a, b)
    }

    /// Returns the configuration.
    pub fn config(&self) -> Config {
        let mut c = Console::new(Config::new());
        let lines = [
            format!("/ip ipsec proposal add name=p {}", self.proposal),
            format!("/ip ipsec peer add address={} {}", self.remote, self.peer),
            format!("/ip ipsec pre-shared-secret add address={} secret=\"{}\"", self.remote, self.secret),
            format!(
                "/ip ipsec policy add src-address={} dst-address={} action=encrypt sa-src-address={} \
                 sa-dst-address={} proposal=p {}",
                self.lan, self.remote_lan, self.local, self.remote, self.policy
            ),
        ];
        for l in &lines {
            c.execute(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        }
        c.into_config()
    }
}

/// Returns the id of the first policy.
pub fn policy_id(c: &Config) -> u32 {
    c.entries::<Policy>()[0].id
}

/// Returns an endpoint for a gateway.
pub fn endpoint(gw: &Gw, seed: u64) -> Endpoint {
    endpoint_with(gw, seed, |_| {})
}

/// Returns an endpoint with adjusted endpoint settings.
pub fn endpoint_with(gw: &Gw, seed: u64, f: impl FnOnce(&mut EndpointConfig)) -> Endpoint {
    let mut ec = EndpointConfig::new(gw.local);
    f(&mut ec);
    Endpoint::new(ec, gw.config(), Box::new(ChaCha20Rng::seed_from_u64(seed)))
}

/// One datagram in flight.
#[derive(Clone, Debug)]
pub struct Packet {
    /// 0: from the first endpoint, 1: from the second.
    pub from: usize,
    /// Sequence number over the whole run.
    pub seq: usize,
    /// When it was sent, on the network's virtual clock.
    pub at: std::time::Instant,
    pub t: Transmit,
}

/// What the network does to a datagram: deliver it, lose it, or deliver it twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    Deliver,
    Lose,
    Duplicate,
    /// Deliver after the next datagram.
    Delay,
}

/// Returns a changed copy of a datagram to deliver before it, if any.
pub type Tamper = Box<dyn FnMut(&Packet) -> Option<Vec<u8>>>;

/// Two endpoints and the network between them.
pub struct Net {
    pub ep: [Endpoint; 2],
    pub addr: [Ipv4Addr; 2],
    pub now: Instant,
    pub start: Instant,
    pub events: [Vec<Event>; 2],
    pub fate: Box<dyn FnMut(&Packet) -> Fate>,
    /// Delivers a changed copy of a datagram before the original (hostile input).
    pub tamper: Tamper,
    /// The first endpoint sits behind a NAT with this public address.
    pub nat: Option<Ipv4Addr>,
    pub log: Vec<Packet>,
    seq: usize,
    held: VecDeque<Packet>,
}

impl Net {
    pub fn new(a: Endpoint, b: Endpoint) -> Self {
        let now = Instant::now();
        Net {
            ep: [a, b],
            addr: [A, B],
            now,
            start: now,
            events: [Vec::new(), Vec::new()],
            fate: Box::new(|_| Fate::Deliver),
            tamper: Box::new(|_| None),
            nat: None,
            log: Vec::new(),
            seq: 0,
            held: VecDeque::new(),
        }
    }

    fn nat_port(port: u16) -> u16 {
        port.wrapping_add(30000)
    }

    /// Delivers one datagram, after any tampered copy of it.
    fn deliver(&mut self, p: &Packet) {
        if let Some(bytes) = (self.tamper)(p) {
            let mut q = p.clone();
            q.t.bytes = bytes;
            self.deliver_one(&q);
        }
        self.deliver_one(p);
    }

    fn deliver_one(&mut self, p: &Packet) {
        let to = 1 - p.from;
        let SocketAddr::V4(dst) = p.t.remote else { return };
        // The first endpoint's datagrams leave through the NAT; the second's come back through it.
        let (src, ok) = if p.from == 0 {
            let src = match self.nat {
                Some(n) => SocketAddrV4::new(n, Self::nat_port(p.t.local_port)),
                None => SocketAddrV4::new(self.addr[0], p.t.local_port),
            };
            (src, *dst.ip() == self.addr[1])
        } else {
            let expect = self.nat.unwrap_or(self.addr[0]);
            let port_ok =
                self.nat.is_none_or(|_| dst.port() == Self::nat_port(500) || dst.port() == Self::nat_port(4500));
            (SocketAddrV4::new(self.addr[1], p.t.local_port), *dst.ip() == expect && port_ok)
        };
        if ok {
            self.ep[to].handle(self.now, SocketAddr::V4(src), &p.t.bytes);
        }
    }

    fn collect(&mut self) -> Vec<Packet> {
        let mut out = Vec::new();
        for from in 0..2 {
            while let Some(t) = self.ep[from].poll_transmit() {
                self.seq += 1;
                out.push(Packet { from, seq: self.seq, at: self.now, t });
            }
            while let Some(e) = self.ep[from].poll_event() {
                self.events[from].push(e);
            }
        }
        out
    }

    /// Runs until nothing is in flight and no timer is due within `limit` of virtual time.
    pub fn run_for(&mut self, limit: Duration) {
        let end = self.now + limit;
        loop {
            let packets = self.collect();
            if !packets.is_empty() || !self.held.is_empty() {
                let mut delivered_any = false;
                for p in packets {
                    self.log.push(p.clone());
                    match (self.fate)(&p) {
                        Fate::Deliver => {
                            self.deliver(&p);
                            delivered_any = true;
                        }
                        Fate::Lose => {}
                        Fate::Duplicate => {
                            self.deliver(&p);
                            self.deliver(&p);
                            delivered_any = true;
                        }
                        Fate::Delay => self.held.push_back(p),
                    }
                    if delivered_any {
                        while let Some(h) = self.held.pop_front() {
                            self.deliver(&h);
                        }
                    }
                }
                if !delivered_any {
                    while let Some(h) = self.held.pop_front() {
                        self.deliver(&h);
                    }
                }
                continue;
            }
            let next = [self.ep[0].poll_timeout(), self.ep[1].poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for e in &mut self.ep {
                        e.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
        let _ = self.collect();
    }

    /// Runs for up to five minutes of virtual time.
    pub fn run(&mut self) {
        self.run_for(Duration::from_secs(300));
    }

    /// Returns the SAs an endpoint reported.
    pub fn sas(&self, side: usize) -> Vec<&ChildSa> {
        self.events[side]
            .iter()
            .filter_map(|e| match e {
                Event::SaEstablished(c) => Some(&**c),
                _ => None,
            })
            .collect()
    }

    /// Returns how many ISAKMP SAs an endpoint reported up.
    pub fn phase1_ups(&self, side: usize) -> usize {
        self.events[side].iter().filter(|e| matches!(e, Event::Phase1Established { .. })).count()
    }

    /// Returns the failures an endpoint reported.
    pub fn failures(&self, side: usize) -> Vec<&Event> {
        self.events[side].iter().filter(|e| matches!(e, Event::Failed { .. })).collect()
    }
}

/// Asserts that the two sides hold mirrored SAs: each side's outbound SA is the other's
/// inbound SA, same SPI, addresses, algorithms and keys.
pub fn assert_mirrored(i: &ChildSa, r: &ChildSa) {
    // Addresses and UDP ports differ through a NAT, and NAT-D is not authenticated (a tampered
    // NAT-D makes one side alone encapsulate): ChildSa::encap is checked where NAT is tested.
    let bare = |s: &Option<control::compile::SaSpec>| {
        s.clone().map(|mut s| {
            s.key.src = Ipv4Addr::UNSPECIFIED;
            s.key.dst = Ipv4Addr::UNSPECIFIED;
            s.encap = None;
            s
        })
    };
    for (out, inb) in [(&i.outbound, &r.inbound), (&r.outbound, &i.inbound)] {
        assert_eq!(bare(&out.esp), bare(&inb.esp), "ESP SAs differ");
        assert_eq!(bare(&out.ah), bare(&inb.ah), "AH SAs differ");
        assert!(out.esp.is_some() || out.ah.is_some());
    }
    for s in [&i.outbound.esp, &i.inbound.esp, &i.outbound.ah, &i.inbound.ah].into_iter().flatten() {
        assert_eq!(s.enc_key.len(), s.xf.cipher().key_len());
        assert_eq!(s.auth_key.len(), s.xf.auth().key_len());
    }
    if let (Some(a), Some(b)) = (&i.inbound.esp, &i.outbound.esp) {
        assert_ne!(a.key.spi, b.key.spi);
        if !a.enc_key.is_empty() {
            assert_ne!(a.enc_key, b.enc_key, "each direction has its own KEYMAT");
        }
    }
    assert_eq!(i.life_secs, r.life_secs);
    assert_eq!(i.life_kb, r.life_kb);
    assert_eq!(i.pfs, r.pfs);
    assert_eq!(i.local_id, r.remote_id);
    assert_eq!(i.remote_id, r.local_id);
}

/// Establishes SAs for the first policy of the first endpoint and returns the network.
pub fn establish(a: Gw, b: Gw) -> Net {
    let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
    let id = policy_id(ea.config());
    let mut net = Net::new(ea, eb);
    let now = net.now;
    net.ep[0].acquire(now, id).expect("acquire");
    net.run();
    net
}
