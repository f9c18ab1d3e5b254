//! Ethdev ports: a DPDK device (a NIC or a `--vdev` virtual device) looked up by name and
//! configured with N rx/tx queue pairs, RSS where the device has it, and promiscuous mode; its
//! link state and counters; and [`EthQueue`], one queue pair implementing the dataplane's
//! [`Port`] for the one worker that polls it.

use std::ffi::{CString, c_int};
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use dataplane::buf::{BURST, Burst};
use dataplane::port::Port;

use super::eal::{self, Eal};
use super::error::{DpdkError, errno};
use super::ffi;
use super::generator::Generator;
use super::mbuf::Mbuf;
use super::mempool::Mempool;

/// Queue pairs a port can have here (the width of the handed-out mask).
pub const MAX_QUEUES: u16 = 64;

/// RSS hash types asked for, restricted to what the device offers.
const RSS_HF: u64 = ffi::RTE_ETH_RSS_IP | ffi::RTE_ETH_RSS_UDP | ffi::RTE_ETH_RSS_TCP;

/// Numbers the rings of crossed ring pairs, for their unique names.
static NEXT_RING: AtomicU32 = AtomicU32::new(0);

/// How to configure a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Rx/tx queue pairs, one per worker polling the port (1..=[`MAX_QUEUES`]).
    pub queues: u16,
    /// Receive descriptors per queue (DPDK adjusts it to the device's limits).
    pub rx_desc: u16,
    /// Transmit descriptors per queue (likewise adjusted).
    pub tx_desc: u16,
    /// Receive every frame whatever its destination MAC (ignored where unsupported).
    pub promiscuous: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig { queues: 1, rx_desc: 1024, tx_desc: 1024, promiscuous: true }
    }
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// True when the link is up.
    pub up: bool,
    /// Speed in Mbit/s; 0 when down or unknown.
    pub speed_mbps: u32,
    /// True for full duplex.
    pub full_duplex: bool,
}

/// Device counters (`rte_eth_stats`), since start or the last reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped because no rx descriptor was free (we polled too slowly).
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Receive failures for lack of mbufs in the pool.
    pub rx_nombuf: u64,
}

/// A configured ethdev port. Dropping it stops and closes the device for good.
///
/// Stop it only after its queues' workers stopped polling: DPDK does not synchronise
/// `rte_eth_dev_stop` with rx/tx bursts.
#[derive(Debug)]
pub struct EthPort {
    inner: Arc<PortInner>,
    /// Bit q set: queue pair q was handed out.
    taken: u64,
}

#[derive(Debug)]
struct PortInner {
    id: u16,
    name: String,
    queues: u16,
    rss: bool,
    started: AtomicBool,
    /// The rx queues allocate from it: it must outlive them.
    pool: Mempool,
}

impl EthPort {
    /// Finds the device `name` (a `--vdev` name such as `net_ring0`, or a PCI address) and
    /// configures `cfg.queues` rx/tx queue pairs that receive into `pool`. Not started yet.
    pub fn open(_eal: &Eal, name: &str, pool: &Mempool, cfg: &PortConfig) -> Result<EthPort, DpdkError> {
        let op = |what: &str| format!("{what}({name})");
        let cname = CString::new(name).map_err(|_| DpdkError::new(op("port name"), errno::EINVAL))?;
        let mut id = 0u16;
        // SAFETY: EAL is running; the name is a valid C string and `id` a valid out pointer.
        DpdkError::check(&op("rte_eth_dev_get_port_by_name"), unsafe {
            ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id)
        })?;
        if cfg.queues == 0 || cfg.queues > MAX_QUEUES {
            return Err(DpdkError::new(op(&format!("{} queues", cfg.queues)), errno::EINVAL));
        }

        let mut info = MaybeUninit::<ffi::rte_eth_dev_info>::zeroed();
        // SAFETY: `id` is a valid port; DPDK fills the struct.
        DpdkError::check(&op("rte_eth_dev_info_get"), unsafe { ffi::rte_eth_dev_info_get(id, info.as_mut_ptr()) })?;
        // SAFETY: zeroed is a valid rte_eth_dev_info (plain integers and pointers), now filled.
        let info = unsafe { info.assume_init() };
        if cfg.queues > info.max_rx_queues || cfg.queues > info.max_tx_queues {
            let what =
                format!("{} queues (device max rx {} tx {})", cfg.queues, info.max_rx_queues, info.max_tx_queues);
            return Err(DpdkError::new(op(&what), errno::EINVAL));
        }

        // SAFETY: all-zero is rte_eth_conf's documented default (no offloads, no multi-queue mode).
        let mut conf: ffi::rte_eth_conf = unsafe { MaybeUninit::zeroed().assume_init() };
        let rss_hf = RSS_HF & info.flow_type_rss_offloads;
        let rss = cfg.queues > 1 && rss_hf != 0;
        if rss {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: valid port, stopped (never started), conf fully initialised.
        DpdkError::check(&op("rte_eth_dev_configure"), unsafe {
            ffi::rte_eth_dev_configure(id, cfg.queues, cfg.queues, &conf)
        })?;
        // From here on an early return drops `port`, which closes the device.
        let port =
            PortInner { id, name: name.to_owned(), queues: cfg.queues, rss, started: false.into(), pool: pool.clone() };
        eal::retain();

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port; both are valid in/out pointers.
        DpdkError::check(&op("rte_eth_dev_adjust_nb_rx_tx_desc"), unsafe {
            ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc)
        })?;
        // SAFETY: valid port. SOCKET_ID_ANY (-1) for virtual devices, which DPDK also accepts.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(id) } as u32;
        for q in 0..cfg.queues {
            // SAFETY: valid configured port and queue index; null conf means the device's
            // defaults; the pool outlives the queue (PortInner keeps a clone).
            DpdkError::check(&op("rte_eth_rx_queue_setup"), unsafe {
                ffi::rte_eth_rx_queue_setup(id, q, rx_desc, socket, std::ptr::null(), pool.as_ptr())
            })?;
            // SAFETY: valid configured port and queue index; null conf means defaults.
            DpdkError::check(&op("rte_eth_tx_queue_setup"), unsafe {
                ffi::rte_eth_tx_queue_setup(id, q, tx_desc, socket, std::ptr::null())
            })?;
        }
        if cfg.promiscuous {
            // SAFETY: valid port.
            let ret = unsafe { ffi::rte_eth_promiscuous_enable(id) };
            if ret != -errno::ENOTSUP {
                DpdkError::check(&op("rte_eth_promiscuous_enable"), ret)?;
            }
        }
        Ok(EthPort { inner: Arc::new(port), taken: 0 })
    }

    /// Creates two ethdev ports wired to each other, `net_ring_<a>` and `net_ring_<b>`: what
    /// one transmits on queue q the other receives on queue q, through one ring of `slots`
    /// packets per direction and queue. Returns the two device names, to [`open`](Self::open).
    ///
    /// A link between two gateways in one process (a `--vdev net_ring0` is a loopback, and a
    /// second vdev cannot attach to its rings). The rings live until the process exits.
    pub fn ring_pair(_eal: &Eal, a: &str, b: &str, queues: u16, slots: u32) -> Result<[String; 2], DpdkError> {
        let mut rings = [Vec::new(), Vec::new()]; // [a → b, b → a]
        for _ in 0..queues {
            for dir in &mut rings {
                let name = format!("gw_ring_{}", NEXT_RING.fetch_add(1, Ordering::Relaxed));
                let cname = CString::new(name.clone()).expect("no NUL");
                let flags = ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ | ffi::RING_F_EXACT_SZ;
                // SAFETY: EAL is running; DPDK copies the name. One producer (the sending queue's
                // poller) and one consumer (the receiving queue's) per ring, as the flags say.
                let r = unsafe { ffi::rte_ring_create(cname.as_ptr(), slots, ffi::SOCKET_ID_ANY, flags) };
                if r.is_null() {
                    return Err(DpdkError::from_rte_errno(format!("rte_ring_create({name}, {slots})")));
                }
                dir.push(r);
            }
        }
        let mut names = [String::new(), String::new()];
        for (i, (name, rx, tx)) in [(a, &rings[1], &rings[0]), (b, &rings[0], &rings[1])].into_iter().enumerate() {
            let cname =
                CString::new(name).map_err(|_| DpdkError::new(format!("ring port name {name:?}"), errno::EINVAL))?;
            let n = u32::from(queues);
            // SAFETY: EAL is running; rx and tx hold `queues` valid rings each, which are never
            // freed; DPDK copies the name and the ring pointers.
            let ret = unsafe {
                ffi::rte_eth_from_rings(cname.as_ptr(), rx.as_ptr(), n, tx.as_ptr(), n, ffi::rte_socket_id())
            };
            if ret < 0 {
                return Err(DpdkError::from_rte_errno(format!("rte_eth_from_rings({name})")));
            }
            names[i] = format!("net_ring_{name}");
        }
        Ok(names)
    }

    /// Returns the DPDK port id.
    pub fn id(&self) -> u16 {
        self.inner.id
    }

    /// Returns the device name the port was opened by.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Returns the number of rx/tx queue pairs.
    pub fn queues(&self) -> u16 {
        self.inner.queues
    }

    /// Returns true if RSS spreads received packets over the queues.
    pub fn rss(&self) -> bool {
        self.inner.rss
    }

    /// Returns the pool the rx queues receive into.
    pub fn pool(&self) -> &Mempool {
        &self.inner.pool
    }

    /// Hands out queue pair `q` for one worker to poll; each pair is handed out once.
    pub fn queue(&mut self, q: u16) -> Result<EthQueue, DpdkError> {
        if q >= self.inner.queues {
            return Err(DpdkError::new(
                format!("queue {q} of {} ({} queues)", self.inner.name, self.inner.queues),
                errno::EINVAL,
            ));
        }
        if self.taken & (1 << q) != 0 {
            return Err(DpdkError::new(format!("queue {q} of {}: already handed out", self.inner.name), errno::EBUSY));
        }
        self.taken |= 1 << q;
        Ok(EthQueue { port: self.inner.id, queue: q, inner: Arc::clone(&self.inner), source: None })
    }

    /// Starts the device: its queues begin to receive and transmit.
    pub fn start(&self) -> Result<(), DpdkError> {
        // SAFETY: valid, configured port with every queue set up.
        DpdkError::check(&format!("rte_eth_dev_start({})", self.inner.name), unsafe {
            ffi::rte_eth_dev_start(self.inner.id)
        })?;
        self.inner.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the device (bursts then return nothing); it can be started again.
    pub fn stop(&self) -> Result<(), DpdkError> {
        self.inner.stop()
    }

    /// Returns true between [`start`](Self::start) and [`stop`](Self::stop).
    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// Returns the link state, without waiting for auto-negotiation.
    pub fn link(&self) -> Result<Link, DpdkError> {
        // SAFETY: all-zero is a valid rte_eth_link.
        let mut link: ffi::rte_eth_link = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: valid port and out pointer.
        DpdkError::check(&format!("rte_eth_link_get_nowait({})", self.inner.name), unsafe {
            ffi::rte_eth_link_get_nowait(self.inner.id, &mut link)
        })?;
        let up = u32::from(link.link_status()) == ffi::RTE_ETH_LINK_UP;
        let speed = link.link_speed;
        let speed_mbps = if !up || speed == ffi::RTE_ETH_SPEED_NUM_UNKNOWN { 0 } else { speed };
        Ok(Link { up, speed_mbps, full_duplex: u32::from(link.link_duplex()) == ffi::RTE_ETH_LINK_FULL_DUPLEX })
    }

    /// Returns the device counters.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        // SAFETY: all-zero is a valid rte_eth_stats.
        let mut s: ffi::rte_eth_stats = unsafe { MaybeUninit::zeroed().assume_init() };
        // SAFETY: valid port and out pointer.
        DpdkError::check(&format!("rte_eth_stats_get({})", self.inner.name), unsafe {
            ffi::rte_eth_stats_get(self.inner.id, &mut s)
        })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Zeroes the device counters.
    pub fn reset_stats(&self) -> Result<(), DpdkError> {
        // SAFETY: valid port.
        DpdkError::check(&format!("rte_eth_stats_reset({})", self.inner.name), unsafe {
            ffi::rte_eth_stats_reset(self.inner.id)
        })?;
        Ok(())
    }

    /// Returns the device's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut addr = ffi::rte_ether_addr { addr_bytes: [0; 6] };
        // SAFETY: valid port and out pointer.
        DpdkError::check(&format!("rte_eth_macaddr_get({})", self.inner.name), unsafe {
            ffi::rte_eth_macaddr_get(self.inner.id, &mut addr)
        })?;
        Ok(addr.addr_bytes)
    }

    /// Returns the device's MTU (IP packet size, without the Ethernet header).
    pub fn mtu(&self) -> Result<u16, DpdkError> {
        let mut mtu = 0u16;
        // SAFETY: valid port and out pointer.
        DpdkError::check(&format!("rte_eth_dev_get_mtu({})", self.inner.name), unsafe {
            ffi::rte_eth_dev_get_mtu(self.inner.id, &mut mtu)
        })?;
        Ok(mtu)
    }
}

impl PortInner {
    fn stop(&self) -> Result<(), DpdkError> {
        if !self.started.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        // SAFETY: valid, started port.
        DpdkError::check(&format!("rte_eth_dev_stop({})", self.name), unsafe { ffi::rte_eth_dev_stop(self.id) })?;
        Ok(())
    }
}

impl Drop for PortInner {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("ipsecgw: {e}");
        }
        // SAFETY: valid, stopped port; no EthPort or EthQueue is left to use it (this is the
        // last Arc), and the pool it receives into is still held by `self.pool`.
        let ret: c_int = unsafe { ffi::rte_eth_dev_close(self.id) };
        if ret < 0 {
            eprintln!("ipsecgw: {}", DpdkError::new(format!("rte_eth_dev_close({})", self.name), -ret));
        }
        eal::release();
    }
}

/// One rx/tx queue pair of a port, for the one worker that polls it (`Send`, not `Clone`).
/// It keeps the port open; bursts on a stopped port return nothing.
#[derive(Debug)]
pub struct EthQueue {
    port: u16,
    queue: u16,
    inner: Arc<PortInner>,
    /// Receives from here instead of the device (`ipsecgw bench`'s built-in generator).
    source: Option<Box<Generator>>,
}

impl EthQueue {
    /// Returns the DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Returns the queue pair index.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Returns the port's device name.
    pub fn port_name(&self) -> &str {
        &self.inner.name
    }

    /// Returns the pool the rx queue receives into (to allocate packets to send).
    pub fn pool(&self) -> &Mempool {
        &self.inner.pool
    }

    /// Receives from `g` from now on instead of from the device (which should then receive
    /// nothing, such as `net_null,no-rx=1`: it is no longer polled).
    pub fn generate(&mut self, g: Generator) {
        self.source = Some(Box::new(g));
    }
}

impl Port for EthQueue {
    type Buf = Mbuf;

    fn rx_burst(&mut self, out: &mut Burst<Mbuf>) -> usize {
        let len = out.len();
        let room = BURST - len;
        if room == 0 {
            return 0;
        }
        if let Some(g) = self.source.as_deref_mut() {
            return g.fill(out);
        }
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the free tail of `out`
        // can hold `room` pointers; the driver writes n <= room valid mbufs there and hands
        // their ownership to us; this is the only poller of the queue (EthQueue is unique).
        unsafe {
            let dst = out.as_mut_ptr().add(len).cast::<*mut ffi::rte_mbuf>();
            let n = usize::from(ffi::gw_rx_burst(self.port, self.queue, dst, room as u16));
            out.set_len(len + n);
            n
        }
    }

    fn tx_burst(&mut self, pkts: &mut Burst<Mbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let base = pkts.as_mut_ptr().cast::<*mut ffi::rte_mbuf>();
        // SAFETY: the burst gives up all `len` mbufs first (set_len(0) leaves the pointers in
        // place); the driver takes ownership of the first `sent`, and the rest are freed once
        // here. Mbuf is repr(transparent), so `base` is an array of `len` mbuf pointers.
        unsafe {
            pkts.set_len(0);
            let sent = usize::from(ffi::gw_tx_burst(self.port, self.queue, base, len as u16));
            if sent < len {
                ffi::rte_pktmbuf_free_bulk(base.add(sent), (len - sent) as u32);
            }
            sent
        }
    }
}
