//! The burst driver shared by ESP and AH (prepare every packet → one crypto batch for the SA →
//! finish every packet; long AES-GCM packets are sealed one by one as they are prepared), and
//! the IPv4 header work both protocols need.

use std::net::Ipv4Addr;

use arrayvec::ArrayVec;

use crate::buf::{BURST, Burst, PacketBuf, retain_marked};
use crate::crypto::{Engine, Job, JobStatus};
use crate::sa::{DontFragment, Sa};
use crate::stats::{DropReason, Stats};
use crate::wire::{self, Protocol, ipv4};

/// RFC 4301 section 5.1.2.1: the TTL of a new outer header is the sender's default.
pub(crate) const OUTER_TTL: u8 = 64;

/// One direction of one protocol: what happens to a packet before and after its crypto job.
pub(crate) trait Xform<S> {
    /// What `prepare` learned about the packet, for its job and for `finish`.
    type Prep;
    /// What `prepare` needs of the SA that is the same for every packet: taken once per group,
    /// so the per-packet work does not decode the SA's transform and mode again.
    type Plan;
    /// Returns the plan of `sa`.
    fn plan(sa: &Sa<S>) -> Self::Plan;
    /// Checks and rewrites the packet's headers; returns what `finish` needs and the packet's
    /// crypto job. `Err` drops the packet.
    fn prepare<'b, B: PacketBuf>(
        plan: &Self::Plan,
        sa: &mut Sa<S>,
        buf: &'b mut B,
    ) -> Result<(Self::Prep, Job<'b>), DropReason>;
    /// Runs while the job still borrows the packet, before its status is read (AH restores
    /// the header, and checks the ICV it computed).
    fn after_crypto(_prep: &mut Self::Prep, _job: &mut Job<'_>) {}
    /// Completes the packet once its job is done and returns the bytes to count to the SA;
    /// `Err` drops the packet.
    fn finish<B: PacketBuf>(sa: &mut Sa<S>, buf: &mut B, prep: &Self::Prep) -> Result<u32, DropReason>;
    /// True to seal, false to open.
    const SEAL: bool;
    /// True when the engine seals the jobs, even to open: AH computes the ICV over the packet
    /// with the field zeroed as when sealing, and compares it with the received one itself.
    const ENGINE_SEALS: bool = Self::SEAL;
}

/// The SAs of the groups of one burst, as [`run_groups`] reaches them: group `g` is a run of
/// consecutive packets for one SA.
pub(crate) trait SaGroups<S> {
    /// Returns the SA of group `g`; `None` leaves its packets untouched.
    fn sa_mut(&mut self, g: usize) -> Option<&mut Sa<S>>;
    /// Returns the SA of group `g`.
    fn sa(&self, g: usize) -> Option<&Sa<S>>;
}

/// One SA for the whole burst.
struct One<'a, S>(&'a mut Sa<S>);

impl<S> SaGroups<S> for One<'_, S> {
    fn sa_mut(&mut self, _: usize) -> Option<&mut Sa<S>> {
        Some(&mut *self.0)
    }
    fn sa(&self, _: usize) -> Option<&Sa<S>> {
        Some(&*self.0)
    }
}

/// The time a worker spends in the engine's calls, for its runtime's crypto stage: read with
/// the worker's clock on either side of each burst's one call, never per packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CryptoTime {
    pub clock: fn() -> u64,
    /// Clock cycles in the engine since the last `take`.
    pub cycles: u64,
    /// Jobs given to the engine since the last `take`.
    pub jobs: u64,
    /// Jobs the engine sealed alone as they were framed ([`Engine::seal_alone`]) since the
    /// last `take`: their time is not in `cycles` but in the framing's.
    pub alone: u64,
}

impl CryptoTime {
    /// Times with `clock`.
    pub fn new(clock: fn() -> u64) -> Self {
        CryptoTime { clock, cycles: 0, jobs: 0, alone: 0 }
    }

    /// Returns the cycles, jobs and jobs sealed alone since the last call, and starts again
    /// from zero.
    pub fn take(&mut self) -> (u64, u64, u64) {
        let t = (self.cycles, self.jobs, self.alone);
        (self.cycles, self.jobs, self.alone) = (0, 0, 0);
        t
    }
}

impl Default for CryptoTime {
    /// A clock that reads nothing, for callers that account no stages.
    fn default() -> Self {
        CryptoTime::new(|| 0)
    }
}

/// Runs `X` over a burst for one SA: survivors stay in `burst`, in order; every other packet is
/// freed and counted in `stats`; the engine's time is added to `time`.
pub(crate) fn run<E: Engine, B: PacketBuf, X: Xform<E::Session>>(
    sa: &mut Sa<E::Session>,
    engine: &mut E,
    burst: &mut Burst<B>,
    stats: &mut Stats,
    time: &mut CryptoTime,
) {
    let mut bounds = [0, burst.len()];
    run_groups::<E, B, X, _>(&mut One(sa), &mut bounds, engine, burst, stats, time);
}

/// How many groups ahead [`run_groups`] moves an SA's hot lines to L1. With 10,000 SAs a
/// group is a packet; paired rounds of GCM 64 B over 10,000 policies, cycles against none
/// (medians of the ratios, on a noisy host): 3 ahead 0.982 (6 of 6 rounds fewer cycles), 6
/// ahead 0.943, 0.934, 0.979 and 0.951 (19 of 28), 8 ahead 0.978, 12 ahead 1.024; one policy
/// 0.993.
const SA_AHEAD: usize = 6;

/// Runs `X` over a burst whose packets come in groups, one SA each: group `g` is
/// `burst[bounds[g]..bounds[g + 1]]`. Every packet is prepared with its SA, then all their
/// crypto jobs go to the engine in one call (each job with its SA's keys), then each is
/// finished; but a sealed job the engine takes alone ([`Engine::seal_alone`]) is sealed as soon
/// as it is prepared. Survivors stay in `burst`, in order, and `bounds` is updated to them; every other
/// packet is freed and counted in `stats`; the engine's call is timed into `time`.
pub(crate) fn run_groups<E: Engine, B: PacketBuf, X: Xform<E::Session>, G: SaGroups<E::Session>>(
    sas: &mut G,
    bounds: &mut [usize],
    engine: &mut E,
    burst: &mut Burst<B>,
    stats: &mut Stats,
    time: &mut CryptoTime,
) {
    let groups = bounds.len().saturating_sub(1);
    let mut preps: ArrayVec<Option<X::Prep>, BURST> = ArrayVec::new();
    let mut status = [JobStatus::Pending; BURST];
    // Packets of groups without an SA pass untouched.
    let mut keep = [false; BURST];
    {
        // Each packet's job is made as soon as it is prepared, while its header is at hand;
        // `slots` maps a job to its packet, and `ends[g]` is where group `g`'s jobs end.
        let mut jobs: ArrayVec<Job<'_>, BURST> = ArrayVec::new();
        let mut slots: ArrayVec<u8, BURST> = ArrayVec::new();
        let mut ends = [0u8; BURST];
        let mut bufs = burst.iter_mut();
        let mut i = 0;
        for g in 0..SA_AHEAD.min(groups) {
            prefetch_sa(sas, g);
        }
        for g in 0..groups {
            prefetch_sa(sas, g + SA_AHEAD);
            let n = bounds[g + 1] - bounds[g];
            let group = bufs.by_ref().take(n);
            let Some(sa) = sas.sa_mut(g) else {
                for _ in group {
                    preps.push(None);
                    keep[i] = true;
                    i += 1;
                }
                ends[g] = jobs.len() as u8;
                continue;
            };
            if X::SEAL {
                sa.reserve_seq(n);
            }
            let plan = X::plan(sa);
            let alone_from = if X::SEAL { engine.seals_alone_from(&sa.session).unwrap_or(u32::MAX) } else { u32::MAX };
            for buf in group {
                let prep = if sa.is_usable() { X::prepare(&plan, sa, buf) } else { Err(DropReason::SaExpired) };
                match prep {
                    Ok((prep, job)) if job.cipher.len >= alone_from => {
                        jobs.push(job);
                        preps.push(Some(prep));
                        // Sealed in its place among the jobs, then forgotten. Taken out to a
                        // variable of its own first, every job of every size was made there and
                        // then copied: AES-GCM 64 B, where no job is sealed alone, took 1.063 the
                        // cycles of the code before (paired rounds; 1.018 sealed in place).
                        if let (Some(job), Some(Some(prep))) = (jobs.last_mut(), preps.last_mut()) {
                            engine.seal_alone(&sa.session, job);
                            X::after_crypto(prep, job);
                            status[i] = job.status;
                        }
                        jobs.pop();
                        time.alone += 1;
                    }
                    Ok((prep, job)) => {
                        jobs.push(job);
                        slots.push(i as u8);
                        preps.push(Some(prep));
                    }
                    Err(r) => {
                        stats.drop(r);
                        preps.push(None);
                    }
                }
                i += 1;
            }
            ends[g] = jobs.len() as u8;
        }
        let mut sessions: ArrayVec<&E::Session, BURST> = ArrayVec::new();
        let mut start = 0;
        for (g, &end) in ends[..groups].iter().enumerate() {
            let end = usize::from(end);
            if let Some(sa) = sas.sa(g) {
                for _ in start..end {
                    sessions.push(&sa.session);
                }
            }
            start = end;
        }
        let t0 = (time.clock)();
        if X::ENGINE_SEALS {
            engine.seal_each(&sessions, &mut jobs);
        } else {
            engine.open_each(&sessions, &mut jobs);
        }
        time.cycles += (time.clock)().wrapping_sub(t0);
        time.jobs += jobs.len() as u64;
        for (job, &i) in jobs.iter_mut().zip(slots.iter()) {
            let i = usize::from(i);
            if let Some(prep) = preps[i].as_mut() {
                X::after_crypto(prep, job);
            }
            status[i] = job.status;
        }
    }
    // Survivors move up; each group's bounds follow its own.
    let mut kept = 0;
    for g in 0..groups {
        let (start, end) = (bounds[g], bounds[g + 1]);
        bounds[g] = kept;
        let Some(sa) = sas.sa_mut(g) else {
            kept += end - start;
            continue;
        };
        let mut bytes = 0u64;
        for i in start..end {
            let Some(prep) = preps[i].as_ref() else { continue };
            let verdict = match status[i] {
                JobStatus::Done => X::finish(sa, &mut burst[i], prep),
                JobStatus::AuthFailed => Err(DropReason::AuthFailed),
                JobStatus::Pending | JobStatus::Invalid => Err(DropReason::CryptoFailed),
            };
            match verdict {
                Ok(n) => {
                    keep[i] = true;
                    kept += 1;
                    bytes += u64::from(n);
                }
                Err(r) => stats.drop(r),
            }
        }
        // The group's survivors: `bounds[g]` is where they start.
        sa.end_burst((kept - bounds[g]) as u64, bytes);
    }
    if groups > 0 {
        bounds[groups] = kept;
    }
    if kept < burst.len() {
        retain_marked(burst, &keep);
    }
}

/// Moves the hot lines of group `g`'s SA, if there is one, to L1.
#[inline(always)]
fn prefetch_sa<S, G: SaGroups<S>>(sas: &G, g: usize) {
    if let Some(sa) = sas.sa(g) {
        crate::prefetch::front_l1(sa, Sa::<S>::HOT_BYTES);
    }
}

/// The facts about a packet's IPv4 header that ESP and AH need.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpInfo {
    pub hlen: usize,
    pub total: usize,
    pub protocol: Protocol,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub tos: u8,
    pub df: bool,
}

/// Validates the IPv4 header at the start of `buf`, refuses fragments, and trims bytes past
/// the total length (Ethernet padding).
pub(crate) fn ip_info<B: PacketBuf>(buf: &mut B) -> Result<IpInfo, DropReason> {
    let info = {
        let d = buf.data();
        if d.is_empty() {
            return Err(DropReason::Truncated);
        }
        if d[0] >> 4 != 4 {
            return Err(DropReason::NotIpv4);
        }
        let ip = ipv4::Packet::new_checked(d).map_err(|wire::Error| DropReason::BadIpHeader)?;
        if ip.more_frags() || ip.frag_offset() != 0 {
            return Err(DropReason::IpFragment);
        }
        IpInfo {
            hlen: usize::from(ip.header_len()),
            total: usize::from(ip.total_len()),
            protocol: ip.protocol(),
            src: ip.src_addr(),
            dst: ip.dst_addr(),
            tos: ip.tos(),
            df: ip.dont_frag(),
        }
    };
    let extra = buf.len() - info.total;
    if extra != 0 {
        buf.trim(extra);
    }
    Ok(info)
}

/// Writes the SA's 20-byte outer IPv4 header (RFC 4301 5.1.2.1: TOS copied from the inner
/// header, DF per the policy, a fresh identification, default TTL) into `d[..20]`.
pub(crate) fn write_outer_header<S>(sa: &mut Sa<S>, d: &mut [u8], total: usize, inner: &IpInfo) {
    let df = match sa.dont_fragment {
        DontFragment::Clear => false,
        DontFragment::Set => true,
        DontFragment::Inherit => inner.df,
    };
    let ident = sa.next_ip_id();
    sa.outer.write(d, inner.tos, total as u16, ident, df);
}

/// Rewrites the protocol and total length of the IPv4 header at the start of `d`.
pub(crate) fn set_proto_len(d: &mut [u8], proto: Protocol, total: usize) {
    let mut ip = ipv4::Packet::new_unchecked(d);
    ip.set_protocol(proto);
    ip.set_total_len(total as u16);
    ip.fill_checksum();
}

/// Validates the inner packet left after tunnel-mode decapsulation and trims its padding.
pub(crate) fn check_inner<B: PacketBuf>(buf: &mut B) -> Result<(), DropReason> {
    let (total, len) = {
        let d = buf.data();
        if d.is_empty() || d[0] >> 4 != 4 {
            return Err(DropReason::NotIpv4);
        }
        let ip = ipv4::Packet::new_checked(d).map_err(|wire::Error| DropReason::BadIpHeader)?;
        (usize::from(ip.total_len()), d.len())
    };
    if len > total {
        buf.trim(len - total);
    }
    Ok(())
}

/// Largest IPv4 packet.
pub(crate) const MAX_IP_LEN: usize = 65535;
