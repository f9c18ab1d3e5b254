//! The run-to-completion poll loop of one worker core: for each port, receive a burst, run the
//! pipeline, transmit what it staged; between bursts, apply control messages from the worker's
//! own ring. Counters are published to a shared cell now and then, never per packet.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use crate::buf::{BURST, Burst, PacketBuf};
use crate::classify::CacheStats;
use crate::crypto::Engine;
use crate::ctl::{FromWorker, Ring, Tables, ToWorker};
use crate::pipeline::{Clock, Outputs, Pipeline, Runtime, Stage, WorkerStats};
use crate::port::Port;
use crate::spd::Spd;
use crate::stats::{DropReason, Stats};

/// Attempts of [`StatsCell::load`] at a consistent read.
const READ_TRIES: usize = 100_000;

/// Control messages applied between two rounds of polling, at most.
const MSGS_PER_ROUND: usize = 64;

/// The longest a [`Cadence`] waits, in milliseconds: a round of 128 3DES packets of 1,420 bytes
/// takes about 22 ms, so a count of rounds alone could leave counters seconds old.
const CADENCE_MS: u64 = 50;

/// When a polling loop's periodic work (publishing counters, the control plane's turn) is due:
/// every `every` rounds, or every [`CADENCE_MS`] however long rounds take.
#[derive(Debug)]
pub struct Cadence {
    every: u32,
    rounds: u32,
    last_ms: u64,
}

impl Cadence {
    /// Starts counting at `now_ms`.
    pub fn new(every: u32, now_ms: u64) -> Cadence {
        Cadence { every, rounds: 0, last_ms: now_ms }
    }

    /// Counts one round ending at `now_ms`; true when the periodic work is due (and starts
    /// counting again).
    pub fn due(&mut self, now_ms: u64) -> bool {
        self.rounds += 1;
        if self.rounds < self.every && now_ms.wrapping_sub(self.last_ms) < CADENCE_MS {
            return false;
        }
        self.rounds = 0;
        self.last_ms = now_ms;
        true
    }
}

/// One worker: its queue of every port, its pipeline, and its rings.
pub struct Worker<P: Port, E: Engine> {
    id: u16,
    ports: Vec<P>,
    pipeline: Pipeline<E>,
    out: Outputs<P::Buf>,
    down: Arc<Ring<ToWorker<P::Buf, E::Session>>>,
    up: Arc<Ring<FromWorker<P::Buf, E::Session>>>,
    published: Arc<StatsCell>,
}

impl<P: Port, E: Engine> Worker<P, E> {
    /// Creates worker `id` over its queue of each port (indexed by port number), with its own
    /// crypto engine and the initial tables and SPD.
    pub fn new(
        id: u16,
        ports: Vec<P>,
        engine: E,
        tables: Arc<Tables>,
        spd: Arc<Spd>,
        down: Arc<Ring<ToWorker<P::Buf, E::Session>>>,
        up: Arc<Ring<FromWorker<P::Buf, E::Session>>>,
    ) -> Self {
        let n = ports.len();
        let mut pipeline = Pipeline::new(id, engine, tables, spd);
        pipeline.stats.rx_by_port = vec![0; n];
        Worker { id, ports, pipeline, out: Outputs::new(n), down, up, published: Arc::new(StatsCell::new(n)) }
    }

    /// Returns the worker's id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Returns the cell other threads read this worker's counters from.
    pub fn stats_cell(&self) -> Arc<StatsCell> {
        Arc::clone(&self.published)
    }

    /// Returns the live counters (on the worker's own thread).
    pub fn stats(&self) -> &WorkerStats {
        &self.pipeline.stats
    }

    /// Describes the worker's crypto engine (its code paths).
    pub fn engine(&self) -> String {
        self.pipeline.engine()
    }

    /// Returns the routing tables in use.
    pub fn tables(&self) -> &Arc<Tables> {
        self.pipeline.tables()
    }

    /// Gives the worker a source of fresh buffers (its mempool), for fragments.
    pub fn set_alloc(&mut self, alloc: crate::pipeline::Alloc<P::Buf>) {
        self.out.set_alloc(alloc);
    }

    /// Times the stages with `clock` (the TSC on DPDK lcores).
    pub fn set_clock(&mut self, clock: Clock) {
        self.pipeline.set_clock(clock);
    }

    /// Returns the pipeline (its SAs, SPD and counters).
    pub fn pipeline(&self) -> &Pipeline<E> {
        &self.pipeline
    }

    /// Returns the ports (tests inspect in-memory ports).
    pub fn ports_mut(&mut self) -> &mut [P] {
        &mut self.ports
    }

    /// Runs one round: control messages, the SA lifetimes due, then one burst from every port.
    /// Returns the number of packets received.
    pub fn poll_once(&mut self, now_ms: u64) -> usize {
        self.apply_control(now_ms);
        self.pipeline.tick(&self.up, now_ms);
        let clock = self.pipeline.clock();
        // One reading of the clock ends a stage and starts the next (rdtsc took 1.8% of the
        // worker's samples at AES-GCM 64 B on Intel Xeon, with three of its readings a burst
        // taken right after another): a port that had nothing adds its poll to the next
        // port's rx.
        let mut t = self.flush_from(clock());
        let mut received = 0;
        let mut rx: Burst<P::Buf> = Burst::new();
        for port in 0..self.ports.len() {
            let n = self.ports[port].rx_burst(&mut rx);
            if n == 0 {
                continue;
            }
            let now = clock();
            let st = &mut self.pipeline.stats;
            st.runtime.add(Stage::Rx, now.wrapping_sub(t), n);
            if let Some(c) = st.rx_by_port.get_mut(port) {
                *c += n as u64;
            }
            received += n;
            self.pipeline.start_lap(now);
            self.pipeline.process(port as u16, &mut rx, &mut self.out, &self.up, now_ms);
            t = self.flush_from(self.pipeline.last_lap());
        }
        received
    }

    /// Applies up to a round's worth of queued control messages and touches no port: what the
    /// control plane calls to make room in the worker's ring while it still holds the worker,
    /// before its ports start (polling a stopped port is an error to DPDK). Frames it is asked
    /// to send wait, staged, for the first round.
    pub fn apply_control(&mut self, now_ms: u64) {
        for _ in 0..MSGS_PER_ROUND {
            let Some(msg) = self.down.pop() else { break };
            self.pipeline.apply(msg, &mut self.out, &self.up, now_ms);
        }
    }

    fn flush(&mut self) {
        let clock = self.pipeline.clock();
        self.flush_from(clock());
    }

    /// Sends what is staged, timing the tx stage from `t`, a reading of the clock; returns
    /// the clock's reading when done (`t` when nothing was staged).
    fn flush_from(&mut self, mut t: u64) -> u64 {
        for port in 0..self.out.len() {
            let Some(b) = self.out.port_mut(port as u16) else { continue };
            if b.is_empty() {
                continue;
            }
            let mut lens = [0u32; BURST];
            for (l, p) in lens.iter_mut().zip(b.iter()) {
                *l = p.len() as u32;
            }
            let staged = b.len();
            let sent = self.ports[port].tx_burst(b);
            let now = (self.pipeline.clock())();
            let st = &mut self.pipeline.stats;
            st.runtime.add(Stage::Tx, now.wrapping_sub(t), staged);
            t = now;
            st.tx_packets += sent as u64;
            st.tx_bytes += lens[..sent].iter().map(|&l| u64::from(l)).sum::<u64>();
            for _ in sent..staged {
                st.drops.drop(DropReason::TxQueueFull);
            }
        }
        t
    }

    /// Publishes the counters for readers on other threads.
    pub fn publish(&self) {
        self.published.store(&self.pipeline.stats);
    }

    /// Polls until `stop()` says so, publishing counters at the [`Cadence`] of `publish_every`
    /// rounds; `now_ms` reads the clock (once per round).
    pub fn run(&mut self, stop: impl Fn() -> bool, mut now_ms: impl FnMut() -> u64, publish_every: u32) {
        let mut publish = Cadence::new(publish_every, now_ms());
        while !stop() {
            let now = now_ms();
            self.poll_once(now);
            if publish.due(now) {
                self.publish();
            }
        }
        // Drain: apply what is queued (transmissions included) and send it.
        while let Some(msg) = self.down.pop() {
            self.pipeline.apply(msg, &mut self.out, &self.up, now_ms());
        }
        self.flush();
        self.publish();
    }
}

/// A worker's counters as other threads see them: relaxed atomics written by the worker, under
/// a sequence number, so that a reader gets one publication's values together (a count and
/// what it explains, such as the frames received and the ARP requests among them answered).
#[derive(Debug)]
pub struct StatsCell {
    /// Odd while the worker writes; each publication adds two.
    seq: AtomicU64,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_by_port: Box<[AtomicU64]>,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    forwarded: AtomicU64,
    punted: AtomicU64,
    icmp_out: AtomicU64,
    arp_replies: AtomicU64,
    fragmented: AtomicU64,
    /// Hits and misses of the outbound, then the incoming flow cache.
    flow_cache: [AtomicU64; 4],
    drops: [AtomicU64; DropReason::COUNT],
    runtime: [[AtomicU64; Stage::COUNT]; 3],
    sealed_alone: AtomicU64,
}

impl StatsCell {
    /// Creates the cell of a worker polling `ports` ports.
    pub fn new(ports: usize) -> Self {
        StatsCell {
            seq: AtomicU64::new(0),
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            rx_by_port: (0..ports).map(|_| AtomicU64::new(0)).collect(),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            punted: AtomicU64::new(0),
            icmp_out: AtomicU64::new(0),
            arp_replies: AtomicU64::new(0),
            fragmented: AtomicU64::new(0),
            flow_cache: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            runtime: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            sealed_alone: AtomicU64::new(0),
        }
    }

    fn store(&self, s: &WorkerStats) {
        let r = Ordering::Relaxed;
        // A seqlock's writer: it never waits for readers.
        let seq = self.seq.load(r);
        self.seq.store(seq.wrapping_add(1), r);
        fence(Ordering::Release);
        self.rx_packets.store(s.rx_packets, r);
        self.rx_bytes.store(s.rx_bytes, r);
        for (cell, &v) in self.rx_by_port.iter().zip(&s.rx_by_port) {
            cell.store(v, r);
        }
        self.tx_packets.store(s.tx_packets, r);
        self.tx_bytes.store(s.tx_bytes, r);
        self.forwarded.store(s.forwarded, r);
        self.punted.store(s.punted, r);
        self.icmp_out.store(s.icmp_out, r);
        self.arp_replies.store(s.arp_replies, r);
        self.fragmented.store(s.fragmented, r);
        let (o, i) = (&s.outbound_cache, &s.incoming_cache);
        for (cell, v) in self.flow_cache.iter().zip([o.hits, o.misses, i.hits, i.misses]) {
            cell.store(v, r);
        }
        for (cell, &reason) in self.drops.iter().zip(DropReason::ALL) {
            cell.store(s.drops.dropped(reason), r);
        }
        let rt = &s.runtime;
        self.sealed_alone.store(rt.sealed_alone, r);
        for (cells, values) in self.runtime.iter().zip([&rt.cycles, &rt.packets, &rt.calls]) {
            for (c, &v) in cells.iter().zip(values.iter()) {
                c.store(v, r);
            }
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// Reads the last published counters, all of one publication. Should the worker stop in
    /// the middle of one (it takes microseconds), the values are returned as they are after
    /// [`READ_TRIES`] tries rather than waiting for ever.
    pub fn load(&self) -> WorkerStats {
        for _ in 0..READ_TRIES {
            let seq = self.seq.load(Ordering::Acquire);
            if seq.is_multiple_of(2) {
                let v = self.read();
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == seq {
                    return v;
                }
            }
            std::hint::spin_loop();
        }
        self.read()
    }

    fn read(&self) -> WorkerStats {
        let r = Ordering::Relaxed;
        let mut drops = Stats::default();
        for (cell, &reason) in self.drops.iter().zip(DropReason::ALL) {
            drops.add(reason, cell.load(r));
        }
        let load = |i: usize| -> [u64; Stage::COUNT] { std::array::from_fn(|j| self.runtime[i][j].load(r)) };
        let runtime =
            Runtime { cycles: load(0), packets: load(1), calls: load(2), sealed_alone: self.sealed_alone.load(r) };
        WorkerStats {
            rx_packets: self.rx_packets.load(r),
            rx_bytes: self.rx_bytes.load(r),
            rx_by_port: self.rx_by_port.iter().map(|c| c.load(r)).collect(),
            tx_packets: self.tx_packets.load(r),
            tx_bytes: self.tx_bytes.load(r),
            forwarded: self.forwarded.load(r),
            punted: self.punted.load(r),
            icmp_out: self.icmp_out.load(r),
            arp_replies: self.arp_replies.load(r),
            fragmented: self.fragmented.load(r),
            outbound_cache: CacheStats { hits: self.flow_cache[0].load(r), misses: self.flow_cache[1].load(r) },
            incoming_cache: CacheStats { hits: self.flow_cache[2].load(r), misses: self.flow_cache[3].load(r) },
            drops,
            runtime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CADENCE_MS, Cadence, StatsCell, WorkerStats};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_reader_sees_one_publication_at_a_time() {
        let cell = Arc::new(StatsCell::new(2));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut s = WorkerStats { rx_by_port: vec![0; 2], ..WorkerStats::default() };
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    (s.rx_packets, s.arp_replies, s.tx_bytes) = (i, i, i);
                    s.rx_by_port.fill(i);
                    cell.store(&s);
                    // A worker publishes every 64 rounds or 50 ms; publishing without a pause
                    // would leave a reader no moment to read in.
                    let t = std::time::Instant::now();
                    while t.elapsed() < std::time::Duration::from_micros(2) {
                        std::hint::spin_loop();
                    }
                }
                i
            })
        };
        let mut last = 0;
        for _ in 0..200_000 {
            let v = cell.load();
            assert_eq!((v.arp_replies, v.tx_bytes), (v.rx_packets, v.rx_packets), "a torn read");
            assert_eq!(v.rx_by_port, [v.rx_packets; 2], "a torn read");
            assert!(v.rx_packets >= last, "publications read out of order");
            last = v.rx_packets;
        }
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap() > 0);
    }

    #[test]
    fn cadence_is_due_every_n_rounds_or_after_its_time_whichever_comes_first() {
        let mut c = Cadence::new(3, 1_000);
        let fast: Vec<bool> = (0..6).map(|_| c.due(1_000)).collect();
        assert_eq!(fast, [false, false, true, false, false, true]);
        // Slow rounds: due once the time has passed, and counting starts again from there.
        assert!(!c.due(1_000 + CADENCE_MS - 1));
        assert!(c.due(1_000 + CADENCE_MS));
        assert!(!c.due(1_000 + CADENCE_MS + 1));
        // A clock that wraps still measures forward.
        let mut w = Cadence::new(100, u64::MAX - 10);
        assert!(!w.due(u64::MAX));
        assert!(w.due(CADENCE_MS));
    }
}
