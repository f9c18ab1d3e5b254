//! One gateway on DPDK: its ports opened by device name, its worker (one, for now: an outbound
//! SA's sequence numbers belong to one core), its slow path, and the SAs and tables it starts
//! with. The caller decides where the worker runs (an lcore) and polls the slow path.
//!
//! A running gateway takes a new desired state with [`Gateway::apply`], which pushes only the
//! difference: an SA whose spec is unchanged stays installed (its sequence number and counters
//! go on), new and changed SAs are installed before the SPD is swapped, and what vanished is
//! removed after it, so a packet both states pass is never dropped on the way.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dataplane::bundle::Bundle;
use dataplane::crypto::{Engine, Transform};
use dataplane::ctl::{InboundSa, Ring, SaKey, Tables, ToWorker};
use dataplane::pipeline::{Direction, WorkerStats};
use dataplane::route::{Iface, Ifaces, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig, UdpEncap};
use dataplane::slowpath::SlowPath;
use dataplane::spd::{Policy, Spd};
use dataplane::worker::{StatsCell, Worker};

use crate::dpdk::{DpdkError, Eal, EthPort, EthQueue, Mbuf, Mempool, PortConfig, PortStats};

/// The crypto engine of the workers: ipsec-mb on x86-64, RustCrypto elsewhere.
#[cfg(target_arch = "x86_64")]
pub type DefaultEngine = dataplane::crypto::ipsec_mb::MbEngine;
/// The crypto engine of the workers: ipsec-mb on x86-64, RustCrypto elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub type DefaultEngine = dataplane::crypto::rust::RustEngine;

/// Creates a crypto engine.
pub fn new_engine() -> Result<DefaultEngine, String> {
    #[cfg(target_arch = "x86_64")]
    return DefaultEngine::new().map_err(|e| format!("ipsec-mb: {e}"));
    #[cfg(not(target_arch = "x86_64"))]
    return Ok(DefaultEngine::default());
}

/// The SA session type of the workers.
pub type Session = <DefaultEngine as Engine>::Session;
/// A worker of this gateway.
pub type GwWorker = Worker<EthQueue, DefaultEngine>;

/// An interface to open: `/interface` and its `/ip address` entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceSetup {
    /// The `/interface` name.
    pub name: String,
    /// The DPDK device name (`net_ring_x`, `net_af_packet0`, a PCI address...).
    pub device: String,
    /// Addresses and prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
    /// MTU.
    pub mtu: u16,
}

/// One SA to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSetup {
    /// The policy it serves.
    pub policy_id: u32,
    /// Sealing (outbound) or opening (inbound).
    pub direction: Direction,
    /// ESP or AH.
    pub proto: IpsecProto,
    /// Tunnel or transport.
    pub mode: Mode,
    /// SPI.
    pub spi: u32,
    /// Source (outer source in tunnel mode).
    pub src: Ipv4Addr,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Algorithms.
    pub xf: Transform,
    /// Encryption key material.
    pub enc_key: zeroize::Zeroizing<Vec<u8>>,
    /// Integrity key.
    pub auth_key: zeroize::Zeroizing<Vec<u8>>,
    /// DF after encryption.
    pub dont_fragment: DontFragment,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// Anti-replay window.
    pub replay_window: u32,
    /// ESP in UDP (NAT traversal): the ports as the packets carry them.
    pub encap: Option<UdpEncap>,
}

/// Everything a gateway starts with.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// A name for messages.
    pub name: String,
    /// Interfaces, in port order.
    pub ifaces: Vec<IfaceSetup>,
    /// Static routes (connected routes come from the addresses).
    pub routes: Vec<Route>,
    /// Policies, in order.
    pub policies: Vec<Policy>,
    /// Manual SAs.
    pub sas: Vec<SaSetup>,
}

/// A running gateway (its workers may be out on lcores). Worker `w` polls queue `w` of every
/// port; an outbound SA has a copy on every worker, and the copies share their sequence numbers.
pub struct Gateway {
    name: String,
    ports: Vec<EthPort>,
    workers: Vec<Option<GwWorker>>,
    stats: Vec<Arc<StatsCell>>,
    downs: Vec<Arc<Ring<ToWorker<Mbuf, Session>>>>,
    /// The slow path: ARP, IKE and events. Poll it from a non-worker thread.
    pub slow: SlowPath<Mbuf, Session>,
    pool: Mempool,
    installed: Installed,
}

/// Messages queued towards a worker at most.
const RING: usize = 4096;
/// How long a push waits for room on a full worker ring before giving up.
const PUSH_WAIT: Duration = Duration::from_secs(2);

/// The outbound SAs of one policy, as specified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct OutSpec {
    esp: Option<SaSetup>,
    ah: Option<SaSetup>,
}

/// What the worker runs, as last pushed: the next desired state is compared with it. SAs carry
/// the wall-clock second they were installed.
#[derive(Default)]
struct Installed {
    ifaces: Vec<IfaceKey>,
    routes: Vec<Route>,
    policies: Vec<Policy>,
    outbound: HashMap<u32, (OutSpec, u64)>,
    inbound: HashMap<SaKey, (SaSetup, u64)>,
}

/// An inbound SA built once per worker.
type InboundCopies = Vec<Box<InboundSa<Session>>>;
/// A policy's outbound SAs built once per worker.
type BundleCopies = Vec<Box<Bundle<Session>>>;

/// The differences between the installed state and a desired one, with the SAs already built.
struct Plan {
    tables: Option<Arc<Tables>>,
    /// One copy per worker.
    inbound: Vec<(SaKey, SaSetup, InboundCopies)>,
    /// One copy per worker; the copies share their sequence numbers.
    outbound: Vec<(u32, OutSpec, BundleCopies)>,
    spd: Option<Arc<Spd>>,
    gone_outbound: Vec<u32>,
    gone_inbound: Vec<SaKey>,
    kept: usize,
}

/// What [`Gateway::apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// The routing tables were swapped.
    pub tables: bool,
    /// The SPD was swapped.
    pub spd: bool,
    /// Inbound SAs installed (new or changed).
    pub inbound_installed: usize,
    /// Policies whose outbound SAs were installed (new or changed).
    pub outbound_installed: usize,
    /// Inbound SAs removed.
    pub inbound_removed: usize,
    /// Policies whose outbound SAs were removed.
    pub outbound_removed: usize,
    /// SAs (inbound ones, and outbound bundles) left alone.
    pub kept: usize,
}

impl ApplyReport {
    /// Tells whether anything was pushed to the worker.
    pub fn changed(&self) -> bool {
        self.tables
            || self.spd
            || self.inbound_installed + self.outbound_installed + self.inbound_removed + self.outbound_removed > 0
    }
}

/// What of an interface can change while the gateway runs (besides its name): addresses, MTU.
type IfaceKey = (String, Vec<(Ipv4Addr, u8)>, u16);

fn iface_key(i: &IfaceSetup) -> IfaceKey {
    (i.name.clone(), i.addrs.clone(), i.mtu)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Gateway {
    /// Opens the ports of `setup` (already created as DPDK devices), prepares one worker with
    /// the tables, the SPD and the SAs, and starts the ports.
    pub fn open(eal: &Eal, pool: &Mempool, setup: &Setup) -> Result<Gateway, String> {
        Self::open_workers(eal, pool, setup, 1)
    }

    /// Opens the ports of `setup` with `workers` queue pairs each (RSS spreads received flows
    /// over them where the device has it) and prepares as many workers.
    pub fn open_workers(eal: &Eal, pool: &Mempool, setup: &Setup, workers: u16) -> Result<Gateway, String> {
        let err = |e: DpdkError| format!("{}: {e}", setup.name);
        let workers = workers.max(1);
        let mut ports = Vec::new();
        for ifs in &setup.ifaces {
            let cfg = PortConfig { queues: workers, ..PortConfig::default() };
            let port = EthPort::open(eal, &ifs.device, pool, &cfg)
                .map_err(|e| format!("{}: interface {} ({}): {e}", setup.name, ifs.name, ifs.device))?;
            ports.push(port);
        }
        let tables = Arc::new(build_tables(&ports, &setup.ifaces, &setup.routes).map_err(err)?);
        let spd = Arc::new(Spd::new(setup.policies.clone()));
        let up = Arc::new(Ring::new(RING));
        let (mut ws, mut stats, mut downs) = (Vec::new(), Vec::new(), Vec::new());
        for w in 0..workers {
            let down = Arc::new(Ring::new(RING));
            let mut queues = Vec::new();
            for p in &mut ports {
                queues.push(p.queue(w).map_err(err)?);
            }
            let engine = new_engine()?;
            let mut worker =
                Worker::new(w, queues, engine, Arc::clone(&tables), Arc::clone(&spd), down.clone(), up.clone());
            let frag_pool = pool.clone();
            worker.set_alloc(Box::new(move || frag_pool.alloc()));
            stats.push(worker.stats_cell());
            ws.push(Some(worker));
            downs.push(down);
        }
        let slow = SlowPath::new(tables, downs.clone(), up);
        // The worker starts with these tables and this SPD; `apply` adds the SAs.
        let installed = Installed {
            ifaces: setup.ifaces.iter().map(iface_key).collect(),
            routes: setup.routes.clone(),
            policies: setup.policies.clone(),
            ..Installed::default()
        };
        let mut gw =
            Gateway { name: setup.name.clone(), ports, workers: ws, stats, downs, slow, pool: pool.clone(), installed };
        gw.apply(setup).map_err(|e| format!("{}: {e}", setup.name))?;
        for p in &gw.ports {
            p.start().map_err(err)?;
        }
        Ok(gw)
    }

    /// Tells whether `want` could be applied (its interfaces are the ports', its SAs build),
    /// changing nothing.
    pub fn check(&self, want: &Setup) -> Result<(), String> {
        self.plan(want).map(drop)
    }

    /// Makes `want` the running state, pushing only the differences: the tables if they changed,
    /// new and changed inbound SAs, then new and changed outbound SAs, then the SPD if the policy
    /// list changed, then the removal of what vanished (make before break). Unchanged SAs keep their sequence numbers and counters. On
    /// an error nothing was pushed, unless the worker ring stayed full, and then what was pushed
    /// is remembered, so the next apply completes the change.
    pub fn apply(&mut self, want: &Setup) -> Result<ApplyReport, String> {
        let plan = self.plan(want)?;
        let now = unix_now();
        let mut report = ApplyReport { kept: plan.kept, ..ApplyReport::default() };
        if let Some(tables) = plan.tables {
            self.wait_room()?;
            self.slow.set_tables(tables);
            self.installed.ifaces = want.ifaces.iter().map(iface_key).collect();
            self.installed.routes = want.routes.clone();
            report.tables = true;
        }
        for (key, spec, copies) in plan.inbound {
            for (w, sa) in copies.into_iter().enumerate() {
                self.push(w, ToWorker::Inbound { key, sa: Some(sa) })?;
            }
            self.installed.inbound.insert(key, (spec, now));
            report.inbound_installed += 1;
        }
        for (policy_id, spec, copies) in plan.outbound {
            for (w, bundle) in copies.into_iter().enumerate() {
                self.push(w, ToWorker::Outbound { policy_id, bundle: Some(bundle) })?;
            }
            self.installed.outbound.insert(policy_id, (spec, now));
            report.outbound_installed += 1;
        }
        if let Some(spd) = plan.spd {
            for w in 0..self.downs.len() {
                self.push(w, ToWorker::spd(Arc::clone(&spd)))?;
            }
            self.installed.policies = want.policies.clone();
            report.spd = true;
        }
        for policy_id in plan.gone_outbound {
            for w in 0..self.downs.len() {
                self.push(w, ToWorker::Outbound { policy_id, bundle: None })?;
            }
            self.installed.outbound.remove(&policy_id);
            report.outbound_removed += 1;
        }
        for key in plan.gone_inbound {
            for w in 0..self.downs.len() {
                self.push(w, ToWorker::Inbound { key, sa: None })?;
            }
            self.installed.inbound.remove(&key);
            report.inbound_removed += 1;
        }
        Ok(report)
    }

    /// Compares `want` with what is installed and builds what must be pushed.
    fn plan(&self, want: &Setup) -> Result<Plan, String> {
        let names: Vec<&str> = want.ifaces.iter().map(|i| i.name.as_str()).collect();
        let running: Vec<&str> = self.installed.ifaces.iter().map(|i| i.0.as_str()).collect();
        if names != running {
            return Err(format!(
                "interfaces cannot be added, removed or renamed while the gateway runs (running: {})",
                running.join(", ")
            ));
        }
        let tables = if want.ifaces.iter().map(iface_key).ne(self.installed.ifaces.iter().cloned())
            || want.routes != self.installed.routes
        {
            Some(Arc::new(build_tables(&self.ports, &want.ifaces, &want.routes).map_err(|e| e.to_string())?))
        } else {
            None
        };
        let mut want_out: HashMap<u32, OutSpec> = HashMap::new();
        let mut want_in: HashMap<SaKey, &SaSetup> = HashMap::new();
        for s in &want.sas {
            match s.direction {
                Direction::Out => {
                    let b = want_out.entry(s.policy_id).or_default();
                    match s.proto {
                        IpsecProto::Esp => b.esp = Some(s.clone()),
                        IpsecProto::Ah => b.ah = Some(s.clone()),
                    }
                }
                Direction::In => {
                    want_in.insert(SaKey { src: s.src, dst: s.dst, proto: s.proto, spi: s.spi }, s);
                }
            }
        }
        let mut engine = new_engine()?;
        let mut kept = 0;
        let mut inbound = Vec::new();
        for (&key, &s) in &want_in {
            if self.installed.inbound.get(&key).is_some_and(|(have, _)| have == s) {
                kept += 1;
                continue;
            }
            let copies = (0..self.downs.len())
                .map(|_| build_sa(&mut engine, s).map(|sa| Box::new(InboundSa { sa, policy_id: s.policy_id })))
                .collect::<Result<Vec<_>, String>>()?;
            inbound.push((key, s.clone(), copies));
        }
        let mut outbound = Vec::new();
        for (&policy_id, spec) in &want_out {
            if self.installed.outbound.get(&policy_id).is_some_and(|(have, _)| have == spec) {
                kept += 1;
                continue;
            }
            let mut copies: Vec<Box<Bundle<Session>>> = Vec::new();
            for _ in 0..self.downs.len() {
                let mut bundle = Bundle::new(
                    spec.esp.as_ref().map(|s| build_sa(&mut engine, s)).transpose()?,
                    spec.ah.as_ref().map(|s| build_sa(&mut engine, s)).transpose()?,
                );
                // Every worker's copy draws from the first copy's sequence numbers.
                if let Some(first) = copies.first() {
                    if let (Some(sa), Some(f)) = (bundle.esp.as_mut(), first.esp.as_ref()) {
                        sa.share_with(f);
                    }
                    if let (Some(sa), Some(f)) = (bundle.ah.as_deref_mut(), first.ah.as_deref()) {
                        sa.share_with(f);
                    }
                }
                copies.push(Box::new(bundle));
            }
            outbound.push((policy_id, spec.clone(), copies));
        }
        // Deterministic order: by policy, then by key, so pushes are reproducible.
        inbound.sort_by_key(|(k, s, _)| (s.policy_id, k.spi, u32::from(k.src), u32::from(k.dst)));
        outbound.sort_by_key(|(p, _, _)| *p);
        let spd = (want.policies != self.installed.policies).then(|| Arc::new(Spd::new(want.policies.clone())));
        let mut gone_outbound: Vec<u32> =
            self.installed.outbound.keys().filter(|p| !want_out.contains_key(p)).copied().collect();
        gone_outbound.sort_unstable();
        let mut gone_inbound: Vec<SaKey> =
            self.installed.inbound.keys().filter(|k| !want_in.contains_key(k)).copied().collect();
        gone_inbound.sort_by_key(|k| (k.spi, u32::from(k.src), u32::from(k.dst)));
        Ok(Plan { tables, inbound, outbound, spd, gone_outbound, gone_inbound, kept })
    }

    /// Returns the spec of an installed SA and when it was installed (seconds since the epoch).
    pub fn installed_sa(&self, direction: Direction, policy_id: u32, key: SaKey) -> Option<(&SaSetup, u64)> {
        match direction {
            Direction::In => self.installed.inbound.get(&key).map(|(s, t)| (s, *t)),
            Direction::Out => {
                let (b, t) = self.installed.outbound.get(&policy_id)?;
                let s = match key.proto {
                    IpsecProto::Esp => b.esp.as_ref(),
                    IpsecProto::Ah => b.ah.as_ref(),
                }?;
                (s.spi == key.spi).then_some((s, *t))
            }
        }
    }

    /// Returns every installed SA with its installation time (seconds since the epoch).
    pub fn installed_sas(&self) -> Vec<(&SaSetup, u64)> {
        let out = self.installed.outbound.values().flat_map(|(b, t)| b.esp.iter().chain(b.ah.iter()).map(|s| (s, *t)));
        out.chain(self.installed.inbound.values().map(|(s, t)| (s, *t))).collect()
    }

    /// Returns the number of SAs installed in the worker.
    pub fn installed_sa_count(&self) -> usize {
        let out: usize =
            self.installed.outbound.values().map(|(b, _)| b.esp.iter().count() + b.ah.iter().count()).sum();
        out + self.installed.inbound.len()
    }

    /// Returns the policies the worker runs, in order.
    pub fn policies(&self) -> &[Policy] {
        &self.installed.policies
    }

    /// Pushes a message to worker `w`, waiting a while for room on a full ring. A worker not
    /// yet out on its lcore (a large configuration loading at start) is made to take its
    /// messages here.
    fn push(&mut self, w: usize, msg: ToWorker<Mbuf, Session>) -> Result<(), String> {
        let deadline = Instant::now() + PUSH_WAIT;
        let mut msg = msg;
        loop {
            match self.downs[w].push(msg) {
                Ok(()) => return Ok(()),
                Err(m) if Instant::now() < deadline => {
                    msg = m;
                    match self.workers[w].as_mut() {
                        Some(worker) => worker.apply_control(0),
                        None => std::thread::sleep(Duration::from_micros(50)),
                    }
                }
                Err(_) => return Err(format!("{}: worker ring full", self.name)),
            }
        }
    }

    /// Waits until the worker rings have room for one more message.
    fn wait_room(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PUSH_WAIT;
        while self.downs.iter().any(|d| d.len() + 1 >= RING) {
            if Instant::now() >= deadline {
                return Err(format!("{}: worker ring full", self.name));
            }
            for worker in self.workers.iter_mut().flatten() {
                worker.apply_control(0);
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        Ok(())
    }

    /// Sends a datagram of the control plane (IKE) through the first worker, as locally
    /// originated traffic. Returns false if no buffer was free.
    pub fn originate_udp(&mut self, d: &dataplane::slowpath::Datagram) -> bool {
        self.slow.originate_udp(&self.pool, d)
    }

    /// Returns the Ethernet address of port `port`.
    pub fn mac(&self, port: usize) -> Option<[u8; 6]> {
        self.ports.get(port).and_then(|p| p.mac().ok())
    }

    /// Returns the gateway's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the control messages queued for the workers and not yet taken.
    pub fn pending_messages(&self) -> usize {
        self.downs.iter().map(|d| d.len()).sum()
    }

    /// Returns the number of workers.
    pub fn worker_count(&self) -> usize {
        self.downs.len()
    }

    /// Gives every worker a static neighbour entry (a next hop that answers no ARP), waiting for
    /// room in their rings: a configuration with thousands of SAs leaves them nearly full.
    pub fn static_neighbor(&mut self, port: u16, ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), String> {
        for w in 0..self.downs.len() {
            self.push(w, ToWorker::Neighbor { port, ip, mac })?;
        }
        Ok(())
    }

    /// Takes the next worker not yet taken, to run it on an lcore.
    pub fn take_worker(&mut self) -> Option<GwWorker> {
        self.workers.iter_mut().find_map(Option::take)
    }

    /// Returns the first worker not out on an lcore.
    pub fn worker_mut(&mut self) -> Option<&mut GwWorker> {
        self.workers.iter_mut().find_map(Option::as_mut)
    }

    /// Returns the workers' last published counters, merged.
    pub fn stats(&self) -> WorkerStats {
        let mut all = WorkerStats::default();
        for cell in &self.stats {
            all.merge(&cell.load());
        }
        all
    }

    /// Asks every worker for its SAs (they arrive through the slow path's snapshots).
    pub fn request_snapshot(&self) {
        for d in &self.downs {
            let _ = d.push(ToWorker::Snapshot);
        }
    }

    /// Polls the slow path.
    pub fn poll_slow(&mut self, now_ms: u64) -> usize {
        let pool = self.pool.clone();
        self.slow.poll(&pool, now_ms)
    }

    /// Returns each port's name and device counters.
    pub fn port_stats(&self) -> Vec<(String, Option<PortStats>)> {
        self.ports.iter().map(|p| (p.name().to_owned(), p.stats().ok())).collect()
    }

    /// Stops the ports.
    pub fn stop(&self) {
        for p in &self.ports {
            let _ = p.stop();
        }
    }
}

/// Builds the routing tables of `ifaces` on `ports` (their MACs come from the devices).
fn build_tables(ports: &[EthPort], ifaces: &[IfaceSetup], routes: &[Route]) -> Result<Tables, DpdkError> {
    let mut v = Vec::new();
    for (i, (ifs, port)) in ifaces.iter().zip(ports).enumerate() {
        v.push(Iface {
            port: i as u16,
            name: ifs.name.clone(),
            mac: port.mac()?,
            mtu: ifs.mtu,
            addrs: ifs.addrs.clone(),
        });
    }
    Ok(Tables::new(Ifaces::new(v), routes))
}

/// Builds one SA with its crypto session.
fn build_sa(engine: &mut DefaultEngine, s: &SaSetup) -> Result<Sa<Session>, String> {
    let cfg = SaConfig {
        spi: s.spi,
        proto: s.proto,
        mode: s.mode,
        src: s.src,
        dst: s.dst,
        xf: s.xf,
        enc_key: &s.enc_key,
        auth_key: &s.auth_key,
        replay_window: s.replay_window,
        lifetimes: s.lifetimes,
        dont_fragment: s.dont_fragment,
    };
    let mut sa = Sa::new(engine, &cfg, 0).map_err(|e| format!("SA {}: {e}", s.spi))?;
    sa.set_udp_encap(s.encap);
    Ok(sa)
}

impl dataplane::buf::BufAlloc for Mempool {
    type Buf = Mbuf;
    fn alloc(&self) -> Option<Mbuf> {
        Mempool::alloc(self)
    }
}
