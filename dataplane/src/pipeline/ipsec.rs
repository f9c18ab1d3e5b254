//! The worker's IPsec state and stages: the compiled SPD with its per-policy counters, the
//! outbound SA bundles (by policy), the inbound SAs (by source, destination, protocol and SPI),
//! and the burst stages that use them. SAs of one policy or key are processed as one group,
//! so each crypto call serves as many packets as possible.

use std::iter::repeat_n;
use std::net::Ipv4Addr;
use std::sync::Arc;

use arrayvec::ArrayVec;

use super::Io;
use super::deadlines::{self, Deadlines, Target};
use crate::buf::{BURST, Burst, PacketBuf, retain_marked};
use crate::bundle::Bundle;
use crate::classify::{CacheStats, FlowCache};
use crate::crypto::Engine;
use crate::ctl::{FromWorker, InboundSa, Ring, SaKey};
use crate::fasthash::{FxHashMap, map_with_capacity};
use crate::route::Ifaces;
use crate::sa::{IpsecProto, Sa};
use crate::spd::{Decision, Decrypted, Incoming, Key, Outgoing, PolicyCounters, PolicyIdx, SaLookup, Spd, Verdict};
use crate::stats::{DropReason, Stats};
use crate::wire::{Protocol, ah, esp, ipv4, udp};
use crate::xform::{self, CryptoTime};
use crate::{ah as ah_xf, esp as esp_xf};

/// Which way an SA works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Seals outgoing packets.
    Out,
    /// Opens incoming packets.
    In,
}

/// Where an installed SA is, for a walk over them spread across rounds: an outbound bundle
/// by its policy id, or an inbound SA by its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listed {
    Out(u32),
    In(SaKey),
}

/// Acquires sent per policy per second, at most (the IKE daemon needs only one).
const ACQUIRE_INTERVAL_MS: u64 = 1000;

/// The SPD keys of a burst's packets, parsed once on input.
pub(crate) type Keys = ArrayVec<Key, BURST>;

/// Encrypt groups of one burst: packets by policy. The packets stay in one burst in arrival
/// order with each one's group beside it; [`Groups::take`] lays them out group after group.
pub(crate) struct Groups<B> {
    bufs: Burst<B>,
    /// The group of each packet of `bufs`.
    group: [u8; BURST],
    /// The policy of each group, in order of first appearance.
    policies: ArrayVec<PolicyIdx, BURST>,
    /// The packets of each group.
    counts: [u8; BURST],
    /// True while every group's packets follow each other in `bufs` (one policy, or a burst
    /// spread over as many policies as packets): `take` then moves the burst as it is.
    runs: bool,
    /// The group of a policy, by the policy's low bits (group number + 1; 0: none yet): with
    /// thousands of policies every packet of a burst may start a group, and scanning the
    /// groups for each cost about 45 instructions per packet at 32 groups.
    slot: [u8; SLOTS],
}

/// Entries of `Groups::slot`: twice the groups a burst can have, so that few policies share one.
const SLOTS: usize = 2 * BURST;

impl<B> Groups<B> {
    pub(crate) fn new() -> Self {
        Groups {
            bufs: Burst::new(),
            group: [0; BURST],
            policies: ArrayVec::new(),
            counts: [0; BURST],
            runs: true,
            slot: [0; SLOTS],
        }
    }

    fn push(&mut self, policy: PolicyIdx, buf: B) {
        let s = policy as usize % SLOTS;
        let found = match usize::from(self.slot[s]) {
            g if g > 0 && self.policies[g - 1] == policy => Some(g - 1),
            // Another policy holds the slot: look for ours among the groups.
            g if g > 0 => self.policies.iter().position(|&p| p == policy),
            _ => None,
        };
        let g = match found {
            Some(g) => {
                self.runs &= g + 1 == self.policies.len();
                g
            }
            None => {
                self.policies.push(policy);
                if self.slot[s] == 0 {
                    self.slot[s] = self.policies.len() as u8;
                }
                self.policies.len() - 1
            }
        };
        self.group[self.bufs.len()] = g as u8;
        self.counts[g] += 1;
        self.bufs.push(buf);
    }

    /// Returns the policy of each group.
    pub(crate) fn policies(&self) -> &[PolicyIdx] {
        &self.policies
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Returns the packets in all groups.
    pub(crate) fn packets(&self) -> usize {
        self.bufs.len()
    }

    /// Moves the packets of the groups `keep` accepts to `out`, group after group, each in
    /// arrival order, and pushes where each group ends in `out` to `ends`; the packets of the
    /// other groups are dropped, counted as `reason`.
    pub(crate) fn take(
        &mut self,
        keep: &[bool],
        out: &mut Burst<B>,
        ends: &mut ArrayVec<usize, { BURST + 1 }>,
        reason: DropReason,
        drops: &mut Stats,
    ) {
        let groups = self.policies.len();
        let mut at = [0u8; BURST];
        let mut n = out.len();
        for g in 0..groups {
            at[g] = n as u8;
            if keep[g] {
                n += usize::from(self.counts[g]);
                ends.push(n);
            }
        }
        if self.runs && !keep[..groups].contains(&false) {
            out.extend(self.bufs.drain(..));
            return;
        }
        let mut slots: [Option<B>; BURST] = [const { None }; BURST];
        for (i, buf) in self.bufs.drain(..).enumerate() {
            let g = usize::from(self.group[i]);
            if keep[g] {
                slots[usize::from(at[g])] = Some(buf);
                at[g] += 1;
            } else {
                drops.drop(reason);
            }
        }
        let base = out.len();
        out.extend(slots[base..n].iter_mut().filter_map(Option::take));
    }

    /// Drops every packet, counted as `reason`.
    pub(crate) fn drop_all(&mut self, reason: DropReason, drops: &mut Stats) {
        for _ in self.bufs.drain(..) {
            drops.drop(reason);
        }
    }
}

pub(crate) struct State<E: Engine> {
    worker: u16,
    engine: E,
    spd: Arc<Spd>,
    counters: PolicyCounters,
    /// Outbound bundles by the index of their policy in `spd`: the per-packet path reaches
    /// them without a hash lookup.
    outbound: Vec<Slot<E::Session>>,
    /// Outbound bundles whose policy id the current SPD does not have (installed before their
    /// policy, or kept across an SPD without it), by policy id.
    detached: FxHashMap<u32, Box<Bundle<E::Session>>>,
    inbound: FxHashMap<SaKey, Box<InboundSa<E::Session>>>,
    last_acquire: FxHashMap<u32, u64>,
    /// When the installed SAs' time lifetimes run out.
    deadlines: Deadlines,
    /// Outbound and incoming-check answers of the classifiers, by flow.
    out_cache: FlowCache,
    in_cache: FlowCache,
    /// The engine's time, which the pipeline takes out of the ipsec stage's.
    crypto: CryptoTime,
}

/// Flows each of a worker's classifier caches holds (32,768 buckets of three, 2 MiB each).
/// Flows that meet four or more in one bucket evict each other on every pass, which a cycle
/// over 10,000 flows makes (`ipsecgw bench --policies 10000` prints the counts): with 8,192
/// buckets 12% of the lookups missed, with 16,384 2.7% (387,439 of 14,483,456 in a 3 s round
/// after 1 s of warm-up), with these 0.12% (15,804 of 13,172,736, 10,000 of them the first
/// pass).
const CACHED_FLOWS: usize = 96 * 1024;

/// SAs a worker expects; more only make the maps grow, between bursts.
const EXPECTED_SAS: usize = 1024;

impl<E: Engine> State<E> {
    pub(crate) fn new(worker: u16, engine: E, spd: Arc<Spd>) -> Self {
        State {
            worker,
            engine,
            counters: spd.counters(),
            outbound: std::iter::repeat_with(Slot::empty).take(spd.len()).collect(),
            spd,
            detached: map_with_capacity(EXPECTED_SAS),
            inbound: map_with_capacity(EXPECTED_SAS),
            last_acquire: map_with_capacity(EXPECTED_SAS),
            deadlines: Deadlines::default(),
            out_cache: FlowCache::new(CACHED_FLOWS),
            in_cache: FlowCache::new(CACHED_FLOWS),
            crypto: CryptoTime::default(),
        }
    }

    /// Times the engine's calls with `clock`.
    pub(crate) fn set_clock(&mut self, clock: fn() -> u64) {
        self.crypto = CryptoTime::new(clock);
    }

    /// Returns the engine's cycles, jobs and jobs sealed alone since the last call.
    pub(crate) fn take_crypto(&mut self) -> (u64, u64, u64) {
        self.crypto.take()
    }

    pub(crate) fn spd(&self) -> &Arc<Spd> {
        &self.spd
    }

    pub(crate) fn engine(&self) -> &E {
        &self.engine
    }

    pub(crate) fn counters(&self) -> &PolicyCounters {
        &self.counters
    }

    /// Returns the lookups of the outbound and the incoming flow caches.
    pub(crate) fn cache_stats(&self) -> (CacheStats, CacheStats) {
        (self.out_cache.stats, self.in_cache.stats)
    }

    /// Swaps in a new SPD and its (zero) counters and returns the old ones; the bundles
    /// follow their policy ids to their new indices. The work left here is moving the bundles:
    /// the control plane built the SPD, its index of ids and the counters, and frees the old.
    pub(crate) fn set_spd(&mut self, spd: Arc<Spd>, counters: PolicyCounters) -> (Arc<Spd>, PolicyCounters) {
        // Counters for another SPD would count under the wrong policies: start afresh then.
        let counters = if counters.len() == spd.len() { counters } else { spd.counters() };
        let old_counters = std::mem::replace(&mut self.counters, counters);
        let old = std::mem::replace(&mut self.spd, spd);
        let by_idx =
            std::mem::replace(&mut self.outbound, std::iter::repeat_with(Slot::empty).take(self.spd.len()).collect());
        let detached = std::mem::take(&mut self.detached);
        for (i, b) in by_idx.into_iter().enumerate() {
            if let (Some(b), Some(p)) = (b.bundle, old.policy(i as PolicyIdx)) {
                self.set_outbound(p.id, Some(b));
            }
        }
        for (id, b) in detached {
            self.set_outbound(id, Some(b));
        }
        (old, old_counters)
    }

    fn set_outbound(
        &mut self,
        policy_id: u32,
        bundle: Option<Box<Bundle<E::Session>>>,
    ) -> Option<Box<Bundle<E::Session>>> {
        match (self.spd.index_of(policy_id).and_then(|i| self.outbound.get_mut(i as usize)), bundle) {
            (Some(slot), b) => {
                // Every installation and every SPD swap (which installs each bundle again)
                // comes here: the flag follows both.
                slot.reseal = b.as_ref().is_some_and(|b| b.outer_key().is_none_or(|k| self.spd.outbound_may_match(&k)));
                std::mem::replace(&mut slot.bundle, b)
            }
            (None, Some(b)) => self.detached.insert(policy_id, b),
            (None, None) => self.detached.remove(&policy_id),
        }
    }

    fn set_inbound(
        &mut self,
        key: SaKey,
        sa: Option<Box<InboundSa<E::Session>>>,
    ) -> Option<Box<InboundSa<E::Session>>> {
        match sa {
            Some(s) => self.inbound.insert(key, s),
            None => self.inbound.remove(&key),
        }
    }

    /// Visits every installed SA (for the control plane's thread and tests: it allocates).
    pub(crate) fn for_each_sa(&self, mut f: impl FnMut(Direction, u32, &Sa<E::Session>)) {
        let mut listed = Vec::new();
        self.list_into(&mut listed);
        for item in listed {
            self.visit(item, &mut f);
        }
    }

    /// Lists every installed bundle and inbound SA in `out` (emptied first) without reading
    /// them (with thousands of SAs their state is cold): a snapshot walks the list a few SAs
    /// per round. `out` keeps its capacity, so the worker allocates for its first snapshot only.
    pub(crate) fn list_into(&self, out: &mut Vec<Listed>) {
        out.clear();
        let by_idx = self.outbound.iter().enumerate().filter_map(|(i, slot)| {
            slot.bundle.as_ref()?;
            Some(Listed::Out(self.spd.policy(i as PolicyIdx)?.id))
        });
        let detached = self.detached.keys().map(|&id| Listed::Out(id));
        out.extend(by_idx.chain(detached).chain(self.inbound.keys().map(|&k| Listed::In(k))));
    }

    /// Visits the SAs `item` names, if they are still installed.
    pub(crate) fn visit(&self, item: Listed, mut f: impl FnMut(Direction, u32, &Sa<E::Session>)) {
        match item {
            Listed::Out(id) => {
                for sa in self.bundle_of(id).into_iter().flat_map(Bundle::sas) {
                    f(Direction::Out, id, sa);
                }
            }
            Listed::In(key) => {
                if let Some(ib) = self.inbound.get(&key) {
                    f(Direction::In, ib.policy_id, &ib.sa);
                }
            }
        }
    }

    /// Applies the time lifetimes due at `now_secs`, reporting what expired: a few SAs per
    /// burst at most, and usually one comparison.
    pub(crate) fn tick<B>(&mut self, now_secs: u64, up: &Ring<FromWorker<B, E::Session>>) {
        let worker = self.worker;
        for _ in 0..deadlines::PER_BURST {
            let Some(target) = self.deadlines.pop_due(now_secs) else { return };
            // A target whose SA was replaced or removed finds another SA or none; another SA
            // judges its age from its own installation, so nothing expires early.
            if let Some(sa) = self.sa_at(&target) {
                sa.tick(now_secs);
                report(worker, sa, up);
            }
        }
    }

    /// Installs (or with `None` removes) the outbound bundle of policy `policy_id`, its time
    /// lifetimes starting at `now_secs`; returns the bundle it replaces.
    pub(crate) fn install_outbound(
        &mut self,
        policy_id: u32,
        mut bundle: Option<Box<Bundle<E::Session>>>,
        now_secs: u64,
    ) -> Option<Box<Bundle<E::Session>>> {
        for sa in bundle.iter_mut().flat_map(|b| b.sas_mut()) {
            sa.start_life(now_secs);
            self.deadlines.schedule(sa, Target::Out { policy_id, proto: sa.proto(), spi: sa.spi() });
        }
        let old = self.set_outbound(policy_id, bundle);
        self.compact_deadlines();
        old
    }

    /// Installs (or with `None` removes) the inbound SA of `key`, its time lifetimes starting
    /// at `now_secs`; returns the SA it replaces.
    pub(crate) fn install_inbound(
        &mut self,
        key: SaKey,
        mut sa: Option<Box<InboundSa<E::Session>>>,
        now_secs: u64,
    ) -> Option<Box<InboundSa<E::Session>>> {
        if let Some(ib) = sa.as_mut() {
            ib.sa.start_life(now_secs);
            self.deadlines.schedule(&ib.sa, Target::In(key));
        }
        let old = self.set_inbound(key, sa);
        self.compact_deadlines();
        old
    }

    /// Drops the deadlines of SAs no longer installed once they could outnumber the live
    /// ones (each SA has two at most): the heap stays proportional to the installed SAs
    /// however many were replaced, at a cost spread over the installations.
    fn compact_deadlines(&mut self) {
        let bound = 4 * (2 * (self.outbound.len() + self.detached.len()) + self.inbound.len()) + 64;
        if self.deadlines.len() <= bound {
            return;
        }
        let mut d = std::mem::take(&mut self.deadlines);
        d.compact(|t, at| self.sa_at(t).is_some_and(|sa| deadlines::is_deadline_of(sa, at)));
        self.deadlines = d;
    }

    /// Returns the installed SA a deadline names, if it is still there.
    fn sa_at(&mut self, target: &Target) -> Option<&mut Sa<E::Session>> {
        match *target {
            Target::In(key) => self.inbound.get_mut(&key).map(|ib| &mut ib.sa),
            Target::Out { policy_id, proto, spi } => {
                self.bundle_of_mut(policy_id)?.sas_mut().find(|sa| sa.proto() == proto && sa.spi() == spi)
            }
        }
    }

    /// Returns the outbound bundle of the policy with `id`: by its SPD index, or among the
    /// detached ones when the SPD has no such policy.
    fn bundle_of(&self, id: u32) -> Option<&Bundle<E::Session>> {
        match self.spd.index_of(id) {
            Some(i) => self.outbound.get(i as usize)?.bundle.as_deref(),
            None => self.detached.get(&id).map(|b| &**b),
        }
    }

    /// As [`bundle_of`](Self::bundle_of), writable.
    fn bundle_of_mut(&mut self, id: u32) -> Option<&mut Bundle<E::Session>> {
        match self.spd.index_of(id) {
            Some(i) => self.outbound.get_mut(i as usize)?.bundle.as_deref_mut(),
            None => self.detached.get_mut(&id).map(|b| &mut **b),
        }
    }

    /// The incoming policy check on cleartext packets: drops what should have come encrypted.
    /// Packets no reversed selector can match pass without a lookup.
    /// `keys[i]` is `pkts[i]`'s key; both keep the survivors, in order.
    pub(crate) fn incoming_check<B: PacketBuf>(
        &mut self,
        pkts: &mut Burst<B>,
        keys: &mut Keys,
        to_us: bool,
        drops: &mut Stats,
    ) {
        if pkts.is_empty() || self.spd.is_empty() {
            return;
        }
        // The packets some reversed selector could match, by position: usually none.
        // ArrayVecs, not arrays: a burst's arrays written whole cost more than its packets.
        let mut check_keys: Keys = ArrayVec::new();
        let mut inc: ArrayVec<Incoming, BURST> = ArrayVec::new();
        let mut pos: ArrayVec<u8, BURST> = ArrayVec::new();
        for (i, (p, key)) in pkts.iter().zip(keys.iter()).enumerate() {
            if self.spd.incoming_may_match(key) {
                check_keys.push(*key);
                inc.push(Incoming { len: p.len() as u32, to_us });
                pos.push(i as u8);
            }
        }
        if pos.is_empty() {
            return;
        }
        let mut dec: ArrayVec<Decision, BURST> = ArrayVec::new();
        dec.extend(repeat_n(Decision::CLEAR, pos.len()));
        let outbound = &self.outbound;
        let memo = Memo::default();
        let has = |idx| memo.get(idx, || has_sa(outbound, idx));
        self.spd.incoming(&check_keys, &inc, has, &mut self.counters, &mut self.in_cache, &mut dec);
        let mut keep = [true; BURST];
        for (&p, d) in pos.iter().zip(&dec) {
            if let Verdict::Drop(r) = d.verdict {
                drops.drop(r);
                keep[usize::from(p)] = false;
            }
        }
        retain_marked(pkts, &keep);
        retain_marked(keys, &keep);
    }

    /// Opens ESP and AH packets addressed to us, SA by SA; what decrypts and matches its SA's
    /// policy goes to `clear`.
    pub(crate) fn inbound<B: PacketBuf>(
        &mut self,
        ifaces: &Ifaces,
        pkts: &mut Burst<B>,
        clear: &mut Burst<B>,
        drops: &mut Stats,
        io: &mut Io<'_, B, E::Session>,
    ) {
        let mut keys: ArrayVec<Option<SaKey>, BURST> = ArrayVec::new();
        keys.extend(pkts.iter().map(|p| sa_key(p.data())));
        let mut rest: Burst<B> = Burst::new();
        // The keys of `rest`, kept from the parse above: each packet's headers are read once.
        let mut rest_keys: ArrayVec<Option<SaKey>, BURST> = ArrayVec::new();
        let mut group: Burst<B> = Burst::new();
        while !pkts.is_empty() {
            let Some(first) = keys.iter().find_map(|k| *k) else {
                for _ in pkts.drain(..) {
                    drops.drop(DropReason::Truncated);
                }
                break;
            };
            for (buf, key) in pkts.drain(..).zip(keys.drain(..)) {
                match key {
                    Some(k) if k == first => group.push(buf),
                    Some(_) => {
                        rest.push(buf);
                        rest_keys.push(key);
                    }
                    None => drops.drop(DropReason::Truncated),
                }
            }
            keys.extend(rest_keys.drain(..));
            // Moved, not swapped: a swap copies both bursts whole.
            pkts.extend(rest.drain(..));
            self.open_group(ifaces, first, &mut group, clear, drops, io.up);
        }
    }

    fn open_group<B: PacketBuf>(
        &mut self,
        ifaces: &Ifaces,
        key: SaKey,
        group: &mut Burst<B>,
        clear: &mut Burst<B>,
        drops: &mut Stats,
        up: &Ring<FromWorker<B, E::Session>>,
    ) {
        let Some(ib) = self.inbound.get_mut(&key) else {
            for _ in group.drain(..) {
                drops.drop(DropReason::UnknownSpi);
            }
            return;
        };
        match key.proto {
            IpsecProto::Esp => {
                xform::run::<E, B, esp_xf::Open>(&mut ib.sa, &mut self.engine, group, drops, &mut self.crypto)
            }
            IpsecProto::Ah => {
                xform::run::<E, B, ah_xf::Open>(&mut ib.sa, &mut self.engine, group, drops, &mut self.crypto)
            }
        }
        report(self.worker, &mut ib.sa, up);
        let Some(policy) = self.spd.index_of(ib.policy_id) else {
            for _ in group.drain(..) {
                drops.drop(DropReason::InnerPolicyMismatch);
            }
            return;
        };
        // A packet that is itself ESP or AH for us (ah,esp, or nested tunnels ending here) is
        // checked against the policy of the SA that finally opens it.
        let mut check: ArrayVec<Decrypted, BURST> = ArrayVec::new();
        let mut nested = [false; BURST];
        for (i, p) in group.iter().enumerate() {
            let key = Key::from_ipv4(p.data()).unwrap_or_default();
            nested[i] =
                matches!(Protocol(key.proto), Protocol::Esp | Protocol::Ah) && ifaces.is_local(Ipv4Addr::from(key.dst));
            check.push(Decrypted { key, len: p.len() as u32, policy });
        }
        let mut dec: ArrayVec<Decision, BURST> = ArrayVec::new();
        dec.extend(repeat_n(Decision::CLEAR, group.len()));
        self.spd.decrypted(&check, &mut self.counters, &mut dec);
        for (i, buf) in group.drain(..).enumerate() {
            match dec[i].verdict {
                Verdict::Drop(r) if !nested[i] => drops.drop(r),
                _ => clear.push(buf),
            }
        }
    }

    /// Runs the outbound SPD over a burst: clear packets to `clear`, packets to encrypt into
    /// `groups` by policy; asks IKE for missing SAs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn outbound<B: PacketBuf>(
        &mut self,
        pkts: &mut Burst<B>,
        keys: Option<&Keys>,
        local: bool,
        prev: &[Option<PolicyIdx>],
        clear: &mut Burst<B>,
        groups: &mut Groups<B>,
        drops: &mut Stats,
        io: &mut Io<'_, B, E::Session>,
    ) {
        if self.spd.is_empty() {
            clear.extend(pkts.drain(..));
            return;
        }
        // Locally originated packets are parsed here; forwarded ones were parsed on input.
        let mut parsed = Keys::new();
        let keys = match keys {
            Some(k) => k,
            None => {
                pkts.retain(|p| match Key::from_ipv4(p.data()) {
                    Some(k) => {
                        parsed.push(k);
                        true
                    }
                    None => {
                        drops.drop(DropReason::Truncated);
                        false
                    }
                });
                &parsed
            }
        };
        // Filled in place: an ArrayVec collected is built aside and then copied whole.
        let mut meta: ArrayVec<Outgoing, BURST> = ArrayVec::new();
        meta.extend(pkts.iter().enumerate().map(|(i, p)| Outgoing {
            len: p.len() as u32,
            local,
            prev: prev.get(i).copied().flatten(),
        }));
        let mut dec: ArrayVec<Decision, BURST> = ArrayVec::new();
        dec.extend(repeat_n(Decision::CLEAR, pkts.len()));
        let sas: Sas<'_, E> = Sas { outbound: &self.outbound, engine: &self.engine, memo: Memo::default() };
        self.spd.outbound(keys, &meta, sas, &mut self.counters, &mut self.out_cache, &mut dec);
        for (buf, d) in pkts.drain(..).zip(dec) {
            if let Some(idx) = d.acquire {
                self.acquire(idx, io);
            }
            match d.verdict {
                Verdict::Bypass | Verdict::Clear => clear.push(buf),
                Verdict::Drop(r) => drops.drop(r),
                Verdict::Encrypt(idx) => groups.push(idx, buf),
            }
        }
    }

    fn acquire<B>(&mut self, idx: PolicyIdx, io: &mut Io<'_, B, E::Session>) {
        let Some(p) = self.spd.policy(idx) else { return };
        let last = self.last_acquire.entry(p.id).or_insert(0);
        if *last != 0 && io.now_ms.saturating_sub(*last) < ACQUIRE_INTERVAL_MS {
            return;
        }
        *last = io.now_ms.max(1);
        let _ = io.up.push(FromWorker::Acquire { policy_id: p.id });
    }

    /// Seals every group with its policy's SAs, all groups' packets in one crypto submission
    /// per protocol (ESP, then AH). The survivors that some policy could match as locally
    /// originated packets go to `sealed`, group after group, with the policy that sealed each
    /// in `sealed_by`; the others (usually all: a group's outer headers share one key, which
    /// no rule's bounding box contains) go to `done`, to be routed as they are.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn seal_groups<B: PacketBuf>(
        &mut self,
        groups: &mut Groups<B>,
        sealed: &mut Burst<B>,
        sealed_by: &mut ArrayVec<Option<PolicyIdx>, BURST>,
        done: &mut Burst<B>,
        drops: &mut Stats,
        up: &Ring<FromWorker<B, E::Session>>,
    ) {
        // The bundles stay in `outbound`; the passes below reach them by the policies of the
        // groups kept (those with a bundle: the others' packets are dropped).
        let mut kept: ArrayVec<PolicyIdx, BURST> = ArrayVec::new();
        let mut present = [false; BURST];
        let mut any_ah = false;
        for (g, &policy) in groups.policies().iter().enumerate() {
            if let Some(b) = bundle(&self.outbound, policy) {
                any_ah |= b.ah.is_some();
                present[g] = true;
                kept.push(policy);
            }
        }
        let mut bounds: ArrayVec<usize, { BURST + 1 }> = ArrayVec::new();
        bounds.push(0);
        groups.take(&present, sealed, &mut bounds, DropReason::NoSa, drops);
        let mut esp = InPlace { outbound: &mut self.outbound, policies: &kept, ah: false };
        xform::run_groups::<E, B, esp_xf::Seal, _>(
            &mut esp,
            &mut bounds,
            &mut self.engine,
            sealed,
            drops,
            &mut self.crypto,
        );
        if any_ah {
            let mut ah = InPlace { outbound: &mut self.outbound, policies: &kept, ah: true };
            let crypto = &mut self.crypto;
            xform::run_groups::<E, B, ah_xf::Seal, _>(&mut ah, &mut bounds, &mut self.engine, sealed, drops, crypto);
        }
        // Per group: its SAs' events go up, and whether its packets' outer headers could match
        // a policy.
        let mut again = [false; BURST];
        for (g, &policy) in kept.iter().enumerate() {
            let Some(slot) = self.outbound.get_mut(policy as usize) else { continue };
            again[g] = slot.reseal;
            let Some(b) = slot.bundle.as_deref_mut() else { continue };
            if let Some(sa) = &mut b.esp {
                report(self.worker, sa, up);
            }
            if let Some(sa) = &mut b.ah {
                report(self.worker, sa, up);
            }
        }
        let groups = bounds.len() - 1;
        if !again[..groups].contains(&true) {
            done.extend(sealed.drain(..));
            return;
        }
        let mut keep: Burst<B> = Burst::new();
        let mut bufs = sealed.drain(..);
        for g in 0..groups {
            for buf in bufs.by_ref().take(bounds[g + 1] - bounds[g]) {
                if again[g] {
                    sealed_by.push(Some(kept[g]));
                    keep.push(buf);
                } else {
                    done.push(buf);
                }
            }
        }
        drop(bufs);
        *sealed = keep;
    }
}

/// Where a policy's outbound bundle is kept, by the policy's index in the SPD.
struct Slot<S> {
    bundle: Option<Box<Bundle<S>>>,
    /// True when the packets the bundle seals could match some policy of the SPD as locally
    /// originated packets (nested encryption), false when no rule's bounding box holds their
    /// outer key: sealing reads this flag, on the line it reads the bundle's address from,
    /// instead of building and checking the key for each group.
    reseal: bool,
}

impl<S> Slot<S> {
    fn empty() -> Self {
        Slot { bundle: None, reseal: false }
    }
}

/// Returns the outbound bundle of policy `idx`.
#[inline]
fn bundle<S>(outbound: &[Slot<S>], idx: PolicyIdx) -> Option<&Bundle<S>> {
    outbound.get(idx as usize)?.bundle.as_deref()
}

/// The worker's answers to the SPD about outbound SAs, for one burst.
struct Sas<'a, E: Engine> {
    outbound: &'a [Slot<E::Session>],
    engine: &'a E,
    memo: Memo,
}

impl<E: Engine> SaLookup for Sas<'_, E> {
    #[inline]
    fn has_sa(&self, idx: PolicyIdx, len: u32) -> bool {
        self.memo.get(idx, || {
            let Some(b) = bundle(self.outbound, idx) else { return false };
            // The bundle's front is cached now: start on what it points to, the keys and the
            // shared sequence counter, which sealing needs after the rest of the SPD stage.
            // ESP and AH by name: a chain of the two costs more instructions per group. The
            // first packet to ask decides which keys by its length: with many SAs, where the
            // prefetch matters, a burst has about one packet per SA.
            if let Some(sa) = &b.esp {
                sa.prefetch_shared();
                self.engine.prefetch(&sa.session, len);
            }
            if let Some(sa) = &b.ah {
                sa.prefetch_shared();
                self.engine.prefetch(&sa.session, len);
            }
            b.is_usable()
        })
    }

    /// Starts loading the hot front of the policy's bundle (its first SA's per-packet fields),
    /// which `has_sa` reads next; `has_sa` then starts on the keys and counter it points to.
    #[inline]
    fn prefetch(&self, idx: PolicyIdx) {
        if let Some(b) = bundle(self.outbound, idx) {
            crate::prefetch::front(b, Bundle::<E::Session>::HOT_BYTES);
        }
    }
}

/// The ESP or the AH SAs of a burst's encrypt groups: group `g`'s is in the bundle of
/// `policies[g]`.
struct InPlace<'a, S> {
    outbound: &'a mut [Slot<S>],
    policies: &'a [PolicyIdx],
    ah: bool,
}

impl<S> xform::SaGroups<S> for InPlace<'_, S> {
    #[inline]
    fn sa_mut(&mut self, g: usize) -> Option<&mut Sa<S>> {
        let b = self.outbound.get_mut(*self.policies.get(g)? as usize)?.bundle.as_deref_mut()?;
        if self.ah { b.ah.as_deref_mut() } else { b.esp.as_mut() }
    }
    #[inline]
    fn sa(&self, g: usize) -> Option<&Sa<S>> {
        let b = bundle(self.outbound, *self.policies.get(g)?)?;
        if self.ah { b.ah.as_deref() } else { b.esp.as_ref() }
    }
}

/// Remembers the last policy asked about within one burst: its packets mostly hit one policy,
/// and the answer (a hash lookup of the policy's bundle) cannot change during the burst.
struct Memo(std::cell::Cell<(PolicyIdx, bool)>);

impl Default for Memo {
    fn default() -> Self {
        Memo(std::cell::Cell::new((PolicyIdx::MAX, false)))
    }
}

impl Memo {
    #[inline]
    fn get(&self, idx: PolicyIdx, f: impl FnOnce() -> bool) -> bool {
        let (last, v) = self.0.get();
        if last == idx {
            return v;
        }
        let v = f();
        self.0.set((idx, v));
        v
    }
}

/// Returns true when policy `idx` has usable outbound SAs.
fn has_sa<S>(outbound: &[Slot<S>], idx: PolicyIdx) -> bool {
    bundle(outbound, idx).is_some_and(Bundle::is_usable)
}

/// Sends an SA's pending events to the control plane.
fn report<B, S>(worker: u16, sa: &mut Sa<S>, up: &Ring<FromWorker<B, S>>) {
    while let Some(event) = sa.poll_event() {
        let _ = up.push(FromWorker::SaEvent { worker, spi: sa.spi(), dst: sa.dst(), proto: sa.proto(), event });
    }
}

/// Returns how an ESP or AH packet (at its IPv4 header) finds its SA.
fn sa_key(d: &[u8]) -> Option<SaKey> {
    let ip = ipv4::Packet::new_checked(d).ok()?;
    let payload = ip.payload();
    let (proto, spi) = match ip.protocol() {
        Protocol::Esp => (IpsecProto::Esp, esp::Packet::new_checked(payload).ok()?.spi()),
        Protocol::Ah => (IpsecProto::Ah, ah::Packet::new_checked(payload).ok()?.spi()),
        // ESP in UDP (RFC 3948): the SPI follows the UDP header.
        Protocol::Udp => (IpsecProto::Esp, esp::Packet::new_checked(payload.get(udp::HEADER_LEN..)?).ok()?.spi()),
        _ => return None,
    };
    Some(SaKey { src: ip.src_addr(), dst: ip.dst_addr(), proto, spi })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Groups against a simple reference: one group per policy in the order of first
        /// appearance, each with its packets in order, whatever policies share a slot; the
        /// packets of the groups not kept are dropped and counted.
        #[test]
        fn groups_gather_each_policys_packets_in_order(
            policies in proptest::collection::vec(prop_oneof![0u32..4, 0u32..200, Just(64), Just(128)], 0..=BURST),
            kept in proptest::collection::vec(any::<bool>(), BURST),
        ) {
            let mut g: Groups<usize> = Groups::new();
            for (i, &p) in policies.iter().enumerate() {
                g.push(p, i);
            }
            prop_assert_eq!(g.packets(), policies.len());
            let mut want: Vec<(u32, Vec<usize>)> = Vec::new();
            for (i, &p) in policies.iter().enumerate() {
                match want.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, v)) => v.push(i),
                    None => want.push((p, vec![i])),
                }
            }
            let order: Vec<u32> = want.iter().map(|(p, _)| *p).collect();
            prop_assert_eq!(g.policies(), &order[..]);
            let mut out: Burst<usize> = Burst::new();
            let mut ends: ArrayVec<usize, { BURST + 1 }> = ArrayVec::new();
            let mut drops = Stats::default();
            g.take(&kept, &mut out, &mut ends, DropReason::NoSa, &mut drops);
            let mut got: Vec<Vec<usize>> = Vec::new();
            let mut start = 0;
            for &end in &ends {
                got.push(out[start..end].to_vec());
                start = end;
            }
            prop_assert_eq!(start, out.len());
            let want_kept: Vec<Vec<usize>> =
                want.iter().enumerate().filter(|&(k, _)| kept[k]).map(|(_, (_, v))| v.clone()).collect();
            let lost: usize = want.iter().enumerate().filter(|&(k, _)| !kept[k]).map(|(_, (_, v))| v.len()).sum();
            prop_assert_eq!(got, want_kept);
            prop_assert_eq!(drops.dropped(DropReason::NoSa), lost as u64);
            prop_assert!(g.is_empty());
        }
    }

    /// Replacing one SA again and again leaves its old deadlines behind; they are dropped
    /// before they outnumber what the installed SAs can have.
    #[test]
    fn stale_deadlines_do_not_accumulate() {
        use crate::crypto::rust::RustEngine;
        use crate::sa::Lifetimes;
        let mut st = State::new(0, RustEngine, Arc::new(Spd::new(Vec::new())));
        let lifetimes = Lifetimes { soft_secs: 3600, hard_secs: 7200, ..Default::default() };
        let mut most = 0;
        for i in 0..1000 {
            let sa = crate::sa::tests::sa(lifetimes);
            st.install_outbound(1, Some(Box::new(Bundle::new(Some(sa), None))), i);
            most = most.max(st.deadlines.len());
        }
        // One policy's bundle (in `detached`: the SPD is empty) may hold two SAs of two deadlines.
        assert!(most <= 4 * 2 + 64 + 2, "{most} deadlines pending for one bundle");
        assert!(st.sa_at(&Target::Out { policy_id: 1, proto: IpsecProto::Esp, spi: 0x100 }).is_some());
    }
}
