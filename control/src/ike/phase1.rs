//! Phase 1 (RFC 2409 5 and 5.4, pre-shared keys): main mode (six messages, identities
//! encrypted) and aggressive mode (three messages), with NAT-T vendor ids, NAT-D and the float
//! to UDP 4500 (RFC 3947), and INITIAL-CONTACT (RFC 2407 4.6.3.3).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use subtle::ConstantTimeEq;

use super::crypto::{DhKey, Phase1Keys, derive_iv};
use super::endpoint::{Endpoint, Flight, Input, Nat, P1, P1State, nat_hash};
use super::proposal::{Suite, accept_phase1, choose_phase1};
use super::wire::{
    Builder, Exchange, IdRepr, NotifyRepr, NotifyType, PayloadType, RawPayload, SaRepr, id_type, payloads, proto,
};
use super::{AcquireError, DropReason, FailReason, IKE_PORT, NAT_T_PORT, Role};
use crate::config::{ExchangeMode, Peer};

/// The RFC 3947 vendor id: MD5("RFC 3947") (RFC 3947 3.1).
pub const NAT_T_VID: [u8; 16] =
    [0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f];

/// Nonce lengths RFC 2409 5 allows.
const NONCE_LEN: std::ops::RangeInclusive<usize> = 8..=256;
/// Half-open exchanges we answer per peer address at most.
pub const HALF_OPEN_PER_PEER: usize = 16;

/// Why a received message did not advance its exchange.
pub(super) enum Outcome {
    /// Drop it and count why; the exchange goes on.
    Drop(DropReason, &'static str),
    /// The exchange fails; the peer is told.
    Fail(FailReason),
}

type Step = Result<(), Outcome>;

fn malformed(why: &'static str) -> Outcome {
    Outcome::Drop(DropReason::Malformed, why)
}

/// Returns the first payload of a kind.
pub(super) fn find<'a>(pl: &[RawPayload<'a>], kind: PayloadType) -> Option<RawPayload<'a>> {
    pl.iter().find(|p| p.kind == kind).copied()
}

fn nat_d(pl: &[RawPayload<'_>]) -> Vec<Vec<u8>> {
    pl.iter()
        .filter(|p| matches!(p.kind, PayloadType::NatD | PayloadType::NatDDraft))
        .map(|p| p.body.to_vec())
        .collect()
}

fn has_nat_t_vid(pl: &[RawPayload<'_>]) -> bool {
    pl.iter().any(|p| p.kind == PayloadType::VendorId && p.body == NAT_T_VID)
}

fn initial_contact_in(pl: &[RawPayload<'_>]) -> bool {
    pl.iter()
        .filter(|p| p.kind == PayloadType::Notify)
        .filter_map(|p| NotifyRepr::parse(p.body).ok())
        .any(|n| n.kind == NotifyType::InitialContact)
}

fn exchange_of(mode: ExchangeMode) -> Exchange {
    match mode {
        ExchangeMode::Aggressive => Exchange::Aggressive,
        _ => Exchange::Main,
    }
}

impl Endpoint {
    /// Starts phase 1 with a peer as initiator.
    pub(super) fn start_phase1(&mut self, now: Instant, peer: Peer) -> Result<(), AcquireError> {
        let addr = peer.address;
        let psk = self.find_secret(&peer, addr, None).ok_or(AcquireError::NoSecret(addr))?;
        let suite = Suite::of_peer(&peer);
        let ic = self.cookie();
        let mode =
            if peer.exchange_mode == ExchangeMode::Aggressive { ExchangeMode::Aggressive } else { ExchangeMode::Main };
        let remote = SocketAddr::V4(SocketAddrV4::new(addr, peer.port));
        let nonce_size = usize::from(peer.nonce_size);
        let mut p = self.new_p1(Role::Initiator, mode, peer, addr, remote, ic, [0; 8], suite);
        p.psk = Some(psk);
        p.sai_b = suite.sa().emit();
        let mut b = Builder::new();
        b.push(PayloadType::Sa, p.sai_b.clone());
        if mode == ExchangeMode::Aggressive {
            let dh = DhKey::generate(suite.group, &mut *self.rng);
            p.g_xi = dh.public().to_vec();
            p.dh = Some(dh);
            p.ni = self.random_vec(nonce_size);
            p.id_i_b = IdRepr::ipv4(self.cfg.local).emit();
            b.push(PayloadType::Ke, p.g_xi.clone()).push(PayloadType::Nonce, p.ni.clone());
            b.push(PayloadType::Id, p.id_i_b.clone());
            p.state = P1State::AggrI1;
        }
        b.push(PayloadType::VendorId, NAT_T_VID.to_vec());
        let bytes = Self::plain(p.header(exchange_of(mode), 0, 0), &b);
        self.p1.push(p);
        let i = self.p1.len() - 1;
        self.send_flight_p1(now, i, bytes, true);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn new_p1(
        &self,
        role: Role,
        mode: ExchangeMode,
        peer: Peer,
        peer_addr: std::net::Ipv4Addr,
        remote: SocketAddr,
        ic: [u8; 8],
        rc: [u8; 8],
        suite: Suite,
    ) -> P1 {
        P1 {
            role,
            mode,
            state: if role == Role::Initiator { P1State::MainI1 } else { P1State::MainR2 },
            peer,
            peer_addr,
            remote,
            local_port: IKE_PORT,
            ic,
            rc,
            suite,
            psk: None,
            sai_b: Vec::new(),
            dh: None,
            g_xi: Vec::new(),
            g_xr: Vec::new(),
            ni: Vec::new(),
            nr: Vec::new(),
            id_i_b: Vec::new(),
            id_r_b: Vec::new(),
            keys: None,
            iv: Vec::new(),
            nat: Nat::default(),
            flight: Flight::default(),
            expires: None,
            keepalive_due: None,
            quick: Vec::new(),
            info_seen: Default::default(),
            refuted: false,
        }
    }

    /// Handles a main or aggressive mode message.
    pub(super) fn phase1_input(&mut self, inp: Input<'_>) {
        let (ic, rc) = (inp.msg.icookie(), inp.msg.rcookie());
        let data = inp.msg_bytes();
        let found = self.p1.iter().position(|p| {
            p.ic == ic
                && (p.rc == rc
                    || (p.rc == [0; 8]
                        && p.role == Role::Initiator
                        && matches!(p.state, P1State::MainI1 | P1State::AggrI1)))
        });
        let i = match found {
            Some(i) => i,
            None if rc == [0; 8] => {
                // A retransmitted first message finds the responder state it created.
                let dup =
                    self.p1.iter().position(|p| p.ic == ic && p.role == Role::Responder && p.remote == inp.remote);
                match dup {
                    Some(i) => {
                        if !self.duplicate(inp.now, i, data) {
                            self.drop_msg(DropReason::Unexpected, "first message again, changed");
                        }
                    }
                    None => self.responder_start(inp),
                }
                return;
            }
            None => return self.drop_msg(DropReason::UnknownCookies, "phase 1 message for unknown cookies"),
        };
        if self.duplicate(inp.now, i, data) {
            return;
        }
        if inp.msg.exchange() != exchange_of(self.p1[i].mode) {
            return self.drop_msg(DropReason::Unexpected, "exchange type changed within phase 1");
        }
        let step = match self.p1[i].state {
            P1State::MainI1 => self.main_i2(i, &inp),
            P1State::MainI3 => self.main_i4(i, &inp),
            P1State::MainI5 => self.main_i6(i, &inp),
            P1State::MainR2 => self.main_r3(i, &inp),
            P1State::MainR4 => self.main_r5(i, &inp),
            P1State::AggrI1 => self.aggr_i2(i, &inp),
            P1State::AggrR2 => self.aggr_r3(i, &inp),
            P1State::Established => Err(Outcome::Drop(DropReason::Unexpected, "phase 1 message after phase 1")),
        };
        self.finish_step(inp.now, ic, rc, data, step);
    }

    /// Applies the outcome of a phase 1 step to the ISAKMP SA found again by cookies (a step
    /// may have removed others).
    fn finish_step(&mut self, now: Instant, ic: [u8; 8], rc_in: [u8; 8], data: &[u8], step: Step) {
        let at = |s: &Self| s.p1.iter().position(|p| p.ic == ic && (p.rc == rc_in || p.rc == [0; 8]));
        match step {
            Ok(()) => {
                if let Some(i) = at(self) {
                    self.p1[i].flight.received = Some(data.to_vec());
                    if self.p1[i].established() && self.p1[i].expires.is_none() {
                        self.phase1_up(now, i);
                    }
                }
            }
            Err(Outcome::Drop(r, why)) => self.drop_msg(r, why),
            Err(Outcome::Fail(reason)) => {
                if let Some(i) = at(self) {
                    self.notify_plain(i, reason.notify());
                    self.fail_phase1(i, reason);
                }
            }
        }
    }

    /// Answers a retransmitted message with our answer to it.
    pub(super) fn duplicate(&mut self, now: Instant, i: usize, data: &[u8]) -> bool {
        if self.p1[i].flight.received.as_deref() != Some(data) {
            return false;
        }
        self.drop_msg(DropReason::Duplicate, "retransmission of the last message");
        let gap = self.cfg.retransmit_initial / 2;
        if let Some(b) = self.p1[i].flight.answer_duplicate(now, gap) {
            self.send_p1(i, b);
        }
        true
    }

    /// Sends an unprotected informational notification about a failing phase 1.
    pub(super) fn notify_plain(&mut self, i: usize, kind: NotifyType) {
        let p = &self.p1[i];
        let spi = [p.ic, p.rc].concat();
        let n = NotifyRepr { protocol: proto::ISAKMP, kind, spi, data: Vec::new() };
        let mut b = Builder::new();
        b.push(PayloadType::Notify, n.emit());
        let h = p.header(Exchange::Informational, 0, 0);
        let mut h = h;
        h.message_id = self.message_id();
        let bytes = Self::plain(h, &b);
        self.send_p1(i, bytes);
    }

    /// Takes a token for a new exchange we answer: `new_exchanges_per_sec` a second, in bursts
    /// of twice that.
    fn take_new_token(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.cfg.new_exchanges_per_sec);
        let (tokens, last) = self.new_tokens;
        let refill = last.map_or(2.0 * rate, |t| now.saturating_duration_since(t).as_secs_f64() * rate);
        let tokens = (tokens + refill).min(2.0 * rate);
        let ok = tokens >= 1.0;
        self.new_tokens = (if ok { tokens - 1.0 } else { tokens }, Some(now));
        ok
    }

    /// Makes room for one more exchange we answer from `peer`. A flood of first messages (from
    /// spoofed addresses, with ever new cookies) must not lock the real peer out: past
    /// [`HALF_OPEN_PER_PEER`] half-open exchanges with one peer, or the endpoint's bound in all,
    /// the oldest half-open exchange we answer gives way, as a SYN cache does. Established ISAKMP
    /// SAs are never evicted; with only those left, there is no room.
    fn make_room(&mut self, peer: Ipv4Addr) -> bool {
        let half_open = |p: &P1| p.role == Role::Responder && !p.established();
        if self.p1.iter().filter(|p| p.peer_addr == peer && half_open(p)).count() >= HALF_OPEN_PER_PEER
            && let Some(i) = self.p1.iter().position(|p| p.peer_addr == peer && half_open(p))
        {
            self.remove_p1(i, false);
            self.stats.evicted += 1;
        }
        if self.p1.len() >= self.cfg.max_phase1 {
            let Some(i) = self.p1.iter().position(half_open) else { return false };
            self.remove_p1(i, false);
            self.stats.evicted += 1;
        }
        true
    }

    /// A first message from a peer: a new ISAKMP SA as responder.
    fn responder_start(&mut self, inp: Input<'_>) {
        if inp.msg.encrypted() {
            return self.drop_msg(DropReason::Unexpected, "encrypted first message");
        }
        let SocketAddr::V4(r4) = inp.remote else {
            return self.drop_msg(DropReason::NoPeer, "IPv6 peer");
        };
        let Some(peer) = self.find_peer(*r4.ip()) else {
            return self.drop_msg(DropReason::NoPeer, "no peer configured for the address");
        };
        let pl = match payloads(inp.msg.next_payload(), inp.msg.body(), false) {
            Ok(pl) => pl,
            Err(e) => return self.drop_msg(DropReason::Malformed, e.0),
        };
        let Some(sa_p) = find(&pl, PayloadType::Sa) else {
            return self.drop_msg(DropReason::Malformed, "first message without SA");
        };
        let sa = match SaRepr::parse(sa_p.body) {
            Ok(sa) => sa,
            Err(e) => return self.drop_msg(DropReason::Malformed, e.0),
        };
        let mode =
            if inp.msg.exchange() == Exchange::Aggressive { ExchangeMode::Aggressive } else { ExchangeMode::Main };
        let peer_addr = if peer.address.is_unspecified() { *r4.ip() } else { peer.address };
        if !self.take_new_token(inp.now) {
            return self.drop_msg(DropReason::Overload, "new exchanges over the rate limit");
        }
        if !self.make_room(peer_addr) {
            return self.drop_msg(DropReason::Overload, "too many ISAKMP SAs");
        }
        let rc = self.cookie();
        let ic = inp.msg.icookie();
        let Some((suite, reply_sa)) = choose_phase1(&sa, &peer) else {
            let mut p =
                self.new_p1(Role::Responder, mode, peer, peer_addr, inp.remote, ic, rc, Suite::of_peer_default());
            p.local_port = inp.local_port;
            self.p1.push(p);
            let i = self.p1.len() - 1;
            self.notify_plain(i, NotifyType::NoProposalChosen);
            self.fail_phase1(i, FailReason::NoProposalChosen);
            return;
        };
        let mut p = self.new_p1(Role::Responder, mode, peer, peer_addr, inp.remote, ic, rc, suite);
        p.local_port = inp.local_port;
        p.sai_b = sa_p.body.to_vec();
        p.nat.supported = has_nat_t_vid(&pl);
        let ident = find(&pl, PayloadType::Id).and_then(|id| IdRepr::parse(id.body).ok());
        let ident_data = ident
            .as_ref()
            .filter(|id| matches!(id.id_type, id_type::FQDN | id_type::USER_FQDN | id_type::KEY_ID))
            .map(|id| id.data.clone());
        let Some(psk) = self.find_secret(&p.peer, peer_addr, ident_data.as_deref()) else {
            self.drop_msg(DropReason::NoPeer, "no pre-shared secret for the peer");
            self.event(super::Event::Failed { peer: peer_addr, policy_id: None, reason: FailReason::NoSecret });
            return;
        };
        p.psk = Some(psk);
        self.p1.push(p);
        let i = self.p1.len() - 1;
        let step = if mode == ExchangeMode::Main {
            let mut b = Builder::new();
            b.push(PayloadType::Sa, reply_sa.emit());
            if self.p1[i].nat.supported {
                b.push(PayloadType::VendorId, NAT_T_VID.to_vec());
            }
            let bytes = Self::plain(self.p1[i].header(Exchange::Main, 0, 0), &b);
            self.send_flight_p1(inp.now, i, bytes, true);
            Ok(())
        } else {
            self.aggr_r1(i, &inp, &pl, reply_sa)
        };
        let data = inp.msg_bytes();
        match step {
            Ok(()) => self.p1[i].flight.received = Some(data.to_vec()),
            Err(Outcome::Drop(r, why)) => {
                self.p1.remove(i);
                self.drop_msg(r, why);
            }
            Err(Outcome::Fail(reason)) => {
                self.notify_plain(i, reason.notify());
                self.fail_phase1(i, reason);
            }
        }
    }

    /// Reads KE and nonce, checks them, and returns them.
    fn ke_nonce(&self, i: usize, pl: &[RawPayload<'_>]) -> Result<(Vec<u8>, Vec<u8>), Outcome> {
        let ke = find(pl, PayloadType::Ke).ok_or(malformed("no KE payload"))?;
        let nonce = find(pl, PayloadType::Nonce).ok_or(malformed("no nonce payload"))?;
        if !NONCE_LEN.contains(&nonce.body.len()) {
            return Err(malformed("nonce length outside 8..256"));
        }
        if !self.p1[i].suite.group.valid_public(ke.body) {
            return Err(Outcome::Fail(FailReason::InvalidKeyInformation));
        }
        Ok((ke.body.to_vec(), nonce.body.to_vec()))
    }

    /// Derives SKEYID and friends and the first IV once both KE and nonces are known.
    fn derive_keys(&mut self, i: usize, gxy: &[u8]) {
        let p = &mut self.p1[i];
        let psk: &[u8] = p.psk.as_ref().map_or(&[], |s| &s[..]);
        let keys = Phase1Keys::derive(p.suite.hash, p.suite.cipher, psk, &p.ni, &p.nr, gxy, &p.ic, &p.rc);
        p.iv = derive_iv(p.suite.hash, p.suite.cipher.block_len(), &[&p.g_xi, &p.g_xr]);
        p.keys = Some(keys);
    }

    /// Returns the NAT-D payloads we send: the peer's address as we address it, then ours.
    fn our_nat_d(&mut self, i: usize) -> [Vec<u8>; 2] {
        let p = &self.p1[i];
        let remote = p.nat_hash(p.remote);
        let local = if self.cfg.force_nat_t {
            let n = p.hash().out_len();
            self.random_vec(n)
        } else {
            p.nat_hash(self.local_addr(p.local_port))
        };
        [remote, local]
    }

    /// Compares the peer's NAT-D payloads with what we see (RFC 3947 3.2).
    fn detect_nat(&self, i: usize, inp: &Input<'_>, natd: &[Vec<u8>]) -> Nat {
        let p = &self.p1[i];
        let mut nat = p.nat;
        if !nat.supported || natd.len() < 2 {
            return nat;
        }
        let me = nat_hash(p.hash(), &p.ic, &p.rc, self.local_addr(inp.local_port));
        nat.local = natd[0] != me || self.cfg.force_nat_t;
        let them = nat_hash(p.hash(), &p.ic, &p.rc, inp.remote);
        nat.remote = !natd[1..].contains(&them);
        nat
    }

    /// Floats to UDP 4500 once a NAT is detected (RFC 3947 4).
    fn float(&mut self, i: usize) {
        let p = &mut self.p1[i];
        if p.nat.detected() && p.local_port != NAT_T_PORT {
            p.local_port = NAT_T_PORT;
            p.remote.set_port(NAT_T_PORT);
        }
    }

    /// A peer that floated: its datagrams now come from UDP 4500 (through the NAT's mapping).
    fn follow_float(&mut self, i: usize, inp: &Input<'_>) {
        let p = &mut self.p1[i];
        if inp.local_port == NAT_T_PORT {
            p.local_port = NAT_T_PORT;
            p.remote = inp.remote;
        }
    }

    fn plain_payloads<'a>(inp: &'a Input<'_>) -> Result<Vec<RawPayload<'a>>, Outcome> {
        if inp.msg.encrypted() {
            return Err(Outcome::Drop(DropReason::Unexpected, "encrypted where plaintext is expected"));
        }
        payloads(inp.msg.next_payload(), inp.msg.body(), false).map_err(|e| malformed(e.0))
    }

    /// Main mode initiator: the responder's SA (message 2); send KE, Ni, NAT-D (message 3).
    fn main_i2(&mut self, i: usize, inp: &Input<'_>) -> Step {
        let pl = Self::plain_payloads(inp)?;
        let sa_p = find(&pl, PayloadType::Sa).ok_or(malformed("message 2 without SA"))?;
        let sa = SaRepr::parse(sa_p.body).map_err(|e| malformed(e.0))?;
        let suite = accept_phase1(&self.p1[i].suite, &sa).ok_or(Outcome::Fail(FailReason::NoProposalChosen))?;
        let rc = inp.msg.rcookie();
        if rc == [0; 8] {
            return Err(malformed("zero responder cookie"));
        }
        let dh = DhKey::generate(suite.group, &mut *self.rng);
        let ni = self.random_vec(usize::from(self.p1[i].peer.nonce_size));
        let p = &mut self.p1[i];
        p.rc = rc;
        p.suite = suite;
        p.nat.supported = has_nat_t_vid(&pl);
        p.g_xi = dh.public().to_vec();
        p.dh = Some(dh);
        p.ni = ni;
        let mut b = Builder::new();
        b.push(PayloadType::Ke, p.g_xi.clone()).push(PayloadType::Nonce, p.ni.clone());
        if p.nat.supported {
            for d in self.our_nat_d(i) {
                b.push(PayloadType::NatD, d);
            }
        }
        let p = &mut self.p1[i];
        p.state = P1State::MainI3;
        let bytes = Self::plain(p.header(Exchange::Main, 0, 0), &b);
        self.send_flight_p1(inp.now, i, bytes, true);
        Ok(())
    }

    /// Main mode responder: KE, Ni, NAT-D (message 3); answer with ours (message 4).
    fn main_r3(&mut self, i: usize, inp: &Input<'_>) -> Step {
        let pl = Self::plain_payloads(inp)?;
        let (g_xi, ni) = self.ke_nonce(i, &pl)?;
        let dh = DhKey::generate(self.p1[i].suite.group, &mut *self.rng);
        let gxy = dh.shared(&g_xi).ok_or(Outcome::Fail(FailReason::InvalidKeyInformation))?;
        let nr = self.random_vec(usize::from(self.p1[i].peer.nonce_size));
        let nat = self.detect_nat(i, inp, &nat_d(&pl));
        let p = &mut self.p1[i];
        p.g_xi = g_xi;
        p.g_xr = dh.public().to_vec();
        p.ni = ni;
        p.nr = nr;
        p.dh = Some(dh);
        p.nat = nat;
        self.derive_keys(i, &gxy);
        let mut b = Builder::new();
        let p = &self.p1[i];
        b.push(PayloadType::Ke, p.g_xr.clone()).push(PayloadType::Nonce, p.nr.clone());
        if p.nat.supported && !nat_d(&pl).is_empty() {
            for d in self.our_nat_d(i) {
                b.push(PayloadType::NatD, d);
            }
        }
        let p = &mut self.p1[i];
        p.state = P1State::MainR4;
        let bytes = Self::plain(p.header(Exchange::Main, 0, 0), &b);
        self.send_flight_p1(inp.now, i, bytes, true);
        Ok(())
    }

    /// Main mode initiator: the responder's KE and nonce (message 4); derive the keys, float if
    /// behind a NAT, and send IDii and HASH_I encrypted (message 5).
    fn main_i4(&mut self, i: usize, inp: &Input<'_>) -> Step {
        let pl = Self::plain_payloads(inp)?;
        let (g_xr, nr) = self.ke_nonce(i, &pl)?;
        let gxy = {
            let dh = self.p1[i].dh.as_ref().ok_or(malformed("no DH state"))?;
            dh.shared(&g_xr).ok_or(Outcome::Fail(FailReason::InvalidKeyInformation))?
        };
        let nat = self.detect_nat(i, inp, &nat_d(&pl));
        let p = &mut self.p1[i];
        p.g_xr = g_xr;
        p.nr = nr;
        p.nat = nat;
        self.derive_keys(i, &gxy);
        self.float(i);
        let local = self.cfg.local;
        let initial_contact = self.p1[i].peer.send_initial_contact && !self.contacted.contains(&self.p1[i].peer_addr);
        let p = &mut self.p1[i];
        p.id_i_b = IdRepr::ipv4(local).emit();
        let keys = p.keys.as_ref().ok_or(malformed("no keys"))?;
        let hash_i = p.hash().prf(&keys.skeyid, &[&p.g_xi, &p.g_xr, &p.ic, &p.rc, &p.sai_b, &p.id_i_b]);
        let mut b = Builder::new();
        b.push(PayloadType::Id, p.id_i_b.clone()).push(PayloadType::Hash, hash_i.to_vec());
        if initial_contact {
            let n = NotifyRepr {
                protocol: proto::ISAKMP,
                kind: NotifyType::InitialContact,
                spi: [p.ic, p.rc].concat(),
                data: vec![],
            };
            b.push(PayloadType::Notify, n.emit());
        }
        let (bytes, iv) = Self::encrypted(p, p.header(Exchange::Main, 0, 0), b.first(), &b.bytes(), &p.iv);
        p.iv = iv;
        p.state = P1State::MainI5;
        self.send_flight_p1(inp.now, i, bytes, true);
        Ok(())
    }

    /// Decrypts a phase 1 message with the phase 1 IV chain. Garbage after decryption means
    /// the keys differ, i.e. the pre-shared secrets do.
    fn decrypt_p1(&self, i: usize, inp: &Input<'_>) -> Result<(Vec<u8>, Vec<u8>), Outcome> {
        if !inp.msg.encrypted() {
            return Err(Outcome::Drop(DropReason::Unprotected, "unencrypted message where encryption is required"));
        }
        let p = &self.p1[i];
        Self::decrypt(p, &inp.msg, &p.iv).ok_or(Outcome::Drop(DropReason::Undecryptable, "not whole cipher blocks"))
    }

    /// Main mode responder: IDii and HASH_I (message 5); answer with IDir and HASH_R
    /// (message 6). The ISAKMP SA is up.
    fn main_r5(&mut self, i: usize, inp: &Input<'_>) -> Step {
        let (plain, next_iv) = self.decrypt_p1(i, inp)?;
        let pl = payloads(inp.msg.next_payload(), &plain, true)
            .map_err(|_| Outcome::Fail(FailReason::AuthenticationFailed))?;
        let id = find(&pl, PayloadType::Id).ok_or(Outcome::Fail(FailReason::AuthenticationFailed))?;
        let hash = find(&pl, PayloadType::Hash).ok_or(Outcome::Fail(FailReason::AuthenticationFailed))?;
        let p = &self.p1[i];
        let keys = p.keys.as_ref().ok_or(malformed("no keys"))?;
        let want = p.hash().prf(&keys.skeyid, &[&p.g_xi, &p.g_xr, &p.ic, &p.rc, &p.sai_b, id.body]);
        if !bool::from(want.ct_eq(hash.body)) {
            return Err(Outcome::Fail(FailReason::AuthenticationFailed));
        }
        let ic_seen = initial_contact_in(&pl);
        self.follow_float(i, inp);
        let local = self.cfg.local;
        let p = &mut self.p1[i];
        p.id_i_b = id.body.to_vec();
        p.iv = next_iv;
        p.id_r_b = IdRepr::ipv4(local).emit();
        let keys = p.keys.as_ref().ok_or(malformed("no keys"))?;
        let hash_r = p.hash().prf(&keys.skeyid, &[&p.g_xr, &p.g_xi, &p.rc, &p.ic, &p.sai_b, &p.id_r_b]);
        let mut b = Builder::new();
        b.push(PayloadType::Id, p.id_r_b.clone()).push(PayloadType::Hash, hash_r.to_vec());
        let (bytes, iv) = Self::encrypted(p, p.header(Exchange::Main, 0, 0), b.first(), &b.bytes(), &p.iv);
        p.iv = iv;
        p.state = P1State::Established;
        self.send_flight_p1(inp.now, i, bytes, false);
        if ic_seen {
            self.initial_contact(i);
        }
        Ok(())
    }

    /// Main mode initiator: IDir and HASH_R (message 6). The ISAKMP SA is up.
    fn main_i6(&mut self, i: usize, inp: &Input<'_>) -> Step {
        let (plain, next_iv) = self.decrypt_p1(i, inp)?;
        let pl = payloads(inp.msg.next_payload(), &plain, true)
            .map_err(|_| Outcome::Fail(FailReason::AuthenticationFailed))?;
        let id = find(&pl, PayloadType::Id).ok_or(Outcome::Fail(FailReason::AuthenticationFailed))?;
        let hash = find(&pl, PayloadType::Hash).ok_or(Outcome::Fail(FailReason::AuthenticationFailed))?;
        let p = &self.p1[i];
        let keys = p.keys.as_ref().ok_or(malformed("no keys"))?;
        let want = p.hash().prf(&keys.skeyid, &[&p.g_xr, &p.g_xi, &p.rc, &p.ic, &p.sai_b, id.body]);
        if !bool::from(want.ct_eq(hash.body)) {
            return Err(Outcome::Fail(FailReason::AuthenticationFailed));
        }
        let ic_seen = initial_contact_in(&pl);
        let p = &mut self.p1[i];
        p.id_r_b = id.body.to_vec();
        p.iv = next_iv;
        p.state = P1State::Established;
        p.flight.due = None;
        // Message 5 does not answer message 6: a copy of 6 must not bring 5 back.
        p.flight.sent = None;
        if ic_seen {
            self.initial_contact(i);
        }
        Ok(())
    }

    /// Aggressive responder: the first message (SA, KE, Ni, IDii) was accepted; answer with
    /// SA, KE, Nr, IDir, HASH_R and NAT-D (message 2).
    fn aggr_r1(&mut self, i: usize, inp: &Input<'_>, pl: &[RawPayload<'_>], reply_sa: SaRepr) -> Step {
        let (g_xi, ni) = self.ke_nonce(i, pl)?;
        let id = find(pl, PayloadType::Id).ok_or(malformed("aggressive mode without ID"))?;
        let dh = DhKey::generate(self.p1[i].suite.group, &mut *self.rng);
        let gxy = dh.shared(&g_xi).ok_or(Outcome::Fail(FailReason::InvalidKeyInformation))?;
        let nr = self.random_vec(usize::from(self.p1[i].peer.nonce_size));
        let local = self.cfg.local;
        let p = &mut self.p1[i];
        p.g_xi = g_xi;
        p.g_xr = dh.public().to_vec();
        p.dh = Some(dh);
        p.ni = ni;
        p.nr = nr;
        p.id_i_b = id.body.to_vec();
        p.id_r_b = IdRepr::ipv4(local).emit();
        self.derive_keys(i, &gxy);
        let p = &self.p1[i];
        let keys = p.keys.as_ref().ok_or(malformed("no keys"))?;
        let hash_r = p.hash().prf(&keys.skeyid, &[&p.g_xr, &p.g_xi, &p.rc, &p.ic, &p.sai_b, &p.id_r_b]);
        let mut b = Builder::new();
        b.push(PayloadType::Sa, reply_sa.emit())
            .push(PayloadType::Ke, p.g_xr.clone())
            .push(PayloadType::Nonce, p.nr.clone())
            .push(PayloadType::Id, p.id_r_b.clone())
            .push(PayloadType::Hash, hash_r.to_vec());
        if p.nat.supported {
            b.push(PayloadType::VendorId, NAT_T_VID.to_vec());
            for d in self.our_nat_d(i) {
                b.push(PayloadType::NatD, d);
            }
        }
        let p = &mut self.p1[i];
        p.state = P1State::AggrR2;
        let bytes = Self::plain(p.header(Exchange::Aggressive, 0, 0), &b);
        self.send_flight_p1(inp.now, i, bytes, true);
        Ok(())
    }

    /// Aggressive initiator: the responder's answer (message 2); check HASH_R, send HASH_I and
    /// NAT-D (message 3). The ISAKMP SA is up.
    fn aggr_i2(&mut self, i: usize, inp: &Input<'_>) -> Step {
        let pl = Self::plain_payloads(inp)?;
        let sa_p = find(&pl, PayloadType::Sa).ok_or(malformed("message 2 without SA"))?;
        let sa = SaRepr::parse(sa_p.body).map_err(|e| malformed(e.0))?;
        let suite = accept_phase1(&self.p1[i].suite, &sa).ok_or(Outcome::Fail(FailReason::NoProposalChosen))?;
        let (g_xr, nr) = self.ke_nonce(i, &pl)?;
        let id = find(&pl, PayloadType::Id).ok_or(malformed("message 2 without ID"))?;
        let hash = find(&pl, PayloadType::Hash).ok_or(malformed("message 2 without HASH"))?;
        let rc = inp.msg.rcookie();
        if rc == [0; 8] {
            return Err(malformed("zero responder cookie"));
        }
        let gxy = {
            let dh = self.p1[i].dh.as_ref().ok_or(malformed("no DH state"))?;
            dh.shared(&g_xr).ok_or(Outcome::Fail(FailReason::InvalidKeyInformation))?
        };
        // Everything below depends on the keys; keep the old state until HASH_R verifies.
        let p = &self.p1[i];
        let psk: &[u8] = p.psk.as_ref().map_or(&[], |s| &s[..]);
        let keys = Phase1Keys::derive(suite.hash, suite.cipher, psk, &p.ni, &nr, &gxy, &p.ic, &rc);
        let want = suite.hash.prf(&keys.skeyid, &[&g_xr, &p.g_xi, &rc, &p.ic, &p.sai_b, id.body]);
        if !bool::from(want.ct_eq(hash.body)) {
            let p = &mut self.p1[i];
            p.rc = rc;
            return Err(Outcome::Fail(FailReason::AuthenticationFailed));
        }
        let p = &mut self.p1[i];
        p.rc = rc;
        p.suite = suite;
        p.g_xr = g_xr;
        p.nr = nr;
        p.id_r_b = id.body.to_vec();
        p.nat.supported = has_nat_t_vid(&pl);
        self.derive_keys(i, &gxy);
        let nat = self.detect_nat(i, inp, &nat_d(&pl));
        self.p1[i].nat = nat;
        let natd = if nat.supported && !nat_d(&pl).is_empty() { Some(self.our_nat_d(i)) } else { None };
        self.float(i);
        let p = &mut self.p1[i];
        let keys = p.keys.as_ref().ok_or(malformed("no keys"))?;
        let hash_i = p.hash().prf(&keys.skeyid, &[&p.g_xi, &p.g_xr, &p.ic, &p.rc, &p.sai_b, &p.id_i_b]);
        let mut b = Builder::new();
        b.push(PayloadType::Hash, hash_i.to_vec());
        for d in natd.into_iter().flatten() {
            b.push(PayloadType::NatD, d);
        }
        let bytes = Self::plain(p.header(Exchange::Aggressive, 0, 0), &b);
        p.state = P1State::Established;
        self.send_flight_p1(inp.now, i, bytes, false);
        let send_ic = self.p1[i].peer.send_initial_contact && !self.contacted.contains(&self.p1[i].peer_addr);
        if send_ic {
            self.send_initial_contact(inp.now, i);
        }
        Ok(())
    }

    /// Aggressive responder: HASH_I (message 3, plain or encrypted). The ISAKMP SA is up.
    fn aggr_r3(&mut self, i: usize, inp: &Input<'_>) -> Step {
        self.follow_float(i, inp);
        let (plain, next_iv) = if inp.msg.encrypted() {
            let (p, iv) = self.decrypt_p1(i, inp)?;
            (p, Some(iv))
        } else {
            (inp.msg.body().to_vec(), None)
        };
        let pl = payloads(inp.msg.next_payload(), &plain, next_iv.is_some())
            .map_err(|_| Outcome::Fail(FailReason::AuthenticationFailed))?;
        let hash = find(&pl, PayloadType::Hash).ok_or(Outcome::Fail(FailReason::AuthenticationFailed))?;
        let p = &self.p1[i];
        let keys = p.keys.as_ref().ok_or(malformed("no keys"))?;
        let want = p.hash().prf(&keys.skeyid, &[&p.g_xi, &p.g_xr, &p.ic, &p.rc, &p.sai_b, &p.id_i_b]);
        if !bool::from(want.ct_eq(hash.body)) {
            return Err(Outcome::Fail(FailReason::AuthenticationFailed));
        }
        let nat = self.detect_nat(i, inp, &nat_d(&pl));
        let ic_seen = next_iv.is_some() && initial_contact_in(&pl);
        let p = &mut self.p1[i];
        p.nat = nat;
        if let Some(iv) = next_iv {
            p.iv = iv;
        }
        p.state = P1State::Established;
        p.flight.due = None;
        p.flight.sent = None;
        if ic_seen {
            self.initial_contact(i);
        }
        Ok(())
    }
}

impl<'a> Input<'a> {
    /// Returns the message bytes (the non-ESP marker stripped).
    pub(super) fn msg_bytes(&self) -> &'a [u8] {
        self.msg.slice()
    }
}

impl Suite {
    /// Returns a placeholder suite for an ISAKMP SA that failed before choosing one.
    pub(super) fn of_peer_default() -> Suite {
        Suite::of_peer(&Peer::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::HashAlg;

    #[test]
    fn nat_t_vendor_id_is_md5_of_its_name() {
        assert_eq!(HashAlg::Md5.hash(&[b"RFC 3947"]), NAT_T_VID.to_vec());
    }
}
