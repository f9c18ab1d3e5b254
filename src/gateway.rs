//! One gateway on DPDK: its ports opened by device name, its worker (one, for now: an outbound
//! SA's sequence numbers belong to one core), its slow path, and the SAs and tables it starts
//! with. The caller decides where the worker runs (an lcore) and polls the slow path.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::bundle::Bundle;
use dataplane::crypto::{Engine, Transform};
use dataplane::ctl::{InboundSa, Ring, SaKey, Tables, ToWorker};
use dataplane::pipeline::{Direction, WorkerStats};
use dataplane::route::{Iface, Ifaces, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};
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
#[derive(Clone, Debug)]
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

/// A running gateway (its worker may be out on an lcore).
pub struct Gateway {
    name: String,
    ports: Vec<EthPort>,
    worker: Option<GwWorker>,
    stats: Arc<StatsCell>,
    down: Arc<Ring<ToWorker<Mbuf, Session>>>,
    /// The slow path: ARP, IKE and events. Poll it from a non-worker thread.
    pub slow: SlowPath<Mbuf, Session>,
    pool: Mempool,
}

/// Messages queued towards a worker at most.
const RING: usize = 4096;

impl Gateway {
    /// Opens the ports of `setup` (already created as DPDK devices), prepares the worker with
    /// the tables, the SPD and the SAs, and starts the ports.
    pub fn open(eal: &Eal, pool: &Mempool, setup: &Setup) -> Result<Gateway, String> {
        let err = |e: DpdkError| format!("{}: {e}", setup.name);
        let mut ports = Vec::new();
        let mut ifaces = Vec::new();
        for (i, ifs) in setup.ifaces.iter().enumerate() {
            let port = EthPort::open(eal, &ifs.device, pool, &PortConfig::default())
                .map_err(|e| format!("{}: interface {} ({}): {e}", setup.name, ifs.name, ifs.device))?;
            ifaces.push(Iface {
                port: i as u16,
                name: ifs.name.clone(),
                mac: port.mac().map_err(err)?,
                mtu: ifs.mtu,
                addrs: ifs.addrs.clone(),
            });
            ports.push(port);
        }
        let tables = Arc::new(Tables::new(Ifaces::new(ifaces), &setup.routes));
        let spd = Arc::new(Spd::new(setup.policies.clone()));
        let down = Arc::new(Ring::new(RING));
        let up = Arc::new(Ring::new(RING));
        let mut queues = Vec::new();
        for p in &mut ports {
            queues.push(p.queue(0).map_err(err)?);
        }
        let worker = Worker::new(0, queues, new_engine()?, Arc::clone(&tables), spd, down.clone(), up.clone());
        let stats = worker.stats_cell();
        let slow = SlowPath::new(tables, vec![down.clone()], up);
        let mut gw =
            Gateway { name: setup.name.clone(), ports, worker: Some(worker), stats, down, slow, pool: pool.clone() };
        gw.install_sas(&setup.sas)?;
        for p in &gw.ports {
            p.start().map_err(err)?;
        }
        Ok(gw)
    }

    fn install_sas(&mut self, sas: &[SaSetup]) -> Result<(), String> {
        let mut engine = new_engine()?;
        let mut bundles: Vec<(u32, Bundle<Session>)> = Vec::new();
        for s in sas {
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
            let sa = Sa::new(&mut engine, &cfg, 0).map_err(|e| format!("{}: SA {}: {e}", self.name, s.spi))?;
            match s.direction {
                Direction::Out => {
                    let i = match bundles.iter().position(|(p, _)| *p == s.policy_id) {
                        Some(i) => i,
                        None => {
                            bundles.push((s.policy_id, Bundle { esp: None, ah: None }));
                            bundles.len() - 1
                        }
                    };
                    let b = &mut bundles[i].1;
                    match s.proto {
                        IpsecProto::Esp => b.esp = Some(sa),
                        IpsecProto::Ah => b.ah = Some(sa),
                    }
                }
                Direction::In => {
                    let key = SaKey { src: s.src, dst: s.dst, proto: s.proto, spi: s.spi };
                    let sa = Some(Box::new(InboundSa { sa, policy_id: s.policy_id }));
                    self.send(ToWorker::Inbound { key, sa })?;
                }
            }
        }
        for (policy_id, b) in bundles {
            self.send(ToWorker::Outbound { policy_id, bundle: Some(Box::new(b)) })?;
        }
        Ok(())
    }

    fn send(&self, msg: ToWorker<Mbuf, Session>) -> Result<(), String> {
        self.down.push(msg).map_err(|_| format!("{}: worker ring full", self.name))
    }

    /// Returns the Ethernet address of port `port`.
    pub fn mac(&self, port: usize) -> Option<[u8; 6]> {
        self.ports.get(port).and_then(|p| p.mac().ok())
    }

    /// Returns the gateway's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the worker, to run it on an lcore.
    pub fn take_worker(&mut self) -> Option<GwWorker> {
        self.worker.take()
    }

    /// Returns the worker while it is not out on an lcore.
    pub fn worker_mut(&mut self) -> Option<&mut GwWorker> {
        self.worker.as_mut()
    }

    /// Returns the worker's last published counters.
    pub fn stats(&self) -> WorkerStats {
        self.stats.load()
    }

    /// Asks the worker for its SAs (they arrive through the slow path's snapshots).
    pub fn request_snapshot(&self) {
        let _ = self.down.push(ToWorker::Snapshot);
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

impl dataplane::buf::BufAlloc for Mempool {
    type Buf = Mbuf;
    fn alloc(&self) -> Option<Mbuf> {
        Mempool::alloc(self)
    }
}
