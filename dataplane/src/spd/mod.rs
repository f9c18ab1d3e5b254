//! The security policy database: RouterOS v2.6 policy semantics (manual, "How IPsec works",
//! "IKE traffic", "policy") over the compiled [`classify`](crate::classify) structure, as burst
//! stages: outbound (bypass, first match, action, level, loop avoidance), the incoming policy
//! check on cleartext (selectors reversed), and the check of decrypted packets against the
//! policy of their SA.
//!
//! SAs live in the worker, so whether a policy has a usable SA is the caller's answer, passed as
//! a function of the policy index. An `Spd` is immutable and `Send + Sync`: the worker holds it
//! in an `Arc` and swaps it whole between bursts, together with a fresh [`PolicyCounters`].

mod counters;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::ops::Range;

use arrayvec::ArrayVec;

pub use counters::{Count, Outcome, PolicyCounters};

use crate::buf::BURST;
use crate::classify::{Classifier, FlowCache, PortRange, Rule};
pub use crate::classify::{Key, Prefix};
use crate::fasthash::{FxHashMap, map_with_capacity};
pub use crate::sa::{DontFragment, Mode};
use crate::stats::DropReason;
use crate::wire::Protocol;

/// Is the index of a policy in the ordered list the `Spd` was built from.
pub type PolicyIdx = u32;

/// Is the ISAKMP port (RFC 2408 2.5.2), which bypasses the SPD (manual, "IKE traffic").
pub const IKE_PORT: u16 = 500;
/// Is the IKE NAT-traversal port (RFC 3947 4), which bypasses the SPD like 500.
pub const IKE_NATT_PORT: u16 = 4500;

const PROTO_TCP: u8 = Protocol::Tcp.0;
const PROTO_UDP: u8 = Protocol::Udp.0;

/// The matching part of a policy: `src-address`, `dst-address` (`A.B.C.D/M:P`) and `protocol`,
/// written for outgoing packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    /// The source prefix.
    pub src: Prefix,
    /// The source port, 0 for any. A port matches only TCP and UDP packets.
    pub src_port: u16,
    /// The destination prefix.
    pub dst: Prefix,
    /// The destination port, 0 for any. A port matches only TCP and UDP packets.
    pub dst_port: u16,
    /// The IP protocol number, `None` for `all`.
    pub protocol: Option<u8>,
}

impl Selector {
    /// Matches every packet: `0.0.0.0/0:0` both ways, protocol `all`.
    pub const ANY: Selector = Selector { src: Prefix::ANY, src_port: 0, dst: Prefix::ANY, dst_port: 0, protocol: None };

    /// Returns the classifier rules that match exactly the packets this selector matches,
    /// oriented as given (`reversed` swaps source and destination for incoming packets).
    /// Empty if it can match nothing (a port with a protocol that has no ports).
    fn rules(&self, reversed: bool) -> impl Iterator<Item = Rule> + use<> {
        let port = |p: u16| if p == 0 { PortRange::ANY } else { PortRange::exact(p) };
        let (src, dst, sp, dp) = if reversed {
            (self.dst, self.src, port(self.dst_port), port(self.src_port))
        } else {
            (self.src, self.dst, port(self.src_port), port(self.dst_port))
        };
        // A port can only match a packet that has ports: `all` with a port means TCP or UDP.
        let protos: &'static [Option<u8>] = match (self.src_port != 0 || self.dst_port != 0, self.protocol) {
            (false, None) => &[None],
            (false, Some(p)) => &PROTO_TABLE[usize::from(p)],
            (true, None) => &[Some(PROTO_TCP), Some(PROTO_UDP)],
            (true, Some(p)) if p == PROTO_TCP || p == PROTO_UDP => &PROTO_TABLE[usize::from(p)],
            (true, Some(_)) => &[],
        };
        protos.iter().map(move |&proto| Rule { src, dst, src_port: sp, dst_port: dp, proto })
    }
}

/// Holds `[Some(p)]` for every protocol number, so `Selector::rules` borrows instead of allocating.
static PROTO_TABLE: [[Option<u8>; 1]; 256] = {
    let mut t = [[None]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [Some(i as u8)];
        i += 1;
    }
    t
};

/// What to do with a packet that matches (`action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Passes the packet as if there were no IPsec; also what happens when no policy matches.
    Accept,
    /// Drops the packet.
    Drop,
    /// Applies the policy's SAs.
    Encrypt,
}

/// What an `encrypt` policy does when it has no usable SA (`level`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Sends the packet in clear and asks nothing.
    Use,
    /// Sends the packet in clear and asks IKE for an SA.
    Acquire,
    /// Drops the packet and asks IKE for an SA.
    Require,
}

/// The security protocols a policy applies (`ipsec-protocols`): outbound ESP first, then AH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpsecProtocols {
    /// AH alone.
    Ah,
    /// ESP alone.
    Esp,
    /// ESP, then AH over it.
    AhEsp,
}

/// One `/ip ipsec policy` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Policy {
    /// The control plane's identifier, carried back with counters and acquires.
    pub id: u32,
    /// The matching part.
    pub selector: Selector,
    /// What to do with a matching packet.
    pub action: Action,
    /// What to do without a usable SA.
    pub level: Level,
    /// `tunnel=yes` is `Tunnel`. In `Transport` mode the policy applies only to packets whose own
    /// source and destination are `sa_src` and `sa_dst`; other packets go on to later policies.
    pub mode: Mode,
    /// The SA source: the outer source in tunnel mode.
    pub sa_src: Ipv4Addr,
    /// The SA destination: the outer destination in tunnel mode.
    pub sa_dst: Ipv4Addr,
    /// The protocols applied.
    pub protocols: IpsecProtocols,
    /// The DF bit after encryption.
    pub dont_fragment: DontFragment,
}

impl Policy {
    /// Creates an `accept` policy for `selector` (transport, ESP, no SA addresses).
    pub fn accept(id: u32, selector: Selector) -> Policy {
        Policy {
            id,
            selector,
            action: Action::Accept,
            level: Level::Require,
            mode: Mode::Transport,
            sa_src: Ipv4Addr::UNSPECIFIED,
            sa_dst: Ipv4Addr::UNSPECIFIED,
            protocols: IpsecProtocols::Esp,
            dont_fragment: DontFragment::Clear,
        }
    }

    /// Returns the selector the classifier sees: in transport mode an `encrypt` policy's
    /// addresses narrowed to `sa_src`/`sa_dst` (manual, "tunnel"), `None` if that leaves nothing.
    fn effective_selector(&self) -> Option<Selector> {
        let mut s = self.selector;
        if self.action == Action::Encrypt && self.mode == Mode::Transport {
            let (sa_src, sa_dst) = (u32::from(self.sa_src), u32::from(self.sa_dst));
            if !s.src.contains(sa_src) || !s.dst.contains(sa_dst) {
                return None;
            }
            s.src = Prefix::host(sa_src);
            s.dst = Prefix::host(sa_dst);
        }
        Some(s)
    }
}

/// What the SPD decided for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// IKE traffic: not subject to the SPD at all.
    Bypass,
    /// Goes on in clear: no policy, `accept`, a missing SA at level `use` or `acquire`, loop
    /// avoidance, or a passed incoming check.
    Clear,
    /// Dropped, for the reason given.
    Drop(DropReason),
    /// Encrypts with the SAs of this policy.
    Encrypt(PolicyIdx),
}

/// A verdict, and the policy for which IKE should acquire an SA, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What to do with the packet.
    pub verdict: Verdict,
    /// Set when an `encrypt` policy at level `acquire` or `require` had no usable SA.
    pub acquire: Option<PolicyIdx>,
}

impl Decision {
    /// Go in clear (the decision a slot starts with).
    pub const CLEAR: Decision = Decision { verdict: Verdict::Clear, acquire: None };
    const BYPASS: Decision = Decision { verdict: Verdict::Bypass, acquire: None };

    fn drop(reason: DropReason) -> Decision {
        Decision { verdict: Verdict::Drop(reason), acquire: None }
    }
}

/// What the outbound stage needs of a packet besides its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The packet's length in bytes, for the counters and for which SA keys are prefetched.
    pub len: u32,
    /// Set for packets this host originates, including packets it just encrypted and is
    /// processing again (manual: "sent as LOCALLY ORIGINATED packet").
    pub local: bool,
    /// The policy that encrypted this packet last, for loop avoidance.
    pub prev: Option<PolicyIdx>,
}

/// What the incoming check needs of a cleartext packet (one that arrived, for forwarding or
/// local delivery, and was not decrypted here) besides its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The packet's length in bytes, for the counters.
    pub len: u32,
    /// Set when the packet is to be delivered to this host.
    pub to_us: bool,
}

/// A packet just decrypted by an SA of `policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// The inner packet's 5-tuple.
    pub key: Key,
    /// The inner packet's length in bytes, for the counters.
    pub len: u32,
    /// The policy the SA belongs to.
    pub policy: PolicyIdx,
}

/// What the outbound stage asks the worker about its SAs. Any `Fn(PolicyIdx) -> bool` answers
/// `has_sa` and ignores prefetches.
pub trait SaLookup {
    /// Tells whether policy `idx` has a usable SA, asked for a packet of `len` bytes (which
    /// keys its size needs, the worker may start loading).
    fn has_sa(&self, idx: PolicyIdx, len: u32) -> bool;
    /// Hints that `has_sa(idx)` comes soon: the worker may start loading the SA state.
    fn prefetch(&self, _idx: PolicyIdx) {}
}

impl<F: Fn(PolicyIdx) -> bool> SaLookup for F {
    #[inline]
    fn has_sa(&self, idx: PolicyIdx, _len: u32) -> bool {
        self(idx)
    }
}

/// The compiled policy list: one classifier for outgoing selectors, one for the reversed ones.
#[derive(Debug)]
pub struct Spd {
    policies: Vec<Policy>,
    out: Classifier,
    /// The policy of each rule of `out`, with its action: a packet whose policy encrypts with
    /// a usable SA needs nothing else of the policy.
    out_policy: Vec<(PolicyIdx, Action)>,
    incoming: Classifier,
    /// The reversed rules, grouped by policy, and the policy of each.
    in_rules: Vec<Rule>,
    in_policy: Vec<PolicyIdx>,
    /// The range of `in_rules` each policy owns.
    in_range: Vec<Range<u32>>,
    /// The index of each policy id, built with the rest here on the control plane's thread,
    /// so that a worker swapping SPDs does not build it between bursts.
    index: FxHashMap<u32, PolicyIdx>,
}

impl Spd {
    /// Compiles the ordered policy list (first match wins). Allocates; call it off the worker.
    pub fn new(policies: Vec<Policy>) -> Spd {
        let mut out_rules = Vec::new();
        let mut out_policy = Vec::new();
        let mut in_rules = Vec::new();
        let mut in_policy = Vec::new();
        let mut in_range = Vec::with_capacity(policies.len());
        for (i, p) in policies.iter().enumerate() {
            let start = in_rules.len() as u32;
            if let Some(sel) = p.effective_selector() {
                for r in sel.rules(false) {
                    out_rules.push(r);
                    out_policy.push((i as PolicyIdx, p.action));
                }
                for r in sel.rules(true) {
                    in_rules.push(r);
                    in_policy.push(i as PolicyIdx);
                }
            }
            in_range.push(start..in_rules.len() as u32);
        }
        let mut index = map_with_capacity(policies.len());
        index.extend(policies.iter().enumerate().map(|(i, p)| (p.id, i as PolicyIdx)));
        Spd {
            out: Classifier::build(&out_rules),
            incoming: Classifier::build(&in_rules),
            index,
            policies,
            out_policy,
            in_rules,
            in_policy,
            in_range,
        }
    }

    /// Returns the policies in order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Returns policy `idx`.
    pub fn policy(&self, idx: PolicyIdx) -> Option<&Policy> {
        self.policies.get(idx as usize)
    }

    /// Returns the index of the policy with id `id` (the last, should ids repeat).
    #[inline]
    pub fn index_of(&self, id: u32) -> Option<PolicyIdx> {
        self.index.get(&id).copied()
    }

    /// Returns the number of policies.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Tells whether there are no policies (everything goes in clear).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Creates zeroed counters sized for this SPD's policies, for one worker.
    pub fn counters(&self) -> PolicyCounters {
        PolicyCounters::new(self.policies.len())
    }

    /// Returns the bytes of the compiled structures.
    pub fn memory_bytes(&self) -> usize {
        self.out.memory_bytes()
            + self.incoming.memory_bytes()
            + self.policies.len() * (size_of::<Policy>() + size_of::<Range<u32>>())
            + self.in_rules.len() * size_of::<Rule>()
            + self.out_policy.len() * size_of::<(PolicyIdx, Action)>()
            + self.in_policy.len() * size_of::<PolicyIdx>()
            + self.index.capacity() * size_of::<(u32, PolicyIdx)>()
    }

    /// Tells whether some policy could match an outgoing packet with `key`. When it says no,
    /// [`outbound`](Self::outbound) would let the packet go in clear (or bypass, for IKE) and
    /// count nothing, so the caller may skip it: the outer header of a packet just encrypted
    /// usually matches no policy.
    #[inline]
    pub fn outbound_may_match(&self, key: &Key) -> bool {
        self.out.might_match(key)
    }

    /// Tells whether some policy's reversed selectors could match an incoming packet with
    /// `key`. When it says no, [`incoming`](Self::incoming) would pass the packet and count
    /// nothing, so the caller may skip it.
    #[inline]
    pub fn incoming_may_match(&self, key: &Key) -> bool {
        self.incoming.might_match(key)
    }

    /// Decides for outgoing packets (forwarded, or originated here): `out[i]` for the packet
    /// with key `keys[i]` and the rest `pkts[i]`. `has_sa(p)` tells whether policy `p` has a
    /// usable SA. Writes as many decisions as the shortest of the three slices and counts them
    /// in `counters`. `cache` is the caller's cache of outbound lookups (any cache: it forgets
    /// what another SPD taught it). Allocates nothing.
    pub fn outbound<L: SaLookup>(
        &self,
        keys: &[Key],
        pkts: &[Outgoing],
        has_sa: L,
        counters: &mut PolicyCounters,
        cache: &mut FlowCache,
        out: &mut [Decision],
    ) {
        let n = keys.len().min(pkts.len()).min(out.len());
        for ((keys, pkts), out) in keys[..n].chunks(BURST).zip(pkts[..n].chunks(BURST)).zip(out[..n].chunks_mut(BURST))
        {
            let mut hits: ArrayVec<Option<u32>, BURST> = ArrayVec::new();
            hits.extend(std::iter::repeat_n(None, keys.len()));
            cache.classify_burst(&self.out, keys, &mut hits);
            // Every encrypt policy of the burst starts loading its SA state before the first
            // is asked about, so that the misses overlap.
            let mut last = PolicyIdx::MAX;
            for &rule in hits.iter().flatten() {
                let (idx, action) = self.out_policy[rule as usize];
                if idx != last && action == Action::Encrypt {
                    has_sa.prefetch(idx);
                    counters.prefetch(idx, Outcome::Encrypted);
                    last = idx;
                }
            }
            for (((k, p), o), &hit) in keys.iter().zip(pkts).zip(out.iter_mut()).zip(hits.iter()) {
                *o = self.outbound_one(k, p, hit, &has_sa, counters);
            }
        }
    }

    #[inline(always)]
    fn outbound_one(
        &self,
        k: &Key,
        p: &Outgoing,
        hit: Option<u32>,
        has_sa: &impl SaLookup,
        counters: &mut PolicyCounters,
    ) -> Decision {
        // Manual, "IKE traffic": our own IKE must not wait for the SA it is negotiating.
        if p.local && k.proto == PROTO_UDP && (k.src_port == IKE_PORT || k.src_port == IKE_NATT_PORT) {
            return Decision::BYPASS;
        }
        let Some(rule) = hit else { return Decision::CLEAR };
        let (idx, action) = self.out_policy[rule as usize];
        let (outcome, decision) = match action {
            Action::Accept => (Outcome::Accepted, Decision::CLEAR),
            Action::Drop => (Outcome::Dropped, Decision::drop(DropReason::PolicyDrop)),
            // Manual: a packet matching the rule that just encrypted it goes out as it is.
            Action::Encrypt if p.prev == Some(idx) => (Outcome::LoopClear, Decision::CLEAR),
            Action::Encrypt if has_sa.has_sa(idx, p.len) => {
                (Outcome::Encrypted, Decision { verdict: Verdict::Encrypt(idx), acquire: None })
            }
            Action::Encrypt => match self.policies[idx as usize].level {
                Level::Use => (Outcome::ClearNoSa, Decision::CLEAR),
                Level::Acquire => (Outcome::ClearNoSa, Decision { verdict: Verdict::Clear, acquire: Some(idx) }),
                Level::Require => {
                    (Outcome::DroppedNoSa, Decision { verdict: Verdict::Drop(DropReason::NoSa), acquire: Some(idx) })
                }
            },
        };
        counters.add(idx, outcome, p.len);
        decision
    }

    /// Runs the incoming policy check on cleartext packets that were not decrypted here, the
    /// packet with key `keys[i]` and the rest `pkts[i]` deciding `out[i]`: the first policy
    /// matching with source and destination reversed decides; if it says encrypt and `has_sa`
    /// says it has a usable SA, the packet should have come encrypted and is dropped. IKE to
    /// this host (UDP destination port 500 or 4500) is exempt. `cache` is the caller's cache of
    /// incoming lookups.
    pub fn incoming<F: Fn(PolicyIdx) -> bool>(
        &self,
        keys: &[Key],
        pkts: &[Incoming],
        has_sa: F,
        counters: &mut PolicyCounters,
        cache: &mut FlowCache,
        out: &mut [Decision],
    ) {
        let n = keys.len().min(pkts.len()).min(out.len());
        for ((keys, pkts), out) in keys[..n].chunks(BURST).zip(pkts[..n].chunks(BURST)).zip(out[..n].chunks_mut(BURST))
        {
            let mut hits: ArrayVec<Option<u32>, BURST> = ArrayVec::new();
            hits.extend(std::iter::repeat_n(None, keys.len()));
            cache.classify_burst(&self.incoming, keys, &mut hits);
            for (((k, p), o), &hit) in keys.iter().zip(pkts).zip(out.iter_mut()).zip(hits.iter()) {
                *o = if p.to_us && k.proto == PROTO_UDP && (k.dst_port == IKE_PORT || k.dst_port == IKE_NATT_PORT) {
                    Decision::BYPASS
                } else if let Some(rule) = hit {
                    let idx = self.in_policy[rule as usize];
                    if self.policies[idx as usize].action == Action::Encrypt && has_sa(idx) {
                        counters.add(idx, Outcome::IncomingDropped, p.len);
                        Decision::drop(DropReason::IncomingPolicy)
                    } else {
                        counters.add(idx, Outcome::IncomingPassed, p.len);
                        Decision::CLEAR
                    }
                } else {
                    Decision::CLEAR
                };
            }
        }
    }

    /// Checks decrypted packets against the policy their SA belongs to (selectors reversed, as
    /// for any incoming packet): `Clear` if it matches, else dropped.
    pub fn decrypted(&self, pkts: &[Decrypted], counters: &mut PolicyCounters, out: &mut [Decision]) {
        for (p, o) in pkts.iter().zip(out.iter_mut()) {
            let fits = self.in_range.get(p.policy as usize).is_some_and(|r| {
                self.in_rules[r.start as usize..r.end as usize].iter().any(|rule| rule.matches(&p.key))
            });
            *o = if fits {
                counters.add(p.policy, Outcome::InnerMatched, p.len);
                Decision::CLEAR
            } else {
                counters.add(p.policy, Outcome::InnerMismatch, p.len);
                Decision::drop(DropReason::InnerPolicyMismatch)
            };
        }
    }
}
