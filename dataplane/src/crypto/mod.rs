//! Ciphers and integrity transforms behind one batch interface: an [`Engine`] seals or opens a
//! slice of [`Job`]s for one SA's [`Engine::Session`] per call.
//!
//! Two engines agree on every vector: [`ipsec_mb`] (Intel's multi-buffer library, many packets
//! in parallel lanes, the fast path on x86-64, with AES-GCM of its own on VAES where the
//! library has only AVX2 code) and [`rust`] (RustCrypto, portable, the cross-check). Keys are prepared once per SA when the session is built, never per packet.

mod alg;
#[cfg(target_arch = "x86_64")]
pub mod ipsec_mb;
pub mod rust;

pub(crate) use alg::check_key_len;
pub use alg::{Auth, Cipher, GCM_ICV_LEN, GCM_IV_LEN, GCM_SALT_LEN, KeyAlgorithm, KeyError, MAX_ICV_LEN, Transform};

/// Largest AEAD additional authenticated data of a job: the SPI and a 64-bit extended
/// sequence number (RFC 4106 section 5).
pub const MAX_AAD_LEN: usize = 12;

/// A byte range of a job's packet, as offset and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub off: u32,
    /// Number of bytes.
    pub len: u32,
}

impl Region {
    /// Creates a region of `len` bytes from `off`.
    pub const fn new(off: usize, len: usize) -> Self {
        Region { off: off as u32, len: len as u32 }
    }

    /// Returns the region as a range, if it lies within `buf_len` bytes.
    #[inline]
    pub fn range(self, buf_len: usize) -> Option<std::ops::Range<usize>> {
        // Two 32-bit numbers: their sum cannot overflow a 64-bit usize.
        let start = self.off as usize;
        let end = start + self.len as usize;
        (end <= buf_len).then_some(start..end)
    }
}

/// What became of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Not processed yet.
    Pending,
    /// Sealed, or opened and verified.
    Done,
    /// Opened, and the ICV did not verify: the packet must be dropped.
    AuthFailed,
    /// The job's regions do not fit the packet or the cipher's block size.
    Invalid,
}

/// One packet's crypto work, every field a place in the packet: nothing is copied in or out.
///
/// Seal: encrypt `cipher` in place, then compute the ICV over `auth` and the ciphertext (HMAC,
/// encrypt-then-MAC: `auth` holds the ciphertext too) or the GCM tag over `auth` as additional
/// authenticated data and the ciphertext, and write it at `icv`. Open: compute the ICV, compare
/// it in constant time with the bytes at `icv`, and decrypt `cipher` in place. After
/// `AuthFailed` the contents of `cipher` are unspecified.
///
/// The IV at `iv` is the cipher's: CBC's block-size IV, or GCM's 8-byte explicit IV, behind
/// which the engine puts the session's salt (the RFC 4106 nonce). Every region (`cipher`,
/// `auth`, the IV, the ICV of the transform's length) must lie within `data`, even when its
/// algorithm is null (a null region is empty), and CBC regions must be whole blocks; otherwise
/// `Invalid`; so is an AEAD `auth` region longer than [`MAX_AAD_LEN`]. The ICV may lie inside `auth` (AH: the ICV field, zeroed): it is written after the
/// hash is computed.
#[derive(Debug)]
pub struct Job<'a> {
    /// The packet bytes.
    pub data: &'a mut [u8],
    /// Bytes encrypted or decrypted in place.
    pub cipher: Region,
    /// HMAC: the bytes the ICV covers. AEAD: the additional authenticated data (RFC 4106
    /// section 5: the SPI and sequence number).
    pub auth: Region,
    /// Where the IV starts.
    pub iv: u32,
    /// Where the ICV starts: seal writes it, open checks it.
    pub icv: u32,
    /// Set by the engine.
    pub status: JobStatus,
}

impl<'a> Job<'a> {
    /// Creates a pending job over `data`.
    pub fn new(data: &'a mut [u8], cipher: Region, auth: Region, iv: usize, icv: usize) -> Self {
        Job { data, cipher, auth, iv: iv as u32, icv: icv as u32, status: JobStatus::Pending }
    }

    /// Returns the byte range of the IV of `xf`, if it lies within the packet.
    #[inline]
    pub fn iv_range(&self, xf: Transform) -> Option<std::ops::Range<usize>> {
        Region { off: self.iv, len: xf.cipher().iv_len() as u32 }.range(self.data.len())
    }

    /// Returns the byte range of the ICV of `xf`, if it lies within the packet.
    #[inline]
    pub fn icv_range(&self, xf: Transform) -> Option<std::ops::Range<usize>> {
        Region { off: self.icv, len: xf.icv_len() as u32 }.range(self.data.len())
    }
}

/// A crypto engine: one per worker core (it may hold per-core state such as ipsec-mb's manager).
pub trait Engine {
    /// One SA's prepared keys (expanded schedules, HMAC pads); zeroized on drop.
    type Session: Send;

    /// Returns the engine's name.
    fn name(&self) -> &'static str;

    /// Describes the engine: its name, and the code paths it chose on this CPU.
    fn describe(&self) -> String {
        self.name().to_owned()
    }

    /// Prepares a session for `xf` with exactly sized keys.
    fn session(&mut self, xf: Transform, enc_key: &[u8], auth_key: &[u8]) -> Result<Self::Session, KeyError>;

    /// Seals every job (one SA's burst), setting each status.
    fn seal(&mut self, s: &Self::Session, jobs: &mut [Job<'_>]);

    /// Opens and verifies every job (one SA's burst), setting each status.
    fn open(&mut self, s: &Self::Session, jobs: &mut [Job<'_>]);

    /// Starts loading the keys of `s` into the cache, ahead of the jobs of a burst that use
    /// them (with thousands of SAs, their keys are rarely cached), for a packet of `len` bytes
    /// (IPv4) to seal: an engine may keep keys that only some sizes read. The default does
    /// nothing.
    fn prefetch(&self, _s: &Self::Session, _len: u32) {}

    /// The fewest bytes to encrypt of the jobs of `s` that the engine seals on its own anyway,
    /// in no lanes shared with other packets (long AES-GCM packets: one call each), if any. A
    /// caller that frames each packet and then hands such a job to [`Engine::seal_alone`] at
    /// once has the processor frame the next packets while it still works through this one's
    /// AES rounds, which keep one execution port busy and leave the others idle. Asked once per
    /// SA's run of packets; the default is none.
    fn seals_alone_from(&self, _s: &Self::Session) -> Option<u32> {
        None
    }
    /// Seals one job of at least [`Engine::seals_alone_from`] bytes to encrypt.
    fn seal_alone(&mut self, s: &Self::Session, job: &mut Job<'_>) {
        self.seal(s, std::slice::from_mut(job));
    }
    /// Seals every job, `jobs[i]` with `sessions[i]`: a burst over many SAs in one call. The
    /// default seals each run of jobs that share a session with `seal`.
    fn seal_each(&mut self, sessions: &[&Self::Session], jobs: &mut [Job<'_>]) {
        for_each_run(sessions, jobs, |s, run| self.seal(s, run));
    }

    /// Opens and verifies every job, `jobs[i]` with `sessions[i]`. The default opens each run
    /// of jobs that share a session with `open`.
    fn open_each(&mut self, sessions: &[&Self::Session], jobs: &mut [Job<'_>]) {
        for_each_run(sessions, jobs, |s, run| self.open(s, run));
    }
}

/// Calls `f` on each run of consecutive jobs whose sessions are the same object.
fn for_each_run<S>(sessions: &[&S], jobs: &mut [Job<'_>], mut f: impl FnMut(&S, &mut [Job<'_>])) {
    let n = sessions.len().min(jobs.len());
    let mut start = 0;
    while start < n {
        let s = sessions[start];
        let end = start + sessions[start..n].iter().take_while(|&&t| std::ptr::eq(t, s)).count();
        f(s, &mut jobs[start..end]);
        start = end;
    }
}

/// Compares two ICVs of the same length (at most [`MAX_ICV_LEN`]) in constant time: no branch
/// or early exit depends on their bytes, only the answer does. `subtle`'s slice comparison is
/// as safe but goes byte by byte through an optimisation barrier: about 220 instructions per
/// 16-byte ICV on the per-packet path, against about 15 here. Unequal lengths are unequal.
#[inline]
pub fn icv_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() || n > MAX_ICV_LEN {
        return false;
    }
    let diff = if n >= 8 {
        // The first and the last eight bytes (overlapping below 16) cover every byte.
        let word = |v: &[u8], at: usize| u64::from_ne_bytes(v[at..at + 8].try_into().unwrap_or([0; 8]));
        (word(a, 0) ^ word(b, 0)) | (word(a, n - 8) ^ word(b, n - 8))
    } else {
        a.iter().zip(b).fold(0u64, |d, (x, y)| d | u64::from(x ^ y))
    };
    // The barrier keeps the compiler from turning the OR into early exits.
    std::hint::black_box(diff) == 0
}

/// Returns true when DES key bytes are weak or semi-weak (FIPS 74), ignoring parity bits.
pub(crate) fn des_key_is_weak(key: &[u8]) -> bool {
    const WEAK: [u64; 16] = [
        0x0101010101010101,
        0xFEFEFEFEFEFEFEFE,
        0xE0E0E0E0F1F1F1F1,
        0x1F1F1F1F0E0E0E0E,
        0x011F011F010E010E,
        0x1F011F010E010E01,
        0x01E001E001F101F1,
        0xE001E001F101F101,
        0x01FE01FE01FE01FE,
        0xFE01FE01FE01FE01,
        0x1FE01FE00EF10EF1,
        0xE01FE01FF10EF10E,
        0x1FFE1FFE0EFE0EFE,
        0xFE1FFE1FFE0EFE0E,
        0xE0FEE0FEF1FEF1FE,
        0xFEE0FEE0FEF1FEF1,
    ];
    let Ok(bytes) = <[u8; 8]>::try_from(key) else { return false };
    let k = u64::from_be_bytes(bytes) & 0xFEFE_FEFE_FEFE_FEFE;
    WEAK.iter().any(|w| w & 0xFEFE_FEFE_FEFE_FEFE == k)
}

/// Checks the key lengths of `xf`, and refuses weak DES keys and 3DES keys whose parts repeat
/// (RFC 2451 section 2.3: with K1 = K2 or K2 = K3, 3DES degrades to single DES).
pub(crate) fn check_keys(xf: Transform, enc_key: &[u8], auth_key: &[u8]) -> Result<(), KeyError> {
    check_key_len(xf.cipher().name(), xf.cipher().key_len(), enc_key)?;
    check_key_len(xf.auth().name(), xf.auth().key_len(), auth_key)?;
    match xf.cipher() {
        Cipher::DesCbc if des_key_is_weak(enc_key) => Err(KeyError::WeakKey("des")),
        Cipher::TdesCbc => {
            let (k1, k2, k3) = (&enc_key[..8], &enc_key[8..16], &enc_key[16..]);
            let same = |a: &[u8], b: &[u8]| a.iter().zip(b).all(|(x, y)| x & 0xFE == y & 0xFE);
            if same(k1, k2) || same(k2, k3) { Err(KeyError::WeakKey("3des")) } else { Ok(()) }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_stay_in_bounds() {
        assert_eq!(Region::new(2, 3).range(5), Some(2..5));
        assert_eq!(Region::new(2, 4).range(5), None);
        assert_eq!(Region { off: u32::MAX, len: u32::MAX }.range(1 << 20), None);
    }

    #[test]
    fn icv_eq_agrees_with_plain_comparison() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as u8
        };
        for len in 0..=MAX_ICV_LEN {
            for _ in 0..200 {
                let a: Vec<u8> = (0..len).map(|_| next()).collect();
                let mut b = a.clone();
                assert!(icv_eq(&a, &b));
                if len > 0 {
                    // One flipped bit anywhere makes them differ.
                    let bit = usize::from(next()) % (len * 8);
                    b[bit / 8] ^= 1 << (bit % 8);
                    assert!(!icv_eq(&a, &b), "{a:?} {b:?}");
                }
                let c: Vec<u8> = (0..len).map(|_| next()).collect();
                assert_eq!(icv_eq(&a, &c), a == c);
            }
        }
        assert!(!icv_eq(&[1, 2], &[1, 2, 3]));
        assert!(!icv_eq(&[0; 17], &[0; 17]));
    }

    #[test]
    fn weak_keys_are_refused() {
        let xf = Transform::new(Cipher::DesCbc, Auth::Null).unwrap();
        assert_eq!(check_keys(xf, &[1; 8], &[]), Err(KeyError::WeakKey("des")));
        assert!(check_keys(xf, &hex::decode("0123456789abcdef").unwrap(), &[]).is_ok());
        let xf = Transform::new(Cipher::TdesCbc, Auth::Null).unwrap();
        let k: Vec<u8> = [&[0x11u8; 8][..], &[0x11; 8], &[0x22; 8]].concat();
        assert_eq!(check_keys(xf, &k, &[]), Err(KeyError::WeakKey("3des")));
        assert_eq!(check_keys(xf, &[0; 16], &[]), Err(KeyError::WrongKeyLen { alg: "3des-cbc", need: 24, got: 16 }));
    }
}
