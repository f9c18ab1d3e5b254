//! The per-burst stages of a worker: link layer in, IPv4 input (local delivery, inbound IPsec,
//! forwarding), outbound policy and encryption, routing, link layer out.
//!
//! Every stage takes a burst and hands survivors on in bursts of their own, so packets that
//! share a fate (one SA, one output port) are processed together and metadata is per burst,
//! never per packet. Every packet that goes nowhere is counted under a `DropReason`.

mod deadlines;
mod frag;
mod icmp;
mod ipsec;
pub mod l2;

use std::net::Ipv4Addr;
use std::sync::Arc;

use arrayvec::ArrayVec;

use crate::buf::{Burst, PacketBuf};
use crate::classify::CacheStats;
use crate::crypto::Engine;
use crate::ctl::{FromWorker, PuntReason, Retired, Ring, SaSnapshot, Tables, ToWorker};
use crate::route::Neighbors;
use crate::sa::Sa;
use crate::spd::{IKE_NATT_PORT, IKE_PORT, Key, PolicyCounters, PolicyIdx, Spd};
use crate::stats::{DropReason, Stats};

use crate::wire::{Protocol, checksum, icmp as wicmp, ipv4, udp};
use icmp::{IcmpError, RateLimit};
pub use ipsec::Direction;
use ipsec::Keys;

/// Counters of one worker; merged across workers only when read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames received, by port number: published with the counters they explain (a port's
    /// own count is read live, at another moment).
    pub rx_by_port: Vec<u64>,
    /// Frames handed to a transmit queue and accepted.
    pub tx_packets: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// IPv4 packets forwarded.
    pub forwarded: u64,
    /// Packets handed to the control plane.
    pub punted: u64,
    /// ICMP replies and errors originated.
    pub icmp_out: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// Packets fragmented to fit the output MTU.
    pub fragmented: u64,
    /// Lookups of the outbound SPD's flow cache.
    pub outbound_cache: CacheStats,
    /// Lookups of the incoming check's flow cache.
    pub incoming_cache: CacheStats,
    /// Drops by reason.
    pub drops: Stats,
    /// Time per stage.
    pub runtime: Runtime,
}

impl WorkerStats {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &WorkerStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        if self.rx_by_port.len() < o.rx_by_port.len() {
            self.rx_by_port.resize(o.rx_by_port.len(), 0);
        }
        for (a, b) in self.rx_by_port.iter_mut().zip(&o.rx_by_port) {
            *a += b;
        }
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.forwarded += o.forwarded;
        self.punted += o.punted;
        self.icmp_out += o.icmp_out;
        self.arp_replies += o.arp_replies;
        self.fragmented += o.fragmented;
        self.outbound_cache.merge(&o.outbound_cache);
        self.incoming_cache.merge(&o.incoming_cache);
        self.drops.merge(&o.drops);
        self.runtime.merge(&o.runtime);
    }
}

/// The stages a worker's time is accounted to (like VPP's `show runtime` nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    /// Receiving bursts from the ports.
    Rx,
    /// Ethernet and ARP in, IPv4 validation, local delivery or forwarding, TTL, ICMP.
    Input,
    /// The SPD: outbound decisions, the incoming check, decrypted packets against their policy.
    Policy,
    /// IPsec around the crypto: inbound SA lookup, grouping by SA, ESP and AH encapsulation
    /// and decapsulation, sequence numbers and replay windows (seal and open).
    Ipsec,
    /// The crypto engine's calls: encryption, decryption and ICVs of each burst's jobs.
    Crypto,
    /// Route lookup, neighbour, Ethernet header.
    Route,
    /// Handing bursts to the transmit queues.
    Tx,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; Stage::COUNT] =
        [Stage::Rx, Stage::Input, Stage::Policy, Stage::Ipsec, Stage::Crypto, Stage::Route, Stage::Tx];

    /// How many stages there are.
    pub const COUNT: usize = 7;

    /// Returns the stage's name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Rx => "rx",
            Stage::Input => "input",
            Stage::Policy => "policy",
            Stage::Ipsec => "ipsec",
            Stage::Crypto => "crypto",
            Stage::Route => "route",
            Stage::Tx => "tx",
        }
    }
}

/// Cycles, packets and calls per stage: a clock read per stage per burst, never per packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runtime {
    /// Clock cycles spent in each stage.
    pub cycles: [u64; Stage::COUNT],
    /// Packets each stage handled (the crypto stage: jobs).
    pub packets: [u64; Stage::COUNT],
    /// Bursts each stage handled.
    pub calls: [u64; Stage::COUNT],
    /// Jobs the engine sealed one by one as the ipsec stage framed their packets (long AES-GCM
    /// packets): interleaved with the framing, their crypto has no time of its own and is in
    /// the ipsec stage's.
    pub sealed_alone: u64,
}

impl Runtime {
    /// Accounts one call of `stage` over `packets` packets that took `cycles`.
    #[inline]
    pub fn add(&mut self, stage: Stage, cycles: u64, packets: usize) {
        let i = stage as usize;
        self.cycles[i] += cycles;
        self.packets[i] += packets as u64;
        self.calls[i] += 1;
    }

    /// Adds another worker's runtime.
    pub fn merge(&mut self, o: &Runtime) {
        for i in 0..Stage::COUNT {
            self.cycles[i] += o.cycles[i];
            self.packets[i] += o.packets[i];
            self.calls[i] += o.calls[i];
        }
        self.sealed_alone += o.sealed_alone;
    }

    /// Renders the `show runtime` table: per stage, cycles per packet it handled, packets per
    /// call, and cycles per packet received (a stage may see a packet more than once: the SPD
    /// runs again on every packet it encrypted), whose sum is the worker's cost of a packet.
    pub fn table(&self) -> String {
        let received = self.packets[Stage::Rx as usize].max(1) as f64;
        let mut s = String::from("stage    calls        packets      cycles/packet  packets/call  cycles/received\n");
        let mut total = 0.0;
        for st in Stage::ALL {
            let i = st as usize;
            let cpp = if self.packets[i] == 0 { 0.0 } else { self.cycles[i] as f64 / self.packets[i] as f64 };
            let ppc = if self.calls[i] == 0 { 0.0 } else { self.packets[i] as f64 / self.calls[i] as f64 };
            let per_rx = self.cycles[i] as f64 / received;
            total += per_rx;
            s += &format!(
                "{:<8} {:<12} {:<12} {:<14.1} {:<13.1} {:.1}\n",
                st.name(),
                self.calls[i],
                self.packets[i],
                cpp,
                ppc,
                per_rx
            );
        }
        s += &format!("{:<8} {:<12} {:<12} {:<14} {:<13} {:.1}\n", "total", "", "", "", "", total);
        if self.sealed_alone > 0 {
            s += &format!(
                "ipsec includes the crypto of {} jobs sealed one by one as they were framed\n",
                self.sealed_alone
            );
        }
        s
    }
}

/// A cycle counter (the TSC on DPDK lcores); the default reads nothing and costs nothing.
pub type Clock = fn() -> u64;

fn no_clock() -> u64 {
    0
}

/// A source of fresh buffers on the worker (its port's mempool): fragments need them.
pub type Alloc<B> = Box<dyn FnMut() -> Option<B> + Send>;

/// Frames staged for transmission, one burst per port; reused from burst to burst.
pub struct Outputs<B> {
    ports: Vec<Burst<B>>,
    alloc: Option<Alloc<B>>,
}

impl<B> Outputs<B> {
    /// Creates staging for `ports` ports.
    pub fn new(ports: usize) -> Self {
        Outputs { ports: (0..ports).map(|_| Burst::new()).collect(), alloc: None }
    }

    /// Sets where fragments get their buffers.
    pub fn set_alloc(&mut self, alloc: Alloc<B>) {
        self.alloc = Some(alloc);
    }

    /// Returns the staged frames of `port`.
    pub fn port_mut(&mut self, port: u16) -> Option<&mut Burst<B>> {
        self.ports.get_mut(usize::from(port))
    }

    /// Returns the number of ports.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Returns true without ports.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    fn push(&mut self, port: u16, buf: B, stats: &mut Stats) {
        match self.ports.get_mut(usize::from(port)) {
            Some(b) if !b.is_full() => b.push(buf),
            _ => stats.drop(DropReason::TxQueueFull),
        }
    }
}

/// Where a stage sends what it produces: staged frames, and messages to the control plane.
pub(crate) struct Io<'a, B, S> {
    pub out: &'a mut Outputs<B>,
    pub up: &'a Ring<FromWorker<B, S>>,
    pub now_ms: u64,
}

/// How deep inbound IPsec is unwrapped, and outbound IPsec nested, at most.
const MAX_NESTING: u8 = 4;

/// What the worker knows and counts, apart from its ports.
pub struct Pipeline<E: Engine> {
    id: u16,
    tables: Arc<Tables>,
    neighbors: Neighbors,
    icmp_limit: RateLimit,
    ipsec: ipsec::State<E>,
    clock: Clock,
    last: u64,
    /// The SAs of the last snapshot asked for; those from `snapshot_next` on are still to be
    /// reported, a few each round. Kept between snapshots, so the worker frees nothing.
    snapshot: Vec<ipsec::Listed>,
    snapshot_next: usize,
    /// Counters.
    pub stats: WorkerStats,
}

/// SAs a snapshot reports per round. Reporting 20,000 SAs between two bursts took the worker 4
/// to 6 ms (their state is cold), long enough for a receive ring to overflow; 8 cold SAs take
/// tens of microseconds.
const SNAPSHOT_PER_ROUND: usize = 8;

/// ICMP errors a worker may originate per second.
const ICMP_ERRORS_PER_SEC: u32 = 1000;

impl<E: Engine> Pipeline<E> {
    /// Creates the pipeline of worker `id` with its crypto engine and the initial tables.
    pub fn new(id: u16, engine: E, tables: Arc<Tables>, spd: Arc<Spd>) -> Self {
        Pipeline {
            id,
            tables,
            neighbors: Neighbors::default(),
            icmp_limit: RateLimit::new(ICMP_ERRORS_PER_SEC),
            ipsec: ipsec::State::new(id, engine, spd),
            clock: no_clock,
            last: 0,
            snapshot: Vec::new(),
            snapshot_next: 0,
            stats: WorkerStats::default(),
        }
    }

    /// Sets the cycle counter the stages are timed with.
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
        self.ipsec.set_clock(clock);
    }

    /// Returns the cycle counter.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Starts timing a burst at `now`, a reading of [`Pipeline::clock`] the caller just took:
    /// what follows is accounted to the next stage lapped.
    #[inline]
    pub fn start_lap(&mut self, now: u64) {
        self.last = now;
    }

    /// Returns the clock's reading at the last lap: the end of the stage accounted last.
    #[inline]
    pub fn last_lap(&self) -> u64 {
        self.last
    }

    /// Accounts the time since the last lap to `stage`.
    #[inline]
    fn lap(&mut self, stage: Stage, packets: usize) {
        let now = (self.clock)();
        self.stats.runtime.add(stage, now.wrapping_sub(self.last), packets);
        self.last = now;
    }

    /// Accounts the time since the last lap to the ipsec stage, but for the engine's calls in
    /// it, which go to the crypto stage (jobs sealed alone as they were framed stay in ipsec).
    #[inline]
    fn lap_ipsec(&mut self, packets: usize) {
        let now = (self.clock)();
        let (crypto, jobs, alone) = self.ipsec.take_crypto();
        let rt = &mut self.stats.runtime;
        rt.sealed_alone += alone;
        rt.add(Stage::Ipsec, now.wrapping_sub(self.last).wrapping_sub(crypto), packets);
        if jobs > 0 || crypto > 0 {
            rt.add(Stage::Crypto, crypto, jobs as usize);
        }
        self.last = now;
    }

    /// Returns the tables in use.
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// Describes the crypto engine.
    pub fn engine(&self) -> String {
        self.ipsec.engine().describe()
    }

    /// Returns the SPD in use.
    pub fn spd(&self) -> &Arc<Spd> {
        self.ipsec.spd()
    }

    /// Returns the per-policy counters (indexed like the SPD in use).
    pub fn policy_counters(&self) -> &PolicyCounters {
        self.ipsec.counters()
    }

    /// Visits the installed SAs: outbound bundles by policy id, then inbound SAs.
    pub fn for_each_sa(&self, f: impl FnMut(Direction, u32, &Sa<E::Session>)) {
        self.ipsec.for_each_sa(f);
    }

    /// Applies the SA time lifetimes due at `now_ms`, with or without traffic, reporting what
    /// expired on `up`, and sends the next few SAs of a snapshot in progress. Usually one
    /// comparison.
    pub fn tick<B: PacketBuf>(&mut self, up: &Ring<FromWorker<B, E::Session>>, now_ms: u64) {
        self.ipsec.tick(now_ms / 1000, up);
        self.send_snapshot(up);
    }

    /// Reports the next [`SNAPSHOT_PER_ROUND`] listed SAs that are still installed; a full
    /// ring has them sent again next round.
    fn send_snapshot<B>(&mut self, up: &Ring<FromWorker<B, E::Session>>) {
        let next = self.snapshot_next;
        if next == self.snapshot.len() {
            return;
        }
        let end = (next + SNAPSHOT_PER_ROUND).min(self.snapshot.len());
        let mut v = Vec::with_capacity(2 * (end - next));
        for &item in &self.snapshot[next..end] {
            self.ipsec.visit(item, |direction, policy_id, sa| v.push(snapshot(self.id, direction, policy_id, sa)));
        }
        if v.is_empty() || up.push(FromWorker::Snapshot(v)).is_ok() {
            self.snapshot_next = end;
        }
    }

    /// Applies one control message between bursts.
    pub fn apply<B: PacketBuf>(
        &mut self,
        msg: ToWorker<B, E::Session>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B, E::Session>>,
        now_ms: u64,
    ) {
        let retired = match msg {
            ToWorker::Tables(t) => Some(Retired::Tables(std::mem::replace(&mut self.tables, t))),
            ToWorker::Spd { spd, mut counters } => {
                // The box that brought the new counters takes the old ones back.
                let (old, old_counters) = self.ipsec.set_spd(spd, std::mem::take(&mut *counters));
                *counters = old_counters;
                Some(Retired::Spd(old, counters))
            }
            ToWorker::Outbound { policy_id, bundle } => {
                self.ipsec.install_outbound(policy_id, bundle, now_ms / 1000).map(Retired::Bundle)
            }
            ToWorker::Inbound { key, sa } => self.ipsec.install_inbound(key, sa, now_ms / 1000).map(Retired::Inbound),
            ToWorker::Neighbor { port, ip, mac } => {
                self.neighbors.insert(port, ip, mac);
                None
            }
            ToWorker::NeighborGone { port, ip } => {
                self.neighbors.remove(port, ip);
                None
            }
            ToWorker::Transmit { port, buf } => {
                out.push(port, buf, &mut self.stats.drops);
                None
            }
            ToWorker::Snapshot => {
                // A new request restarts the walk: the control plane waits for the last one.
                self.ipsec.list_into(&mut self.snapshot);
                self.snapshot_next = 0;
                None
            }
            ToWorker::Originate { buf } => {
                let mut b = Burst::new();
                b.push(buf);
                self.output(&mut b, Origin::Local, &mut Io { out, up, now_ms });
                None
            }
        };
        if let Some(r) = retired {
            // The control plane frees it, off this core; if its ring is full the worker frees
            // it, which is still correct, only slower.
            let _ = up.push(FromWorker::Retired(r));
        }
    }

    /// Processes a burst received on `in_port`, staging what must be sent in `out` and
    /// handing what the worker does not handle to the control plane on `up`. Its first stage is
    /// timed from [`Pipeline::start_lap`].
    pub fn process<B: PacketBuf>(
        &mut self,
        in_port: u16,
        rx: &mut Burst<B>,
        out: &mut Outputs<B>,
        up: &Ring<FromWorker<B, E::Session>>,
        now_ms: u64,
    ) {
        let tables = Arc::clone(&self.tables);
        let Some(iface) = tables.ifaces.get(in_port) else {
            for _ in rx.drain(..) {
                self.stats.drops.drop(DropReason::OtherHost);
            }
            return;
        };
        let mut io = Io { out, up, now_ms };
        let n = rx.len();
        // The link layer and IPv4 input in one pass: each frame is read once.
        let mut sorted = Sorted::new();
        for mut buf in rx.drain(..) {
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += buf.len() as u64;
            match l2::receive(&mut buf, iface) {
                Ok(l2::Frame::Ipv4) => self.sort(in_port, buf, &tables, &mut sorted, &io),
                Ok(l2::Frame::ArpReplied) => {
                    self.stats.arp_replies += 1;
                    io.out.push(in_port, buf, &mut self.stats.drops);
                }
                Ok(l2::Frame::ArpOther) => self.punt(&io, in_port, PuntReason::Arp, buf),
                Err(r) => self.stats.drops.drop(r),
            }
        }
        self.lap(Stage::Input, n);
        self.ip_sorted(in_port, &tables, &mut sorted, 0, &mut io);
        (self.stats.outbound_cache, self.stats.incoming_cache) = self.ipsec.cache_stats();
    }

    fn punt<B: PacketBuf>(&mut self, io: &Io<'_, B, E::Session>, port: u16, reason: PuntReason, buf: B) {
        match io.up.push(FromWorker::Punt { worker: self.id, port, reason, buf }) {
            Ok(()) => self.stats.punted += 1,
            Err(_) => self.stats.drops.drop(DropReason::PuntRingFull),
        }
    }

    /// IPv4 input of packets that came out of an SA: they are received once more.
    fn ip_input<B: PacketBuf>(&mut self, in_port: u16, pkts: &mut Burst<B>, depth: u8, io: &mut Io<'_, B, E::Session>) {
        let tables = Arc::clone(&self.tables);
        let mut sorted = Sorted::new();
        for buf in pkts.drain(..) {
            self.sort(in_port, buf, &tables, &mut sorted, io);
        }
        self.lap(Stage::Input, 0);
        self.ip_sorted(in_port, &tables, &mut sorted, depth, io);
    }

    /// Validates one IPv4 packet and sorts it: IPsec to us, other traffic to us, forwarded.
    /// Each packet's header is parsed once, here: the incoming check and the outbound SPD take
    /// its key from `sorted`.
    #[inline(always)]
    fn sort<B: PacketBuf>(
        &mut self,
        in_port: u16,
        mut buf: B,
        tables: &Tables,
        sorted: &mut Sorted<B>,
        io: &Io<'_, B, E::Session>,
    ) {
        let Checked { dst, proto, ttl, key } = match check_ipv4(&mut buf) {
            Ok(v) => v,
            Err(r) => {
                self.stats.drops.drop(r);
                return;
            }
        };
        if !tables.ifaces.is_local(dst) && !dst.is_broadcast() {
            // The TTL is decremented here, with the header at hand; what the incoming check
            // then drops is dropped all the same.
            if ttl <= 1 {
                sorted.expired.push(buf);
                sorted.expired_keys.push(key);
            } else {
                decrement_ttl(buf.data_mut());
                sorted.fwd.push(buf);
                sorted.fwd_keys.push(key);
            }
            return;
        }
        let dport = if proto == Protocol::Udp { udp_dport(buf.data()) } else { None };
        match proto {
            Protocol::Esp | Protocol::Ah => sorted.ipsec_in.push(buf),
            // RFC 3948: port 4500 carries ESP in UDP and, behind a zero marker, IKE.
            Protocol::Udp if dport == Some(IKE_NATT_PORT) => match natt_kind(buf.data()) {
                Some(Natt::Esp) => sorted.ipsec_in.push(buf),
                Some(Natt::Ike) => self.punt(io, in_port, PuntReason::Ike, buf),
                Some(Natt::Keepalive) => self.stats.drops.drop(DropReason::NatKeepalive),
                None => self.stats.drops.drop(DropReason::Truncated),
            },
            // Manual, "IKE traffic": IKE to us skips the incoming policy check.
            Protocol::Udp if dport == Some(IKE_PORT) => self.punt(io, in_port, PuntReason::Ike, buf),
            _ => {
                sorted.local.push(buf);
                sorted.local_keys.push(key);
            }
        }
    }

    /// IPv4 input after sorting: inbound IPsec, local delivery or forwarding. `depth` counts
    /// the IPsec layers already removed: packets that came out of an SA skip the incoming
    /// policy check.
    fn ip_sorted<B: PacketBuf>(
        &mut self,
        in_port: u16,
        tables: &Tables,
        sorted: &mut Sorted<B>,
        depth: u8,
        io: &mut Io<'_, B, E::Session>,
    ) {
        let Sorted { ipsec_in, local, local_keys, fwd, fwd_keys, expired, expired_keys } = sorted;
        if !ipsec_in.is_empty() {
            if depth >= MAX_NESTING {
                for _ in ipsec_in.drain(..) {
                    self.stats.drops.drop(DropReason::NestingTooDeep);
                }
            } else {
                let mut clear: Burst<B> = Burst::new();
                let n = ipsec_in.len();
                self.ipsec.inbound(&tables.ifaces, ipsec_in, &mut clear, &mut self.stats.drops, io);
                self.lap_ipsec(n);
                // Manual: a decrypted packet "is received once more".
                self.ip_input(in_port, &mut clear, depth + 1, io);
            }
        }
        if depth == 0 {
            let n = local.len() + fwd.len() + expired.len();
            self.ipsec.incoming_check(local, local_keys, true, &mut self.stats.drops);
            self.ipsec.incoming_check(fwd, fwd_keys, false, &mut self.stats.drops);
            if !expired.is_empty() {
                self.ipsec.incoming_check(expired, expired_keys, false, &mut self.stats.drops);
            }
            self.lap(Stage::Policy, n);
        }
        let mut replies: Burst<B> = Burst::new();
        for mut buf in local.drain(..) {
            if is_echo_request(buf.data()) {
                match icmp::echo_reply(&mut buf) {
                    Ok(()) => {
                        self.stats.icmp_out += 1;
                        replies.push(buf);
                    }
                    Err(r) => self.stats.drops.drop(r),
                }
            } else {
                self.punt(io, in_port, PuntReason::Local, buf);
            }
        }
        for buf in expired.drain(..) {
            self.stats.drops.drop(DropReason::TtlExceeded);
            self.icmp_error(buf, IcmpError::TtlExceeded, in_port, io.now_ms, &mut replies);
        }
        self.stats.forwarded += fwd.len() as u64;
        self.lap(Stage::Input, 0);
        self.output_nested(fwd, Some(fwd_keys), &[], Origin::Forwarded(in_port), 0, io);
        self.output(&mut replies, Origin::Local, io);
    }

    /// Rewrites `buf` into an ICMP error if allowed and within the rate limit, and stages it;
    /// otherwise the packet is freed (its drop is already counted by the caller).
    fn icmp_error<B: PacketBuf>(
        &mut self,
        mut buf: B,
        err: IcmpError,
        in_port: u16,
        now_ms: u64,
        staged: &mut Burst<B>,
    ) {
        let Some(addr) = self.tables.ifaces.addr_on(in_port) else { return };
        if staged.is_full() || !self.icmp_limit.take(now_ms) {
            return;
        }
        if icmp::error_in_place(&mut buf, err, addr) {
            self.stats.icmp_out += 1;
            staged.push(buf);
        }
    }

    /// The outbound path: the SPD, encryption (each encrypted packet goes through the SPD again
    /// as locally originated, so tunnels can nest), then routing.
    fn output<B: PacketBuf>(&mut self, pkts: &mut Burst<B>, origin: Origin, io: &mut Io<'_, B, E::Session>) {
        self.output_nested(pkts, None, &[], origin, 0, io);
    }

    /// One round of the outbound path; `keys[i]`, when given, is `pkts[i]`'s key as parsed on
    /// input, and `prev[i]` the policy that just encrypted `pkts[i]` (loop avoidance; none past
    /// the end of `prev`). Every packet the round encrypts, whatever its SA, comes back as one
    /// burst for the next round, so the SPD runs once per round, not once per SA group.
    fn output_nested<B: PacketBuf>(
        &mut self,
        pkts: &mut Burst<B>,
        keys: Option<&Keys>,
        prev: &[Option<PolicyIdx>],
        origin: Origin,
        depth: u8,
        io: &mut Io<'_, B, E::Session>,
    ) {
        if pkts.is_empty() {
            return;
        }
        let mut clear: Burst<B> = Burst::new();
        let mut groups: ipsec::Groups<B> = ipsec::Groups::new();
        let n = pkts.len();
        self.ipsec.outbound(pkts, keys, origin.is_local(), prev, &mut clear, &mut groups, &mut self.stats.drops, io);
        self.lap(Stage::Policy, n);
        self.route(&mut clear, origin.in_port(), io);
        if groups.is_empty() {
            return;
        }
        if depth >= MAX_NESTING {
            groups.drop_all(DropReason::NestingTooDeep, &mut self.stats.drops);
            return;
        }
        let n = groups.packets();
        let mut sealed: Burst<B> = Burst::new();
        let mut sealed_by = ArrayVec::new();
        let mut done: Burst<B> = Burst::new();
        self.ipsec.seal_groups(&mut groups, &mut sealed, &mut sealed_by, &mut done, &mut self.stats.drops, io.up);
        self.lap_ipsec(n);
        // Sealed packets are locally originated now; those no policy can match skip the SPD.
        self.route(&mut done, None, io);
        self.output_nested(&mut sealed, None, &sealed_by, Origin::Local, depth + 1, io);
    }

    /// Routes, resolves and stages each packet; forwarded packets may cause ICMP errors back
    /// towards the port they came from.
    fn route<B: PacketBuf>(&mut self, pkts: &mut Burst<B>, in_port: Option<u16>, io: &mut Io<'_, B, E::Session>) {
        let tables = Arc::clone(&self.tables);
        let mut errors: Burst<B> = Burst::new();
        let n = pkts.len();
        // Packets of a burst mostly share their destination (all of one SA's do): its route,
        // port and neighbour entry are looked up once per run of them.
        let mut last: Option<Resolved> = None;
        for mut buf in pkts.drain(..) {
            let (dst, len, df) = {
                let ip = ipv4::Packet::new_unchecked(buf.data());
                (ip.dst_addr(), usize::from(ip.total_len()), ip.dont_frag())
            };
            let r = match last {
                Some(r) if r.dst == dst => r,
                _ => {
                    let Some(hop) = tables.fib.lookup(dst) else {
                        self.stats.drops.drop(DropReason::NoRoute);
                        if let Some(p) = in_port {
                            restore_ttl(buf.data_mut());
                            self.icmp_error(buf, IcmpError::NetUnreachable, p, io.now_ms, &mut errors);
                        }
                        continue;
                    };
                    let Some(iface) = tables.ifaces.get(hop.port) else {
                        self.stats.drops.drop(DropReason::NoRoute);
                        continue;
                    };
                    let next_hop = hop.gateway.unwrap_or(dst);
                    let mac = match last {
                        Some(l) if l.port == hop.port && l.next_hop == next_hop => l.mac,
                        _ => self.neighbors.get(hop.port, next_hop),
                    };
                    let r = Resolved { dst, port: hop.port, our_mac: iface.mac, mtu: iface.mtu, next_hop, mac };
                    last = Some(r);
                    r
                }
            };
            if len > usize::from(r.mtu) {
                if df {
                    self.stats.drops.drop(DropReason::FragNeeded);
                    if let Some(p) = in_port {
                        restore_ttl(buf.data_mut());
                        self.icmp_error(buf, IcmpError::FragNeeded(r.mtu), p, io.now_ms, &mut errors);
                    }
                    continue;
                }
                let Some(alloc) = io.out.alloc.as_mut() else {
                    self.stats.drops.drop(DropReason::NoBuffer);
                    continue;
                };
                match frag::fragment(buf, usize::from(r.mtu), alloc) {
                    Ok(frags) => {
                        self.stats.fragmented += 1;
                        for f in frags {
                            self.link_out_to(f, r.port, r.our_mac, r.next_hop, r.mac, io);
                        }
                    }
                    Err(e) => self.stats.drops.drop(e),
                }
                continue;
            }
            self.link_out_to(buf, r.port, r.our_mac, r.next_hop, r.mac, io);
        }
        self.lap(Stage::Route, n);
        if !errors.is_empty() {
            // ICMP errors are locally originated; no error is sent about them, so this ends.
            self.output(&mut errors, Origin::Local, io);
        }
    }
}

fn snapshot<S>(worker: u16, direction: Direction, policy_id: u32, sa: &Sa<S>) -> SaSnapshot {
    SaSnapshot {
        worker,
        direction,
        policy_id,
        spi: sa.spi(),
        proto: sa.proto(),
        mode: sa.mode(),
        src: sa.src(),
        dst: sa.dst(),
        xf: sa.transform(),
        state: sa.state(),
        seq: if direction == Direction::Out { sa.seq() } else { sa.replay_window().top() },
        replay_window: sa.replay_window().size(),
        counters: sa.counters(),
        added_at: sa.added_at(),
        lifetimes: sa.lifetimes(),
    }
}

impl<E: Engine> Pipeline<E> {
    /// Puts the Ethernet header for `next_hop` (whose address the neighbour table gave as
    /// `mac`) on a routed packet and stages it on `port`, or hands it to the control plane to
    /// resolve the next hop.
    #[inline(always)]
    fn link_out_to<B: PacketBuf>(
        &mut self,
        mut buf: B,
        port: u16,
        our_mac: [u8; 6],
        next_hop: Ipv4Addr,
        mac: Option<[u8; 6]>,
        io: &mut Io<'_, B, E::Session>,
    ) {
        let Some(mac) = mac else {
            self.punt(io, port, PuntReason::Resolve { next_hop }, buf);
            return;
        };
        match l2::encap(&mut buf, our_mac, mac) {
            Ok(()) => io.out.push(port, buf, &mut self.stats.drops),
            Err(r) => self.stats.drops.drop(r),
        }
    }
}

/// Where the route stage sends packets to one destination.
#[derive(Clone, Copy)]
struct Resolved {
    dst: Ipv4Addr,
    port: u16,
    our_mac: [u8; 6],
    mtu: u16,
    next_hop: Ipv4Addr,
    /// The neighbour table's answer for `next_hop`.
    mac: Option<[u8; 6]>,
}

/// Where an outbound packet comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// Originated here (replies, errors, the control plane, re-processed encrypted packets).
    Local,
    /// Forwarded, received on this port.
    Forwarded(u16),
}

impl Origin {
    fn is_local(self) -> bool {
        self == Origin::Local
    }
    fn in_port(self) -> Option<u16> {
        match self {
            Origin::Local => None,
            Origin::Forwarded(p) => Some(p),
        }
    }
}

/// A burst's IPv4 packets sorted by input, with the SPD keys of those the incoming check sees.
struct Sorted<B> {
    ipsec_in: Burst<B>,
    local: Burst<B>,
    local_keys: Keys,
    /// To forward, their TTL already decremented.
    fwd: Burst<B>,
    fwd_keys: Keys,
    /// To forward, but their TTL ran out (as received).
    expired: Burst<B>,
    expired_keys: Keys,
}

impl<B> Sorted<B> {
    fn new() -> Self {
        Sorted {
            ipsec_in: Burst::new(),
            local: Burst::new(),
            local_keys: Keys::new(),
            fwd: Burst::new(),
            fwd_keys: Keys::new(),
            expired: Burst::new(),
            expired_keys: Keys::new(),
        }
    }
}

/// What input learns from a valid IPv4 header.
struct Checked {
    dst: Ipv4Addr,
    proto: Protocol,
    ttl: u8,
    /// The SPD's key.
    key: Key,
}

/// Validates an IPv4 header (checksum included) and trims link-layer padding; returns the
/// destination, the protocol and the SPD key. A TCP or UDP packet too short for its ports is
/// `Truncated`: neither the SPD nor a receiver could make sense of it. Every received packet comes here: each header
/// field is read once, behind one bounds check.
#[inline(always)]
fn check_ipv4<B: PacketBuf>(buf: &mut B) -> Result<Checked, DropReason> {
    let (total, v) = {
        let d = buf.data();
        let Some(&first) = d.first() else { return Err(DropReason::Truncated) };
        if first >> 4 != 4 {
            return Err(DropReason::NotIpv4);
        }
        let Some((h, hlen, total)) = ipv4::lengths(d) else { return Err(DropReason::BadIpHeader) };
        // Without options the header's length is known here, and the sum unrolled.
        let sum = if hlen == ipv4::HEADER_LEN { checksum::data(h) } else { checksum::data(&d[..hlen]) };
        if sum != 0xffff {
            return Err(DropReason::BadChecksum);
        }
        let dst = Ipv4Addr::from([h[16], h[17], h[18], h[19]]);
        let key = Key::of_checked(d, hlen, total).ok_or(DropReason::Truncated)?;
        (total, Checked { dst, proto: Protocol::from(h[9]), ttl: h[8], key })
    };
    let extra = buf.len() - total;
    if extra > 0 {
        buf.trim(extra);
    }
    Ok(v)
}

/// Returns the destination port of a valid IPv4 UDP packet that is not a later fragment, with
/// a valid UDP header.
fn udp_dport(d: &[u8]) -> Option<u16> {
    let ip = ipv4::Packet::new_unchecked(d);
    if ip.frag_offset() != 0 {
        return None;
    }
    udp::Packet::new_checked(ip.payload()).ok().map(|u| u.dst_port())
}

/// What arrived on UDP port 4500 (RFC 3948 section 2).
enum Natt {
    /// ESP in UDP: a non-zero SPI follows the UDP header.
    Esp,
    /// IKE: a four-byte zero non-ESP marker follows the UDP header.
    Ike,
    /// A NAT keepalive: the single byte 0xFF.
    Keepalive,
}

fn natt_kind(d: &[u8]) -> Option<Natt> {
    let ip = ipv4::Packet::new_unchecked(d);
    let u = udp::Packet::new_checked(ip.payload()).ok()?;
    match u.payload() {
        [0xff] => Some(Natt::Keepalive),
        [0, 0, 0, 0, ..] => Some(Natt::Ike),
        p if p.len() >= 8 => Some(Natt::Esp),
        _ => None,
    }
}

fn is_echo_request(d: &[u8]) -> bool {
    let ip = ipv4::Packet::new_unchecked(d);
    ip.frag_offset() == 0
        && !ip.more_frags()
        && wicmp::Packet::new_checked(ip.payload()).is_ok_and(|m| m.msg_type() == wicmp::Message::EchoRequest)
}

/// Decrements the TTL and updates the checksum incrementally.
#[inline]
fn decrement_ttl(d: &mut [u8]) {
    ipv4::Packet::new_unchecked(d).decrement_ttl();
}

/// Gives back the TTL a forwarded packet arrived with, so that an ICMP error quotes the
/// header as it was received.
fn restore_ttl(d: &mut [u8]) {
    let mut ip = ipv4::Packet::new_unchecked(d);
    let ttl = ip.ttl();
    ip.set_ttl_update_checksum(ttl.saturating_add(1));
}
