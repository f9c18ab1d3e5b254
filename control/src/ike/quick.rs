//! Quick mode (RFC 2409 5.5): SA, nonces, optional KE for PFS and the proxy identities under
//! HASH(1), HASH(2) and HASH(3); the responder finds the mirrored policy from the identities and
//! applies `proposal-check`; both sides derive KEYMAT and report the SA pair.

use std::time::Instant;

use dataplane::ctl::SaKey;
use dataplane::sa::{IpsecProto, Lifetimes, Mode, UdpEncap as SaUdpEncap};
use dataplane::spd::IpsecProtocols;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::crypto::{DhKey, Group, derive_iv, keymat};
use super::endpoint::{ChildRecord, Endpoint, Flight, Input, QState, Quick};
use super::phase1::find;
use super::proposal::{
    Acceptable, ChildChoice, ChildParams, Refusal, Spis, accept_child, child_offer, choose_child, lifetime_attrs,
    responder_lifetime,
};
use super::wire::{
    Builder, Exchange, IdRepr, NotifyRepr, NotifyType, PayloadType, RawPayload, SaRepr, payloads, proto,
};
use super::{ChildSa, DropReason, Event, FailReason, ProxyId, Role, UdpEncap};
use crate::compile::{BundleSpec, SaSpec};
use crate::config::value::AddrPort;
use crate::config::{ExchangeMode, Policy, Proposal};

/// The anti-replay window of negotiated SAs, in packets.
pub const IKE_REPLAY_WINDOW: u32 = 64;
/// Quick modes in progress on one ISAKMP SA at most.
const MAX_QUICK: usize = 64;
/// The soft lifetime, in percent of the hard one (the manual's installed SAs show 24m/30m).
const SOFT_PERCENT: u64 = 80;

/// Returns the bytes of a HASH payload whose next payload is `next`.
pub(super) fn hash_payload(hash: &[u8], next: PayloadType) -> Vec<u8> {
    let mut out = vec![u8::from(next), 0];
    out.extend_from_slice(&((hash.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(hash);
    out
}

/// Splits a decrypted exchange into its HASH and the bytes of the payloads after it (padding
/// excluded), the input of HASH(1) and HASH(2).
pub(super) fn split_hash<'a>(pl: &[RawPayload<'a>], plain: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let first = pl.first().filter(|p| p.kind == PayloadType::Hash)?;
    let end: usize = pl.iter().map(|p| p.whole.len()).sum();
    Some((first.body, plain.get(first.whole.len()..end)?))
}

fn proxy_of(a: &AddrPort, protocol: Option<u8>) -> ProxyId {
    ProxyId { addr: a.net.network(), len: a.net.len, protocol: protocol.unwrap_or(0), port: a.port }
}

fn id_of(p: &ProxyId) -> IdRepr {
    if p.len == 32 {
        IdRepr { port: p.port, protocol: p.protocol, ..IdRepr::ipv4(p.addr) }
    } else {
        IdRepr::subnet(p.addr, p.len, p.protocol, p.port)
    }
}

fn proxy_from_id(id: &IdRepr) -> Option<ProxyId> {
    let (addr, len) = id.ipv4_net()?;
    Some(ProxyId { addr, len, protocol: id.protocol, port: id.port })
}

fn spis_for(protocols: IpsecProtocols) -> (bool, bool) {
    match protocols {
        IpsecProtocols::Esp => (true, false),
        IpsecProtocols::Ah => (false, true),
        IpsecProtocols::AhEsp => (true, true),
    }
}

enum Fault {
    Drop(DropReason, &'static str),
    Fail(FailReason),
}

impl Endpoint {
    fn new_spis(&mut self, protocols: IpsecProtocols) -> Spis {
        let (esp, ah) = spis_for(protocols);
        Spis { esp: esp.then(|| self.spi()), ah: ah.then(|| self.spi()) }
    }

    /// Starts quick mode on an established ISAKMP SA for a policy.
    pub(super) fn start_quick(&mut self, now: Instant, i: usize, policy_id: u32) {
        let peer = self.p1[i].peer_addr;
        let fail = |s: &mut Self| {
            s.event(Event::Failed { peer, policy_id: Some(policy_id), reason: FailReason::NoProposalChosen });
        };
        let Some(policy) = self.policy(policy_id).cloned() else { return fail(self) };
        let Some(prop) = self.conf.get::<Proposal>(&policy.proposal).cloned() else { return fail(self) };
        if self.p1[i].quick.len() >= MAX_QUICK {
            return fail(self);
        }
        let params = ChildParams {
            protocols: policy.ipsec_protocols,
            tunnel: policy.tunnel,
            udp: self.p1[i].nat.detected(),
            life_secs: prop.lifetime.0,
            life_kb: prop.lifebyte / 1024,
            pfs: Group::from_pfs(prop.pfs_group),
        };
        let spis = self.new_spis(policy.ipsec_protocols);
        let offer = child_offer(&params, &prop.enc_algorithms, &prop.auth_algorithms, spis);
        let msgid = self.message_id();
        let ni = self.random_vec(usize::from(self.p1[i].peer.nonce_size));
        let dh = params.pfs.map(|g| DhKey::generate(g, &mut *self.rng));
        let local_id = proxy_of(&policy.src_address, policy.protocol);
        let remote_id = proxy_of(&policy.dst_address, policy.protocol);
        let mut rest = Builder::new();
        rest.push(PayloadType::Sa, offer.emit()).push(PayloadType::Nonce, ni.clone());
        if let Some(dh) = &dh {
            rest.push(PayloadType::Ke, dh.public().to_vec());
        }
        rest.push(PayloadType::Id, id_of(&local_id).emit()).push(PayloadType::Id, id_of(&remote_id).emit());
        let rest_b = rest.bytes();
        let p = &self.p1[i];
        let Some(keys) = &p.keys else { return fail(self) };
        let m = msgid.to_be_bytes();
        let h1 = p.hash().prf(&keys.a, &[&m, &rest_b]);
        let body = [hash_payload(&h1, rest.first()), rest_b].concat();
        let iv0 = derive_iv(p.hash(), p.suite.cipher.block_len(), &[&p.iv, &m]);
        let (bytes, iv) = Self::encrypted(p, p.header(Exchange::Quick, 0, msgid), PayloadType::Hash, &body, &iv0);
        // Our last aggressive-mode message gets no answer, and a peer still processing it drops
        // a quick mode that overtakes it (strongSwan does): retransmit that one early.
        let after_aggressive = self.p1[i].mode == ExchangeMode::Aggressive && self.p1[i].role == Role::Initiator;
        let (first, interval) = match after_aggressive {
            true => (self.cfg.retransmit_initial / 8, self.cfg.retransmit_initial / 2),
            false => (self.cfg.retransmit_initial, self.cfg.retransmit_initial),
        };
        let q = Quick {
            msgid,
            role: Role::Initiator,
            state: QState::I1,
            policy_id,
            proposal: prop.name.clone(),
            iv,
            ni,
            nr: Vec::new(),
            dh,
            params,
            offer,
            spis,
            local_id,
            remote_id,
            choice: None,
            gqm: None,
            flight: Flight { sent: Some(bytes.clone()), due: Some(now + first), interval, ..Flight::default() },
            forget_at: None,
        };
        self.p1[i].quick.push(q);
        self.send_p1(i, bytes);
    }

    /// Handles a quick mode message.
    pub(super) fn quick_input(&mut self, inp: Input<'_>) {
        let (ic, rc) = (inp.msg.icookie(), inp.msg.rcookie());
        let Some(i) = self.p1.iter().position(|p| p.ic == ic && p.rc == rc && p.keys.is_some()) else {
            return self.drop_msg(DropReason::UnknownCookies, "quick mode for no ISAKMP SA");
        };
        if !self.p1[i].established() {
            return self.drop_msg(DropReason::Unexpected, "quick mode before phase 1 completed");
        }
        let msgid = inp.msg.message_id();
        if msgid == 0 {
            return self.drop_msg(DropReason::BadMessageId, "quick mode with message id 0");
        }
        if !inp.msg.encrypted() {
            return self.drop_msg(DropReason::Unprotected, "unencrypted quick mode");
        }
        let data = inp.msg_bytes();
        let found = self.p1[i].quick.iter().position(|q| q.msgid == msgid);
        let res = match found {
            Some(j) => {
                let q = &self.p1[i].quick[j];
                if q.flight.received.as_deref() == Some(data) {
                    let gap = self.cfg.retransmit_initial / 2;
                    let sent = self.p1[i].quick[j].flight.answer_duplicate(inp.now, gap);
                    self.drop_msg(DropReason::Duplicate, "retransmitted quick mode message");
                    if let Some(b) = sent {
                        self.send_p1(i, b);
                    }
                    return;
                }
                match self.p1[i].quick[j].state {
                    QState::I1 => self.quick_i2(i, j, &inp),
                    QState::R2 => self.quick_r3(i, j, &inp),
                    QState::Done => Err(Fault::Drop(DropReason::Unexpected, "message for a finished quick mode")),
                }
            }
            None if self.p1[i].quick.len() >= MAX_QUICK => {
                Err(Fault::Drop(DropReason::Overload, "too many quick modes"))
            }
            None => self.quick_r1(i, &inp),
        };
        match res {
            Ok(()) => {}
            Err(Fault::Drop(r, why)) => self.drop_msg(r, why),
            Err(Fault::Fail(reason)) => {
                let policy_id = found.and_then(|j| self.p1[i].quick.get(j)).map(|q| q.policy_id);
                if let Some(j) = found {
                    self.p1[i].quick.remove(j);
                }
                let peer = self.p1[i].peer_addr;
                self.event(Event::Failed { peer, policy_id, reason });
            }
        }
    }

    /// Decrypts a quick mode message with `iv` and checks it starts with HASH; returns the
    /// plaintext and the next IV.
    fn open_quick(&self, i: usize, inp: &Input<'_>, iv: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Fault> {
        Self::decrypt(&self.p1[i], &inp.msg, iv)
            .ok_or(Fault::Drop(DropReason::Undecryptable, "not whole cipher blocks"))
    }

    /// Responder: the first message. Find the policy, choose a proposal, answer (message 2).
    fn quick_r1(&mut self, i: usize, inp: &Input<'_>) -> Result<(), Fault> {
        let msgid = inp.msg.message_id();
        let m = msgid.to_be_bytes();
        let iv0 = {
            let p = &self.p1[i];
            derive_iv(p.hash(), p.suite.cipher.block_len(), &[&p.iv, &m])
        };
        let (plain, next_iv) = self.open_quick(i, inp, &iv0)?;
        let pl = payloads(inp.msg.next_payload(), &plain, true).map_err(|e| Fault::Drop(DropReason::Malformed, e.0))?;
        let (hash, rest) =
            split_hash(&pl, &plain).ok_or(Fault::Drop(DropReason::Malformed, "quick mode without HASH first"))?;
        {
            let p = &self.p1[i];
            let Some(keys) = &p.keys else { return Err(Fault::Drop(DropReason::Unexpected, "no keys")) };
            if !bool::from(p.hash().prf(&keys.a, &[&m, rest]).ct_eq(hash)) {
                return Err(Fault::Drop(DropReason::BadHash, "HASH(1) does not verify"));
            }
        }
        let sa_p = find(&pl, PayloadType::Sa).ok_or(Fault::Drop(DropReason::Malformed, "quick mode without SA"))?;
        let offer = SaRepr::parse(sa_p.body).map_err(|e| Fault::Drop(DropReason::Malformed, e.0))?;
        let ni = find(&pl, PayloadType::Nonce).ok_or(Fault::Drop(DropReason::Malformed, "quick mode without nonce"))?;
        if !(8..=256).contains(&ni.body.len()) {
            return Err(Fault::Drop(DropReason::Malformed, "nonce length outside 8..256"));
        }
        let ke = find(&pl, PayloadType::Ke);
        let ids: Vec<RawPayload<'_>> = pl.iter().filter(|p| p.kind == PayloadType::Id).copied().collect();
        let (id_i, id_r) = match &ids[..] {
            [] => {
                let p = &self.p1[i];
                let remote = match p.remote {
                    std::net::SocketAddr::V4(a) => *a.ip(),
                    std::net::SocketAddr::V6(_) => p.peer_addr,
                };
                (IdRepr::ipv4(remote), IdRepr::ipv4(self.cfg.local))
            }
            [a, b] => (
                IdRepr::parse(a.body).map_err(|e| Fault::Drop(DropReason::Malformed, e.0))?,
                IdRepr::parse(b.body).map_err(|e| Fault::Drop(DropReason::Malformed, e.0))?,
            ),
            _ => return Err(Fault::Drop(DropReason::Malformed, "quick mode with one or more than two IDs")),
        };
        let first_spi = offer.proposals.first().map(|p| (p.protocol, p.spi.clone()));
        let found = match (proxy_from_id(&id_i), proxy_from_id(&id_r)) {
            (Some(pi), Some(pr)) => self.mirrored_policy(i, &pi, &pr),
            _ => None,
        };
        let peer = self.p1[i].peer_addr;
        let Some((policy_id, policy, prop, remote_id, local_id)) = found else {
            self.notify_enc(inp.now, i, NotifyType::InvalidIdInformation, first_spi);
            self.event(Event::Failed { peer, policy_id: None, reason: FailReason::InvalidIdInformation });
            return Ok(());
        };
        let spis = self.new_spis(policy.ipsec_protocols);
        let ok = Acceptable {
            protocols: policy.ipsec_protocols,
            tunnel: policy.tunnel,
            enc: &prop.enc_algorithms,
            auth: &prop.auth_algorithms,
            pfs: Group::from_pfs(prop.pfs_group),
            life_secs: prop.lifetime.0,
            life_kb: prop.lifebyte / 1024,
            check: self.p1[i].peer.proposal_check,
        };
        let chosen = choose_child(&offer, &ok, spis);
        let pfs_ok = |c: &ChildChoice| match (c.pfs, ke) {
            (Some(g), Some(k)) => g.valid_public(k.body),
            (None, None) => true,
            _ => false,
        };
        let (choice, answer) = match chosen {
            Ok((c, a)) if pfs_ok(&c) => (c, a),
            Ok(_) | Err(Refusal::NoProposal | Refusal::Lifetime) => {
                self.notify_enc(inp.now, i, NotifyType::NoProposalChosen, first_spi);
                self.event(Event::Failed { peer, policy_id: Some(policy_id), reason: FailReason::NoProposalChosen });
                return Ok(());
            }
        };
        let dh = choice.pfs.map(|g| DhKey::generate(g, &mut *self.rng));
        let gqm = match (&dh, ke) {
            (Some(dh), Some(k)) => Some(dh.shared(k.body).ok_or(Fault::Fail(FailReason::InvalidKeyInformation))?),
            _ => None,
        };
        let nr = self.random_vec(usize::from(self.p1[i].peer.nonce_size));
        let mut rest = Builder::new();
        rest.push(PayloadType::Sa, answer.emit()).push(PayloadType::Nonce, nr.clone());
        if let Some(dh) = &dh {
            rest.push(PayloadType::Ke, dh.public().to_vec());
        }
        if let [a, b] = &ids[..] {
            rest.push(PayloadType::Id, a.body.to_vec()).push(PayloadType::Id, b.body.to_vec());
        }
        if choice.shortened {
            let attrs = lifetime_attrs(choice.life_secs, choice.life_kb);
            for p in offer.proposals.iter().filter(|p| answer.proposals.iter().any(|a| a.protocol == p.protocol)) {
                let n = NotifyRepr::with_attrs(p.protocol, NotifyType::ResponderLifetime, p.spi.clone(), &attrs);
                rest.push(PayloadType::Notify, n.emit());
            }
        }
        let rest_b = rest.bytes();
        let p = &self.p1[i];
        let Some(keys) = &p.keys else { return Err(Fault::Drop(DropReason::Unexpected, "no keys")) };
        let h2 = p.hash().prf(&keys.a, &[&m, ni.body, &rest_b]);
        let body = [hash_payload(&h2, rest.first()), rest_b].concat();
        let (bytes, iv) = Self::encrypted(p, p.header(Exchange::Quick, 0, msgid), PayloadType::Hash, &body, &next_iv);
        let interval = self.cfg.retransmit_initial;
        let params = ChildParams {
            protocols: policy.ipsec_protocols,
            tunnel: policy.tunnel,
            udp: choice.udp,
            life_secs: choice.life_secs,
            life_kb: choice.life_kb,
            pfs: choice.pfs,
        };
        let q = Quick {
            msgid,
            role: Role::Responder,
            state: QState::R2,
            policy_id,
            proposal: prop.name.clone(),
            iv,
            ni: ni.body.to_vec(),
            nr,
            dh,
            params,
            offer,
            spis,
            local_id,
            remote_id,
            choice: Some(choice),
            gqm,
            flight: Flight {
                sent: Some(bytes.clone()),
                received: Some(inp.msg_bytes().to_vec()),
                due: Some(inp.now + interval),
                interval,
                ..Flight::default()
            },
            forget_at: None,
        };
        self.p1[i].quick.push(q);
        self.send_p1(i, bytes);
        Ok(())
    }

    /// Returns the policy that mirrors the initiator's identities: ours has its source as the
    /// responder identity and its destination as the initiator's (the manual: "src values on
    /// one router must be equal to dst values on the other one").
    #[allow(clippy::type_complexity)]
    fn mirrored_policy(
        &self,
        i: usize,
        id_i: &ProxyId,
        id_r: &ProxyId,
    ) -> Option<(u32, Policy, Proposal, ProxyId, ProxyId)> {
        let peer = self.p1[i].peer_addr;
        self.conf
            .entries::<Policy>()
            .iter()
            .filter(|e| !e.disabled && e.item.action == dataplane::spd::Action::Encrypt)
            .find_map(|e| {
                let p = &e.item;
                let local = proxy_of(&p.src_address, p.protocol);
                let remote = proxy_of(&p.dst_address, p.protocol);
                let peer_ok = p.sa_dst_address == peer || p.sa_dst_address.is_unspecified();
                (local == *id_r && remote == *id_i && peer_ok)
                    .then(|| {
                        self.conf.get::<Proposal>(&p.proposal).map(|pr| (e.id, p.clone(), pr.clone(), remote, local))
                    })
                    .flatten()
            })
    }

    /// Initiator: the responder's answer (message 2). Check it, send HASH(3), report the SAs.
    fn quick_i2(&mut self, i: usize, j: usize, inp: &Input<'_>) -> Result<(), Fault> {
        let msgid = inp.msg.message_id();
        let m = msgid.to_be_bytes();
        let iv = self.p1[i].quick[j].iv.clone();
        let (plain, next_iv) = self.open_quick(i, inp, &iv)?;
        let pl = payloads(inp.msg.next_payload(), &plain, true).map_err(|e| Fault::Drop(DropReason::Malformed, e.0))?;
        let (hash, rest) =
            split_hash(&pl, &plain).ok_or(Fault::Drop(DropReason::Malformed, "quick mode without HASH first"))?;
        let p = &self.p1[i];
        let q = &p.quick[j];
        let Some(keys) = &p.keys else { return Err(Fault::Drop(DropReason::Unexpected, "no keys")) };
        if !bool::from(p.hash().prf(&keys.a, &[&m, &q.ni, rest]).ct_eq(hash)) {
            return Err(Fault::Drop(DropReason::BadHash, "HASH(2) does not verify"));
        }
        let sa_p = find(&pl, PayloadType::Sa).ok_or(Fault::Drop(DropReason::Malformed, "quick mode without SA"))?;
        let answer = SaRepr::parse(sa_p.body).map_err(|e| Fault::Drop(DropReason::Malformed, e.0))?;
        let nr = find(&pl, PayloadType::Nonce).ok_or(Fault::Drop(DropReason::Malformed, "quick mode without nonce"))?;
        if !(8..=256).contains(&nr.body.len()) {
            return Err(Fault::Drop(DropReason::Malformed, "nonce length outside 8..256"));
        }
        let mut choice = accept_child(&q.offer, &q.params, &answer).ok_or(Fault::Fail(FailReason::NoProposalChosen))?;
        let gqm = match (&q.dh, find(&pl, PayloadType::Ke)) {
            (Some(dh), Some(k)) => Some(dh.shared(k.body).ok_or(Fault::Fail(FailReason::InvalidKeyInformation))?),
            (None, None) => None,
            _ => return Err(Fault::Fail(FailReason::NoProposalChosen)),
        };
        for n in pl.iter().filter(|p| p.kind == PayloadType::Notify).filter_map(|p| NotifyRepr::parse(p.body).ok()) {
            if n.kind == NotifyType::ResponderLifetime {
                let (secs, kb) = responder_lifetime(&n.attrs().unwrap_or_default());
                if let Some(s) = secs.filter(|&s| s > 0) {
                    choice.life_secs = choice.life_secs.min(s);
                }
                if let Some(k) = kb.filter(|&k| k > 0) {
                    choice.life_kb = if choice.life_kb == 0 { k } else { choice.life_kb.min(k) };
                }
            }
        }
        let h3 = p.hash().prf(&keys.a, &[&[0], &m, &q.ni, nr.body]);
        let body = hash_payload(&h3, PayloadType::Unknown(0));
        let (bytes, iv) = Self::encrypted(p, p.header(Exchange::Quick, 0, msgid), PayloadType::Hash, &body, &next_iv);
        let linger = self.cfg.linger;
        let q = &mut self.p1[i].quick[j];
        q.nr = nr.body.to_vec();
        q.iv = iv;
        q.gqm = gqm;
        q.choice = Some(choice);
        q.state = QState::Done;
        q.flight.sent = Some(bytes.clone());
        q.flight.received = Some(inp.msg_bytes().to_vec());
        q.flight.due = None;
        q.forget_at = Some(inp.now + linger);
        self.send_p1(i, bytes);
        self.install(i, j);
        Ok(())
    }

    /// Responder: HASH(3) (message 3). Report the SAs.
    fn quick_r3(&mut self, i: usize, j: usize, inp: &Input<'_>) -> Result<(), Fault> {
        let m = inp.msg.message_id().to_be_bytes();
        let iv = self.p1[i].quick[j].iv.clone();
        let (plain, next_iv) = self.open_quick(i, inp, &iv)?;
        let pl = payloads(inp.msg.next_payload(), &plain, true).map_err(|e| Fault::Drop(DropReason::Malformed, e.0))?;
        let hash = pl
            .first()
            .filter(|p| p.kind == PayloadType::Hash)
            .ok_or(Fault::Drop(DropReason::Malformed, "no HASH(3)"))?;
        let p = &self.p1[i];
        let q = &p.quick[j];
        let Some(keys) = &p.keys else { return Err(Fault::Drop(DropReason::Unexpected, "no keys")) };
        if !bool::from(p.hash().prf(&keys.a, &[&[0], &m, &q.ni, &q.nr]).ct_eq(hash.body)) {
            return Err(Fault::Drop(DropReason::BadHash, "HASH(3) does not verify"));
        }
        let linger = self.cfg.linger;
        let q = &mut self.p1[i].quick[j];
        q.iv = next_iv;
        q.state = QState::Done;
        q.flight.received = Some(inp.msg_bytes().to_vec());
        q.flight.sent = None;
        q.flight.due = None;
        q.forget_at = Some(inp.now + linger);
        self.install(i, j);
        Ok(())
    }

    /// Derives KEYMAT for both directions and reports the SA pair.
    fn install(&mut self, i: usize, j: usize) {
        let p = &self.p1[i];
        let q = &p.quick[j];
        let Some(choice) = &q.choice else { return };
        let Some(keys) = &p.keys else { return };
        let policy = self.policy(q.policy_id).cloned().unwrap_or_default();
        let remote_ip = match p.remote {
            std::net::SocketAddr::V4(a) => *a.ip(),
            std::net::SocketAddr::V6(_) => p.peer_addr,
        };
        let local = if policy.sa_src_address.is_unspecified() { self.cfg.local } else { policy.sa_src_address };
        let remote =
            if p.nat.detected() || policy.sa_dst_address.is_unspecified() { remote_ip } else { policy.sa_dst_address };
        let hash = p.hash();
        let gqm = q.gqm.as_deref().map(|g| &g[..]);
        let lifetimes = Lifetimes {
            hard_secs: choice.life_secs,
            soft_secs: choice.life_secs * SOFT_PERCENT / 100,
            hard_bytes: choice.life_kb * 1024,
            soft_bytes: choice.life_kb * 1024 * SOFT_PERCENT / 100,
        };
        let esp_on = choice.esp.is_some();
        let encap = (choice.udp || p.nat.detected())
            .then(|| UdpEncap { local_port: p.local_port, remote_port: p.remote.port() });
        let mut inbound = BundleSpec::default();
        let mut outbound = BundleSpec::default();
        let mut rec_in = Vec::new();
        let mut rec_out = Vec::new();
        for (proto_id, ipproto, chosen, ours) in
            [(proto::ESP, IpsecProto::Esp, &choice.esp, q.spis.esp), (proto::AH, IpsecProto::Ah, &choice.ah, q.spis.ah)]
        {
            let (Some(c), Some(our_spi)) = (chosen, ours) else { continue };
            let mode = match (q.params.tunnel, ipproto, esp_on) {
                (false, _, _) | (true, IpsecProto::Ah, true) => Mode::Transport,
                _ => Mode::Tunnel,
            };
            let enc_len = c.xf.cipher().key_len();
            let need = enc_len + c.xf.auth().key_len();
            let spec = |spi: u32, key: SaKey, encap: Option<SaUdpEncap>| {
                let km = keymat(hash, &keys.d, gqm, proto_id, spi, &q.ni, &q.nr, need);
                SaSpec {
                    key,
                    mode,
                    xf: c.xf,
                    enc_key: Zeroizing::new(km[..enc_len].to_vec()),
                    auth_key: Zeroizing::new(km[enc_len..].to_vec()),
                    replay_window: IKE_REPLAY_WINDOW,
                    lifetimes,
                    dont_fragment: policy.dont_fragment,
                    encap,
                }
            };
            let kin = SaKey { src: remote, dst: local, proto: ipproto, spi: our_spi };
            let kout = SaKey { src: local, dst: remote, proto: ipproto, spi: c.peer_spi };
            rec_in.push(kin);
            rec_out.push(kout);
            // ESP in UDP: inbound packets come from the peer's port to ours, outbound the reverse.
            let udp = |from: fn(&UdpEncap) -> (u16, u16)| match (encap, ipproto) {
                (Some(e), IpsecProto::Esp) => {
                    let (src_port, dst_port) = from(&e);
                    Some(SaUdpEncap { src_port, dst_port })
                }
                _ => None,
            };
            let sin = spec(our_spi, kin, udp(|e| (e.remote_port, e.local_port)));
            let sout = spec(c.peer_spi, kout, udp(|e| (e.local_port, e.remote_port)));
            match ipproto {
                IpsecProto::Esp => {
                    inbound.esp = Some(sin);
                    outbound.esp = Some(sout);
                }
                IpsecProto::Ah => {
                    inbound.ah = Some(sin);
                    outbound.ah = Some(sout);
                }
            }
        }
        let child = ChildSa {
            policy_id: q.policy_id,
            proposal: q.proposal.clone(),
            peer: p.peer_addr,
            role: q.role,
            inbound,
            outbound,
            local_id: q.local_id,
            remote_id: q.remote_id,
            life_secs: choice.life_secs,
            life_kb: choice.life_kb,
            pfs: choice.pfs,
            encap,
        };
        self.children.push(ChildRecord {
            peer: p.peer_addr,
            policy_id: q.policy_id,
            inbound: rec_in,
            outbound: rec_out,
        });
        self.event(Event::SaEstablished(Box::new(child)));
    }

    /// Sends an encrypted notification about the first proposal's SPI.
    fn notify_enc(&mut self, now: Instant, i: usize, kind: NotifyType, spi: Option<(u8, Vec<u8>)>) {
        let (protocol, spi) = spi.unwrap_or((proto::ISAKMP, Vec::new()));
        let n = NotifyRepr { protocol, kind, spi, data: Vec::new() };
        let mut b = Builder::new();
        b.push(PayloadType::Notify, n.emit());
        self.send_info(now, i, b);
    }
}
