//! The slow path of the dataplane process: what workers punt and cannot do themselves. It
//! resolves next hops with ARP (holding a few packets per next hop meanwhile), teaches every
//! worker the neighbours it learns, frees what workers retire, and queues IKE datagrams,
//! acquires and SA events for the control plane. It runs on a non-worker thread.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crate::buf::{BufAlloc, PacketBuf};
use crate::ctl::{FromWorker, PuntReason, Ring, SaSnapshot, Tables, ToWorker};
use crate::pipeline::l2;
use crate::route::mask;
use crate::sa::{IpsecProto, SaEvent};
use crate::wire::{arp, ethernet, ipv4, udp};

/// Packets held per unresolved next hop (RFC 1122 2.3.2.2 asks for at least one).
const HOLD_PER_HOP: usize = 16;
/// ARP requests are repeated this often while a next hop is unresolved.
const ARP_RETRY_MS: u64 = 1000;
/// An unresolved next hop is given up (its held packets dropped) after this long.
const RESOLVE_TIMEOUT_MS: u64 = 3000;
/// IKE datagrams and events queued for the control plane, at most.
const CONTROL_QUEUE: usize = 1024;

/// What the slow path did, for the counters display.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlowStats {
    /// ARP requests sent.
    pub arp_requests: u64,
    /// Neighbours learned or refreshed.
    pub arp_learned: u64,
    /// Packets held while resolving.
    pub held: u64,
    /// Held packets sent once resolved.
    pub released: u64,
    /// Held packets dropped: too many held, or the next hop never answered.
    pub hold_dropped: u64,
    /// IKE datagrams queued for the control plane.
    pub ike_in: u64,
    /// Local packets nothing takes, dropped.
    pub local_dropped: u64,
    /// Messages a full worker ring refused.
    pub ring_full: u64,
    /// Buffer allocations that failed.
    pub no_buffer: u64,
    /// IKE packets that were not whole UDP datagrams.
    pub ike_malformed: u64,
    /// IKE packets dropped because the control plane had not taken the queued ones yet.
    pub ike_queue_full: u64,
    /// Datagrams the control plane sent.
    pub ike_out: u64,
}

/// An event for the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlEvent {
    /// A policy needs SAs.
    Acquire {
        /// The policy.
        policy_id: u32,
    },
    /// An SA passed a lifetime or ran out of sequence numbers.
    Sa {
        /// SPI.
        spi: u32,
        /// Destination.
        dst: Ipv4Addr,
        /// ESP or AH.
        proto: IpsecProto,
        /// What happened.
        event: SaEvent,
    },
}

/// A UDP datagram of the control plane's own (IKE): received for it, or sent by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Our address and port.
    pub local: SocketAddrV4,
    /// The peer's address and port.
    pub remote: SocketAddrV4,
    /// The UDP payload (on port 4500: as carried, non-ESP marker included).
    pub payload: Vec<u8>,
}

/// TTL of the datagrams the control plane sends.
const LOCAL_TTL: u8 = 64;

struct Pending<B> {
    worker: u16,
    held: VecDeque<B>,
    since_ms: u64,
    asked_ms: u64,
}

/// The slow path over buffers `B` and worker SA sessions `S`.
pub struct SlowPath<B, S> {
    tables: Arc<Tables>,
    workers: Vec<Arc<Ring<ToWorker<B, S>>>>,
    up: Arc<Ring<FromWorker<B, S>>>,
    neighbors: HashMap<(u16, Ipv4Addr), [u8; 6]>,
    pending: HashMap<(u16, Ipv4Addr), Pending<B>>,
    ike: VecDeque<(u16, B)>,
    events: VecDeque<ControlEvent>,
    snapshots: Vec<SaSnapshot>,
    ident: u16,
    /// Counters.
    pub stats: SlowStats,
}

impl<B: PacketBuf, S> SlowPath<B, S> {
    /// Creates the slow path for workers reached through `workers`, all reporting on `up`.
    pub fn new(tables: Arc<Tables>, workers: Vec<Arc<Ring<ToWorker<B, S>>>>, up: Arc<Ring<FromWorker<B, S>>>) -> Self {
        SlowPath {
            tables,
            workers,
            up,
            neighbors: HashMap::new(),
            pending: HashMap::new(),
            ike: VecDeque::new(),
            events: VecDeque::new(),
            snapshots: Vec::new(),
            ident: 0,
            stats: SlowStats::default(),
        }
    }

    /// Returns the neighbours learned: (port, address) → Ethernet address.
    pub fn neighbors(&self) -> &HashMap<(u16, Ipv4Addr), [u8; 6]> {
        &self.neighbors
    }

    /// Returns the next IKE datagram for the control plane, parsed; packets that are not whole,
    /// unfragmented UDP datagrams with a good checksum are dropped (counted as `ike_malformed`).
    pub fn pop_datagram(&mut self) -> Option<Datagram> {
        while let Some((_, buf)) = self.ike.pop_front() {
            match parse_datagram(buf.data()) {
                Some(d) => return Some(d),
                None => self.stats.ike_malformed += 1,
            }
        }
        None
    }

    /// Sends a datagram of the control plane: an IPv4/UDP packet handed to the first worker as
    /// locally originated (it goes through the SPD, where IKE bypasses it, and is routed).
    /// Returns false if no buffer was free or the payload does not fit one.
    pub fn originate_udp<A: BufAlloc<Buf = B>>(&mut self, alloc: &A, d: &Datagram) -> bool {
        let len = ipv4::HEADER_LEN + udp::HEADER_LEN + d.payload.len();
        let Some(mut buf) = alloc.alloc() else {
            self.stats.no_buffer += 1;
            return false;
        };
        if len > usize::from(u16::MAX) || !buf.append(len) {
            self.stats.no_buffer += 1;
            return false;
        }
        let data = buf.data_mut();
        let (ip_hdr, rest) = data.split_at_mut(ipv4::HEADER_LEN);
        let (src, dst) = (*d.local.ip(), *d.remote.ip());
        let mut u = udp::Packet::new_unchecked(&mut rest[..]);
        udp::Repr { src_port: d.local.port(), dst_port: d.remote.port(), payload_len: d.payload.len() }.emit(&mut u);
        u.payload_mut()[..d.payload.len()].copy_from_slice(&d.payload);
        u.fill_checksum(&src, &dst);
        self.ident = self.ident.wrapping_add(1);
        let ip = ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: ipv4::Protocol::Udp,
            payload_len: udp::HEADER_LEN + d.payload.len(),
            ttl: LOCAL_TTL,
            tos: 0,
            ident: self.ident,
            dont_frag: false,
        };
        ip.emit(&mut ipv4::Packet::new_unchecked(&mut ip_hdr[..]));
        self.stats.ike_out += 1;
        self.send(0, ToWorker::Originate { buf });
        true
    }

    /// Takes the SA snapshots the workers sent since the last call.
    pub fn take_snapshots(&mut self) -> Vec<SaSnapshot> {
        std::mem::take(&mut self.snapshots)
    }

    /// Returns the next acquire or SA event for the control plane.
    pub fn pop_event(&mut self) -> Option<ControlEvent> {
        self.events.pop_front()
    }

    /// Sends a message to one worker, counting a full ring.
    pub fn send(&mut self, worker: u16, msg: ToWorker<B, S>) {
        let Some(ring) = self.workers.get(usize::from(worker)) else { return };
        if ring.push(msg).is_err() {
            self.stats.ring_full += 1;
        }
    }

    /// Sends a message built by `msg` to every worker.
    pub fn broadcast(&mut self, msg: impl Fn() -> ToWorker<B, S>) {
        for w in 0..self.workers.len() {
            self.send(w as u16, msg());
        }
    }

    /// Replaces the routing tables here and in every worker.
    pub fn set_tables(&mut self, tables: Arc<Tables>) {
        self.tables = Arc::clone(&tables);
        self.broadcast(|| ToWorker::Tables(Arc::clone(&tables)));
    }

    /// Handles everything the workers sent, and the timers. Returns the messages handled.
    pub fn poll<A: BufAlloc<Buf = B>>(&mut self, alloc: &A, now_ms: u64) -> usize {
        let mut n = 0;
        while let Some(msg) = self.up.pop() {
            n += 1;
            match msg {
                FromWorker::Punt { worker, port, reason, buf } => self.punted(alloc, worker, port, reason, buf, now_ms),
                FromWorker::Acquire { policy_id } => self.event(ControlEvent::Acquire { policy_id }),
                FromWorker::SaEvent { spi, dst, proto, event, .. } => {
                    self.event(ControlEvent::Sa { spi, dst, proto, event })
                }
                // Dropping it here is the point: memory is freed off the worker cores.
                FromWorker::Retired(_) => {}
                FromWorker::Snapshot(v) => self.snapshots.extend(v),
            }
        }
        self.timers(alloc, now_ms);
        n
    }

    fn event(&mut self, ev: ControlEvent) {
        if self.events.len() < CONTROL_QUEUE {
            self.events.push_back(ev);
        }
    }

    fn punted<A: BufAlloc<Buf = B>>(
        &mut self,
        alloc: &A,
        worker: u16,
        port: u16,
        reason: PuntReason,
        buf: B,
        now: u64,
    ) {
        match reason {
            PuntReason::Arp => self.arp_in(port, &buf),
            PuntReason::Resolve { next_hop } => self.hold(alloc, worker, port, next_hop, buf, now),
            PuntReason::Ike => {
                if self.ike.len() < CONTROL_QUEUE {
                    self.stats.ike_in += 1;
                    self.ike.push_back((port, buf));
                } else {
                    self.stats.ike_queue_full += 1;
                }
            }
            PuntReason::Local => self.stats.local_dropped += 1,
        }
    }

    /// Learns from an ARP packet: replies to us, and any sender we are resolving or know.
    fn arp_in(&mut self, port: u16, frame: &B) {
        let d = frame.data();
        let Some(body) = d.get(ethernet::HEADER_LEN..) else { return };
        let Ok(p) = arp::Packet::new_checked(body) else { return };
        let Ok(r) = arp::Repr::parse(&p) else { return };
        let key = (port, r.source_protocol_addr);
        let to_us =
            self.tables.ifaces.get(port).is_some_and(|i| i.addrs.iter().any(|&(a, _)| a == r.target_protocol_addr));
        let on_link = self.tables.ifaces.get(port).is_some_and(|i| {
            i.addrs.iter().any(|&(a, len)| u32::from(a) & mask(len) == u32::from(r.source_protocol_addr) & mask(len))
        });
        if !on_link || !(to_us || self.pending.contains_key(&key) || self.neighbors.contains_key(&key)) {
            return;
        }
        let mac = r.source_hardware_addr.0;
        if !ethernet::Address(mac).is_unicast() {
            return;
        }
        // What the workers already know is not sent again: an ARP storm costs the slow path,
        // not the workers' rings.
        if self.neighbors.insert(key, mac) != Some(mac) {
            self.stats.arp_learned += 1;
            self.broadcast(|| ToWorker::Neighbor { port, ip: key.1, mac });
        }
        if let Some(p) = self.pending.remove(&key) {
            let our_mac = self.tables.ifaces.get(port).map(|i| i.mac).unwrap_or_default();
            for mut buf in p.held {
                if l2::encap(&mut buf, our_mac, mac).is_ok() {
                    self.stats.released += 1;
                    self.send(p.worker, ToWorker::Transmit { port, buf });
                } else {
                    self.stats.hold_dropped += 1;
                }
            }
        }
    }

    fn hold<A: BufAlloc<Buf = B>>(&mut self, alloc: &A, worker: u16, port: u16, next_hop: Ipv4Addr, buf: B, now: u64) {
        if let Some(&mac) = self.neighbors.get(&(port, next_hop)) {
            // Learned since the worker looked: the worker may simply not have the entry yet.
            let mut buf = buf;
            let our_mac = self.tables.ifaces.get(port).map(|i| i.mac).unwrap_or_default();
            if l2::encap(&mut buf, our_mac, mac).is_ok() {
                self.send(worker, ToWorker::Transmit { port, buf });
            }
            return;
        }
        let entry = self.pending.entry((port, next_hop)).or_insert_with(|| Pending {
            worker,
            held: VecDeque::new(),
            since_ms: now,
            asked_ms: 0,
        });
        if entry.held.len() >= HOLD_PER_HOP {
            self.stats.hold_dropped += 1;
        } else {
            entry.held.push_back(buf);
            self.stats.held += 1;
        }
        if entry.asked_ms == 0 {
            entry.asked_ms = now.max(1);
            self.arp_request(alloc, worker, port, next_hop);
        }
    }

    fn arp_request<A: BufAlloc<Buf = B>>(&mut self, alloc: &A, worker: u16, port: u16, target: Ipv4Addr) {
        let Some(iface) = self.tables.ifaces.get(port) else { return };
        let Some(src) = self.tables.ifaces.addr_facing(port, target).or_else(|| self.tables.ifaces.addr_on(port))
        else {
            return;
        };
        let mac = iface.mac;
        let Some(mut buf) = alloc.alloc() else {
            self.stats.no_buffer += 1;
            return;
        };
        // Ethernet's minimum frame, without the FCS: the ARP frame is padded to 60 bytes.
        if !buf.append(60) {
            self.stats.no_buffer += 1;
            return;
        }
        buf.data_mut().fill(0);
        l2::write_arp_request(buf.data_mut(), mac, src, target);
        self.stats.arp_requests += 1;
        self.send(worker, ToWorker::Transmit { port, buf });
    }

    fn timers<A: BufAlloc<Buf = B>>(&mut self, alloc: &A, now: u64) {
        let mut expired = Vec::new();
        let mut retry = Vec::new();
        for (&key, p) in &self.pending {
            if now.saturating_sub(p.since_ms) >= RESOLVE_TIMEOUT_MS {
                expired.push(key);
            } else if now.saturating_sub(p.asked_ms) >= ARP_RETRY_MS {
                retry.push((key, p.worker));
            }
        }
        for key in expired {
            if let Some(p) = self.pending.remove(&key) {
                self.stats.hold_dropped += p.held.len() as u64;
            }
        }
        for ((port, ip), worker) in retry {
            if let Some(p) = self.pending.get_mut(&(port, ip)) {
                p.asked_ms = now.max(1);
            }
            self.arp_request(alloc, worker, port, ip);
        }
    }
}

/// Reads a punted IKE packet (IPv4 header first) as a datagram: whole, not a fragment, UDP with
/// a valid (or absent) checksum.
fn parse_datagram(d: &[u8]) -> Option<Datagram> {
    let ip = ipv4::Packet::new_checked(d).ok()?;
    if ip.is_fragment() || ip.protocol() != ipv4::Protocol::Udp || !ip.verify_checksum() {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let u = udp::Packet::new_checked(ip.payload()).ok()?;
    if usize::from(u.len()) != ip.payload().len() || (u.checksum() != 0 && !u.verify_checksum(&src, &dst)) {
        return None;
    }
    Some(Datagram {
        local: SocketAddrV4::new(dst, u.dst_port()),
        remote: SocketAddrV4::new(src, u.src_port()),
        payload: u.payload().to_vec(),
    })
}
