//! One security association: its keys (as an engine session), SPI, protocol, mode, addresses,
//! sequence number, replay window, lifetimes and counters. An SA is unidirectional; a worker
//! owns its SAs outright, so nothing here is shared or locked.

use std::net::Ipv4Addr;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rand_core::{OsRng, RngCore};
use zeroize::Zeroize;

use crate::classify::Key;
use crate::crypto::{Engine, KeyError, Transform};
use crate::replay::ReplayWindow;
use crate::wire::{Protocol, ipv4};
use crate::xform::OUTER_TTL;

/// The security protocol of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpsecProto {
    /// Encapsulating Security Payload (RFC 4303), IP protocol 50.
    Esp,
    /// Authentication Header (RFC 4302), IP protocol 51.
    Ah,
}

/// Tunnel or transport mode (the policy's `tunnel=yes|no`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Protects the packet's payload; only for packets between sa-src and sa-dst.
    Transport,
    /// Protects a whole inner packet inside a new header from sa-src to sa-dst.
    Tunnel,
}

/// The DF bit of the packet after encryption (the policy's `dont-fragment`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DontFragment {
    /// Cleared, so the encrypted packet can be fragmented (RouterOS's advice).
    Clear,
    /// Set.
    Set,
    /// Copied from the inner packet.
    Inherit,
}

/// Soft and hard lifetimes in bytes and seconds; 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetimes {
    /// Bytes after which a rekey is due.
    pub soft_bytes: u64,
    /// Bytes after which the SA is removed.
    pub hard_bytes: u64,
    /// Seconds after which a rekey is due.
    pub soft_secs: u64,
    /// Seconds after which the SA is removed.
    pub hard_secs: u64,
}

impl Lifetimes {
    /// Tells whether a byte count limits the SA (soft or hard), so that the bytes of every
    /// burst must be added to the count its copies share.
    pub fn limits_bytes(&self) -> bool {
        self.soft_bytes != 0 || self.hard_bytes != 0
    }
}

/// UDP encapsulation of ESP for NAT traversal (RFC 3948): the ports of the outer UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpEncap {
    /// Source port (4500, or what a NAT mapped it to).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

/// What an SA raises for the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaEvent {
    /// The soft lifetime (bytes or time) passed: rekey.
    SoftExpired,
    /// The hard lifetime passed: the SA no longer processes packets.
    HardExpired,
    /// The 32-bit sequence space is used up: the SA stopped (RFC 4303 3.3.3).
    SeqExhausted,
}

/// The life stage of an SA, as `installed-sa print` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaState {
    /// In use.
    Mature,
    /// Past its soft lifetime, still in use until replaced.
    Dying,
    /// Past its hard lifetime or out of sequence numbers: drops everything.
    Dead,
}

/// Packets and bytes an SA processed successfully.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaCounters {
    /// Packets sealed or opened.
    pub packets: u64,
    /// Bytes of those packets before encapsulation (outbound) or after decapsulation (inbound).
    pub bytes: u64,
}

/// Everything needed to install an SA.
#[derive(Clone, Debug)]
pub struct SaConfig<'k> {
    /// Security parameter index.
    pub spi: u32,
    /// ESP or AH.
    pub proto: IpsecProto,
    /// Tunnel or transport.
    pub mode: Mode,
    /// sa-src: the outer source (tunnel) or the packet's own source (transport).
    pub src: Ipv4Addr,
    /// sa-dst: the outer destination (tunnel) or the packet's own destination (transport).
    pub dst: Ipv4Addr,
    /// Algorithms (AH: integrity only).
    pub xf: Transform,
    /// Encryption key material (GCM: key and salt).
    pub enc_key: &'k [u8],
    /// Integrity key.
    pub auth_key: &'k [u8],
    /// Anti-replay window in packets (inbound; 0 disables).
    pub replay_window: u32,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
    /// DF of the outer header (tunnel mode).
    pub dont_fragment: DontFragment,
}

/// What the copies of one outbound SA on several workers share: the sequence counter (so no
/// number is sent twice, RFC 4303 3.3.3) and the bytes sent (for the byte lifetimes).
#[derive(Debug, Default)]
struct Shared {
    /// The next sequence number to hand out, minus one.
    seq: AtomicU64,
    /// Bytes accounted by every copy.
    bytes: AtomicU64,
}

/// Sequence numbers a worker reserves at once when sealing one packet outside a burst.
const MIN_RESERVE: u64 = 1;

/// Sequence numbers a copy alone on the gateway reserves at once: it owns the space, so it
/// touches the shared counter's line once per this many packets instead of once per burst.
const ALONE_RESERVE: u64 = 4096;

/// A unidirectional SA with its engine session `S`.
///
/// The fields every packet or burst reads or writes come first, in declaration order
/// (`repr(C)`), so that they share the SA's first few cache lines ([`Sa::HOT_BYTES`]): with
/// thousands of SAs those are the lines prefetched ahead of a burst.
#[repr(C)]
pub struct Sa<S> {
    pub(crate) session: S,
    /// Outbound: the range of sequence numbers this copy reserved and has not used yet.
    reserved: std::ops::Range<u64>,
    /// Outbound GCM explicit IVs count from this random base, so that two SAs sharing a manual
    /// key (both directions, or the same SA re-installed after a restart) never share an IV.
    gcm_iv_base: u64,
    counters: SaCounters,
    pub(crate) spi: u32,
    /// The outer IPv4 header, from sa-src to sa-dst (tunnel mode writes it; it also holds the
    /// addresses transport mode checks).
    pub(crate) outer: ipv4::Template,
    /// ESP in UDP (RFC 3948) when set.
    pub(crate) encap: Option<UdpEncap>,
    /// The sizes and kinds ESP reads, from `xf`, `mode` and `encap`.
    pub(crate) esp_plan: crate::esp::EspPlan,
    /// Outbound: identification of the next outer IPv4 header.
    pub(crate) ip_id: u16,
    pub(crate) mode: Mode,
    pub(crate) dont_fragment: DontFragment,
    state: SaState,
    /// Set when bursts need not touch the shared counters: the copy was alone at its last
    /// reservation (it reserves [`ALONE_RESERVE`] numbers at a time) and has no byte lifetime.
    /// Then sealing does not prefetch them: with thousands of SAs that is a line per packet.
    shared_idle: bool,
    /// The lifetimes limit bytes: each burst adds its bytes to the count the copies share.
    byte_limited: bool,
    /// Outbound: counters shared with the SA's copies on other workers. Past the per-packet
    /// lines: a copy alone reads it once per [`ALONE_RESERVE`] packets.
    shared: Arc<Shared>,
    /// ESP reads the transform through `esp_plan` and its outer protocol from `outer`: these
    /// two are for AH, the control plane and events.
    pub(crate) xf: Transform,
    pub(crate) proto: IpsecProto,
    /// Events for the control plane: past the per-packet lines, since there are none while
    /// the SA is mature (`poll_event` asks the state first).
    pending: [Option<SaEvent>; 3],
    /// With byte lifetimes: the bytes counted here when the last burst added its own to the
    /// shared count.
    shared_mark: u64,
    /// Read when a lifetime is due and, with byte limits, once per burst.
    lifetimes: Lifetimes,
    added_at: u64,
    pub(crate) replay: ReplayWindow,
}

thread_local! {
    /// Outbound CBC IVs, for every SA a thread seals: seeded once from the OS, then no syscall
    /// per packet. One source per thread (a worker) rather than per SA: a generator's state
    /// per SA (ChaCha12's was some 300 bytes) cost one or two cache misses per packet with
    /// 10,000 SAs, and its output is as unpredictable to a peer whichever SA draws it.
    static IVS: std::cell::RefCell<IvSource> = std::cell::RefCell::new(IvSource::new());
}

/// IVs a batch at a time from AES-128 in counter mode, under a key and from a counter drawn
/// once from the OS: a block cipher's output under a secret key is unpredictable to whoever
/// does not hold the key (RFC 3602 section 3 asks CBC IVs to be unpredictable), and a batch
/// of blocks costs a few AES instructions per IV where ChaCha12 ran its rounds over every
/// byte.
struct IvSource {
    aes: aes::Aes128,
    counter: u128,
    blocks: [aes::Block; IV_BATCH],
    /// The next unused block of `blocks`.
    next: usize,
}

/// IVs made at a time: 512 bytes.
const IV_BATCH: usize = 32;

impl IvSource {
    fn new() -> IvSource {
        use aes::cipher::KeyInit;
        let mut seed = [0u8; 32];
        if OsRng.try_fill_bytes(&mut seed).is_err() {
            seed = fallback_seed();
        }
        let aes = aes::Aes128::new(&seed[..16].try_into().expect("16 bytes"));
        let counter = u128::from_le_bytes(seed[16..].try_into().expect("16 bytes"));
        seed.zeroize();
        IvSource { aes, counter, blocks: Default::default(), next: IV_BATCH }
    }

    /// Fills `iv` (16 bytes for AES, 8 for DES) with the next unused bytes, one block per 16.
    #[inline]
    fn fill(&mut self, iv: &mut [u8]) {
        for chunk in iv.chunks_mut(16) {
            if self.next == IV_BATCH {
                self.refill();
            }
            let b = &self.blocks[self.next];
            self.next += 1;
            // The IVs' two sizes by name: copies of a known length are a move or two, where
            // a copy of a length known only at run time is a call to `memmove`.
            match chunk.len() {
                16 => chunk.copy_from_slice(b),
                8 => chunk.copy_from_slice(&b[..8]),
                n => chunk.copy_from_slice(&b[..n]),
            }
        }
    }

    #[cold]
    fn refill(&mut self) {
        use aes::cipher::BlockCipherEncrypt;
        for b in &mut self.blocks {
            b.copy_from_slice(&self.counter.to_be_bytes());
            self.counter = self.counter.wrapping_add(1);
        }
        self.aes.encrypt_blocks(&mut self.blocks);
        self.next = 0;
    }
}

impl Drop for IvSource {
    /// The IVs not yet sent stay secret (the key zeroizes itself).
    fn drop(&mut self) {
        for b in &mut self.blocks {
            b.as_mut_slice().zeroize();
        }
        self.counter.zeroize();
    }
}

impl<S> std::fmt::Debug for Sa<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sa")
            .field("spi", &self.spi)
            .field("proto", &self.proto)
            .field("mode", &self.mode)
            .field("src", &self.src())
            .field("dst", &self.dst())
            .field("xf", &self.xf)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Returns the template of an SA's outer headers: ESP, ESP in UDP, or AH.
fn outer_template(src: Ipv4Addr, dst: Ipv4Addr, proto: IpsecProto, encap: Option<UdpEncap>) -> ipv4::Template {
    ipv4::Template::new(src, dst, outer_protocol(proto, encap), OUTER_TTL)
}

/// Returns the classification key of the packets an SA sends. Only ESP has an encapsulation
/// (`set_udp_encap`).
fn outer_key(src: Ipv4Addr, dst: Ipv4Addr, proto: IpsecProto, encap: Option<UdpEncap>) -> Key {
    let (sport, dport) = encap.map_or((0, 0), |e| (e.src_port, e.dst_port));
    Key::new(src, dst, outer_protocol(proto, encap).into(), sport, dport)
}

/// Returns the IP protocol of the packets an SA sends: ESP, ESP in UDP (RFC 3948), or AH.
fn outer_protocol(proto: IpsecProto, encap: Option<UdpEncap>) -> Protocol {
    match (proto, encap) {
        (IpsecProto::Esp, None) => Protocol::Esp,
        (IpsecProto::Esp, Some(_)) => Protocol::Udp,
        (IpsecProto::Ah, _) => Protocol::Ah,
    }
}

impl<S> Sa<S> {
    /// The bytes at the start of an SA that sealing a burst reads or writes: the per-packet
    /// and per-burst fields. With 10,000 SAs each of these lines is a miss per packet: what is
    /// read once per reservation of sequence numbers or when a lifetime is due comes after, and
    /// what can be derived (the addresses, the outer key) is not stored.
    pub const HOT_BYTES: usize = std::mem::offset_of!(Sa<S>, shared);

    /// Installs an SA at time `now` (seconds), preparing its keys in `engine`.
    pub fn new<E: Engine<Session = S>>(engine: &mut E, cfg: &SaConfig<'_>, now: u64) -> Result<Self, KeyError> {
        let session = engine.session(cfg.xf, cfg.enc_key, cfg.auth_key)?;
        Ok(Sa {
            outer: outer_template(cfg.src, cfg.dst, cfg.proto, None),
            spi: cfg.spi,
            proto: cfg.proto,
            mode: cfg.mode,
            xf: cfg.xf,
            dont_fragment: cfg.dont_fragment,
            encap: None,
            esp_plan: crate::esp::EspPlan::new(cfg.xf, cfg.mode, false),
            session,
            shared: Arc::new(Shared::default()),
            reserved: 0..0,
            shared_mark: 0,
            replay: ReplayWindow::new(cfg.replay_window),
            ip_id: (OsRng.next_u32() & 0xffff) as u16,
            gcm_iv_base: OsRng.next_u64(),
            lifetimes: cfg.lifetimes,
            added_at: now,
            counters: SaCounters::default(),
            state: SaState::Mature,
            shared_idle: false,
            byte_limited: cfg.lifetimes.limits_bytes(),
            pending: [None; 3],
        })
    }

    /// Returns the SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }
    /// Returns ESP or AH.
    pub fn proto(&self) -> IpsecProto {
        self.proto
    }
    /// Returns the mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Returns sa-src.
    pub fn src(&self) -> Ipv4Addr {
        self.outer.src()
    }
    /// Returns sa-dst.
    pub fn dst(&self) -> Ipv4Addr {
        self.outer.dst()
    }
    /// Returns the algorithms.
    pub fn transform(&self) -> Transform {
        self.xf
    }
    /// Returns the UDP encapsulation, if ESP travels in UDP.
    pub fn udp_encap(&self) -> Option<UdpEncap> {
        self.encap
    }

    /// Returns the classification key of every packet this SA seals: its outer header goes
    /// from sa-src to sa-dst in both modes (transport mode seals only packets with those
    /// addresses), carrying ESP, AH, or UDP with the encapsulation's ports.
    #[inline]
    pub fn outer_key(&self) -> Key {
        outer_key(self.src(), self.dst(), self.proto, self.encap)
    }

    /// Sends and expects ESP in UDP with these ports (NAT traversal); ESP only.
    pub fn set_udp_encap(&mut self, encap: Option<UdpEncap>) {
        self.encap = if self.proto == IpsecProto::Esp { encap } else { None };
        self.outer = outer_template(self.src(), self.dst(), self.proto, self.encap);
        self.esp_plan = crate::esp::EspPlan::new(self.xf, self.mode, self.encap.is_some());
    }

    /// Returns the life stage.
    pub fn state(&self) -> SaState {
        self.state
    }
    /// Returns the counters.
    pub fn counters(&self) -> SaCounters {
        self.counters
    }
    /// Returns the last sequence number handed out to any copy of the SA (outbound); a copy
    /// alone leaves out the numbers it reserved and has not sent.
    pub fn seq(&self) -> u32 {
        let mut seq = self.shared.seq.load(Ordering::Relaxed);
        if self.is_alone() {
            seq -= self.reserved.end - self.reserved.start;
        }
        seq.min(u64::from(u32::MAX)) as u32
    }

    /// Makes this SA a copy of `other` on another worker: they draw sequence numbers and GCM
    /// IVs from one space and count their bytes together. Both must have the same keys.
    pub fn share_with(&mut self, other: &Sa<S>) {
        self.shared = Arc::clone(&other.shared);
        self.gcm_iv_base = other.gcm_iv_base;
        self.reserved = 0..0;
        self.shared_idle = false;
    }
    /// Returns the replay window (inbound).
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }
    /// Returns when the SA was installed (seconds).
    pub fn added_at(&self) -> u64 {
        self.added_at
    }
    /// Returns the lifetimes.
    pub fn lifetimes(&self) -> Lifetimes {
        self.lifetimes
    }

    /// Returns the next event for the control plane, if any.
    #[inline]
    pub fn poll_event(&mut self) -> Option<SaEvent> {
        // Every event comes with leaving `Mature` (`enter`, `next_seq`): a mature SA, nearly
        // every SA of every burst, has none, and one comparison says so.
        if self.state == SaState::Mature {
            return None;
        }
        // Usually there is none: looking costs less than taking every slot.
        let i = self.pending.iter().position(Option::is_some)?;
        self.pending[i].take()
    }

    fn raise(&mut self, ev: SaEvent) {
        if let Some(slot) = self.pending.iter_mut().find(|s| s.is_none()) {
            *slot = Some(ev);
        }
    }

    fn enter(&mut self, state: SaState) {
        match (self.state, state) {
            (SaState::Mature, SaState::Dying) => self.raise(SaEvent::SoftExpired),
            (SaState::Mature | SaState::Dying, SaState::Dead) => self.raise(SaEvent::HardExpired),
            _ => return,
        }
        self.state = state;
    }

    /// Starts the SA's time lifetimes at `now` (seconds, on the clock of [`Sa::tick`]): the worker
    /// calls it when it installs the SA, since the SA was built on another thread and clock.
    pub fn start_life(&mut self, now: u64) {
        self.added_at = now;
    }

    /// Moves the SA through its time lifetimes at `now` (seconds); the worker calls it when one
    /// of the SA's deadlines is due.
    pub fn tick(&mut self, now: u64) {
        let age = now.saturating_sub(self.added_at);
        let lt = self.lifetimes;
        if lt.hard_secs != 0 && age >= lt.hard_secs {
            self.enter(SaState::Dead);
        } else if lt.soft_secs != 0 && age >= lt.soft_secs {
            self.enter(SaState::Dying);
        }
    }

    /// Counts the `packets` packets of `bytes` this copy processed in a burst, then applies the
    /// byte lifetimes to the bytes of every copy: one atomic add, and only for SAs with byte
    /// lifetimes. Once per burst, not per packet: counters added to per packet were stored and
    /// loaded again by the next packet, a chain through memory of about 6 cycles per packet
    /// (AES-GCM 512 B).
    pub(crate) fn end_burst(&mut self, packets: u64, bytes: u64) {
        self.counters.packets += packets;
        self.counters.bytes += bytes;
        if !self.byte_limited {
            return;
        }
        let new = self.counters.bytes - self.shared_mark;
        if new == 0 {
            return;
        }
        self.shared_mark = self.counters.bytes;
        let b = self.shared.bytes.fetch_add(new, Ordering::Relaxed) + new;
        let lt = self.lifetimes;
        // A burst may pass both limits: the soft event still comes first.
        if lt.soft_bytes != 0 && b >= lt.soft_bytes {
            self.enter(SaState::Dying);
        }
        if lt.hard_bytes != 0 && b >= lt.hard_bytes {
            self.enter(SaState::Dead);
        }
    }

    /// Reserves `n` sequence numbers for a burst about to be sealed: one atomic add shared with
    /// the SA's other copies. What a burst leaves unused is kept for the next one.
    ///
    /// A copy with no other copy reserves [`ALONE_RESERVE`] at a time. Copies are made when
    /// the SA is installed, before any packet (`share_with`), so a copy alone now stays alone.
    pub(crate) fn reserve_seq(&mut self, n: usize) {
        let n = n as u64;
        if self.reserved.end - self.reserved.start >= n {
            return;
        }
        let alone = self.is_alone();
        let take = if alone { n.max(ALONE_RESERVE) } else { n };
        let first = self.shared.seq.fetch_add(take, Ordering::Relaxed) + 1;
        // Numbers left over are kept when the new ones follow them, else skipped: a receiver
        // sees a gap, never a repeat.
        let start = if first == self.reserved.end { self.reserved.start } else { first };
        self.reserved = start..first + take;
        self.shared_idle = alone && !self.byte_limited;
    }

    /// Tells whether this copy is the SA's only one: it then owns the sequence space. The
    /// reference count sits on the shared counters' line, so ask only where that line is
    /// touched anyway (a reservation) or off the packet path.
    fn is_alone(&self) -> bool {
        Arc::strong_count(&self.shared) == 1
    }

    /// Hints that the counters shared with other workers (a separate allocation, which
    /// reserving sequence numbers updates) are needed soon, unless bursts do not touch them.
    pub(crate) fn prefetch_shared(&self) {
        if !self.shared_idle {
            crate::prefetch::front(&*self.shared, size_of::<Shared>());
        }
    }

    /// Returns true while the SA may process packets.
    #[inline]
    pub fn is_usable(&self) -> bool {
        self.state != SaState::Dead
    }

    /// Takes the next outbound sequence number; `None` once the space is used up, which stops
    /// the SA (RFC 4303 3.3.3: the counter must not cycle).
    #[inline]
    pub(crate) fn next_seq(&mut self) -> Option<u32> {
        if self.reserved.is_empty() {
            self.reserve_seq(MIN_RESERVE as usize);
        }
        let s = self.reserved.start;
        if s > u64::from(u32::MAX) {
            if self.state != SaState::Dead {
                self.state = SaState::Dead;
                self.raise(SaEvent::SeqExhausted);
            }
            return None;
        }
        self.reserved.start += 1;
        Some(s as u32)
    }

    /// Sets the last sequence number sent (tests, and resynchronising a restarted SA).
    pub fn set_seq(&mut self, seq: u32) {
        self.shared.seq.store(u64::from(seq), Ordering::Relaxed);
        self.reserved = 0..0;
        self.shared_idle = false;
    }

    /// Returns a fresh identification for an outer IPv4 header.
    #[inline]
    pub(crate) fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    /// Returns the GCM explicit IV of sequence number `seq`: unique for the SA's life.
    #[inline]
    pub(crate) fn gcm_iv(&self, seq: u32) -> u64 {
        self.gcm_iv_base.wrapping_add(u64::from(seq))
    }
}

/// Fills `iv` with unpredictable bytes (RFC 3602 section 3: CBC IVs must not be predictable).
#[inline]
pub(crate) fn fill_iv(iv: &mut [u8]) {
    IVS.with(|r| r.borrow_mut().fill(iv));
}

/// A seed used only if the OS random source fails when a thread seals its first CBC packet.
/// Never expected; the IVs are still distinct, though predictable, and the failure is not
/// silent: the control plane installs SAs only after drawing its own key material from the
/// same source.
fn fallback_seed() -> [u8; 32] {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&now.to_le_bytes());
    seed
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn per_packet_fields_sit_in_the_first_lines() {
        // Two lines of a bundle (which starts a line) hold them after its AH pointer with the
        // fast path's engine, three with RustCrypto's larger sessions.
        use crate::bundle::Bundle;
        let mb = Bundle::<crate::crypto::ipsec_mb::MbSession>::HOT_BYTES;
        assert!(mb <= 128, "the per-packet fields of an ipsec-mb bundle end at {mb}");
        let rust = Bundle::<crate::crypto::rust::RustSession>::HOT_BYTES;
        assert!(rust <= 192, "the per-packet fields of a RustCrypto bundle end at {rust}");
        assert_eq!(align_of::<Bundle<crate::crypto::ipsec_mb::MbSession>>(), 64);
    }
    use crate::crypto::{Auth, Cipher, rust::RustEngine};

    /// An outbound AES-GCM tunnel SA with `lifetimes`, on the RustCrypto engine (tests of
    /// other modules use it too).
    pub(crate) fn sa(lifetimes: Lifetimes) -> Sa<<RustEngine as Engine>::Session> {
        let cfg = SaConfig {
            spi: 0x100,
            proto: IpsecProto::Esp,
            mode: Mode::Tunnel,
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            xf: Transform::new(Cipher::AesGcm128, Auth::Null).unwrap(),
            enc_key: &[7; 20],
            auth_key: &[],
            replay_window: 64,
            lifetimes,
            dont_fragment: DontFragment::Clear,
        };
        Sa::new(&mut RustEngine, &cfg, 1000).unwrap()
    }

    #[test]
    fn time_lifetimes_raise_soft_then_hard() {
        let mut s = sa(Lifetimes { soft_secs: 10, hard_secs: 20, ..Default::default() });
        s.tick(1009);
        assert_eq!((s.state(), s.poll_event()), (SaState::Mature, None));
        s.tick(1010);
        assert_eq!((s.state(), s.poll_event()), (SaState::Dying, Some(SaEvent::SoftExpired)));
        s.tick(1011);
        assert_eq!(s.poll_event(), None, "raised once");
        s.tick(1020);
        assert_eq!((s.state(), s.poll_event()), (SaState::Dead, Some(SaEvent::HardExpired)));
        assert!(!s.is_usable());
    }

    #[test]
    fn byte_lifetimes_count_processed_bytes() {
        let mut s = sa(Lifetimes { soft_bytes: 100, hard_bytes: 150, ..Default::default() });
        s.end_burst(2, 99);
        assert_eq!(s.state(), SaState::Mature);
        s.end_burst(1, 1);
        assert_eq!(s.poll_event(), Some(SaEvent::SoftExpired));
        s.end_burst(1, 60);
        assert_eq!(s.poll_event(), Some(SaEvent::HardExpired));
        assert_eq!(s.counters(), SaCounters { packets: 4, bytes: 160 });
    }

    #[test]
    fn sequence_numbers_never_wrap() {
        let mut s = sa(Lifetimes::default());
        assert_eq!(s.next_seq(), Some(1));
        s.set_seq(u32::MAX - 1);
        assert_eq!(s.next_seq(), Some(u32::MAX));
        assert_eq!(s.next_seq(), None);
        assert_eq!(s.poll_event(), Some(SaEvent::SeqExhausted));
        assert_eq!(s.next_seq(), None);
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.state(), SaState::Dead);
    }

    #[test]
    fn copies_on_several_workers_never_repeat_a_sequence_number_and_count_bytes_together() {
        let lt = Lifetimes { hard_bytes: 1000, ..Default::default() };
        let mut a = sa(lt);
        let mut b = sa(lt);
        b.share_with(&a);
        assert_eq!(a.gcm_iv_base, b.gcm_iv_base);
        let mut seen = std::collections::HashSet::new();
        for round in 0..50 {
            a.reserve_seq(32);
            b.reserve_seq(7);
            for _ in 0..(if round % 2 == 0 { 32 } else { 5 }) {
                assert!(seen.insert(a.next_seq().unwrap()));
            }
            for _ in 0..7 {
                assert!(seen.insert(b.next_seq().unwrap()));
            }
        }
        a.end_burst(1, 600);
        b.end_burst(1, 600);
        assert_eq!(b.state(), SaState::Dead, "1200 bytes between them pass the hard limit");
    }

    #[test]
    fn a_copy_alone_reserves_ahead_without_gaps_and_reports_what_it_sent() {
        let mut s = sa(Lifetimes::default());
        let mut want = 1;
        for burst in [3usize, 128, 1, 4000, 200, 128] {
            s.reserve_seq(burst);
            for _ in 0..burst {
                assert_eq!(s.next_seq(), Some(want));
                want += 1;
            }
            assert_eq!(s.seq(), want - 1);
            assert!(s.shared_idle, "no byte lifetime: bursts leave the shared line alone");
        }
        // Once shared (a worker copy made before traffic, as the gateway does), bursts reserve
        // only what they need again.
        let mut a = sa(Lifetimes::default());
        let b = {
            let mut b = sa(Lifetimes::default());
            b.share_with(&a);
            b
        };
        a.reserve_seq(5);
        assert_eq!(a.reserved, 1..6);
        assert!(!a.shared_idle);
        drop(b);
        // A byte lifetime needs the shared byte count every burst.
        let mut c = sa(Lifetimes { hard_bytes: 1 << 20, ..Default::default() });
        c.reserve_seq(5);
        assert_eq!(c.reserved.end - c.reserved.start, ALONE_RESERVE);
        assert!(!c.shared_idle);
    }

    /// Every IV a thread draws differs from the others, across batches, 16 bytes (AES) and 8
    /// (DES) at a time.
    #[test]
    fn ivs_do_not_repeat_across_batches() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..5 * IV_BATCH {
            let mut iv = [0u8; 16];
            fill_iv(&mut iv[..if i % 3 == 0 { 8 } else { 16 }]);
            assert!(seen.insert(iv), "IV {i} repeated");
        }
    }

    #[test]
    fn ivs_are_fresh() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        fill_iv(&mut a);
        fill_iv(&mut b);
        assert_ne!(a, b);
        // Another thread draws from a generator of its own, seeded apart.
        let c = std::thread::spawn(|| {
            let mut c = [0u8; 16];
            fill_iv(&mut c);
            c
        })
        .join()
        .unwrap();
        assert!(c != a && c != b);
    }
}
