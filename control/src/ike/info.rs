//! Informational exchanges (RFC 2408 4.8, RFC 2409 5.7): notifications and deletes, encrypted
//! with the ISAKMP SA and protected by HASH(1) = prf(SKEYID_a, M-ID | N/D); unprotected error
//! notifications only while phase 1 is still being negotiated.

use std::time::Instant;

use dataplane::sa::IpsecProto;
use subtle::ConstantTimeEq;

use super::crypto::derive_iv;
use super::endpoint::{Endpoint, Input, P1State, QState};
use super::quick::{hash_payload, split_hash};
use super::wire::{Builder, DeleteRepr, Exchange, NotifyRepr, NotifyType, PayloadType, payloads, proto};
use super::{DropReason, Event, FailReason, Role};

/// Informational message ids remembered per ISAKMP SA, to drop replays.
const INFO_MEMORY: usize = 32;

impl Endpoint {
    /// Sends an encrypted informational exchange with `rest` under HASH(1).
    pub(super) fn send_info(&mut self, _now: Instant, i: usize, rest: Builder) {
        let msgid = self.message_id();
        let p = &self.p1[i];
        let Some(keys) = &p.keys else { return };
        let m = msgid.to_be_bytes();
        let rest_b = rest.bytes();
        let h = p.hash().prf(&keys.a, &[&m, &rest_b]);
        let body = [hash_payload(&h, rest.first()), rest_b].concat();
        let iv = derive_iv(p.hash(), p.suite.cipher.block_len(), &[&p.iv, &m]);
        let (bytes, _) = Self::encrypted(p, p.header(Exchange::Informational, 0, msgid), PayloadType::Hash, &body, &iv);
        self.send_p1(i, bytes);
    }

    /// Tells the peer we no longer accept these inbound SAs.
    pub(super) fn send_delete_children(&mut self, now: Instant, i: usize, inbound: &[dataplane::ctl::SaKey]) {
        let mut b = Builder::new();
        for (ip, id) in [(IpsecProto::Esp, proto::ESP), (IpsecProto::Ah, proto::AH)] {
            let spis: Vec<Vec<u8>> =
                inbound.iter().filter(|k| k.proto == ip).map(|k| k.spi.to_be_bytes().to_vec()).collect();
            if !spis.is_empty() {
                b.push(PayloadType::Delete, DeleteRepr { protocol: id, spis }.emit());
            }
        }
        if b.first() != PayloadType::Unknown(0) {
            self.send_info(now, i, b);
        }
    }

    /// Tells the peer the ISAKMP SA is gone.
    pub(super) fn send_delete_phase1(&mut self, now: Instant, i: usize) {
        let p = &self.p1[i];
        if p.keys.is_none() || !p.established() {
            return;
        }
        let spi = [p.ic, p.rc].concat();
        let mut b = Builder::new();
        b.push(PayloadType::Delete, DeleteRepr { protocol: proto::ISAKMP, spis: vec![spi] }.emit());
        self.send_info(now, i, b);
    }

    /// Sends INITIAL-CONTACT in its own informational exchange (aggressive mode, whose last
    /// message is not encrypted).
    pub(super) fn send_initial_contact(&mut self, now: Instant, i: usize) {
        let p = &self.p1[i];
        let n = NotifyRepr {
            protocol: proto::ISAKMP,
            kind: NotifyType::InitialContact,
            spi: [p.ic, p.rc].concat(),
            data: vec![],
        };
        let mut b = Builder::new();
        b.push(PayloadType::Notify, n.emit());
        self.send_info(now, i, b);
    }

    /// Handles an informational exchange.
    pub(super) fn info_input(&mut self, inp: Input<'_>) {
        let (ic, rc) = (inp.msg.icookie(), inp.msg.rcookie());
        let Some(i) =
            self.p1.iter().position(|p| p.ic == ic && (p.rc == rc || (p.rc == [0; 8] && p.role == Role::Initiator)))
        else {
            return self.drop_msg(DropReason::UnknownCookies, "informational for no ISAKMP SA");
        };
        if !inp.msg.encrypted() {
            return self.info_plain(i, &inp);
        }
        let msgid = inp.msg.message_id();
        if msgid == 0 {
            return self.drop_msg(DropReason::BadMessageId, "informational with message id 0");
        }
        if self.p1[i].info_seen.contains(&msgid) {
            return self.drop_msg(DropReason::Duplicate, "informational message id seen before");
        }
        let m = msgid.to_be_bytes();
        let p = &self.p1[i];
        if p.keys.is_none() {
            return self.drop_msg(DropReason::Undecryptable, "encrypted informational before keys");
        }
        let iv = derive_iv(p.hash(), p.suite.cipher.block_len(), &[&p.iv, &m]);
        let Some((plain, _)) = Self::decrypt(p, &inp.msg, &iv) else {
            return self.unreadable_info(i, DropReason::Undecryptable, "not whole cipher blocks");
        };
        let pl = match payloads(inp.msg.next_payload(), &plain, true) {
            Ok(pl) => pl,
            Err(e) => return self.unreadable_info(i, DropReason::Malformed, e.0),
        };
        let Some((hash, rest)) = split_hash(&pl, &plain) else {
            return self.unreadable_info(i, DropReason::Malformed, "informational without HASH first");
        };
        let ok = p.keys.as_ref().is_some_and(|k| bool::from(p.hash().prf(&k.a, &[&m, rest]).ct_eq(hash)));
        if !ok {
            return self.unreadable_info(i, DropReason::BadHash, "informational HASH(1) does not verify");
        }
        let seen = &mut self.p1[i].info_seen;
        if seen.len() == INFO_MEMORY {
            seen.pop_front();
        }
        seen.push_back(msgid);
        let notifies: Vec<NotifyRepr> = pl
            .iter()
            .filter(|p| p.kind == PayloadType::Notify)
            .filter_map(|p| NotifyRepr::parse(p.body).ok())
            .collect();
        let deletes: Vec<DeleteRepr> = pl
            .iter()
            .filter(|p| p.kind == PayloadType::Delete)
            .filter_map(|p| DeleteRepr::parse(p.body).ok())
            .collect();
        for n in notifies {
            let Some(i) = self.p1.iter().position(|p| p.ic == ic && p.rc == rc) else { return };
            self.protected_notify(i, &n);
        }
        for d in deletes {
            self.delete_received(ic, rc, &d);
        }
    }

    /// Drops an encrypted informational that our keys do not read. While main mode waits for
    /// message 6 that is how a peer with another secret answers message 5 (strongSwan sends
    /// PAYLOAD-MALFORMED under its own keys), so the ISAKMP SA remembers it and a give-up
    /// reports AUTHENTICATION-FAILED; it does not fail at once, since anyone who saw the
    /// cookies could send such a message.
    fn unreadable_info(&mut self, i: usize, reason: DropReason, why: &'static str) {
        if self.p1[i].state == P1State::MainI5 {
            self.p1[i].refuted = true;
        }
        self.drop_msg(reason, why);
    }

    /// An unencrypted informational: only error notifications about a phase 1 in progress.
    fn info_plain(&mut self, i: usize, inp: &Input<'_>) {
        if self.p1[i].established() {
            return self.drop_msg(DropReason::Unprotected, "unprotected informational after phase 1");
        }
        let Ok(pl) = payloads(inp.msg.next_payload(), inp.msg.body(), false) else {
            return self.drop_msg(DropReason::Malformed, "unparseable informational");
        };
        let error = pl
            .iter()
            .filter(|p| p.kind == PayloadType::Notify)
            .filter_map(|p| NotifyRepr::parse(p.body).ok())
            .find(|n| u16::from(n.kind) < 8192);
        match error {
            Some(n) => self.fail_phase1(i, FailReason::PeerNotify(n.kind)),
            None => self.drop_msg(DropReason::Unexpected, "unprotected informational without an error"),
        }
    }

    fn protected_notify(&mut self, i: usize, n: &NotifyRepr) {
        match n.kind {
            NotifyType::InitialContact => self.initial_contact(i),
            k if u16::from(k) < 8192 => {
                if !self.p1[i].established() {
                    return self.fail_phase1(i, FailReason::PeerNotify(k));
                }
                // An error about a quick mode: the one whose SPI it names, else every one we
                // started and that is still waiting.
                let spi = <[u8; 4]>::try_from(&n.spi[..]).ok().map(u32::from_be_bytes);
                let peer = self.p1[i].peer_addr;
                let quick = &mut self.p1[i].quick;
                let hit = |q: &super::endpoint::Quick| {
                    q.role == Role::Initiator
                        && q.state == QState::I1
                        && spi.is_none_or(|s| q.spis.esp == Some(s) || q.spis.ah == Some(s))
                };
                let failed: Vec<u32> = quick.iter().filter(|q| hit(q)).map(|q| q.policy_id).collect();
                quick.retain(|q| !hit(q));
                for policy_id in failed {
                    self.event(Event::Failed { peer, policy_id: Some(policy_id), reason: FailReason::PeerNotify(k) });
                }
            }
            _ => {}
        }
    }

    fn delete_received(&mut self, ic: [u8; 8], rc: [u8; 8], d: &DeleteRepr) {
        let ip = match d.protocol {
            proto::ISAKMP => {
                for spi in &d.spis {
                    if spi.len() == 16
                        && let Some(j) = self.p1.iter().position(|p| p.ic[..] == spi[..8] && p.rc[..] == spi[8..])
                    {
                        self.remove_p1(j, true);
                    }
                }
                return;
            }
            proto::ESP => IpsecProto::Esp,
            proto::AH => IpsecProto::Ah,
            _ => return,
        };
        let Some(peer) = self.p1.iter().find(|p| p.ic == ic && p.rc == rc).map(|p| p.peer_addr) else { return };
        for spi in d.spis.iter().filter_map(|s| <[u8; 4]>::try_from(&s[..]).ok()).map(u32::from_be_bytes) {
            let pos = self
                .children
                .iter()
                .position(|c| c.peer == peer && c.outbound.iter().any(|k| k.proto == ip && k.spi == spi));
            if let Some(c) = pos.map(|j| self.children.remove(j)) {
                self.event(Event::SaDeleted { peer, policy_id: c.policy_id, inbound: c.inbound, outbound: c.outbound });
            }
        }
    }
}
