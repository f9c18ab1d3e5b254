//! IKEv1 (RFC 2407, 2408, 2409) as a deterministic sans-IO engine, in the shape of quinn-proto:
//! datagrams in through [`Endpoint::handle`], datagrams out through [`Endpoint::poll_transmit`],
//! timers through [`Endpoint::poll_timeout`] and [`Endpoint::handle_timeout`], results through
//! [`Endpoint::poll_event`]. Time (`now`) and randomness ([`Rng`]) are passed in; there are no
//! sockets, clocks or OS randomness inside, so two engines can talk in memory on virtual time.
//!
//! Phase 1: main and aggressive mode with pre-shared keys; phase 2: quick mode with ESP and AH,
//! PFS and `proposal-check`; informational exchanges (notify, delete); NAT traversal (RFC 3947)
//! with NAT-D, the float to UDP 4500 and keepalives. The driver passes datagrams received on UDP
//! 4500 as received, non-ESP marker included, and sends each [`Transmit`] from its `local_port`.

pub mod crypto;
mod endpoint;
pub mod groups;
mod info;
mod phase1;
pub mod proposal;
mod quick;
pub mod wire;

use std::net::{Ipv4Addr, SocketAddr};

pub use endpoint::{AcquireError, Endpoint, EndpointConfig};
pub use phase1::HALF_OPEN_PER_PEER;

use crate::compile::BundleSpec;
use crate::config::ExchangeMode;
use crypto::Group;
use wire::NotifyType;

/// The IKE port (RFC 2408 2.5.2).
pub const IKE_PORT: u16 = 500;
/// The NAT traversal port (RFC 3947 4).
pub const NAT_T_PORT: u16 = 4500;

/// A source of randomness: cookies, nonces, SPIs, message ids and Diffie-Hellman exponents.
pub trait Rng {
    /// Fills `out` with random bytes.
    fn fill(&mut self, out: &mut [u8]);
}

impl<R: rand_core::RngCore> Rng for R {
    fn fill(&mut self, out: &mut [u8]) {
        self.fill_bytes(out);
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub remote: SocketAddr,
    /// The local UDP port to send from: 500, or 4500 after a NAT float (the bytes then start
    /// with the non-ESP marker, or are a one-byte keepalive).
    pub local_port: u16,
    /// The UDP payload.
    pub bytes: Vec<u8>,
}

/// Which side of an exchange we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the first message.
    Initiator,
    /// The peer did.
    Responder,
}

/// A proxy identity of quick mode (RFC 2409 5.5): the traffic an SA pair carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProxyId {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length.
    pub len: u8,
    /// The IP protocol, 0 for any.
    pub protocol: u8,
    /// The port, 0 for any.
    pub port: u16,
}

/// UDP encapsulation of ESP after NAT traversal (RFC 3948).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpEncap {
    /// Our port (4500).
    pub local_port: u16,
    /// The peer's port as we see it.
    pub remote_port: u16,
}

/// A negotiated SA pair, ready for the dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSa {
    /// The policy the SAs serve (`Entry::id`).
    pub policy_id: u32,
    /// The `/ip ipsec proposal` used.
    pub proposal: String,
    /// The IKE peer.
    pub peer: Ipv4Addr,
    /// Our role in the quick mode.
    pub role: Role,
    /// The SAs the peer sends with (our SPIs).
    pub inbound: BundleSpec,
    /// The SAs we send with (the peer's SPIs).
    pub outbound: BundleSpec,
    /// Our side's traffic.
    pub local_id: ProxyId,
    /// The peer's side's traffic.
    pub remote_id: ProxyId,
    /// Lifetime in seconds.
    pub life_secs: u64,
    /// Lifetime in kilobytes, 0 for none.
    pub life_kb: u64,
    /// The PFS group, if any.
    pub pfs: Option<Group>,
    /// UDP encapsulation, when NAT traversal negotiated it.
    pub encap: Option<UdpEncap>,
}

/// Why a negotiation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The peer stopped answering.
    Timeout,
    /// The hashes did not verify: most likely the pre-shared secrets differ.
    AuthenticationFailed,
    /// No proposal was acceptable.
    NoProposalChosen,
    /// The proxy identities match no policy.
    InvalidIdInformation,
    /// A Diffie-Hellman public value was invalid.
    InvalidKeyInformation,
    /// No pre-shared secret for the peer.
    NoSecret,
    /// No `/ip ipsec peer` for the address.
    NoPeer,
    /// A message did not make sense in its exchange.
    Malformed,
    /// The peer sent an error notification.
    PeerNotify(NotifyType),
}

impl FailReason {
    /// Returns the notification that tells the peer about it.
    pub fn notify(self) -> NotifyType {
        match self {
            FailReason::AuthenticationFailed => NotifyType::AuthenticationFailed,
            FailReason::NoProposalChosen => NotifyType::NoProposalChosen,
            FailReason::InvalidIdInformation => NotifyType::InvalidIdInformation,
            FailReason::InvalidKeyInformation => NotifyType::InvalidKeyInformation,
            _ => NotifyType::PayloadMalformed,
        }
    }
}

/// What the engine reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An ISAKMP SA is up.
    Phase1Established {
        /// The peer's address.
        peer: Ipv4Addr,
        /// Where its datagrams come from (after any NAT float).
        remote: SocketAddr,
        /// Our role.
        role: Role,
        /// Main or aggressive.
        mode: ExchangeMode,
        /// Initiator cookie.
        icookie: [u8; 8],
        /// Responder cookie.
        rcookie: [u8; 8],
        /// A NAT was detected between us.
        nat: bool,
        /// Lifetime in seconds.
        lifetime: u64,
    },
    /// An ISAKMP SA is gone (expired, deleted by us or the peer, or purged by INITIAL-CONTACT).
    Phase1Deleted {
        /// The peer's address.
        peer: Ipv4Addr,
        /// Initiator cookie.
        icookie: [u8; 8],
        /// Responder cookie.
        rcookie: [u8; 8],
    },
    /// An SA pair is negotiated: install inbound first, then outbound.
    SaEstablished(Box<ChildSa>),
    /// An SA pair is gone: remove it from the dataplane.
    SaDeleted {
        /// The peer's address.
        peer: Ipv4Addr,
        /// The policy it served.
        policy_id: u32,
        /// The inbound SAs, as (protocol, SPI) keys.
        inbound: Vec<dataplane::ctl::SaKey>,
        /// The outbound SAs.
        outbound: Vec<dataplane::ctl::SaKey>,
    },
    /// A negotiation failed.
    Failed {
        /// The peer's address.
        peer: Ipv4Addr,
        /// The policy, for phase 2 failures and acquires waiting on phase 1.
        policy_id: Option<u32>,
        /// Why.
        reason: FailReason,
    },
}

/// Why a received datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The wire layer refused it.
    Malformed,
    /// An exchange type we do not speak (base, authentication only, ...).
    UnsupportedExchange,
    /// Cookies of no ISAKMP SA we know.
    UnknownCookies,
    /// A retransmission of the last message (answered with our last message).
    Duplicate,
    /// A message the exchange's state does not expect (old, reordered, or out of place).
    Unexpected,
    /// Encrypted before keys exist, or not a whole number of blocks.
    Undecryptable,
    /// A HASH payload did not verify.
    BadHash,
    /// An informational exchange without protection after phase 1.
    Unprotected,
    /// Too many ISAKMP SAs or exchanges at once.
    Overload,
    /// No peer configured for the address.
    NoPeer,
    /// A quick mode or informational with message id 0, or one already finished.
    BadMessageId,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 11] = [
        DropReason::Malformed,
        DropReason::UnsupportedExchange,
        DropReason::UnknownCookies,
        DropReason::Duplicate,
        DropReason::Unexpected,
        DropReason::Undecryptable,
        DropReason::BadHash,
        DropReason::Unprotected,
        DropReason::Overload,
        DropReason::NoPeer,
        DropReason::BadMessageId,
    ];
}

/// Counters of dropped datagrams by reason, and the last reason with its detail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    counts: [u64; DropReason::ALL.len()],
    /// The last drop and what exactly was wrong.
    pub last: Option<(DropReason, &'static str)>,
    /// Datagrams received.
    pub received: u64,
    /// Datagrams sent (retransmissions included).
    pub sent: u64,
    /// Retransmissions sent on timers.
    pub retransmits: u64,
    /// Half-open exchanges dropped to make room for new ones (a flood of first messages).
    pub evicted: u64,
}

impl Stats {
    /// Returns the count of drops for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Returns the count of all drops.
    pub fn total_dropped(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn count(&mut self, reason: DropReason, detail: &'static str) {
        self.counts[reason as usize] += 1;
        self.last = Some((reason, detail));
    }
}
