//! The endpoint: every ISAKMP SA and exchange of one IKE daemon, the dispatch of received
//! datagrams, the timers (retransmission with back-off, give-up, lifetimes, NAT keepalives) and
//! the queues of transmissions and events. Phase 1, quick mode and informational exchanges are
//! `impl Endpoint` blocks in their own files.

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::crypto::{DhKey, HashAlg, Phase1Keys, Secret};
use super::proposal::{ChildChoice, ChildParams, Spis, Suite};
use super::wire::{self, Builder, Exchange, HeaderRepr, Message, PayloadType, SaRepr};
use super::{DropReason, Event, FailReason, IKE_PORT, NAT_T_PORT, Rng, Role, Stats, Transmit};
use dataplane::spd::Action;

use crate::config::{Config, ExchangeMode, Peer, Policy, PreSharedSecret, Proposal};

/// Settings of an endpoint that are not in the RouterOS configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    /// Our address: the phase 1 identity, NAT-D, and the SA address when a policy has no
    /// sa-src-address.
    pub local: Ipv4Addr,
    /// The first retransmission interval; each retry doubles it.
    pub retransmit_initial: Duration,
    /// Retransmissions before an exchange gives up.
    pub retransmit_limit: u32,
    /// The NAT keepalive interval (RFC 3948 4).
    pub keepalive: Duration,
    /// How long a finished quick mode is kept to answer retransmissions.
    pub linger: Duration,
    /// Pretend to be behind a NAT (a random local NAT-D), so the peers float to UDP 4500 and
    /// encapsulate ESP in UDP even without a NAT.
    pub force_nat_t: bool,
    /// The most ISAKMP SAs at once, half-open ones included.
    pub max_phase1: usize,
    /// New exchanges we answer per second at most (a burst of twice as many), so a flood of
    /// first messages costs a bounded amount of CPU; the rest are dropped as overload.
    pub new_exchanges_per_sec: u32,
}

impl EndpointConfig {
    /// Returns the defaults for a local address.
    pub fn new(local: Ipv4Addr) -> Self {
        EndpointConfig {
            local,
            retransmit_initial: Duration::from_secs(2),
            retransmit_limit: 5,
            keepalive: Duration::from_secs(20),
            linger: Duration::from_secs(60),
            force_nat_t: false,
            max_phase1: 256,
            new_exchanges_per_sec: 500,
        }
    }
}

/// Why an acquire cannot start.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AcquireError {
    /// No enabled encrypt policy has the id.
    #[error("no enabled encrypt policy with id {0}")]
    NoPolicy(u32),
    /// The policy names a proposal that does not exist.
    #[error("policy {0}: no such proposal {1}")]
    NoProposal(u32, String),
    /// No peer for the policy's sa-dst-address.
    #[error("policy {0}: no /ip ipsec peer with address {1}")]
    NoPeer(u32, Ipv4Addr),
    /// No secret for the peer.
    #[error("peer {0}: no pre-shared secret")]
    NoSecret(Ipv4Addr),
    /// Too many ISAKMP SAs.
    #[error("too many ISAKMP SAs")]
    Overload,
}

/// The state of a phase 1 exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum P1State {
    /// Main mode initiator: SA sent, waiting for the responder's SA.
    MainI1,
    /// Main mode initiator: KE sent, waiting for KE.
    MainI3,
    /// Main mode initiator: ID and HASH_I sent, waiting for HASH_R.
    MainI5,
    /// Main mode responder: SA sent, waiting for KE.
    MainR2,
    /// Main mode responder: KE sent, waiting for ID and HASH_I.
    MainR4,
    /// Aggressive initiator: first message sent.
    AggrI1,
    /// Aggressive responder: second message sent, waiting for HASH_I.
    AggrR2,
    /// The ISAKMP SA is up.
    Established,
}

/// The last message of an exchange, and its retransmission timer.
#[derive(Debug, Default)]
pub(super) struct Flight {
    /// What we sent last (without the non-ESP marker).
    pub sent: Option<Vec<u8>>,
    /// What we received last, to recognise duplicates.
    pub received: Option<Vec<u8>>,
    /// When to retransmit `sent`, if we are waiting for an answer.
    pub due: Option<Instant>,
    /// The current interval.
    pub interval: Duration,
    /// Retransmissions so far.
    pub tries: u32,
    /// When we last answered a duplicate, to answer a burst of copies once.
    pub dup_answered: Option<Instant>,
}

impl Flight {
    /// Tells whether a duplicate received at `now` should be answered with `sent`: only when
    /// `sent` answers `received`, and at most once per `gap`.
    pub fn answer_duplicate(&mut self, now: Instant, gap: Duration) -> Option<Vec<u8>> {
        if self.dup_answered.is_some_and(|t| now < t + gap) {
            return None;
        }
        let b = self.sent.clone()?;
        self.dup_answered = Some(now);
        Some(b)
    }
}

/// NAT traversal state (RFC 3947).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Nat {
    /// The peer sent the RFC 3947 vendor id.
    pub supported: bool,
    /// We are behind a NAT (or pretend to be).
    pub local: bool,
    /// The peer is behind a NAT.
    pub remote: bool,
}

impl Nat {
    pub fn detected(&self) -> bool {
        self.local || self.remote
    }
}

/// One ISAKMP SA, from its first message to its deletion.
pub(super) struct P1 {
    pub role: Role,
    pub mode: ExchangeMode,
    pub state: P1State,
    pub peer: Peer,
    /// The peer's configured address (the remote address for a wildcard peer).
    pub peer_addr: Ipv4Addr,
    pub remote: SocketAddr,
    pub local_port: u16,
    pub ic: [u8; 8],
    pub rc: [u8; 8],
    pub suite: Suite,
    pub psk: Option<Secret>,
    pub sai_b: Vec<u8>,
    pub dh: Option<DhKey>,
    pub g_xi: Vec<u8>,
    pub g_xr: Vec<u8>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub id_i_b: Vec<u8>,
    pub id_r_b: Vec<u8>,
    pub keys: Option<Phase1Keys>,
    /// The CBC chain of phase 1; once established, the last block of phase 1 (Appendix B).
    pub iv: Vec<u8>,
    pub nat: Nat,
    pub flight: Flight,
    pub expires: Option<Instant>,
    pub keepalive_due: Option<Instant>,
    pub quick: Vec<Quick>,
    /// Informational message ids seen, to drop replays (bounded).
    pub info_seen: VecDeque<u32>,
    /// While waiting for main mode message 6, the peer sent an encrypted message our keys do
    /// not read: most likely its secret differs, so a give-up reports AUTHENTICATION-FAILED.
    pub refuted: bool,
}

impl P1 {
    pub fn hash(&self) -> HashAlg {
        self.suite.hash
    }

    pub fn header(&self, exchange: Exchange, flags: u8, message_id: u32) -> HeaderRepr {
        HeaderRepr { icookie: self.ic, rcookie: self.rc, exchange, flags, message_id }
    }

    pub fn established(&self) -> bool {
        self.state == P1State::Established
    }

    /// Returns the hash of NAT-D: HASH(CKY-I | CKY-R | IP | port) (RFC 3947 3.2).
    pub fn nat_hash(&self, addr: SocketAddr) -> Vec<u8> {
        nat_hash(self.hash(), &self.ic, &self.rc, addr)
    }
}

/// Returns HASH(CKY-I | CKY-R | IP | port), the NAT-D payload (RFC 3947 3.2).
pub(super) fn nat_hash(hash: HashAlg, ic: &[u8; 8], rc: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let ip = match addr {
        SocketAddr::V4(a) => a.ip().octets().to_vec(),
        SocketAddr::V6(a) => a.ip().octets().to_vec(),
    };
    hash.hash(&[ic, rc, &ip, &addr.port().to_be_bytes()])
}

/// The state of a quick mode exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum QState {
    /// Initiator: first message sent.
    I1,
    /// Responder: second message sent, waiting for HASH(3).
    R2,
    /// Finished; kept to answer retransmissions.
    Done,
}

/// One quick mode exchange.
pub(super) struct Quick {
    pub msgid: u32,
    pub role: Role,
    pub state: QState,
    pub policy_id: u32,
    pub proposal: String,
    pub iv: Vec<u8>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub dh: Option<DhKey>,
    pub params: ChildParams,
    pub offer: SaRepr,
    pub spis: Spis,
    pub local_id: super::ProxyId,
    pub remote_id: super::ProxyId,
    pub choice: Option<ChildChoice>,
    pub gqm: Option<Secret>,
    pub flight: Flight,
    pub forget_at: Option<Instant>,
}

/// An established SA pair, for deletes and INITIAL-CONTACT.
pub(super) struct ChildRecord {
    pub peer: Ipv4Addr,
    pub policy_id: u32,
    pub inbound: Vec<dataplane::ctl::SaKey>,
    pub outbound: Vec<dataplane::ctl::SaKey>,
}

/// An acquire waiting for its phase 1.
struct Waiting {
    policy_id: u32,
    peer: Ipv4Addr,
}

/// An IKE daemon: every ISAKMP SA and exchange, driven by datagrams and time.
pub struct Endpoint {
    pub(super) cfg: EndpointConfig,
    pub(super) conf: Config,
    pub(super) rng: Box<dyn Rng + Send>,
    pub(super) p1: Vec<P1>,
    pub(super) children: Vec<ChildRecord>,
    waiting: Vec<Waiting>,
    /// Peers we have had an ISAKMP SA with since we started (INITIAL-CONTACT goes to the others).
    pub(super) contacted: HashSet<Ipv4Addr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub(super) stats: Stats,
    /// Tokens for new responder exchanges, and when they were last refilled.
    pub(super) new_tokens: (f64, Option<Instant>),
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("local", &self.cfg.local).field("phase1", &self.p1.len()).finish()
    }
}

/// Parsed, checked message parts handed from dispatch to the exchanges.
pub(super) struct Input<'a> {
    pub now: Instant,
    pub remote: SocketAddr,
    pub local_port: u16,
    pub msg: Message<&'a [u8]>,
}

impl Endpoint {
    /// Returns an endpoint for a configuration; `rng` supplies every random value.
    pub fn new(cfg: EndpointConfig, conf: Config, rng: Box<dyn Rng + Send>) -> Self {
        Endpoint {
            cfg,
            conf,
            rng,
            p1: Vec::new(),
            children: Vec::new(),
            waiting: Vec::new(),
            contacted: HashSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            new_tokens: (0.0, None),
        }
    }

    /// Replaces the configuration; exchanges in progress keep what they started with.
    pub fn set_config(&mut self, conf: Config) {
        self.conf = conf;
    }

    /// Returns the configuration.
    pub fn config(&self) -> &Config {
        &self.conf
    }

    /// Returns the drop counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Returns the number of ISAKMP SAs (half-open included).
    pub fn phase1_count(&self) -> usize {
        self.p1.len()
    }

    /// Returns the next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Returns the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Returns when [`Endpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut min = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for p in &self.p1 {
            min(p.flight.due);
            min(p.expires);
            min(p.keepalive_due);
            for q in &p.quick {
                min(q.flight.due);
                min(q.forget_at);
            }
        }
        t
    }

    /// Starts negotiating SAs for an encrypt policy (its level acquire or require hit a packet
    /// with no SA): quick mode on the peer's ISAKMP SA, after phase 1 if there is none. A
    /// negotiation already running for the policy absorbs the call.
    pub fn acquire(&mut self, now: Instant, policy_id: u32) -> Result<(), AcquireError> {
        let policy = self.policy(policy_id).ok_or(AcquireError::NoPolicy(policy_id))?.clone();
        if self.conf.get::<Proposal>(&policy.proposal).is_none() {
            return Err(AcquireError::NoProposal(policy_id, policy.proposal.clone()));
        }
        let peer_addr = policy.sa_dst_address;
        let peer = self.find_peer(peer_addr).ok_or(AcquireError::NoPeer(policy_id, peer_addr))?;
        let busy = self.p1.iter().any(|p| {
            p.peer_addr == peer_addr && p.quick.iter().any(|q| q.policy_id == policy_id && q.state != QState::Done)
        }) || self.waiting.iter().any(|w| w.policy_id == policy_id);
        if busy {
            return Ok(());
        }
        if let Some(i) = self.p1.iter().position(|p| p.peer_addr == peer_addr && p.established()) {
            self.start_quick(now, i, policy_id);
            return Ok(());
        }
        self.waiting.push(Waiting { policy_id, peer: peer_addr });
        if !self.p1.iter().any(|p| p.peer_addr == peer_addr) {
            if self.p1.len() >= self.cfg.max_phase1 {
                self.waiting.retain(|w| w.policy_id != policy_id);
                return Err(AcquireError::Overload);
            }
            if let Err(e) = self.start_phase1(now, peer) {
                self.waiting.retain(|w| w.policy_id != policy_id);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Deletes the SAs negotiated for a policy: tells the peer (DELETE with our inbound SPIs)
    /// and reports [`Event::SaDeleted`].
    pub fn delete_sas(&mut self, now: Instant, policy_id: u32) {
        let (gone, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.children).into_iter().partition(|c| c.policy_id == policy_id);
        self.children = keep;
        for c in gone {
            if let Some(i) = self.p1.iter().position(|p| p.peer_addr == c.peer && p.established()) {
                self.send_delete_children(now, i, &c.inbound);
            }
            self.events.push_back(Event::SaDeleted {
                peer: c.peer,
                policy_id: c.policy_id,
                inbound: c.inbound,
                outbound: c.outbound,
            });
        }
    }

    /// Forgets one negotiated SA pair, found by its inbound SAs, and tells the peer (DELETE with
    /// our inbound SPIs) if an ISAKMP SA with it is up. No event: the caller removes the SAs.
    /// Returns whether the pair was known.
    pub fn delete_child(&mut self, now: Instant, inbound: &[dataplane::ctl::SaKey]) -> bool {
        let Some(j) = self.children.iter().position(|c| c.inbound == inbound) else { return false };
        let c = self.children.remove(j);
        if let Some(i) = self.p1.iter().position(|p| p.peer_addr == c.peer && p.established()) {
            self.send_delete_children(now, i, &c.inbound);
        }
        true
    }

    /// Deletes the ISAKMP SAs with a peer, telling it.
    pub fn delete_phase1(&mut self, now: Instant, peer: Ipv4Addr) {
        while let Some(i) = self.p1.iter().position(|p| p.peer_addr == peer) {
            if self.p1[i].established() {
                self.send_delete_phase1(now, i);
            }
            self.remove_p1(i, true);
        }
    }

    /// Processes one received UDP payload. Datagrams from UDP 4500 are passed as received: with
    /// the non-ESP marker, or the one-byte keepalive (which is ignored).
    pub fn handle(&mut self, now: Instant, remote: SocketAddr, bytes: &[u8]) {
        self.stats.received += 1;
        let (local_port, data) = match bytes {
            [0xff] => return,
            [0, 0, 0, 0, rest @ ..] => (NAT_T_PORT, rest),
            _ => (IKE_PORT, bytes),
        };
        let msg = match Message::new_checked(data) {
            Ok(m) => m,
            Err(wire::Malformed(why)) => return self.drop_msg(DropReason::Malformed, why),
        };
        if msg.icookie() == [0; 8] {
            return self.drop_msg(DropReason::Malformed, "zero initiator cookie");
        }
        let input = Input { now, remote, local_port, msg };
        match msg.exchange() {
            Exchange::Main | Exchange::Aggressive => self.phase1_input(input),
            Exchange::Quick => self.quick_input(input),
            Exchange::Informational => self.info_input(input),
            _ => self.drop_msg(DropReason::UnsupportedExchange, "exchange type not supported"),
        }
    }

    /// Runs the timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.p1.len() {
            if self.p1[i].expires.is_some_and(|t| t <= now) {
                self.send_delete_phase1(now, i);
                self.remove_p1(i, true);
                continue;
            }
            if self.p1[i].flight.due.is_some_and(|t| t <= now) {
                let limit = self.cfg.retransmit_limit;
                let p = &mut self.p1[i];
                if p.flight.tries >= limit {
                    if !p.established() {
                        let reason = if p.refuted { FailReason::AuthenticationFailed } else { FailReason::Timeout };
                        self.fail_phase1(i, reason);
                        continue;
                    }
                    p.flight.due = None;
                } else {
                    p.flight.tries += 1;
                    p.flight.interval *= 2;
                    p.flight.due = Some(now + p.flight.interval);
                    if let Some(b) = p.flight.sent.clone() {
                        self.stats.retransmits += 1;
                        self.send_p1(i, b);
                    }
                }
            }
            if self.p1[i].keepalive_due.is_some_and(|t| t <= now) {
                let p = &mut self.p1[i];
                p.keepalive_due = Some(now + self.cfg.keepalive);
                let remote = p.remote;
                self.stats.sent += 1;
                self.transmits.push_back(Transmit { remote, local_port: NAT_T_PORT, bytes: vec![0xff] });
            }
            self.quick_timers(now, i);
            i += 1;
        }
    }

    fn quick_timers(&mut self, now: Instant, i: usize) {
        let limit = self.cfg.retransmit_limit;
        let mut j = 0;
        while j < self.p1[i].quick.len() {
            let q = &mut self.p1[i].quick[j];
            if q.forget_at.is_some_and(|t| t <= now) {
                self.p1[i].quick.remove(j);
                continue;
            }
            if q.flight.due.is_some_and(|t| t <= now) {
                if q.flight.tries >= limit {
                    let q = self.p1[i].quick.remove(j);
                    let peer = self.p1[i].peer_addr;
                    self.events.push_back(Event::Failed {
                        peer,
                        policy_id: Some(q.policy_id),
                        reason: FailReason::Timeout,
                    });
                    continue;
                }
                q.flight.tries += 1;
                q.flight.interval *= 2;
                q.flight.due = Some(now + q.flight.interval);
                if let Some(b) = q.flight.sent.clone() {
                    self.stats.retransmits += 1;
                    self.send_p1(i, b);
                }
            }
            j += 1;
        }
    }

    // ---- helpers shared by the exchanges ----

    pub(super) fn drop_msg(&mut self, reason: DropReason, why: &'static str) {
        self.stats.count(reason, why);
    }

    pub(super) fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    pub(super) fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill(&mut b);
        b
    }

    pub(super) fn random_vec(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.rng.fill(&mut b);
        b
    }

    /// Returns a fresh non-zero cookie.
    pub(super) fn cookie(&mut self) -> [u8; 8] {
        loop {
            let c = self.random::<8>();
            if c[..4] != [0; 4] {
                return c;
            }
        }
    }

    /// Returns a fresh SPI, at least [`crate::compile::MIN_SPI`] and not used by any of our SAs.
    pub(super) fn spi(&mut self) -> u32 {
        loop {
            let s = u32::from_be_bytes(self.random::<4>());
            let used = self.children.iter().any(|c| c.inbound.iter().any(|k| k.spi == s))
                || self.p1.iter().any(|p| p.quick.iter().any(|q| q.spis.esp == Some(s) || q.spis.ah == Some(s)));
            if s >= crate::compile::MIN_SPI && !used {
                return s;
            }
        }
    }

    /// Returns a fresh non-zero message id.
    pub(super) fn message_id(&mut self) -> u32 {
        loop {
            let m = u32::from_be_bytes(self.random::<4>());
            if m != 0 {
                return m;
            }
        }
    }

    /// Queues bytes to the ISAKMP SA's peer, from its current port.
    pub(super) fn send_p1(&mut self, i: usize, bytes: Vec<u8>) {
        let p = &self.p1[i];
        self.send_raw(p.remote, p.local_port, bytes);
    }

    pub(super) fn send_raw(&mut self, remote: SocketAddr, local_port: u16, bytes: Vec<u8>) {
        let bytes = if local_port == NAT_T_PORT { [&wire::NON_ESP_MARKER[..], &bytes].concat() } else { bytes };
        self.stats.sent += 1;
        self.transmits.push_back(Transmit { remote, local_port, bytes });
    }

    /// Sends a phase 1 message and arms its retransmission.
    pub(super) fn send_flight_p1(&mut self, now: Instant, i: usize, bytes: Vec<u8>, wait: bool) {
        let interval = self.cfg.retransmit_initial;
        let f = &mut self.p1[i].flight;
        f.sent = Some(bytes.clone());
        f.tries = 0;
        f.interval = interval;
        f.due = wait.then_some(now + interval);
        self.send_p1(i, bytes);
    }

    /// Builds a plaintext message.
    pub(super) fn plain(h: HeaderRepr, b: &Builder) -> Vec<u8> {
        let body = b.bytes();
        let mut out = Vec::with_capacity(wire::HEADER_LEN + body.len());
        h.emit(b.first(), wire::HEADER_LEN + body.len(), &mut out);
        out.extend_from_slice(&body);
        out
    }

    /// Builds an encrypted message with the ISAKMP SA's key and `iv`; returns it and the last
    /// ciphertext block (the next IV).
    pub(super) fn encrypted(
        p: &P1,
        mut h: HeaderRepr,
        first: PayloadType,
        body: &[u8],
        iv: &[u8],
    ) -> (Vec<u8>, Vec<u8>) {
        let c = p.suite.cipher;
        let bl = c.block_len();
        let mut data = body.to_vec();
        let pad = (bl - data.len() % bl) % bl;
        data.resize(data.len() + pad, 0);
        let ok = p.keys.as_ref().is_some_and(|k| c.encrypt(&k.enc, iv, &mut data));
        debug_assert!(ok, "encryption with derived keys");
        h.flags |= wire::flags::ENCRYPTION;
        let mut out = Vec::with_capacity(wire::HEADER_LEN + data.len());
        h.emit(first, wire::HEADER_LEN + data.len(), &mut out);
        let next_iv = data[data.len().saturating_sub(bl)..].to_vec();
        out.extend_from_slice(&data);
        (out, next_iv)
    }

    /// Decrypts a message's body; returns the plaintext and the last ciphertext block.
    pub(super) fn decrypt(p: &P1, msg: &Message<&[u8]>, iv: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let keys = p.keys.as_ref()?;
        let c = p.suite.cipher;
        let body = msg.body();
        if body.is_empty() || !body.len().is_multiple_of(c.block_len()) {
            return None;
        }
        let next_iv = body[body.len() - c.block_len()..].to_vec();
        let mut data = body.to_vec();
        c.decrypt(&keys.enc, iv, &mut data).then_some((data, next_iv))
    }

    /// Returns the configured peer for an address: an exact match, else a wildcard (0.0.0.0).
    pub(super) fn find_peer(&self, addr: Ipv4Addr) -> Option<Peer> {
        let peers = self.conf.entries::<Peer>();
        let live = || peers.iter().filter(|e| !e.disabled);
        live()
            .find(|e| e.item.address == addr)
            .or_else(|| live().find(|e| e.item.address.is_unspecified()))
            .map(|e| e.item.clone())
    }

    /// Returns the pre-shared secret for a peer: its own `secret`, else the pre-shared-secret
    /// entry for its address, else the one whose ident-string is the peer's identity.
    pub(super) fn find_secret(&self, peer: &Peer, addr: Ipv4Addr, ident: Option<&[u8]>) -> Option<Secret> {
        if !peer.secret.is_empty() {
            let s = PreSharedSecret { secret: peer.secret.clone(), ..PreSharedSecret::default() };
            return Some(s.secret_bytes());
        }
        let secrets = self.conf.entries::<PreSharedSecret>();
        let live = || secrets.iter().filter(|e| !e.disabled).map(|e| &e.item);
        let by_addr = live().find(|s| s.address == addr && !addr.is_unspecified());
        let by_ident =
            || ident.and_then(|id| live().find(|s| !s.ident_string.is_empty() && s.ident_string.as_bytes() == id));
        let any = || live().find(|s| s.address.is_unspecified() && s.ident_string.is_empty());
        by_addr.or_else(by_ident).or_else(any).map(PreSharedSecret::secret_bytes)
    }

    /// Returns an enabled encrypt policy by id.
    pub(super) fn policy(&self, id: u32) -> Option<&Policy> {
        self.conf
            .entries::<Policy>()
            .iter()
            .find(|e| e.id == id && !e.disabled && e.item.action == Action::Encrypt)
            .map(|e| &e.item)
    }

    /// Removes an ISAKMP SA, reporting its deletion if it was established.
    pub(super) fn remove_p1(&mut self, i: usize, report: bool) {
        let p = self.p1.remove(i);
        if report && p.established() {
            self.events.push_back(Event::Phase1Deleted { peer: p.peer_addr, icookie: p.ic, rcookie: p.rc });
        }
    }

    /// Fails a phase 1 negotiation and the acquires waiting for it.
    pub(super) fn fail_phase1(&mut self, i: usize, reason: FailReason) {
        let peer = self.p1[i].peer_addr;
        let role = self.p1[i].role;
        self.remove_p1(i, true);
        let waiting: Vec<u32> = self.waiting.iter().filter(|w| w.peer == peer).map(|w| w.policy_id).collect();
        if waiting.is_empty() || role == Role::Responder {
            self.events.push_back(Event::Failed { peer, policy_id: None, reason });
        }
        if !self.p1.iter().any(|p| p.peer_addr == peer) {
            self.waiting.retain(|w| w.peer != peer);
            for policy_id in waiting {
                self.events.push_back(Event::Failed { peer, policy_id: Some(policy_id), reason });
            }
        }
    }

    /// Starts the quick modes waiting for an ISAKMP SA that just came up.
    pub(super) fn phase1_up(&mut self, now: Instant, i: usize) {
        let p = &mut self.p1[i];
        p.expires = Some(now + Duration::from_secs(p.suite.lifetime));
        p.flight.due = None;
        if p.nat.local {
            p.keepalive_due = Some(now + self.cfg.keepalive);
        }
        let (peer, remote) = (p.peer_addr, p.remote);
        self.contacted.insert(peer);
        let ev = Event::Phase1Established {
            peer,
            remote,
            role: p.role,
            mode: p.mode,
            icookie: p.ic,
            rcookie: p.rc,
            nat: p.nat.detected(),
            lifetime: p.suite.lifetime,
        };
        self.events.push_back(ev);
        let ready: Vec<u32> = self.waiting.iter().filter(|w| w.peer == peer).map(|w| w.policy_id).collect();
        self.waiting.retain(|w| w.peer != peer);
        for policy_id in ready {
            self.start_quick(now, i, policy_id);
        }
    }

    /// Forgets every SA with a peer except the ISAKMP SA `keep` (INITIAL-CONTACT, RFC 2407
    /// 4.6.3.3): the peer restarted and holds none of them.
    pub(super) fn initial_contact(&mut self, keep: usize) {
        let peer = self.p1[keep].peer_addr;
        let (ic, rc) = (self.p1[keep].ic, self.p1[keep].rc);
        let (gone, stay): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.children).into_iter().partition(|c| c.peer == peer);
        self.children = stay;
        for c in gone {
            self.events.push_back(Event::SaDeleted {
                peer,
                policy_id: c.policy_id,
                inbound: c.inbound,
                outbound: c.outbound,
            });
        }
        while let Some(j) = self.p1.iter().position(|p| p.peer_addr == peer && (p.ic, p.rc) != (ic, rc)) {
            self.remove_p1(j, true);
        }
    }

    /// Returns our address as seen in NAT-D.
    pub(super) fn local_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.cfg.local, port))
    }
}
