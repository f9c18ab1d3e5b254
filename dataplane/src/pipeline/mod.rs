//! The per-burst stages of a worker: link layer in, IPv4 input (local delivery, inbound IPsec,
//! forwarding), outbound policy and encryption, routing, link layer out.
//!
//! Every stage takes a burst and hands survivors on in bursts of their own, so packets that
//! share a fate (one SA, one output port) are processed together and metadata is per burst,
//! never per packet. Every packet that goes nowhere is counted under a `DropReason`.

mod icmp;
pub mod l2;

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::buf::{Burst, PacketBuf};
use crate::ctl::{FromWorker, PuntReason, Ring, Tables, ToWorker};
use crate::route::Neighbors;
use crate::stats::{DropReason, Stats};
use crate::wire::{Protocol, icmp as wicmp, ipv4, udp};
use icmp::{IcmpError, RateLimit};

/// RFC 2408 / RFC 3947: IKE and NAT-traversal ports, which bypass the SPD.
pub const IKE_PORTS: [u16; 2] = [500, 4500];

/// Counters of one worker; merged across workers only when read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames handed to a transmit queue and accepted.
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// IPv4 packets forwarded.
    pub forwarded: u64,
    /// Packets handed to the control plane.
    pub punted: u64,
    /// ICMP replies and errors originated.
    pub icmp_out: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// Drops by reason.
    pub drops: Stats,
}

impl WorkerStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &WorkerStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.forwarded += o.forwarded;
        self.punted += o.punted;
        self.icmp_out += o.icmp_out;
        self.arp_replies += o.arp_replies;
        self.drops.merge(&o.drops);
    }
}

/// Frames staged for transmission, one burst per port; reused from burst to burst.
pub struct Outputs<B> {
    ports: Vec<Burst<B>>,
}

impl<B> Outputs<B> {
    /// Creates staging for `ports` ports.
    pub fn new(ports: usize) -> Self {
        Outputs { ports: (0..ports).map(|_| Burst::new()).collect() }
    }

    /// Returns the staged frames of `port`.
    pub fn port_mut(&mut self, port: u16) -> Option<&mut Burst<B>> {
        self.ports.get_mut(usize::from(port))
    }

    /// Returns the number of ports.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Returns true without ports.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    fn push(&mut self, port: u16, buf: B, stats: &mut Stats) {
        match self.ports.get_mut(usize::from(port)) {
            Some(b) if !b.is_full() => b.push(buf),
            _ => stats.drop(DropReason::TxQueueFull),
        }
    }
}

/// What the worker knows and counts, apart from its ports.
pub struct Pipeline {
    id: u16,
    tables: Arc<Tables>,
    neighbors: Neighbors,
    icmp_limit: RateLimit,
    /// Counters.
    pub stats: WorkerStats,
}

/// ICMP errors a worker may originate per second.
const ICMP_ERRORS_PER_SEC: u32 = 1000;

impl Pipeline {
    /// Creates the pipeline of worker `id` with the initial tables.
    pub fn new(id: u16, tables: Arc<Tables>) -> Self {
        Pipeline {
            id,
            tables,
            neighbors: Neighbors::default(),
            icmp_limit: RateLimit::new(ICMP_ERRORS_PER_SEC),
            stats: WorkerStats::default(),
        }
    }

    /// Returns the tables in use.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Applies one control message between bursts.
    pub fn apply<B: PacketBuf>(
        &mut self,
        msg: ToWorker<B>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B>>,
        now_ms: u64,
    ) {
        match msg {
            ToWorker::Tables(t) => {
                let old = std::mem::replace(&mut self.tables, t);
                // The control plane drops the last reference, off this core; if its ring is
                // full the worker drops it, which is still correct, only slower.
                let _ = up.push(FromWorker::Retired(old));
            }
            ToWorker::Neighbor { port, ip, mac } => self.neighbors.insert(port, ip, mac),
            ToWorker::NeighborGone { port, ip } => self.neighbors.remove(port, ip),
            ToWorker::Transmit { port, buf } => out.push(port, buf, &mut self.stats.drops),
            ToWorker::Originate { buf } => {
                let mut b = Burst::new();
                b.push(buf);
                self.output(&mut b, None, out, up, now_ms);
            }
        }
    }

    /// Processes a burst received on `in_port`, staging what must be sent in `out` and
    /// handing what the worker does not handle to the control plane on `up`.
    pub fn process<B: PacketBuf>(
        &mut self,
        in_port: u16,
        rx: &mut Burst<B>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B>>,
        now_ms: u64,
    ) {
        let tables = Arc::clone(&self.tables);
        let Some(iface) = tables.ifaces.get(in_port) else {
            for _ in rx.drain(..) {
                self.stats.drops.drop(DropReason::OtherHost);
            }
            return;
        };
        let mut ip: Burst<B> = Burst::new();
        for mut buf in rx.drain(..) {
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += buf.len() as u64;
            match l2::receive(&mut buf, iface) {
                Ok(l2::Frame::Ipv4) => ip.push(buf),
                Ok(l2::Frame::ArpReplied) => {
                    self.stats.arp_replies += 1;
                    out.push(in_port, buf, &mut self.stats.drops);
                }
                Ok(l2::Frame::ArpOther) => self.punt(up, in_port, PuntReason::Arp, buf),
                Err(r) => self.stats.drops.drop(r),
            }
        }
        self.ip_input(in_port, &mut ip, out, up, now_ms);
    }

    fn punt<B: PacketBuf>(&mut self, up: &Ring<FromWorker<B>>, port: u16, reason: PuntReason, buf: B) {
        match up.push(FromWorker::Punt { worker: self.id, port, reason, buf }) {
            Ok(()) => self.stats.punted += 1,
            Err(_) => self.stats.drops.drop(DropReason::PuntRingFull),
        }
    }

    /// IPv4 input: local delivery or forwarding.
    fn ip_input<B: PacketBuf>(
        &mut self,
        in_port: u16,
        pkts: &mut Burst<B>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B>>,
        now_ms: u64,
    ) {
        let tables = Arc::clone(&self.tables);
        let mut fwd: Burst<B> = Burst::new();
        let mut local_out: Burst<B> = Burst::new();
        for mut buf in pkts.drain(..) {
            let (dst, proto, ttl, dport) = match check_ipv4(&mut buf) {
                Ok(v) => v,
                Err(r) => {
                    self.stats.drops.drop(r);
                    continue;
                }
            };
            if tables.ifaces.is_local(dst) || dst.is_broadcast() {
                match proto {
                    Protocol::Udp if dport.is_some_and(|p| IKE_PORTS.contains(&p)) => {
                        self.punt(up, in_port, PuntReason::Ike, buf)
                    }
                    Protocol::Icmp if is_echo_request(buf.data()) => match icmp::echo_reply(&mut buf) {
                        Ok(()) => {
                            self.stats.icmp_out += 1;
                            local_out.push(buf);
                        }
                        Err(r) => self.stats.drops.drop(r),
                    },
                    _ => self.punt(up, in_port, PuntReason::Local, buf),
                }
                continue;
            }
            if ttl <= 1 {
                self.stats.drops.drop(DropReason::TtlExceeded);
                self.icmp_error(buf, IcmpError::TtlExceeded, in_port, now_ms, &mut local_out);
                continue;
            }
            decrement_ttl(buf.data_mut());
            fwd.push(buf);
        }
        self.stats.forwarded += fwd.len() as u64;
        self.output_from(&mut fwd, Some(in_port), out, up, now_ms);
        self.output(&mut local_out, None, out, up, now_ms);
    }

    /// Rewrites `buf` into an ICMP error if allowed and within the rate limit, and stages it;
    /// otherwise the packet is freed (its drop is already counted by the caller).
    fn icmp_error<B: PacketBuf>(
        &mut self,
        mut buf: B,
        err: IcmpError,
        in_port: u16,
        now_ms: u64,
        staged: &mut Burst<B>,
    ) {
        let Some(addr) = self.tables.ifaces.addr_on(in_port) else { return };
        if staged.is_full() || !self.icmp_limit.take(now_ms) {
            return;
        }
        if icmp::error_in_place(&mut buf, err, addr) {
            self.stats.icmp_out += 1;
            staged.push(buf);
        }
    }

    /// Outbound path of locally originated packets.
    fn output<B: PacketBuf>(
        &mut self,
        pkts: &mut Burst<B>,
        _prev_policy: Option<u32>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B>>,
        now_ms: u64,
    ) {
        self.route(pkts, None, out, up, now_ms);
    }

    /// Outbound path of forwarded packets (ICMP errors go back towards `in_port`'s side).
    fn output_from<B: PacketBuf>(
        &mut self,
        pkts: &mut Burst<B>,
        in_port: Option<u16>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B>>,
        now_ms: u64,
    ) {
        self.route(pkts, in_port, out, up, now_ms);
    }

    /// Routes, resolves and stages each packet; `in_port` is set for forwarded packets, which
    /// may cause ICMP errors.
    fn route<B: PacketBuf>(
        &mut self,
        pkts: &mut Burst<B>,
        in_port: Option<u16>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B>>,
        now_ms: u64,
    ) {
        let tables = Arc::clone(&self.tables);
        let mut errors: Burst<B> = Burst::new();
        for mut buf in pkts.drain(..) {
            let (dst, len, df) = {
                let ip = ipv4::Packet::new_unchecked(buf.data());
                (ip.dst_addr(), usize::from(ip.total_len()), ip.dont_frag())
            };
            let Some(hop) = tables.fib.lookup(dst) else {
                self.stats.drops.drop(DropReason::NoRoute);
                if let Some(p) = in_port {
                    restore_ttl(buf.data_mut());
                    self.icmp_error(buf, IcmpError::NetUnreachable, p, now_ms, &mut errors);
                }
                continue;
            };
            let Some(iface) = tables.ifaces.get(hop.port) else {
                self.stats.drops.drop(DropReason::NoRoute);
                continue;
            };
            if len > usize::from(iface.mtu) {
                self.stats.drops.drop(DropReason::FragNeeded);
                if let (Some(p), true) = (in_port, df) {
                    restore_ttl(buf.data_mut());
                    self.icmp_error(buf, IcmpError::FragNeeded(iface.mtu), p, now_ms, &mut errors);
                }
                continue;
            }
            let next_hop = hop.gateway.unwrap_or(dst);
            let Some(mac) = self.neighbors.get(hop.port, next_hop) else {
                self.punt(up, hop.port, PuntReason::Resolve { next_hop }, buf);
                continue;
            };
            match l2::encap(&mut buf, iface.mac, mac) {
                Ok(()) => out.push(hop.port, buf, &mut self.stats.drops),
                Err(r) => self.stats.drops.drop(r),
            }
        }
        if !errors.is_empty() {
            // ICMP errors are locally originated; errors about them are never sent, so this
            // recursion ends here.
            self.route(&mut errors, None, out, up, now_ms);
        }
    }
}

/// Validates an IPv4 header (checksum included) and trims link-layer padding; returns the
/// destination, protocol, TTL and, for a first fragment of UDP, the destination port.
fn check_ipv4<B: PacketBuf>(buf: &mut B) -> Result<(Ipv4Addr, Protocol, u8, Option<u16>), DropReason> {
    let (total, v) = {
        let d = buf.data();
        if d.first().is_none_or(|b| b >> 4 != 4) {
            return Err(if d.is_empty() { DropReason::Truncated } else { DropReason::NotIpv4 });
        }
        let ip = ipv4::Packet::new_checked(d).map_err(|_| DropReason::BadIpHeader)?;
        if !ip.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        let dport = if ip.protocol() == Protocol::Udp && ip.frag_offset() == 0 {
            udp::Packet::new_checked(ip.payload()).ok().map(|u| u.dst_port())
        } else {
            None
        };
        (usize::from(ip.total_len()), (ip.dst_addr(), ip.protocol(), ip.ttl(), dport))
    };
    let extra = buf.len() - total;
    if extra > 0 {
        buf.trim(extra);
    }
    Ok(v)
}

fn is_echo_request(d: &[u8]) -> bool {
    let ip = ipv4::Packet::new_unchecked(d);
    ip.frag_offset() == 0
        && !ip.more_frags()
        && wicmp::Packet::new_checked(ip.payload()).is_ok_and(|m| m.msg_type() == wicmp::Message::EchoRequest)
}

/// Decrements the TTL and updates the checksum incrementally (RFC 1624 equation 3).
fn decrement_ttl(d: &mut [u8]) {
    let ttl = ipv4::Packet::new_unchecked(&*d).ttl();
    set_ttl(d, ttl - 1);
}

/// Gives back the TTL a forwarded packet arrived with, so that an ICMP error quotes the
/// header as it was received.
fn restore_ttl(d: &mut [u8]) {
    let ttl = ipv4::Packet::new_unchecked(&*d).ttl();
    set_ttl(d, ttl.saturating_add(1));
}

fn set_ttl(d: &mut [u8], new: u8) {
    let mut ip = ipv4::Packet::new_unchecked(d);
    let proto = u8::from(ip.protocol());
    let old_word = u16::from_be_bytes([ip.ttl(), proto]);
    let new_word = u16::from_be_bytes([new, proto]);
    let mut sum = u32::from(!ip.checksum()) + u32::from(!old_word) + u32::from(new_word);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip.set_ttl(new);
    ip.set_checksum(!(sum as u16));
}
