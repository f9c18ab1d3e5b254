//! The messages between the control plane and the workers, and the lock-free rings that carry
//! them: one single-producer ring into each worker, one ring out of all workers.
//!
//! Tables (routes, interfaces, the compiled SPD) travel as `Arc`s and SAs as `Box`es; a worker
//! hands whatever it replaced back on its outbound ring, so memory is freed by the control
//! plane and never on a worker core.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::bundle::Bundle;
use crate::route::{Fib, Ifaces};
use crate::sa::{IpsecProto, Sa, SaEvent};
use crate::spd::{PolicyCounters, Spd};

/// Routing state swapped whole into every worker.
#[derive(Clone, Debug, Default)]
pub struct Tables {
    /// Interfaces and their addresses.
    pub ifaces: Ifaces,
    /// The compiled routing table (connected and static routes).
    pub fib: Fib,
}

impl Tables {
    /// Builds the tables from interfaces and static routes (connected routes are added).
    pub fn new(ifaces: Ifaces, static_routes: &[crate::route::Route]) -> Self {
        let mut routes = ifaces.connected_routes();
        routes.extend_from_slice(static_routes);
        Tables { fib: Fib::build(&routes), ifaces }
    }
}

/// How an inbound SA is found (the manual: by source, destination, protocol and SPI).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaKey {
    /// Outer source address.
    pub src: Ipv4Addr,
    /// Outer destination address (ours).
    pub dst: Ipv4Addr,
    /// ESP or AH.
    pub proto: IpsecProto,
    /// Security parameter index.
    pub spi: u32,
}

/// An inbound SA and the policy its decrypted packets must match.
pub struct InboundSa<S> {
    /// The SA.
    pub sa: Sa<S>,
    /// The control plane's id of the policy.
    pub policy_id: u32,
}

/// Why a worker hands a packet to the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PuntReason {
    /// IKE (UDP 500 or 4500) addressed to us.
    Ike,
    /// An ARP packet the worker does not answer itself (replies, gratuitous ARP).
    Arp,
    /// The next hop's Ethernet address is unknown: resolve it, hold the packet, send it later.
    Resolve {
        /// The address to resolve.
        next_hop: Ipv4Addr,
    },
    /// Addressed to us, and not something the worker answers (the control plane's own traffic).
    Local,
}

/// A message into a worker.
pub enum ToWorker<B, S> {
    /// Replace the routing tables.
    Tables(Arc<Tables>),
    /// Replace the compiled SPD. The worker's per-policy counters restart from `counters`
    /// (made by `spd.counters()`): the control plane allocates them, so that a worker with
    /// thousands of policies does not (zeroing and freeing 1.6 MB took it 0.3 to 1.6 ms).
    Spd {
        /// The new SPD.
        spd: Arc<Spd>,
        /// Its counters, zero. Boxed, as in `Retired::Spd`: a message is as large as its
        /// largest kind, and the counters keep one vector per outcome inline.
        counters: Box<PolicyCounters>,
    },
    /// Install (or replace) the outbound SAs of a policy; `None` removes them.
    Outbound {
        /// The control plane's id of the policy.
        policy_id: u32,
        /// The SAs.
        bundle: Option<Box<Bundle<S>>>,
    },
    /// Install (or replace) an inbound SA; `None` removes it.
    Inbound {
        /// How packets find it.
        key: SaKey,
        /// The SA.
        sa: Option<Box<InboundSa<S>>>,
    },
    /// Learn or refresh a neighbour.
    Neighbor {
        /// Port the neighbour is on.
        port: u16,
        /// Its IPv4 address.
        ip: Ipv4Addr,
        /// Its Ethernet address.
        mac: [u8; 6],
    },
    /// Forget a neighbour.
    NeighborGone {
        /// Port the neighbour was on.
        port: u16,
        /// Its IPv4 address.
        ip: Ipv4Addr,
    },
    /// Send a complete Ethernet frame on a port (ARP requests, held packets).
    Transmit {
        /// Output port.
        port: u16,
        /// The frame.
        buf: B,
    },
    /// Report every installed SA (answered with `FromWorker::Snapshot`).
    Snapshot,
    /// Route an IPv4 packet the control plane originated (it starts at its IPv4 header), as
    /// locally originated traffic: through the SPD, encryption and routing.
    Originate {
        /// The packet.
        buf: B,
    },
}

/// One SA as a worker sees it, for `installed-sa print`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSnapshot {
    /// The worker holding it.
    pub worker: u16,
    /// Sealing or opening.
    pub direction: crate::pipeline::Direction,
    /// The policy it serves.
    pub policy_id: u32,
    /// SPI.
    pub spi: u32,
    /// ESP or AH.
    pub proto: IpsecProto,
    /// Tunnel or transport.
    pub mode: crate::sa::Mode,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Algorithms.
    pub xf: crate::crypto::Transform,
    /// Life stage.
    pub state: crate::sa::SaState,
    /// Outbound: last sequence number sent; inbound: highest received.
    pub seq: u32,
    /// Inbound replay window size.
    pub replay_window: u32,
    /// Packets and bytes.
    pub counters: crate::sa::SaCounters,
    /// Installation time (seconds).
    pub added_at: u64,
    /// Lifetimes.
    pub lifetimes: crate::sa::Lifetimes,
}

impl<B, S> ToWorker<B, S> {
    /// Returns the message that swaps in `spd`, with its counters made here.
    pub fn spd(spd: Arc<Spd>) -> Self {
        ToWorker::Spd { counters: Box::new(spd.counters()), spd }
    }
}

/// Something a worker replaced, for the control plane to free.
pub enum Retired<S> {
    /// Routing tables.
    Tables(Arc<Tables>),
    /// A compiled SPD and the counters the worker kept for it.
    Spd(Arc<Spd>, Box<PolicyCounters>),
    /// A policy's outbound SAs.
    Bundle(Box<Bundle<S>>),
    /// An inbound SA.
    Inbound(Box<InboundSa<S>>),
}

/// A message out of a worker.
pub enum FromWorker<B, S> {
    /// A packet for the control plane; it starts at the Ethernet header for `Arp`, at the IPv4
    /// header otherwise.
    Punt {
        /// Worker that sent it.
        worker: u16,
        /// Port it arrived on (for `Resolve`: the port it must leave by).
        port: u16,
        /// Why.
        reason: PuntReason,
        /// The packet.
        buf: B,
    },
    /// A policy at level acquire or require met a packet without SAs: ask IKE for them.
    Acquire {
        /// The control plane's id of the policy.
        policy_id: u32,
    },
    /// An SA passed a lifetime or ran out of sequence numbers.
    SaEvent {
        /// The worker that saw it.
        worker: u16,
        /// The SA's SPI.
        spi: u32,
        /// The SA's destination.
        dst: Ipv4Addr,
        /// ESP or AH.
        proto: IpsecProto,
        /// What happened.
        event: SaEvent,
    },
    /// Something the worker replaced, to be dropped here.
    Retired(Retired<S>),
    /// The answer to `ToWorker::Snapshot`.
    Snapshot(Vec<SaSnapshot>),
}

/// A bounded lock-free queue. Producers never block: a full ring refuses the message.
pub struct Ring<T> {
    q: ArrayQueue<T>,
}

impl<T> Ring<T> {
    /// Creates a ring of `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Ring { q: ArrayQueue::new(capacity.max(1)) }
    }

    /// Enqueues `msg`, handing it back if the ring is full.
    #[inline]
    pub fn push(&self, msg: T) -> Result<(), T> {
        self.q.push(msg)
    }

    /// Dequeues the oldest message.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        self.q.pop()
    }

    /// Returns the number of queued messages.
    pub fn len(&self) -> usize {
        self.q.len()
    }

    /// Returns true when empty.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}
