//! The ipsec-mb engine: Intel's multi-buffer library (intel-ipsec-mb 1.3) through a small C
//! shim (`shim.c`), many packets in parallel lanes, the fast path on x86-64.
//!
//! One of the two FFI boundaries allowed to use `unsafe`. The shim takes a burst of plain job
//! descriptors, each naming its SA's prepared keys, submits all of them and then flushes:
//! multi-buffer only pays with bursts, so one submission serves every SA of a burst.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::{PhantomData, PhantomPinned};
use std::ptr::{self, NonNull};

use arrayvec::ArrayVec;
use hmac::{Hmac, KeyInit, Mac};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::rust::{RustEngine, RustSession};
use super::{
    Auth, Cipher, Engine, GCM_IV_LEN, GCM_SALT_LEN, Job, JobStatus, KeyError, MAX_AAD_LEN, MAX_ICV_LEN, Transform,
    check_keys, icv_eq,
};

mod cbc_sha1_x16;
mod gcm_x4;
#[cfg(test)]
mod tests;
mod vaes_gcm;

use cbc_sha1_x16::{CbcSha1X16, Code};
use gcm_x4::GcmX4;
use vaes_gcm::VaesGcm;

/// Jobs handed to the library per submit-then-flush round: a whole burst, so that the lanes
/// are flushed once per burst (each flush runs lanes part empty). CBC+SHA1 64 B with AVX-512
/// lanes took 0.95 of the cycles per packet at 64 as at 32, and 0.99 again at 128.
const BATCH: usize = 128;
const _: () = assert!(BATCH <= 128, "the shim takes at most the library's queue (IMB_MAX_JOBS) per round");

/// Rounds of at most this many AES-CBC and HMAC jobs go to the SSE manager when the main one is
/// AVX-512's: a flush runs its sixteen lanes whatever their number. AES-128-CBC + HMAC-SHA1,
/// one engine call of k packets, nanoseconds per packet on the AVX-512 lanes against the SSE
/// manager's SHA extensions (AMD EPYC, Zen 4): k = 1: 691 against 258 at 64 B, 4,997 against
/// 2,130 at 1,420 B; k = 4: 303 / 157 and 1,391 / 854; k = 8: 230 / 149 and 777 / 711;
/// k = 16: 147 / 135 and 438 / 681 (`cargo run --release -p bench --example hmac_rounds`).
const SMALL_ROUND: usize = 8;
/// Bytes of the shim's `struct gw_mb_keys`.
const KEYS_SIZE: usize = 2176;
/// `gw_mb_job.status` when the library completed the job.
const ST_OK: u32 = 0;
/// The library's `IMB_ARCH` codes, as `gw_mb_arch` returns them.
const ARCH_NO_AESNI: u32 = 1;
const ARCH_SSE: u32 = 2;
const ARCH_AVX: u32 = 3;
const ARCH_AVX2: u32 = 4;
const ARCH_AVX512: u32 = 5;

/// The library's `IMB_MGR`, only ever behind a pointer.
#[repr(C)]
struct ImbMgr {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// The shim's `struct gw_mb_keys`: one SA's expanded keys, HMAC pad states and GCM hash keys.
#[repr(C, align(64))]
#[derive(Zeroize, ZeroizeOnDrop)]
struct MbKeys([u8; KEYS_SIZE]);

/// A session's key block: the library's, then what the library does not compute. Kept off the
/// session itself, which sits in the few lines of an SA that every packet reads.
#[repr(C)]
struct KeyBlock {
    lib: MbKeys,
    /// The ICV of an empty auth region, which the library refuses to compute.
    empty_icv: [u8; MAX_ICV_LEN],
    /// AES-CBC + HMAC-SHA1-96 keys for sealing and opening sixteen packets at a time, when the
    /// engine chose it ([`CbcSha1X16::ready`]). Here, not in the session, which must stay within
    /// the few lines of an SA that every packet reads. Not prefetched: a batch takes a run of
    /// one SA's packets, whose first fetches them for the rest, and with many SAs, where a
    /// prefetch would matter, runs are single packets on the library (CBC+SHA1 64 B with 10,000
    /// SAs, paired against prefetching them: 0.977, fewer in 5 of 6).
    x16: CbcSha1X16,
}

impl Drop for KeyBlock {
    fn drop(&mut self) {
        // `lib` zeroizes itself.
        self.empty_icv.zeroize();
    }
}

/// An RFC 4106 nonce (the salt, then the packet's 8-byte IV) as the library's AES-GCM reads it:
/// 12 bytes by one masked load. Written by one 16-byte store, which that load can take its bytes
/// from while the store is still in flight; from the two stores of a copy it cannot, and waits
/// until they reach the cache, with the packet's tag waiting on it. Jobs sealed one by one right
/// after their nonces are written (`seal_alone`), paired rounds against the burst's one call,
/// AES-GCM 512 B: 1.048 with the nonce copied, 0.945 stored whole.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct GcmNonce([u8; 16]);

impl GcmNonce {
    /// The nonce of `salt` and `iv`, the first [`GCM_IV_LEN`] bytes of which are taken.
    #[inline(always)]
    fn new(salt: [u8; GCM_SALT_LEN], iv: &[u8]) -> GcmNonce {
        let iv = u64::from_le_bytes(iv[..GCM_IV_LEN].try_into().unwrap_or([0; GCM_IV_LEN]));
        let lo = u64::from(u32::from_le_bytes(salt)) | iv << 32;
        // Built in a vector register, so that it is stored whole.
        // SAFETY: SSE2 is part of x86-64; a vector and an array are both 16 plain bytes.
        unsafe {
            let v = std::arch::x86_64::_mm_set_epi64x((iv >> 32) as i64, lo as i64);
            GcmNonce(std::mem::transmute::<std::arch::x86_64::__m128i, [u8; 16]>(v))
        }
    }
}

/// The shim's `struct gw_mb_job`: one packet's work, pointers into the caller's [`Job`].
#[repr(C)]
#[derive(Clone, Copy)]
struct RawJob {
    keys: *const MbKeys,
    buf: *mut u8,
    iv: *const u8,
    aad: *const u8,
    tag: *mut u8,
    cipher_off: u32,
    cipher_len: u32,
    hash_off: u32,
    hash_len: u32,
    aad_len: u16,
    /// 1 for AES-128-GCM, 2 for AES-256-GCM, else 0: the shim calls the library's GCM function
    /// from this without reading the job template.
    gcm: u8,
    /// GCM: the ICV's length.
    tag_len: u8,
    status: u32,
}

impl RawJob {
    const EMPTY: RawJob = RawJob {
        keys: ptr::null(),
        buf: ptr::null_mut(),
        iv: ptr::null(),
        aad: ptr::null(),
        tag: ptr::null_mut(),
        cipher_off: 0,
        cipher_len: 0,
        hash_off: 0,
        hash_len: 0,
        aad_len: 0,
        gcm: 0,
        tag_len: 0,
        status: u32::MAX,
    };
}

unsafe extern "C" {
    fn gw_mb_keys_size() -> usize;
    fn gw_mb_keys_align() -> usize;
    fn gw_mb_job_size() -> usize;
    fn gw_mb_new() -> *mut ImbMgr;
    fn gw_mb_new_sse() -> *mut ImbMgr;
    fn gw_mb_free(m: *mut ImbMgr);
    fn gw_mb_arch(m: *const ImbMgr) -> u32;
    fn gw_mb_has_shani(m: *const ImbMgr) -> i32;
    fn gw_mb_gcm_wide(m: *mut ImbMgr) -> i32;
    fn gw_mb_prepare(
        m: *mut ImbMgr,
        keys: *mut MbKeys,
        cipher: u32,
        ekey: *const u8,
        ekey_len: usize,
        auth: u32,
        akey: *const u8,
        akey_len: usize,
        tag_len: u32,
        second: u32,
    ) -> i32;
    fn gw_mb_gcm_one(m: *mut ImbMgr, encrypt: i32, job: *mut RawJob);
    fn gw_mb_burst(
        m: *mut ImbMgr,
        m2: *mut ImbMgr,
        aes_to_m2: i32,
        split_from: u32,
        encrypt: i32,
        jobs: *mut RawJob,
        n: u32,
    );
}

/// Why the engine could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MbError {
    /// The shim was compiled against a header whose layout differs from this module's.
    Layout,
    /// The library could not allocate or initialise a manager for this CPU.
    Init,
}

impl fmt::Display for MbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MbError::Layout => write!(f, "ipsec-mb shim layout does not match the engine: rebuild the dataplane"),
            MbError::Init => write!(f, "intel-ipsec-mb could not initialise a manager on this CPU"),
        }
    }
}

impl std::error::Error for MbError {}

/// Which of the library's managers computes HMAC-SHA-1 and HMAC-SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HmacLanes {
    /// The manager of the best instruction set (AVX2, AVX-512): many packets in SIMD lanes
    /// (but for rounds of a few jobs on AVX-512, see [`SMALL_ROUND`]).
    Simd,
    /// The SSE manager, which hashes one packet at a time with the SHA extensions when the
    /// CPU has them.
    ShaNi,
    /// The SSE manager when the CPU has the SHA extensions and no AVX-512, the other one
    /// otherwise (see [`MbEngine`]).
    Auto,
}

/// Which code seals and opens AES-GCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcmCode {
    /// The library's, for its manager's instruction set.
    Library,
    /// This module's VAES and VPCLMULQDQ code, where the CPU has them (the library's
    /// otherwise).
    Vaes,
    /// This module's code when the library's manager is AVX2 and the CPU has VAES and
    /// VPCLMULQDQ (see [`MbEngine`]), the library's otherwise.
    Auto,
}

/// Sealing AES-CBC + HMAC with the SHA extensions (on the SSE manager), a job with at least
/// this many bytes to encrypt has its AES-CBC done by the main manager, then its HMAC by the
/// SSE manager: the SSE manager's AES-CBC has four lanes and the AVX managers' eight, and
/// CBC encryption waits on the AES latency block after block. On AMD EPYC (Zen 3, AVX2 and
/// SHA-NI), AES-128-CBC + HMAC-SHA1-96 on the engine alone (`ipsecgw bench`'s figure, three
/// alternating runs each, medians): 1.041 Mops one job each and 1.097 split at 1,420-byte
/// frames, 1.370 and 1.446 at 1,024 bytes; split at 512 bytes 1.95 against 2.20 to 2.34: two
/// jobs a packet cost more than the lanes save there.
const SPLIT_FROM: u32 = 1024;

/// The multi-buffer engine of one worker core: owns its `IMB_MGR`s, frees them on drop.
///
/// GCM, MD5 and plain ciphers run on the manager of the best instruction set. HMAC-SHA-1 and
/// HMAC-SHA-256 run on a second, SSE manager when the CPU has the SHA extensions and no
/// AVX-512: on AMD EPYC (SHA-NI, AVX2) the gateway's ipsec stage sealed AES-128-CBC +
/// HMAC-SHA-1 in 617 instead of 702 cycles per 64-byte frame, 1,308 instead of 1,447 at 512
/// and 2,424 instead of 2,497 at 1,420 (medians of 5 alternating `ipsecgw bench` runs each),
/// and HMAC-SHA-256 took 35% fewer cycles (bursts of AES-128-CBC + HMAC-SHA-256 of 64 and
/// 1,024 bytes, the library alone). With AVX-512 the library's sixteen lanes are kept: not
/// measured here.
///
/// AES-GCM runs on this module's own VAES code ([`GcmCode::Auto`]) where the library would run
/// its AVX2 code, one block per AES instruction: a CPU with VAES and VPCLMULQDQ but no AVX-512,
/// such as AMD EPYC from Zen 3 on, for which intel-ipsec-mb 1.3 has no VAES code. With AVX-512
/// the library's VAES code is kept.
pub struct MbEngine {
    mgr: NonNull<ImbMgr>,
    /// The SSE manager, when HMAC-SHA-1 and HMAC-SHA-256 run there.
    sha_ni: Option<NonNull<ImbMgr>>,
    /// The SSE manager that takes rounds of at most [`SMALL_ROUND`] AES-CBC and HMAC jobs,
    /// when the main manager is AVX-512's and the CPU has the SHA extensions.
    small: Option<NonNull<ImbMgr>>,
    /// Where this manager's GCM code keeps the hash key powers.
    gcm_layout: GcmLayout,
    /// AES-GCM sessions get their own keys for [`VaesGcm`].
    vaes_gcm: bool,
    /// AES-GCM sessions also get keys for [`GcmX4`], which seals and opens their short
    /// packets four at a time.
    gcm_x4: bool,
    /// AES-CBC + HMAC-SHA1-96 sessions also get keys for [`CbcSha1X16`], which seals and
    /// opens runs of at least [`MIN_X16`] of their packets sixteen at a time.
    cbc_x16: bool,
    /// DES and 3DES sessions run on the library, not on their RustCrypto fallback: on the
    /// AVX-512 manager (its DES takes sixteen packets at a time), where the library ran 3DES
    /// eight times as fast as RustCrypto; its other managers' DES measured 70 to 700 operations
    /// per second on AMD EPYC (Zen 3), far slower.
    des_on_library: bool,
}

// SAFETY: the managers are owned exclusively by this value and only used through `&mut self`;
// intel-ipsec-mb keeps no thread-local state tied to them, so they may move to another thread.
unsafe impl Send for MbEngine {}

impl MbEngine {
    /// Allocates and initialises a manager for the best instruction set of this CPU, and the
    /// SSE manager for HMAC-SHA where it is faster ([`HmacLanes::Auto`]).
    pub fn new() -> Result<Self, MbError> {
        Self::with_hmac_lanes(HmacLanes::Auto)
    }

    /// As [`MbEngine::new`], with the HMAC-SHA manager chosen by `lanes`.
    pub fn with_hmac_lanes(lanes: HmacLanes) -> Result<Self, MbError> {
        Self::with_code(lanes, GcmCode::Auto)
    }

    /// As [`MbEngine::new`], with the HMAC-SHA manager chosen by `lanes` and the AES-GCM code
    /// by `gcm`.
    pub fn with_code(lanes: HmacLanes, gcm: GcmCode) -> Result<Self, MbError> {
        // SAFETY: these shim functions take no arguments and return constants.
        let (size, align, job) = unsafe { (gw_mb_keys_size(), gw_mb_keys_align(), gw_mb_job_size()) };
        if size != size_of::<MbKeys>() || align != align_of::<MbKeys>() || job != size_of::<RawJob>() {
            return Err(MbError::Layout);
        }
        // SAFETY: gw_mb_new returns an initialised manager or null; we own it from here.
        let mgr = NonNull::new(unsafe { gw_mb_new() }).ok_or(MbError::Init)?;
        // SAFETY: `mgr` is a live, initialised manager.
        let (arch, shani) = unsafe { (gw_mb_arch(mgr.as_ptr()), gw_mb_has_shani(mgr.as_ptr()) != 0) };
        // SAFETY: as above; the probe prepares a key of its own on the stack.
        let layout = if unsafe { gw_mb_gcm_wide(mgr.as_ptr()) } != 0 { GcmLayout::Wide } else { GcmLayout::of(arch) };
        let vaes_gcm = vaes_gcm::available()
            && match gcm {
                GcmCode::Library => false,
                GcmCode::Vaes => true,
                GcmCode::Auto => arch == ARCH_AVX2,
            };
        let gcm_x4 = gcm != GcmCode::Library && gcm_x4::available();
        let des_on_library = arch == ARCH_AVX512;
        let cbc_x16 = cbc_sha1_x16::available();
        let mut e =
            MbEngine { mgr, sha_ni: None, small: None, gcm_layout: layout, vaes_gcm, gcm_x4, cbc_x16, des_on_library };
        let wanted = match lanes {
            HmacLanes::Simd => false,
            HmacLanes::ShaNi => true,
            HmacLanes::Auto => shani && matches!(arch, ARCH_AVX | ARCH_AVX2),
        };
        if wanted {
            // SAFETY: as gw_mb_new; owned by `e` from here, freed by its drop.
            e.sha_ni = Some(NonNull::new(unsafe { gw_mb_new_sse() }).ok_or(MbError::Init)?);
        } else if shani && arch == ARCH_AVX512 {
            // SAFETY: as gw_mb_new; owned by `e` from here, freed by its drop.
            e.small = Some(NonNull::new(unsafe { gw_mb_new_sse() }).ok_or(MbError::Init)?);
        }
        Ok(e)
    }

    /// Seals and opens AES-CBC + HMAC-SHA1-96 on the library's lanes only (`false`), or also
    /// sixteen at a time where the CPU can (`true`, the default): for sessions made after the
    /// call.
    pub fn with_cbc_x16(mut self, on: bool) -> Self {
        self.cbc_x16 = on && cbc_sha1_x16::available();
        self
    }

    /// Seals and opens short AES-GCM packets four at a time where the CPU can (`true`, the
    /// default), or one at a time (`false`): for sessions made after the call.
    pub fn with_gcm_x4(mut self, on: bool) -> Self {
        self.gcm_x4 = on && gcm_x4::available();
        self
    }

    /// Tells whether sessions of `xf` get keys for [`CbcSha1X16`].
    fn x16_for(&self, xf: Transform) -> bool {
        self.cbc_x16 && matches!(xf.cipher(), Cipher::AesCbc128 | Cipher::AesCbc256) && xf.auth() == Auth::HmacSha1_96
    }

    /// Returns which code runs AES-GCM: "vaes" (this module's) or "library".
    pub fn gcm_code(&self) -> &'static str {
        if self.vaes_gcm { "vaes" } else { "library" }
    }

    /// Returns which manager hashes HMAC-SHA-1 jobs: "sha-ni" or "simd".
    pub fn hmac_sha1_lanes(&self) -> &'static str {
        if self.on_sha_ni(Auth::HmacSha1_96) { "sha-ni" } else { "simd" }
    }

    /// Tells whether jobs of `auth` go to the SSE manager.
    fn on_sha_ni(&self, auth: Auth) -> bool {
        self.sha_ni.is_some() && matches!(auth, Auth::HmacSha1_96 | Auth::HmacSha256_128)
    }

    /// Returns the instruction set the library dispatches to.
    pub fn arch(&self) -> &'static str {
        // SAFETY: `mgr` is a live, initialised manager.
        match unsafe { gw_mb_arch(self.mgr.as_ptr()) } {
            ARCH_NO_AESNI => "no-aesni",
            ARCH_SSE => "sse",
            ARCH_AVX => "avx",
            ARCH_AVX2 => "avx2",
            ARCH_AVX512 => "avx512",
            _ => "unknown",
        }
    }

    /// Seals (`encrypt`) or opens every job, `jobs[i]` with `session(i)`, in rounds of at
    /// most [`BATCH`] jobs; jobs of DES sessions with a RustCrypto fallback go there.
    fn run<'s>(&mut self, session: impl Fn(usize) -> &'s MbSession, jobs: &mut [Job<'_>], encrypt: bool) {
        for (c, chunk) in jobs.chunks_mut(BATCH).enumerate() {
            let base = c * BATCH;
            // A bit per job of the chunk: 1 to BATCH of them, and BATCH is at most 128.
            let all = u128::MAX >> (u128::BITS as usize - chunk.len());
            let mut done = if self.gcm_x4 { short_gcm(|i| session(base + i), chunk, encrypt) } else { 0 };
            // Sessions may come from another engine (the control plane prepares SAs and hands
            // them to the workers): whether one has keys for CbcSha1X16 is the session's.
            // When the four-lane kernel took every job (short AES-GCM packets), neither that
            // walk nor the library's is made: a pass over the chunk each, whose hottest
            // instructions alone took 17% of `seal_each`'s samples at AES-GCM 64 B (Intel Xeon).
            if done != all {
                done |= cbc_batches(|i| session(base + i), chunk, encrypt);
            }
            if done == all {
                continue;
            }
            let mut raw: ArrayVec<RawJob, BATCH> = ArrayVec::new();
            let mut slot = [0u8; BATCH];
            // Opening: the ICVs computed, to compare with the packets'. GCM: the nonces.
            let mut tags = [[0u8; MAX_ICV_LEN]; BATCH];
            let mut nonces = [GcmNonce::default(); BATCH];
            let mut todo = all & !done;
            while todo != 0 {
                let i = todo.trailing_zeros() as usize;
                todo &= todo - 1;
                let job = &mut chunk[i];
                let s = session(base + i);
                let keys = match &s.keys {
                    Keys::Lib(k) => k,
                    Keys::Vaes(g) => {
                        job.status = vaes_job(g, s, job, encrypt);
                        continue;
                    }
                    Keys::Rust(r) => {
                        let one = std::slice::from_mut(job);
                        if encrypt {
                            RustEngine.seal(r, one)
                        } else {
                            RustEngine.open(r, one)
                        }
                        continue;
                    }
                };
                // The descriptor is written in place, field by field: built apart and copied
                // in, its 16-byte loads of fields just stored failed store forwarding (34.9% of
                // `seal_each`'s samples on one load, AES-GCM 512 B on Intel Xeon).
                let n = raw.len();
                raw.push(RawJob::EMPTY);
                let out = &mut raw[n];
                let ok = if s.gcm != 0 {
                    describe_gcm(s, keys, job, encrypt, &mut tags[n], &mut nonces[n], out)
                } else {
                    describe(s, keys, job, encrypt, &mut tags[n], out)
                };
                if !ok {
                    raw.pop();
                    job.status = JobStatus::Invalid;
                    continue;
                }
                slot[n] = i as u8;
            }
            let n = raw.len();
            if n > 0 {
                // Jobs for the lanes (GCM runs outside them) are counted only where a small
                // round has somewhere else to go.
                let (second, aes_to_second) = match self.small {
                    Some(sse) if raw.iter().filter(|r| r.gcm == 0).count() <= SMALL_ROUND => (sse, 1),
                    _ => (self.sha_ni.unwrap_or(self.mgr), 0),
                };
                let split_from = if self.sha_ni.is_some() { SPLIT_FROM } else { 0 };
                // SAFETY: `mgr` and `second` (an SSE manager, or `mgr` again) are live and
                // exclusively ours, and a job's keys are the same for every manager (the shim
                // sends a job to `second` by a flag of its keys, or by `aes_to_second`). Each of
                // the `n` descriptors names the keys of a session this module prepared (a live,
                // fixed heap allocation borrowed for this call) and points into a distinct job
                // that is mutably borrowed for this call, or into this frame's `tags` and
                // `nonces`: `describe` checked every region against the packet and the session's
                // transform (the shim skips the library's own checks). The shim flushes every
                // job before returning, so no pointer outlives the call.
                unsafe {
                    gw_mb_burst(
                        self.mgr.as_ptr(),
                        second.as_ptr(),
                        aes_to_second,
                        split_from,
                        i32::from(encrypt),
                        raw.as_mut_ptr(),
                        n as u32,
                    );
                }
            }
            for k in 0..n {
                let job = &mut chunk[usize::from(slot[k])];
                job.status = if raw[k].status != ST_OK {
                    JobStatus::Invalid
                } else if encrypt {
                    JobStatus::Done
                } else {
                    let icv = job.icv as usize;
                    let len = session(base + usize::from(slot[k])).xf.icv_len();
                    verdict(&tags[k][..len], &job.data[icv..icv + len])
                };
            }
        }
    }
}

/// Where a manager's AES-GCM keeps the hash key powers in `struct gcm_key_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GcmLayout {
    /// The SSE and AVX code: 8 powers and their Karatsuba halves after the round keys (to 496).
    Sse,
    /// The AVX2 code, and the AVX-512 manager's without VAES: 8 powers from the highest (240
    /// to 368).
    Avx2,
    /// The VAES code of the AVX-512 manager: 48 powers from the highest (to 1008), so that
    /// short messages use the block's last lines.
    Wide,
}

impl GcmLayout {
    /// The layout of `arch`'s code when the library's precompute did not write the wide one.
    fn of(arch: u32) -> GcmLayout {
        if matches!(arch, ARCH_AVX2 | ARCH_AVX512) { GcmLayout::Avx2 } else { GcmLayout::Sse }
    }
}

/// Returns the offsets of the lines of `struct gcm_key_data` that GCM code of `layout` reads
/// to seal or open a packet of up to 112 bytes with a key of 128 bits, or 256 when `aes256`:
/// the round keys (240 bytes at the front, 176 used by AES-128), and the hash key powers the
/// message's blocks use (powers 1 to n for n blocks). In the AVX2 layout the line at 192 holds
/// AES-256's last round keys and the 8th power only, which AES-128 reads for messages of 8
/// blocks or more: with 10,000 SAs, skipping it took 7% off the cycles per packet of 64-byte
/// frames. Each line fetched and never read costs as much with many SAs, so the wide layout
/// fetches its own lines only. Longer messages read more powers, loaded when needed.
fn gcm_lines(layout: GcmLayout, aes256: bool) -> &'static [u16] {
    match (layout, aes256) {
        (GcmLayout::Avx2, false) => &[0, 64, 128, 256, 320],
        (GcmLayout::Avx2, true) => &[0, 64, 128, 192, 256, 320],
        (GcmLayout::Wide, false) => &[0, 64, 128, 896, 960],
        (GcmLayout::Wide, true) => &[0, 64, 128, 192, 896, 960],
        (GcmLayout::Sse, _) => &[0, 64, 128, 192, 256, 320, 384, 448],
    }
}

/// The lines of `struct gw_mb_keys` that hold the encryption keys of `cipher` (sealing): AES
/// round keys from 1024 (176 bytes for AES-128, 208 and 240 for the others), DES key schedules
/// of 128 bytes from 1536 (one, or three for 3DES). With many SAs each line fetched and not
/// read costs as much as one read.
fn cbc_lines(cipher: Cipher) -> &'static [u16] {
    match cipher {
        Cipher::AesCbc128 => &[1024, 1088, 1152],
        Cipher::AesCbc192 | Cipher::AesCbc256 => &[1024, 1088, 1152, 1216],
        Cipher::DesCbc => &[1536, 1600],
        Cipher::TdesCbc => &[1536, 1600, 1664, 1728, 1792, 1856],
        _ => &[],
    }
}

/// The lines of `struct gw_mb_keys` that hold the HMAC's inner and outer hash states.
const HMAC_LINES: [u16; 2] = [1920, 1984];

impl Drop for MbEngine {
    fn drop(&mut self) {
        // SAFETY: `mgr` came from gw_mb_new, `sha_ni` and `small` from gw_mb_new_sse; each is
        // freed exactly once, here.
        unsafe {
            gw_mb_free(self.mgr.as_ptr());
            for m in [self.sha_ni, self.small].into_iter().flatten() {
                gw_mb_free(m.as_ptr());
            }
        }
    }
}

impl fmt::Debug for MbEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbEngine").field("arch", &self.arch()).field("hmac_sha1", &self.hmac_sha1_lanes()).finish()
    }
}

/// One SA's keys prepared for the library, 64-byte aligned on the heap; zeroized on drop.
pub struct MbSession {
    xf: Transform,
    /// The descriptor's `gcm` and `tag_len` for this SA's jobs, chosen once.
    gcm: u8,
    gcm_tag_len: u8,
    /// GCM: the salt, the key material's last 4 bytes (RFC 4106 section 4).
    salt: [u8; GCM_SALT_LEN],
    keys: Keys,
    /// AES-GCM of short packets, four at a time, when the engine chose it.
    x4: Option<Box<GcmX4>>,
}

/// Where a session's jobs run, with the keys they need there.
enum Keys {
    /// The library's.
    Lib(Box<KeyBlock>),
    /// AES-GCM on this module's VAES code, when the engine chose it.
    Vaes(Box<VaesGcm>),
    /// DES and 3DES on RustCrypto, when the engine chose it: the library's DES measured 0.001
    /// GB/s at 1420 bytes on this kind of machine (AMD EPYC, every code path from SSE to
    /// AVX-512), RustCrypto's 0.025.
    Rust(Box<RustSession>),
}

impl Drop for MbSession {
    fn drop(&mut self) {
        // `keys` zeroizes itself.
        self.salt.zeroize();
    }
}

impl MbSession {
    /// Returns the transform the session was prepared for.
    pub fn transform(&self) -> Transform {
        self.xf
    }
}

impl fmt::Debug for MbSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MbSession").field("xf", &self.xf).finish_non_exhaustive()
    }
}

impl Engine for MbEngine {
    type Session = MbSession;

    fn name(&self) -> &'static str {
        "ipsec-mb"
    }

    fn describe(&self) -> String {
        let des = if self.des_on_library { "library" } else { "rustcrypto" };
        format!(
            "ipsec-mb ({}; hmac-sha1 on {}{}{}; aes-gcm on {}{}; des on {des})",
            self.arch(),
            self.hmac_sha1_lanes(),
            if self.sha_ni.is_some() { ", sealing aes-cbc from 1024 bytes on the main lanes" } else { "" },
            if self.cbc_x16 { ", aes-cbc+hmac-sha1 16 at a time" } else { "" },
            self.gcm_code(),
            if self.gcm_x4 { ", 4 at a time up to 64 bytes" } else { "" }
        )
    }

    fn session(&mut self, xf: Transform, enc_key: &[u8], auth_key: &[u8]) -> Result<MbSession, KeyError> {
        check_keys(xf, enc_key, auth_key)?;
        // GCM: only the AES key is expanded; the salt (the key material's last 4 bytes) goes
        // into each job's nonce.
        let aes_key = || &enc_key[..enc_key.len() - GCM_SALT_LEN];
        let x4 = if xf.cipher().is_aead() && self.gcm_x4 { GcmX4::new(aes_key()) } else { None };
        let keys = if xf.cipher().is_aead()
            && self.vaes_gcm
            && let Some(g) = VaesGcm::new(aes_key())
        {
            Keys::Vaes(g)
        } else if matches!(xf.cipher(), Cipher::DesCbc | Cipher::TdesCbc) && !self.des_on_library {
            Keys::Rust(Box::new(RustEngine.session(xf, enc_key, auth_key)?))
        } else {
            let mut keys =
                Box::new(KeyBlock { lib: MbKeys([0; KEYS_SIZE]), empty_icv: [0; MAX_ICV_LEN], x16: CbcSha1X16::EMPTY });
            if self.x16_for(xf) {
                keys.x16.prepare(enc_key, auth_key);
            }
            // SAFETY: `mgr` is live; `keys` is a writable, 64-byte-aligned `struct gw_mb_keys`
            // (layout checked in `new`); the key pointers are valid for the lengths passed, which
            // the shim checks against the algorithm before reading.
            let rc = unsafe {
                gw_mb_prepare(
                    self.mgr.as_ptr(),
                    &mut keys.lib,
                    cipher_code(xf.cipher()),
                    enc_key.as_ptr(),
                    enc_key.len(),
                    auth_code(xf.auth()),
                    auth_key.as_ptr(),
                    auth_key.len(),
                    xf.icv_len() as u32,
                    u32::from(self.on_sha_ni(xf.auth())),
                )
            };
            if rc != 0 {
                // Not expected after check_keys: the shim only refuses wrong key lengths.
                return Err(KeyError::Engine("ipsec-mb"));
            }
            empty_mac(xf.auth(), auth_key, &mut keys.empty_icv[..xf.auth().icv_len()]);
            Keys::Lib(keys)
        };
        let mut salt = [0; GCM_SALT_LEN];
        if xf.cipher().is_aead() {
            salt.copy_from_slice(&enc_key[enc_key.len() - GCM_SALT_LEN..]);
        }
        let gcm = match xf.cipher() {
            Cipher::AesGcm128 => 1,
            Cipher::AesGcm256 => 2,
            _ => 0,
        };
        let gcm_tag_len = if gcm != 0 { xf.icv_len() as u8 } else { 0 };
        Ok(MbSession { xf, gcm, gcm_tag_len, salt, keys, x4 })
    }

    fn seal(&mut self, s: &MbSession, jobs: &mut [Job<'_>]) {
        match &s.keys {
            Keys::Rust(r) => RustEngine.seal(r, jobs),
            _ => self.run(|_| s, jobs, true),
        }
    }

    fn open(&mut self, s: &MbSession, jobs: &mut [Job<'_>]) {
        match &s.keys {
            Keys::Rust(r) => RustEngine.open(r, jobs),
            _ => self.run(|_| s, jobs, false),
        }
    }

    fn prefetch(&self, s: &MbSession, len: u32) {
        // The cache lines a job reads: GCM, the round keys and hash keys; CBC and HMAC, the job
        // template (two lines: the mode, hash and tag fields are in the second) and the keys.
        const TEMPLATE: [u16; 2] = [2048, 2112];
        let cipher = s.xf.cipher();
        if let Some(x) = &s.x4 {
            // Short packets read these keys, longer ones the library's or VaesGcm's.
            let (short, long) = sizes_sealed(len);
            if short {
                crate::prefetch::front(&**x, GcmX4::HOT_BYTES[usize::from(cipher == Cipher::AesGcm256)]);
            }
            if !long {
                return;
            }
        }
        let keys = match &s.keys {
            Keys::Lib(k) => k.lib.0.as_ptr(),
            Keys::Vaes(g) => {
                crate::prefetch::front(&**g, VaesGcm::HOT_BYTES[usize::from(cipher == Cipher::AesGcm256)]);
                return;
            }
            // DES on RustCrypto: its key schedule is in the session.
            Keys::Rust(_) => return,
        };
        // Offsets within the key block, added without a bounds check: a prefetch cannot fault.
        let fetch = |&off: &u16| crate::prefetch::line(keys.wrapping_add(usize::from(off)));
        if cipher.is_aead() {
            gcm_lines(self.gcm_layout, cipher == Cipher::AesGcm256).iter().for_each(fetch);
        } else {
            TEMPLATE.iter().for_each(fetch);
            cbc_lines(cipher).iter().for_each(fetch);
            if s.xf.auth() != Auth::Null {
                HMAC_LINES.iter().for_each(fetch);
            }
        }
    }

    fn seals_alone_from(&self, s: &MbSession) -> Option<u32> {
        // Shorter AES-GCM jobs wait for three more to go to GcmX4 together.
        let from = if s.x4.is_some() { gcm_x4::MAX_LEN as u32 + 1 } else { 0 };
        (s.gcm != 0 && !matches!(s.keys, Keys::Rust(_))).then_some(from)
    }

    fn seal_alone(&mut self, s: &MbSession, job: &mut Job<'_>) {
        job.status = match &s.keys {
            Keys::Lib(keys) if s.gcm != 0 => {
                let mut raw = RawJob::EMPTY;
                let mut nonce = GcmNonce::default();
                let mut tag = [0u8; MAX_ICV_LEN];
                if describe_gcm(s, keys, job, true, &mut tag, &mut nonce, &mut raw) {
                    // SAFETY: as for `gw_mb_burst` in `run`, for one job: `describe_gcm`
                    // checked its regions against the packet, which `job` borrows mutably for
                    // this call, and the nonce is this frame's; the keys are the session's.
                    unsafe { gw_mb_gcm_one(self.mgr.as_ptr(), 1, &mut raw) };
                }
                if raw.status == ST_OK { JobStatus::Done } else { JobStatus::Invalid }
            }
            Keys::Vaes(g) => vaes_job(g, s, job, true),
            _ => return self.seal(s, std::slice::from_mut(job)),
        };
    }

    fn seal_each(&mut self, sessions: &[&MbSession], jobs: &mut [Job<'_>]) {
        let n = sessions.len().min(jobs.len());
        self.run(|i| sessions[i], &mut jobs[..n], true);
    }

    fn open_each(&mut self, sessions: &[&MbSession], jobs: &mut [Job<'_>]) {
        let n = sessions.len().min(jobs.len());
        self.run(|i| sessions[i], &mut jobs[..n], false);
    }
}

/// Tells whether a packet of `len` bytes (IPv4), sealed with AES-GCM, may have at most
/// [`gcm_x4::MAX_LEN`] bytes to encrypt, and whether it may have more. It has `len + 2` or more
/// in tunnel mode, `len - 58` or more in transport mode (an IPv4 header of up to 60 bytes stays
/// out): under 63 bytes it is short in both, over 122 long in both.
fn sizes_sealed(len: u32) -> (bool, bool) {
    let len = len as usize;
    (len.saturating_sub(58) <= gcm_x4::MAX_LEN, len + 2 > gcm_x4::MAX_LEN)
}

/// Returns the byte ranges of a job's cipher and auth regions, and of its IV and ICV for `xf`,
/// if all lie within its packet.
#[inline]
fn regions(xf: Transform, job: &Job<'_>) -> Option<[std::ops::Range<usize>; 4]> {
    let len = job.data.len();
    Some([job.cipher.range(len)?, job.auth.range(len)?, job.iv_range(xf)?, job.icv_range(xf)?])
}

/// Seals or opens the short AES-GCM jobs (of at most [`BATCH`]) of sessions with a [`GcmX4`]
/// key, four at a time, sets their status and returns them as a bit mask. The four may be of
/// different SAs: with thousands of SAs a burst has few packets of each.
fn short_gcm<'s>(session: impl Fn(usize) -> &'s MbSession, jobs: &mut [Job<'_>], encrypt: bool) -> u128 {
    const _: () = assert!(BATCH <= 128);
    let n = jobs.len().min(BATCH);
    let mut done = 0u128;
    let mut lanes: ArrayVec<gcm_x4::Lane<'_>, { gcm_x4::LANES }> = ArrayVec::new();
    let mut status: ArrayVec<&mut JobStatus, { gcm_x4::LANES }> = ArrayVec::new();
    for (i, job) in jobs[..n].iter_mut().enumerate() {
        if job.cipher.len as usize > gcm_x4::MAX_LEN {
            continue;
        }
        let s = session(i);
        let Some(x) = &s.x4 else { continue };
        let Some(r) = regions(s.xf, job) else { continue };
        let Some(lane) = x4_lane(x, &s.salt, job.data, r) else { continue };
        // A batch takes keys of one size.
        if lanes.first().is_some_and(|l| l.key.rounds() != x.rounds()) {
            x4_run(&mut lanes, &mut status, encrypt);
        }
        done |= 1 << i;
        lanes.push(lane);
        status.push(&mut job.status);
        if lanes.is_full() {
            x4_run(&mut lanes, &mut status, encrypt);
        }
    }
    if !lanes.is_empty() {
        x4_run(&mut lanes, &mut status, encrypt);
    }
    done
}

/// The fewest jobs of one session in a row that [`CbcSha1X16`] may take, in either code: the
/// least of [`min_lanes`] (a batch costs about as much whatever its number of lanes in the
/// AES-CBC, so few lanes lose to the library's).
const MIN_X16: usize = 3;
const _: () = assert!(MIN_X16 <= min_lanes(Code::Avx512, 0) && MIN_X16 <= min_lanes(Code::ShaNi, 0));

/// The fewest lanes of a [`CbcSha1X16`] batch in `code` whose longest text is `text_len` bytes.
/// One call per round of k jobs of one SA, median or best ns per packet, the library against
/// the batch (the batch's thresholds lowered to 1 for the timing):
/// - AVX-512 (its SSE manager up to 8 jobs; AMD EPYC Zen 4, 30 alternating rounds of 2,000
///   calls, medians): 64 bytes, k = 4: 159 / 176, k = 5: 163 / 146, k = 16: 142 / 54;
///   512 bytes, k = 6: 354 / 395, k = 8: 329 / 300; 1,408 bytes, k = 8: 692 / 714, k = 12:
///   573 / 483, k = 16: 415 / 369.
/// - SHA extensions (AMD EPYC Zen 3, `bench/examples/cbc_x16_rounds.rs`, best of 7 runs of
///   2,000 calls): 64 bytes, k = 2: 189 / 217, k = 3: 196 / 171, k = 16: 146 / 94; 512 bytes,
///   k = 4: 405 / 489, k = 5: 498 / 431, k = 16: 386 / 282; 1,408 bytes, k = 6: 874 / 924,
///   k = 8: 809 / 810, k = 12: 881 / 702, k = 16: 809 / 657.
const fn min_lanes(code: Code, text_len: u32) -> usize {
    match code {
        Code::Avx512 if text_len <= 128 => 5,
        Code::ShaNi if text_len <= 128 => 3,
        Code::ShaNi if text_len <= 768 => 5,
        _ => 9,
    }
}

/// Seals or opens the AES-CBC + HMAC-SHA1-96 jobs (of at most [`BATCH`]) of sessions with a
/// [`CbcSha1X16`] key that come in runs of at least [`MIN_X16`] of one session, sixteen at a
/// time, by length; sets their status and returns them as a bit mask. A run's last batch of
/// fewer than [`min_lanes`], and the jobs of other sessions, are left to the library.
fn cbc_batches<'s>(session: impl Fn(usize) -> &'s MbSession, jobs: &mut [Job<'_>], encrypt: bool) -> u128 {
    const _: () = assert!(BATCH <= 128);
    let n = jobs.len().min(BATCH);
    let mut done = 0u128;
    let mut i = 0;
    while i < n {
        let s = session(i);
        let mut end = i + 1;
        while end < n && ptr::eq(session(end), s) {
            end += 1;
        }
        // The run's length and the transform first: with many SAs most runs are one job, and
        // their key blocks are not otherwise read.
        if end - i >= MIN_X16
            && s.xf.auth() == Auth::HmacSha1_96
            && let Keys::Lib(k) = &s.keys
            && k.x16.ready()
        {
            let key = &k.x16;
            done |= cbc_run(key, &mut jobs[i..end], encrypt) << i;
        }
        i = end;
    }
    done
}

/// Seals (`encrypt`) or opens one session's `jobs` with `key`, sixteen at a time in order of
/// length, and returns those it took as a bit mask.
fn cbc_run(key: &CbcSha1X16, jobs: &mut [Job<'_>], encrypt: bool) -> u128 {
    let mut order: ArrayVec<(u32, u8), BATCH> = jobs.iter().enumerate().map(|(i, j)| (j.cipher.len, i as u8)).collect();
    order.sort_unstable();
    let mut slots: ArrayVec<Option<&mut Job<'_>>, BATCH> = jobs.iter_mut().map(Some).collect();
    let mut done = 0u128;
    for batch in order.chunks(cbc_sha1_x16::LANES) {
        // Sorted: the last lane's text is the longest.
        if batch.len() < batch.last().map_or(usize::MAX, |&(len, _)| min_lanes(key.code(), len)) {
            break;
        }
        let mut lanes: ArrayVec<cbc_sha1_x16::Lane<'_>, { cbc_sha1_x16::LANES }> = ArrayVec::new();
        let mut status: ArrayVec<&mut JobStatus, { cbc_sha1_x16::LANES }> = ArrayVec::new();
        for &(_, i) in batch {
            let Some(job) = slots[usize::from(i)].take() else { continue };
            let len = job.data.len();
            let (Some(text), Some(auth)) = (job.cipher.range(len), job.auth.range(len)) else { continue };
            let Some(lane) = cbc_sha1_x16::Lane::new(job.data, job.iv as usize, text, auth, job.icv as usize) else {
                continue;
            };
            lanes.push(lane);
            status.push(&mut job.status);
            done |= 1 << i;
        }
        if encrypt {
            cbc_sha1_x16::seal(key, &mut lanes);
            for st in status {
                *st = JobStatus::Done;
            }
        } else {
            let mut tags = [[0u8; cbc_sha1_x16::ICV_LEN]; cbc_sha1_x16::LANES];
            cbc_sha1_x16::open(key, &mut lanes, &mut tags);
            for ((st, lane), tag) in status.into_iter().zip(&lanes).zip(&tags) {
                *st = verdict(tag, lane.icv());
            }
        }
    }
    done
}

/// Returns a job's packet as a [`GcmX4`] lane under `key` and `salt`, given its regions as
/// `regions` returns them, if the lane takes it: laid out as ESP's (AAD and IV before the data,
/// ICV after it) and within the lane's limits.
#[inline]
fn x4_lane<'j>(
    key: &'j GcmX4,
    salt: &'j [u8; GCM_SALT_LEN],
    data: &'j mut [u8],
    [cipher, auth, iv, icv]: [std::ops::Range<usize>; 4],
) -> Option<gcm_x4::Lane<'j>> {
    if cipher.len() > gcm_x4::MAX_LEN
        || auth.len() > MAX_AAD_LEN
        || icv.len() > 16
        || auth.end > cipher.start
        || iv.end > cipher.start
        || icv.start < cipher.end
    {
        return None;
    }
    let (head, tail) = data.split_at_mut(cipher.start);
    let (text, rest) = tail.split_at_mut(cipher.len());
    Some(gcm_x4::Lane {
        key,
        salt,
        iv: head.get(iv)?.try_into().ok()?,
        aad: head.get(auth)?,
        data: text,
        icv: rest.get_mut(icv.start - cipher.end..icv.end - cipher.end)?,
    })
}

/// Seals or opens `lanes`, sets the jobs' `status` and empties both.
fn x4_run(
    lanes: &mut ArrayVec<gcm_x4::Lane<'_>, { gcm_x4::LANES }>,
    status: &mut ArrayVec<&mut JobStatus, { gcm_x4::LANES }>,
    encrypt: bool,
) {
    if encrypt {
        gcm_x4::seal(lanes);
        for st in status.drain(..) {
            *st = JobStatus::Done;
        }
    } else {
        let mut tags = [[0u8; 16]; gcm_x4::LANES];
        gcm_x4::open(lanes, &mut tags);
        for ((st, lane), tag) in status.drain(..).zip(lanes.iter()).zip(&tags) {
            *st = verdict(&tag[..lane.icv.len()], lane.icv);
        }
    }
    lanes.clear();
}

/// Seals or opens one AES-GCM job on [`VaesGcm`], with the same checks of its regions as
/// `describe`.
fn vaes_job(g: &VaesGcm, s: &MbSession, job: &mut Job<'_>, encrypt: bool) -> JobStatus {
    let Some([cipher, auth, iv, icv]) = regions(s.xf, job) else {
        return JobStatus::Invalid;
    };
    if auth.len() > MAX_AAD_LEN {
        return JobStatus::Invalid;
    }
    let d = &mut *job.data;
    let aad = vaes_gcm::Aad::new(&d[auth]);
    let mut nonce = vaes_gcm::Nonce { salt: s.salt, iv: [0; 8] };
    nonce.iv.copy_from_slice(&d[iv]);
    let tag = if encrypt { g.seal(&nonce, &aad, &mut d[cipher]) } else { g.open(&nonce, &aad, &mut d[cipher]) };
    let icv_len = icv.len();
    let (tag, at) = (&tag[..icv_len.min(16)], &mut d[icv]);
    if encrypt {
        // The usual 16 bytes as one fixed-size copy.
        match (<&mut [u8; 16]>::try_from(&mut *at), <&[u8; 16]>::try_from(tag)) {
            (Ok(at), Ok(tag)) => *at = *tag,
            _ => at.copy_from_slice(tag),
        }
        return JobStatus::Done;
    }
    verdict(tag, at)
}

/// The status of an opened job whose ICV, `received`, was computed as `computed`: compared in
/// constant time.
#[inline]
fn verdict(computed: &[u8], received: &[u8]) -> JobStatus {
    if icv_eq(computed, received) { JobStatus::Done } else { JobStatus::AuthFailed }
}

/// Writes the truncated HMAC of the empty message under `key` to `out`.
fn empty_mac(auth: Auth, key: &[u8], out: &mut [u8]) {
    fn run<M: Mac + KeyInit>(key: &[u8], out: &mut [u8]) {
        if let Ok(m) = <M as KeyInit>::new_from_slice(key) {
            let mut tag = m.finalize().into_bytes();
            out.copy_from_slice(&tag[..out.len()]);
            tag.zeroize();
        }
    }
    match auth {
        Auth::Null => {}
        Auth::HmacMd5_96 => run::<Hmac<md5::Md5>>(key, out),
        Auth::HmacSha1_96 => run::<Hmac<sha1::Sha1>>(key, out),
        Auth::HmacSha256_128 => run::<Hmac<sha2::Sha256>>(key, out),
    }
}

/// Returns the shim's cipher code.
fn cipher_code(c: Cipher) -> u32 {
    match c {
        Cipher::Null => 0,
        Cipher::DesCbc => 1,
        Cipher::TdesCbc => 2,
        Cipher::AesCbc128 => 3,
        Cipher::AesCbc192 => 4,
        Cipher::AesCbc256 => 5,
        Cipher::AesGcm128 => 6,
        Cipher::AesGcm256 => 7,
    }
}

/// Returns the shim's integrity code.
fn auth_code(a: Auth) -> u32 {
    match a {
        Auth::Null => 0,
        Auth::HmacMd5_96 => 1,
        Auth::HmacSha1_96 => 2,
        Auth::HmacSha256_128 => 3,
    }
}

/// Returns the CBC block size, or `None` for stream-like ciphers.
fn cbc_block(c: Cipher) -> Option<u32> {
    match c {
        Cipher::DesCbc | Cipher::TdesCbc => Some(8),
        Cipher::AesCbc128 | Cipher::AesCbc192 | Cipher::AesCbc256 => Some(16),
        Cipher::Null | Cipher::AesGcm128 | Cipher::AesGcm256 => None,
    }
}

/// Tells whether a job's cipher and auth regions, and its IV and ICV of these lengths, all lie
/// within its packet: [`regions`] without building the ranges.
#[inline]
fn fits(job: &Job<'_>, iv_len: usize, icv_len: usize) -> bool {
    let len = job.data.len();
    // Every offset and length is a u32, so none of these sums overflows a 64-bit usize.
    job.cipher.off as usize + job.cipher.len as usize <= len
        && job.auth.off as usize + job.auth.len as usize <= len
        && job.iv as usize + iv_len <= len
        && job.icv as usize + icv_len <= len
}

/// [`describe`] for a session whose jobs the shim gives to the library's AES-GCM functions
/// (`gcm` set): the same checks and descriptor, with only the fields those functions read.
#[inline]
fn describe_gcm(
    s: &MbSession,
    keys: &KeyBlock,
    job: &mut Job<'_>,
    encrypt: bool,
    tag: &mut [u8; MAX_ICV_LEN],
    nonce: &mut GcmNonce,
    out: &mut RawJob,
) -> bool {
    let (iv, icv) = (job.iv as usize, job.icv as usize);
    if job.auth.len as usize > MAX_AAD_LEN || !fits(job, GCM_IV_LEN, usize::from(s.gcm_tag_len)) {
        return false;
    }
    let d = &mut *job.data;
    *nonce = GcmNonce::new(s.salt, &d[iv..iv + GCM_IV_LEN]);
    out.keys = &keys.lib;
    out.buf = d.as_mut_ptr();
    out.iv = nonce.0.as_ptr();
    out.aad = d[job.auth.off as usize..].as_ptr();
    out.tag = if encrypt { d[icv..].as_mut_ptr() } else { tag.as_mut_ptr() };
    out.cipher_off = job.cipher.off;
    out.cipher_len = job.cipher.len;
    out.hash_off = 0;
    out.hash_len = 0;
    out.aad_len = job.auth.len as u16;
    out.gcm = s.gcm;
    out.tag_len = s.gcm_tag_len;
    out.status = RawJob::EMPTY.status;
    true
}

/// Checks a job of a session whose jobs go to the library's lanes (a CBC or null cipher, an
/// HMAC or none: every AES-GCM session has `gcm` set and goes to [`describe_gcm`]) and writes
/// its descriptor to `out`, or returns false when a region leaves the packet or a CBC length is
/// not whole blocks. Both engines check every region even for null algorithms, so they agree on
/// which jobs are invalid. The ICV goes to the packet when sealing and to `tag` when opening.
#[inline]
fn describe(
    s: &MbSession,
    keys: &KeyBlock,
    job: &mut Job<'_>,
    encrypt: bool,
    tag: &mut [u8; MAX_ICV_LEN],
    out: &mut RawJob,
) -> bool {
    let xf = s.xf;
    let c = xf.cipher();
    let (iv, icv, icv_len) = (job.iv as usize, job.icv as usize, xf.icv_len());
    if !fits(job, c.iv_len(), icv_len) || cbc_block(c).is_some_and(|b| !job.cipher.len.is_multiple_of(b)) {
        return false;
    }
    let (ciphered, hashed) = (c != Cipher::Null, xf.auth() != Auth::Null);
    let d = &mut *job.data;
    if hashed && job.auth.len == 0 {
        // The shim does not hash an empty region: its ICV was computed with the session.
        let to = if encrypt { &mut d[icv..icv + icv_len] } else { &mut tag[..icv_len] };
        to.copy_from_slice(&keys.empty_icv[..icv_len]);
    }
    out.keys = &keys.lib;
    out.buf = d.as_mut_ptr();
    out.iv = d[iv..].as_ptr();
    out.aad = ptr::null();
    out.tag = if encrypt { d[icv..].as_mut_ptr() } else { tag.as_mut_ptr() };
    (out.cipher_off, out.cipher_len) = if ciphered { (job.cipher.off, job.cipher.len) } else { (0, 0) };
    (out.hash_off, out.hash_len) = if hashed { (job.auth.off, job.auth.len) } else { (0, 0) };
    out.aad_len = 0;
    out.gcm = 0;
    out.tag_len = 0;
    out.status = RawJob::EMPTY.status;
    true
}
