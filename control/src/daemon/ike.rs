//! The control process's IKE: the sans-IO engine ([`Endpoint`]) fed with the datagrams and
//! events the dataplane queues for it, and the SA pairs it negotiates, kept here until they
//! expire, for the desired state pushed to the dataplane.
//!
//! Life of an SA pair: installed when negotiated (the dataplane installs inbound before
//! outbound); at its soft lifetime (time here, bytes from the dataplane's events) a new quick
//! mode starts; when the new pair is up it carries the outbound traffic and the old pair's
//! inbound SAs linger a little, so packets the peer sent on them still decrypt; at the hard
//! lifetime, or when the peer deletes it, the pair is removed. Nothing here does I/O: the
//! caller moves datagrams, events and the desired state.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dataplane::ctl::SaKey;
use dataplane::pipeline::Direction;
use dataplane::sa::{IpsecProto, SaEvent};
use dataplane::spd::Action;

use super::wire::{ControlEvent, Datagram, InstalledSpec};
use crate::compile::{BundleSpec, PolicySas};
use crate::config::{Config, IpAddress, Policy};
use crate::ike::{ChildSa, Endpoint, EndpointConfig, Event, Role};

/// How long an old pair's inbound SAs keep decrypting after a new pair replaced it.
pub const LINGER: Duration = Duration::from_secs(10);
/// An acquire that cannot start is logged at most this often per policy.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// One negotiated SA pair.
struct Pair {
    policy_id: u32,
    /// The policy as it was when the pair was negotiated: a changed policy drops its pairs.
    policy: Policy,
    peer: Ipv4Addr,
    inbound: BundleSpec,
    outbound: BundleSpec,
    /// When to start the rekey; `None` once started.
    soft_at: Option<Instant>,
    hard_at: Instant,
    /// Set once a newer pair of the policy carries the outbound traffic.
    linger_until: Option<Instant>,
}

impl Pair {
    fn inbound_keys(&self) -> Vec<SaKey> {
        keys(&self.inbound)
    }

    /// Tells whether the dataplane SA (`spi`, `dst`, `proto`) is one of this pair's.
    fn holds(&self, spi: u32, dst: Ipv4Addr, proto: dataplane::sa::IpsecProto) -> bool {
        keys(&self.inbound)
            .iter()
            .chain(keys(&self.outbound).iter())
            .any(|k| k.spi == spi && k.dst == dst && k.proto == proto)
    }
}

fn keys(b: &BundleSpec) -> Vec<SaKey> {
    b.esp.iter().chain(b.ah.iter()).map(|s| s.key).collect()
}

/// The IKE daemon's state between the engine and the dataplane.
pub struct IkeDriver {
    ep: Endpoint,
    local: Ipv4Addr,
    force_nat_t: bool,
    pairs: Vec<Pair>,
    changed: bool,
    logged: HashMap<u32, Instant>,
}

/// Returns the enabled encrypt policy `id` if IKE keys it (it names a proposal, not a manual SA).
fn ike_policy(conf: &Config, id: u32) -> Option<Policy> {
    conf.entries::<Policy>()
        .iter()
        .find(|e| e.id == id && !e.disabled && e.item.action == Action::Encrypt && e.item.manual_sa.is_none())
        .map(|e| e.item.clone())
}

/// Returns the address IKE speaks from: the sa-src-address of the first enabled encrypt policy
/// negotiated by IKE, else the first `/ip address`.
pub fn local_address(conf: &Config) -> Ipv4Addr {
    let from_policy = conf
        .entries::<Policy>()
        .iter()
        .filter(|e| !e.disabled && e.item.action == Action::Encrypt && e.item.manual_sa.is_none())
        .map(|e| e.item.sa_src_address)
        .find(|a| !a.is_unspecified());
    from_policy
        .or_else(|| conf.entries::<IpAddress>().iter().find(|e| !e.disabled).map(|e| e.item.address.addr))
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
}

impl IkeDriver {
    /// Returns a driver for a configuration; `force_nat_t` makes peers encapsulate ESP in UDP
    /// even without a NAT between us (needed by peers with only userspace ESP in UDP).
    pub fn new(conf: &Config, force_nat_t: bool) -> Self {
        let local = local_address(conf);
        IkeDriver {
            ep: endpoint(local, conf, force_nat_t),
            local,
            force_nat_t,
            pairs: Vec::new(),
            changed: false,
            logged: HashMap::new(),
        }
    }

    /// Takes a new configuration. Pairs whose policy is gone, disabled or changed are removed
    /// (and the peer told); a new local address restarts the engine.
    pub fn set_config(&mut self, now: Instant, conf: &Config) {
        let local = local_address(conf);
        let stale: Vec<usize> = (0..self.pairs.len())
            .filter(|&i| ike_policy(conf, self.pairs[i].policy_id).as_ref() != Some(&self.pairs[i].policy))
            .collect();
        for i in stale.into_iter().rev() {
            self.remove(now, i, "its policy changed");
        }
        if local != self.local {
            println!("ike: local address {} (was {}): restarting IKE", local, self.local);
            for i in (0..self.pairs.len()).rev() {
                self.remove(now, i, "the local address changed");
            }
            self.ep = endpoint(local, conf, self.force_nat_t);
            self.local = local;
        } else {
            self.ep.set_config(conf.clone());
        }
    }

    /// Takes over the SAs a previous control process negotiated, which the dataplane kept
    /// (`unix_now`: the wall clock, against which their installation times count): those of
    /// enabled encrypt policies negotiated by IKE. They go on carrying traffic while new ones are
    /// negotiated at once, since this process has no ISAKMP SA to rekey them with.
    pub fn adopt(&mut self, now: Instant, unix_now: u64, sas: &[InstalledSpec]) {
        let mut ids: Vec<u32> = sas.iter().map(|s| s.policy_id).collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let Some(policy) = ike_policy(self.ep.config(), id) else { continue };
            // Inbound SAs by installation time: each group is one negotiated pair; the newest
            // goes with the outbound SAs, older ones were lingering already.
            let mut inbound: BTreeMap<u64, BundleSpec> = BTreeMap::new();
            let mut outbound = BundleSpec::default();
            let mut hard_at = None::<Instant>;
            for s in sas.iter().filter(|s| s.policy_id == id) {
                let age = unix_now.saturating_sub(s.added);
                let left = match s.spec.lifetimes.hard_secs {
                    0 => u64::MAX / 4,
                    h => h.saturating_sub(age),
                };
                let at = now + Duration::from_secs(left.min(u64::from(u32::MAX)));
                hard_at = Some(hard_at.map_or(at, |t| t.min(at)));
                let b = match s.direction {
                    Direction::In => inbound.entry(s.added).or_default(),
                    Direction::Out => &mut outbound,
                };
                match s.spec.key.proto {
                    IpsecProto::Esp => b.esp = Some(s.spec.clone()),
                    IpsecProto::Ah => b.ah = Some(s.spec.clone()),
                }
            }
            let Some(hard_at) = hard_at.filter(|&t| t > now) else { continue };
            let newest = inbound.keys().next_back().copied();
            for (added, bundle) in inbound {
                let current = Some(added) == newest;
                self.pairs.push(Pair {
                    policy_id: id,
                    policy: policy.clone(),
                    peer: policy.sa_dst_address,
                    inbound: bundle,
                    outbound: if current { std::mem::take(&mut outbound) } else { BundleSpec::default() },
                    soft_at: None,
                    hard_at,
                    linger_until: (!current).then_some(now + LINGER),
                });
            }
            println!(
                "ike: policy {id}: SAs with {} adopted from the dataplane; negotiating new ones",
                policy.sa_dst_address
            );
            self.acquire(now, id);
        }
        self.drain(now);
    }

    /// Processes a datagram the dataplane received for us.
    pub fn datagram(&mut self, now: Instant, d: &Datagram) {
        self.ep.handle(now, SocketAddr::V4(d.remote), &d.payload);
        self.drain(now);
    }

    /// Processes an acquire or an SA event from the dataplane.
    pub fn event(&mut self, now: Instant, ev: ControlEvent) {
        match ev {
            // A pair that is up answers it: the packet met the worker before its SAs did.
            ControlEvent::Acquire { policy_id } if self.current(policy_id) => {}
            ControlEvent::Acquire { policy_id } => self.acquire(now, policy_id),
            ControlEvent::Sa { spi, dst, proto, event } => {
                let Some(i) = self.pairs.iter().position(|p| p.holds(spi, dst, proto)) else { return };
                match event {
                    SaEvent::SoftExpired => self.rekey(now, i),
                    SaEvent::HardExpired => self.remove(now, i, "hard lifetime (bytes) reached"),
                    SaEvent::SeqExhausted => self.remove(now, i, "sequence numbers used up"),
                }
            }
        }
        self.drain(now);
    }

    /// Runs what is due: the engine's timers, rekeys, expiries and the end of lingering.
    pub fn tick(&mut self, now: Instant) {
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        let mut i = 0;
        while i < self.pairs.len() {
            let p = &self.pairs[i];
            if p.hard_at <= now {
                self.remove(now, i, "hard lifetime reached");
                continue;
            }
            if p.linger_until.is_some_and(|t| t <= now) {
                self.remove(now, i, "replaced");
                continue;
            }
            if p.linger_until.is_none() && p.soft_at.is_some_and(|t| t <= now) {
                self.rekey(now, i);
            }
            i += 1;
        }
        self.drain(now);
    }

    /// Returns when [`IkeDriver::tick`] should next run.
    pub fn next_timeout(&self) -> Option<Instant> {
        let pairs = self.pairs.iter().flat_map(|p| [Some(p.hard_at), p.linger_until, p.soft_at]).flatten();
        self.ep.poll_timeout().into_iter().chain(pairs).min()
    }

    /// Returns the datagrams to send.
    pub fn transmits(&mut self) -> Vec<Datagram> {
        std::iter::from_fn(|| self.ep.poll_transmit())
            .filter_map(|t| match t.remote {
                SocketAddr::V4(remote) => {
                    Some(Datagram { local: SocketAddrV4::new(self.local, t.local_port), remote, payload: t.bytes })
                }
                SocketAddr::V6(_) => None,
            })
            .collect()
    }

    /// Tells whether the negotiated SAs changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Returns the SAs to install: every pair's inbound SAs, and the outbound SAs of the newest
    /// pair of each policy.
    pub fn sas(&self) -> Vec<PolicySas> {
        self.pairs
            .iter()
            .map(|p| PolicySas {
                policy_id: p.policy_id,
                outbound: if p.linger_until.is_none() { p.outbound.clone() } else { BundleSpec::default() },
                inbound: p.inbound.clone(),
            })
            .collect()
    }

    /// Returns the engine's counters and the pairs, as `name=value` lines.
    pub fn stats(&self) -> String {
        let st = self.ep.stats();
        let mut out = format!(
            "ike-local={}\nike-phase1={}\nike-sa-pairs={}\nike-received={}\nike-sent={}\nike-retransmits={}\n\
             ike-dropped={}\nike-evicted={}\n",
            self.local,
            self.ep.phase1_count(),
            self.pairs.len(),
            st.received,
            st.sent,
            st.retransmits,
            st.total_dropped(),
            st.evicted
        );
        if let Some((reason, why)) = st.last {
            out.push_str(&format!("ike-last-drop={reason:?}: {why}\n"));
        }
        out
    }

    /// Tells whether a policy has a pair that carries its outbound traffic.
    fn current(&self, policy_id: u32) -> bool {
        self.pairs.iter().any(|p| p.policy_id == policy_id && p.linger_until.is_none())
    }

    fn acquire(&mut self, now: Instant, policy_id: u32) {
        if let Err(e) = self.ep.acquire(now, policy_id) {
            let quiet = self.logged.get(&policy_id).is_some_and(|&t| now.duration_since(t) < LOG_EVERY);
            if !quiet {
                self.logged.insert(policy_id, now);
                eprintln!("ike: acquire for policy {policy_id} failed: {e}");
            }
        }
    }

    fn rekey(&mut self, now: Instant, i: usize) {
        let p = &mut self.pairs[i];
        if p.soft_at.take().is_none() || p.linger_until.is_some() {
            return;
        }
        let id = p.policy_id;
        println!("ike: policy {id}: soft lifetime reached, rekeying");
        self.acquire(now, id);
    }

    fn remove(&mut self, now: Instant, i: usize, why: &str) {
        let p = self.pairs.remove(i);
        let spis: Vec<String> = p.inbound_keys().iter().map(|k| format!("{:#x}", k.spi)).collect();
        println!("ike: policy {}: SAs with {} removed ({why}); inbound {}", p.policy_id, p.peer, spis.join(","));
        self.ep.delete_child(now, &p.inbound_keys());
        self.changed = true;
    }

    /// Handles what the engine reported.
    fn drain(&mut self, now: Instant) {
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::SaEstablished(child) => self.established(now, *child),
                Event::SaDeleted { peer, policy_id, inbound, .. } => {
                    if let Some(i) = self.pairs.iter().position(|p| p.inbound_keys() == inbound) {
                        let p = self.pairs.remove(i);
                        println!("ike: policy {policy_id}: {peer} deleted SAs {:?}", p.inbound_keys());
                        self.changed = true;
                    }
                }
                Event::Phase1Established { peer, remote, role, mode, nat, .. } => {
                    println!(
                        "ike: phase 1 with {peer} ({remote}) established, {mode:?} mode as {}{}",
                        role_name(role),
                        if nat { ", NAT traversal" } else { "" }
                    );
                }
                Event::Phase1Deleted { peer, .. } => println!("ike: phase 1 with {peer} gone"),
                Event::Failed { peer, policy_id, reason } => {
                    let policy = policy_id.map_or(String::new(), |p| format!(" for policy {p}"));
                    eprintln!("ike: negotiation with {peer}{policy} failed: {reason:?}");
                }
            }
        }
    }

    fn established(&mut self, now: Instant, c: ChildSa) {
        let Some(policy) = ike_policy(self.ep.config(), c.policy_id) else {
            // The policy went away during the negotiation: forget the SAs at once.
            self.ep.delete_child(now, &keys(&c.inbound));
            return;
        };
        let lifetimes = c.inbound.esp.as_ref().or(c.inbound.ah.as_ref()).map(|s| s.lifetimes).unwrap_or_default();
        let hard_at = now + Duration::from_secs(c.life_secs.max(1));
        let soft_at = (lifetimes.soft_secs > 0).then(|| now + Duration::from_secs(lifetimes.soft_secs));
        // The older pairs of the policy stop sending now and stop receiving after the linger.
        for p in self.pairs.iter_mut().filter(|p| p.policy_id == c.policy_id && p.linger_until.is_none()) {
            p.linger_until = Some((now + LINGER).min(p.hard_at));
        }
        let spi = |b: &BundleSpec| keys(b).iter().map(|k| format!("{:#x}", k.spi)).collect::<Vec<_>>().join(",");
        println!(
            "ike: policy {}: SAs with {} up as {} (proposal {}, in {}, out {}, {} s{})",
            c.policy_id,
            c.peer,
            role_name(c.role),
            c.proposal,
            spi(&c.inbound),
            spi(&c.outbound),
            c.life_secs,
            if c.encap.is_some() { ", ESP in UDP" } else { "" }
        );
        self.pairs.push(Pair {
            policy_id: c.policy_id,
            policy,
            peer: c.peer,
            inbound: c.inbound,
            outbound: c.outbound,
            soft_at,
            hard_at,
            linger_until: None,
        });
        self.changed = true;
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Initiator => "initiator",
        Role::Responder => "responder",
    }
}

fn endpoint(local: Ipv4Addr, conf: &Config, force_nat_t: bool) -> Endpoint {
    let mut ec = EndpointConfig::new(local);
    ec.force_nat_t = force_nat_t;
    Endpoint::new(ec, conf.clone(), Box::new(rand_core::OsRng))
}
