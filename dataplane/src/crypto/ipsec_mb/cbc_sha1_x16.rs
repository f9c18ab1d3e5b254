//! AES-CBC + HMAC-SHA1-96 for sixteen packets of one SA at once, on VAES: sealing, and opening
//! (the hash as in sealing, then each packet's blocks decrypted several at a time). Two codes
//! ([`Code`]): AVX-512, and, on CPUs with VAES and the SHA extensions but no AVX-512 (AMD EPYC
//! from Zen 3 on), AVX2 with the SHA extensions.
//!
//! The library's sixteen lanes compute the same thing, but a job goes through its manager
//! twice (the inner hash, then the outer one, each job copied into and out of lane state), and
//! at 64 bytes its kernels were about a quarter of the engine's cycles (`perf`, AES-128-CBC +
//! HMAC-SHA1 bursts of 128 ESP payloads of 64 bytes: the SHA-1 kernel 22%, the AES-CBC one 4%,
//! the manager's code about 40%). Here one call takes the whole batch through both:
//!
//! - AES-CBC: a 256-bit vector holds one block of two lanes, eight vectors the sixteen
//!   chains, whose rounds interleave.
//! - HMAC-SHA1, AVX-512: a 512-bit vector holds one 32-bit word of each lane. A step loads each lane's
//!   next 64-byte block, transposes the sixteen into the sixteen message words, runs the 80
//!   rounds and adds the result to the lanes that had a block to hash. The outer hash's only
//!   block is built in registers from the inner digests, which are already word by lane.
//! - HMAC-SHA1, SHA extensions: each lane's blocks through the SHA-1 instructions, a step taking
//!   the next block of every lane in turn, so that the lanes' chains of dependent rounds overlap
//!   (one chain waits on the instructions' latency: on AMD EPYC Zen 3, 90 cycles a block for one
//!   lane, 50 to 53 for two to four interleaved: `bench/probes/sha_ni_streams.c`).
//!
//! Lanes of different lengths run as many steps as the longest: the caller batches packets of
//! similar lengths. Constant time: every step's work is the same whatever the data; the lanes'
//! lengths, which decide the steps, are public.
#![allow(unsafe_code)]
// Every unsafe function below is an intrinsics kernel: its safety condition is the CPU's,
// checked once in `CbcSha1X16::prepare`, and its reads and writes stay within the lanes' checked
// ranges or this module's own buffers.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;
use std::ops::Range;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::vaes_gcm::schedule;

/// Lanes: packets sealed or opened together.
pub(crate) const LANES: usize = 16;

/// Bytes of the ICV a lane gets: HMAC-SHA1-96.
pub(crate) const ICV_LEN: usize = 12;

/// The SHA-1 initial state (FIPS 180-4, 5.3.1).
const H0: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];

/// Which instructions a [`CbcSha1X16`] key's batches run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Code {
    /// AES-CBC on 256-bit VAES, HMAC-SHA1 in 512-bit lanes, decryption four blocks a vector.
    Avx512,
    /// AES-CBC on 256-bit VAES, HMAC-SHA1 with the SHA extensions, decryption two blocks a
    /// vector.
    ShaNi,
}

impl Code {
    /// The code this CPU runs best: AVX-512 where it has it (its sixteen-lane SHA-1 was
    /// measured there; the SHA extensions were not), else the SHA extensions where it has them.
    pub(crate) fn best() -> Option<Code> {
        if super::vaes_gcm::available_avx512() {
            Some(Code::Avx512)
        } else if available_sha_ni() {
            Some(Code::ShaNi)
        } else {
            None
        }
    }

    /// Tells whether this CPU runs the code.
    pub(crate) fn runs_here(self) -> bool {
        match self {
            Code::Avx512 => super::vaes_gcm::available_avx512(),
            Code::ShaNi => available_sha_ni(),
        }
    }
}

/// Tells whether this CPU has what [`Code::ShaNi`] needs: VAES (and AVX2) for the cipher, the
/// SHA extensions and SSSE3 for the hash.
fn available_sha_ni() -> bool {
    super::vaes_gcm::available()
        && is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

/// One SA's keys for [`CbcSha1X16`]: the HMAC's inner and outer states after the padded key,
/// and the AES round keys of both directions; zeroized on drop. Exists only on a CPU with the instructions
/// ([`CbcSha1X16::prepare`] checks), which makes its methods safe.
#[derive(Zeroize, ZeroizeOnDrop)]
#[repr(C, align(64))]
pub(crate) struct CbcSha1X16 {
    /// 10 for AES-128, 14 for AES-256.
    rounds: u32,
    /// SHA-1 state after the block of the key XOR ipad.
    ipad: [u32; 5],
    /// SHA-1 state after the block of the key XOR opad.
    opad: [u32; 5],
    /// The instructions its batches run on (not secret).
    #[zeroize(skip)]
    code: Code,
    _pad: [u32; 4],
    /// Round keys; AES-128 uses the first 11.
    rk: [[u8; 16]; 15],
    /// Decryption round keys (the equivalent inverse cipher, FIPS 197 5.3.5), in the order
    /// they are used; AES-128 uses the first 11.
    dk: [[u8; 16]; 15],
}

impl std::fmt::Debug for CbcSha1X16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CbcSha1X16").field("rounds", &self.rounds).finish_non_exhaustive()
    }
}

/// Tells whether this CPU runs [`CbcSha1X16`] (one of its codes).
pub(crate) fn available() -> bool {
    Code::best().is_some()
}

impl CbcSha1X16 {
    /// A key that seals nothing: [`CbcSha1X16::ready`] is false until prepared.
    pub(crate) const EMPTY: CbcSha1X16 = CbcSha1X16 {
        rounds: 0,
        ipad: H0,
        opad: H0,
        code: Code::ShaNi,
        _pad: [0; 4],
        rk: [[0; 16]; 15],
        dk: [[0; 16]; 15],
    };

    /// Prepares, in place (no copy of the keys is left elsewhere), an AES key of 16 or 32
    /// bytes and an HMAC-SHA1 key of any length, for the best code of this CPU; false, and left
    /// as it was, for another AES key length or on a CPU without the instructions.
    pub(crate) fn prepare(&mut self, aes_key: &[u8], auth_key: &[u8]) -> bool {
        Code::best().is_some_and(|code| self.prepare_for(code, aes_key, auth_key))
    }

    /// As [`prepare`](Self::prepare), for `code`; false where this CPU does not run it.
    pub(crate) fn prepare_for(&mut self, code: Code, aes_key: &[u8], auth_key: &[u8]) -> bool {
        if !code.runs_here() || !(aes_key.len() == 16 || aes_key.len() == 32) {
            return false;
        }
        self.code = code;
        // SAFETY: `available` checked every instruction set the functions enable.
        unsafe {
            self.rounds = schedule(aes_key, &mut self.rk, &mut []);
            inverse(&self.rk, self.rounds as usize, &mut self.dk);
        }
        // RFC 2104: a key longer than the block is hashed first.
        let mut block = [0u8; 64];
        if auth_key.len() > 64 {
            use sha1::Digest;
            let mut d = sha1::Sha1::digest(auth_key);
            block[..20].copy_from_slice(&d);
            d.zeroize();
        } else {
            block[..auth_key.len()].copy_from_slice(auth_key);
        }
        for (state, pad) in [(&mut self.ipad, 0x36u8), (&mut self.opad, 0x5c)] {
            *state = H0;
            let mut b = block.map(|x| x ^ pad);
            sha1::block_api::compress(state, std::slice::from_ref(&b));
            b.zeroize();
        }
        block.zeroize();
        true
    }

    /// The code the key's batches run on.
    pub(crate) fn code(&self) -> Code {
        self.code
    }

    /// Tells whether the key was prepared.
    pub(crate) fn ready(&self) -> bool {
        self.rounds != 0
    }
}

/// One packet of a batch, checked: the packet, its 16-byte IV, the bytes to encrypt or decrypt
/// in place (whole blocks), the bytes to hash (the ciphertext: after encrypting, before
/// decrypting) and where the 12-byte ICV goes.
pub(crate) struct Lane<'a> {
    data: &'a mut [u8],
    iv: usize,
    text: Range<usize>,
    auth: Range<usize>,
    icv: usize,
}

impl<'a> Lane<'a> {
    /// Returns the lane if every range lies within `data` and the text is whole blocks. The
    /// IV is read before the text is encrypted or decrypted, the auth range while it holds
    /// ciphertext, and the ICV written last when sealing, so the ranges may overlap as ESP's do
    /// (the IV and the ciphertext are hashed).
    pub(crate) fn new(
        data: &'a mut [u8],
        iv: usize,
        text: Range<usize>,
        auth: Range<usize>,
        icv: usize,
    ) -> Option<Self> {
        let len = data.len();
        let within = |r: &Range<usize>| r.start <= r.end && r.end <= len;
        if iv.checked_add(16)? > len
            || !within(&text)
            || !within(&auth)
            || icv.checked_add(ICV_LEN)? > len
            || !text.len().is_multiple_of(16)
            || u32::try_from(auth.len()).is_err()
        {
            return None;
        }
        Some(Lane { data, iv, text, auth, icv })
    }

    /// The ICV field: the packet's, to compare with what [`open`] computed.
    pub(crate) fn icv(&self) -> &[u8] {
        &self.data[self.icv..self.icv + ICV_LEN]
    }
}

/// Encrypts each lane's text in place with AES-CBC from its IV, then writes HMAC-SHA1-96 of
/// its auth range to its ICV field, under `key`. Takes the first [`LANES`] lanes.
pub(crate) fn seal(key: &CbcSha1X16, lanes: &mut [Lane<'_>]) {
    if !key.ready() {
        return;
    }
    let n = lanes.len().min(LANES);
    let lanes = &mut lanes[..n];
    // SAFETY: a `CbcSha1X16` exists only where `available` said yes.
    unsafe {
        match (key.code, key.rounds) {
            (Code::Avx512, 10) => cbc4::<10>(key, lanes),
            (Code::Avx512, _) => cbc4::<14>(key, lanes),
            (Code::ShaNi, 10) => cbc::<10>(key, lanes),
            (Code::ShaNi, _) => cbc::<14>(key, lanes),
        }
        let icv = hmac_of(key, lanes);
        for (i, l) in lanes.iter_mut().enumerate() {
            l.data[l.icv..l.icv + ICV_LEN].copy_from_slice(&icv[i]);
        }
    }
}

/// Writes HMAC-SHA1-96 of each lane's auth range to `tags`, then decrypts its text in place
/// with AES-CBC from its IV; the ICV fields are not read (the caller compares). Takes the first
/// [`LANES`] lanes; the tags past them are unspecified (the AVX-512 code hashes all sixteen).
pub(crate) fn open(key: &CbcSha1X16, lanes: &mut [Lane<'_>], tags: &mut [[u8; ICV_LEN]; LANES]) {
    if !key.ready() {
        return;
    }
    let n = lanes.len().min(LANES);
    let lanes = &mut lanes[..n];
    // SAFETY: as in `seal`.
    unsafe {
        *tags = hmac_of(key, lanes);
        match (key.code, key.rounds) {
            (Code::Avx512, 10) => decrypt::<10>(key, lanes),
            (Code::Avx512, _) => decrypt::<14>(key, lanes),
            (Code::ShaNi, 10) => decrypt2::<10>(key, lanes),
            (Code::ShaNi, _) => decrypt2::<14>(key, lanes),
        }
    }
}

/// Returns HMAC-SHA1-96 of every lane's auth range, in `key`'s code.
///
/// # Safety
/// The CPU runs `key.code` (a prepared key's code does).
unsafe fn hmac_of(key: &CbcSha1X16, lanes: &[Lane<'_>]) -> [[u8; ICV_LEN]; LANES] {
    match key.code {
        Code::Avx512 => hmac(key, lanes),
        Code::ShaNi => hmac_sha_ni(key, lanes),
    }
}

/// Writes the decryption round keys of the `rounds` round keys `rk` to `dk`.
#[target_feature(enable = "aes")]
unsafe fn inverse(rk: &[[u8; 16]; 15], rounds: usize, dk: &mut [[u8; 16]; 15]) {
    let load = |b: &[u8; 16]| _mm_loadu_si128(b.as_ptr().cast());
    let store = |b: &mut [u8; 16], x: __m128i| _mm_storeu_si128(b.as_mut_ptr().cast(), x);
    store(&mut dk[0], load(&rk[rounds]));
    for i in 1..rounds {
        store(&mut dk[i], _mm_aesimc_si128(load(&rk[rounds - i])));
    }
    store(&mut dk[rounds], load(&rk[0]));
}

/// AES-CBC decryption of every lane's text in place, lane after lane: a lane's blocks are
/// independent, four to a vector, each XORed with the ciphertext block before it (the IV for
/// the first). The round keys are broadcast once for the batch.
#[target_feature(enable = "aes,avx2,avx512f,avx512bw,avx512vl,vaes")]
unsafe fn decrypt<const R: usize>(key: &CbcSha1X16, lanes: &mut [Lane<'_>]) {
    let mut dk = [_mm512_setzero_si512(); 15];
    for (r, k) in dk.iter_mut().zip(&key.dk).take(R + 1) {
        *r = _mm512_broadcast_i32x4(_mm_loadu_si128(k.as_ptr().cast()));
    }
    for l in lanes {
        decrypt_lane::<R>(&dk, l);
    }
}

/// [`decrypt`] of one lane with the broadcast round keys `dk`.
#[inline]
#[target_feature(enable = "aes,avx2,avx512f,avx512bw,avx512vl,vaes")]
unsafe fn decrypt_lane<const R: usize>(dk: &[__m512i; 15], l: &mut Lane<'_>) {
    let iv = _mm_loadu_si128(l.data[l.iv..l.iv + 16].as_ptr().cast());
    // The previous chunk's ciphertext: its last block chains to this chunk's first.
    let mut carry = _mm512_broadcast_i32x4(iv);
    let text = &mut l.data[l.text.clone()];
    let p = text.as_mut_ptr();
    let len = text.len();
    let mut off = 0;
    while off < len {
        // Whole chunks of four blocks with plain moves; the last one, of one to three blocks,
        // through a mask of 64-bit words.
        let words = ((len - off) / 8).min(8);
        let mask: u8 = if words == 8 { 0xff } else { (1u8 << words) - 1 };
        let at = p.add(off);
        let c = if words == 8 {
            _mm512_loadu_si512(at.cast())
        } else {
            _mm512_maskz_loadu_epi64(mask, at.cast_const().cast())
        };
        let prev = _mm512_alignr_epi64::<6>(c, carry);
        let mut x = _mm512_xor_si512(c, dk[0]);
        for k in &dk[1..R] {
            x = _mm512_aesdec_epi128(x, *k);
        }
        x = _mm512_xor_si512(_mm512_aesdeclast_epi128(x, dk[R]), prev);
        if words == 8 {
            _mm512_storeu_si512(at.cast(), x);
        } else {
            _mm512_mask_storeu_epi64(at.cast(), mask, x);
        }
        carry = c;
        off += 64;
    }
}

/// [`decrypt`] on 256-bit vectors, two blocks to a vector: lane after lane, whose independent
/// blocks the CPU overlaps across iterations.
#[target_feature(enable = "aes,avx2,vaes")]
unsafe fn decrypt2<const R: usize>(key: &CbcSha1X16, lanes: &mut [Lane<'_>]) {
    let mut dk = [_mm256_setzero_si256(); 15];
    for (r, k) in dk.iter_mut().zip(&key.dk).take(R + 1) {
        *r = _mm256_broadcastsi128_si256(_mm_loadu_si128(k.as_ptr().cast()));
    }
    for l in lanes {
        let iv = _mm_loadu_si128(l.data[l.iv..l.iv + 16].as_ptr().cast());
        let text = &mut l.data[l.text.clone()];
        let p = text.as_mut_ptr();
        let len = text.len();
        // The ciphertext block before the pair: the first block's chaining value.
        let mut carry = iv;
        let mut off = 0;
        while off + 32 <= len {
            let at = p.add(off);
            let c = _mm256_loadu_si256(at.cast());
            let prev = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(carry), _mm256_castsi256_si128(c));
            let mut x = _mm256_xor_si256(c, dk[0]);
            for k in &dk[1..R] {
                x = _mm256_aesdec_epi128(x, *k);
            }
            x = _mm256_xor_si256(_mm256_aesdeclast_epi128(x, dk[R]), prev);
            _mm256_storeu_si256(at.cast(), x);
            carry = _mm256_extracti128_si256::<1>(c);
            off += 32;
        }
        // An odd last block.
        if off < len {
            let at = p.add(off);
            let c = _mm_loadu_si128(at.cast());
            let mut x = _mm_xor_si128(c, _mm256_castsi256_si128(dk[0]));
            for k in &dk[1..R] {
                x = _mm_aesdec_si128(x, _mm256_castsi256_si128(*k));
            }
            x = _mm_xor_si128(_mm_aesdeclast_si128(x, _mm256_castsi256_si128(dk[R])), carry);
            _mm_storeu_si128(at.cast(), x);
        }
    }
}

/// AES-CBC encryption of every lane's text, block by block, the sixteen chains together, in
/// eight 256-bit vectors of two lanes: the SHA-NI code's. Lanes past their text, and absent
/// ones, read and write a scratch block.
#[target_feature(enable = "aes,avx2,vaes")]
unsafe fn cbc<const R: usize>(key: &CbcSha1X16, lanes: &mut [Lane<'_>]) {
    let mut scratch = [0u8; 16];
    let at = Chains::of(lanes, scratch.as_mut_ptr());
    let mut rk = [_mm256_setzero_si256(); 15];
    for (r, k) in rk.iter_mut().zip(&key.rk).take(R + 1) {
        *r = _mm256_broadcastsi128_si256(_mm_loadu_si128(k.as_ptr().cast()));
    }
    // Two batches' 32 chains at once took 10 to 13% more at 512 and 1,420 bytes (Zen 4).
    let mut chain = [_mm256_setzero_si256(); 8];
    for (g, c) in chain.iter_mut().enumerate() {
        *c = load2(at.iv(2 * g), at.iv(2 * g + 1));
    }
    for j in 0..at.steps {
        let ptr = at.step(j);
        let mut x = [_mm256_setzero_si256(); 8];
        for g in 0..8 {
            let p = load2(ptr[2 * g], ptr[2 * g + 1]);
            x[g] = _mm256_xor_si256(_mm256_xor_si256(p, chain[g]), rk[0]);
        }
        for k in &rk[1..R] {
            for v in &mut x {
                *v = _mm256_aesenc_epi128(*v, *k);
            }
        }
        for g in 0..8 {
            x[g] = _mm256_aesenclast_epi128(x[g], rk[R]);
            chain[g] = x[g];
            _mm_storeu_si128(ptr[2 * g].cast(), _mm256_castsi256_si128(x[g]));
            _mm_storeu_si128(ptr[2 * g + 1].cast(), _mm256_extracti128_si256::<1>(x[g]));
        }
    }
}

/// As [`cbc`], in four 512-bit vectors of four lanes: the AVX-512 code's. An Intel Xeon runs
/// a 512-bit AES round in the time of a 256-bit one, and this took 20% less time than `cbc`
/// (16 lanes of 1,408 bytes: 75 against 94 ns a packet; of 512 bytes, 28 against 33); on AMD's
/// Zen 4, which splits a 512-bit vector in two, the whole batch (AES and HMAC) took 1.5 to 2.5%
/// more than with `cbc` (bursts of 128, 64 to 1,420 bytes), a loss this code accepts for the
/// Intel gain.
#[target_feature(enable = "aes,avx2,avx512f,avx512bw,avx512vl,vaes")]
unsafe fn cbc4<const R: usize>(key: &CbcSha1X16, lanes: &mut [Lane<'_>]) {
    let mut scratch = [0u8; 16];
    let at = Chains::of(lanes, scratch.as_mut_ptr());
    let mut rk = [_mm512_setzero_si512(); 15];
    for (r, k) in rk.iter_mut().zip(&key.rk).take(R + 1) {
        *r = _mm512_broadcast_i32x4(_mm_loadu_si128(k.as_ptr().cast()));
    }
    let mut chain = [_mm512_setzero_si512(); 4];
    for (g, c) in chain.iter_mut().enumerate() {
        *c = load4([at.iv(4 * g), at.iv(4 * g + 1), at.iv(4 * g + 2), at.iv(4 * g + 3)]);
    }
    for j in 0..at.steps {
        let ptr = at.step(j);
        let mut x = [_mm512_setzero_si512(); 4];
        for g in 0..4 {
            let p = load4([ptr[4 * g], ptr[4 * g + 1], ptr[4 * g + 2], ptr[4 * g + 3]]);
            x[g] = _mm512_ternarylogic_epi64::<0x96>(p, chain[g], rk[0]);
        }
        for k in &rk[1..R] {
            for v in &mut x {
                *v = _mm512_aesenc_epi128(*v, *k);
            }
        }
        for g in 0..4 {
            x[g] = _mm512_aesenclast_epi128(x[g], rk[R]);
            chain[g] = x[g];
            _mm_storeu_si128(ptr[4 * g].cast(), _mm512_castsi512_si128(x[g]));
            _mm_storeu_si128(ptr[4 * g + 1].cast(), _mm512_extracti32x4_epi32::<1>(x[g]));
            _mm_storeu_si128(ptr[4 * g + 2].cast(), _mm512_extracti32x4_epi32::<2>(x[g]));
            _mm_storeu_si128(ptr[4 * g + 3].cast(), _mm512_extracti32x4_epi32::<3>(x[g]));
        }
    }
}

/// Each lane's part in a CBC encryption: where its text starts, its blocks and its IV. Lanes
/// past their text, and absent ones, read and write the scratch block.
struct Chains {
    base: [*mut u8; LANES],
    blocks: [usize; LANES],
    ivs: [[u8; 16]; LANES],
    scratch: *mut u8,
    /// The most blocks of a lane.
    steps: usize,
}

impl Chains {
    /// Reads `lanes` (at most [`LANES`]); `scratch` is a 16-byte block. Inlined: made by a
    /// call, the encryption took more cycles (paired rounds at CBC+SHA1 1,420 B against the
    /// code before `Chains`: 1.017, inlined 0.992), presumably because a struct whose address
    /// escaped to a call may change with every store through the lanes' pointers, so its
    /// fields are read again after each.
    #[inline(always)]
    fn of(lanes: &mut [Lane<'_>], scratch: *mut u8) -> Chains {
        let mut c = Chains { base: [scratch; LANES], blocks: [0; LANES], ivs: [[0; 16]; LANES], scratch, steps: 0 };
        for (i, l) in lanes.iter_mut().enumerate().take(LANES) {
            c.base[i] = l.data[l.text.start..].as_mut_ptr();
            c.blocks[i] = l.text.len() / 16;
            c.ivs[i].copy_from_slice(&l.data[l.iv..l.iv + 16]);
        }
        c.steps = c.blocks.iter().copied().max().unwrap_or(0);
        c
    }

    /// Returns where each lane's block `j` is: in its text, or the scratch block past it.
    ///
    /// # Safety
    /// The lanes `of` read are still borrowed by the caller.
    #[inline(always)]
    unsafe fn step(&self, j: usize) -> [*mut u8; LANES] {
        let mut ptr = [self.scratch; LANES];
        for (i, p) in ptr.iter_mut().enumerate() {
            if j < self.blocks[i] {
                *p = self.base[i].add(16 * j);
            }
        }
        ptr
    }

    fn iv(&self, lane: usize) -> *const u8 {
        self.ivs[lane].as_ptr()
    }
}

/// Loads four lanes' 16-byte blocks into one vector.
#[inline(always)]
unsafe fn load4(p: [*const u8; 4]) -> __m512i {
    let lo = _mm512_castsi256_si512(load2(p[0], p[1]));
    let hi = load2(p[2], p[3]);
    _mm512_inserti64x4::<1>(lo, hi)
}

/// Loads two lanes' 16-byte blocks into one vector.
#[inline(always)]
unsafe fn load2(a: *const u8, b: *const u8) -> __m256i {
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(_mm_loadu_si128(a.cast())), _mm_loadu_si128(b.cast()))
}

/// One lane's message blocks past its whole ones: the rest of its bytes, the padding and the
/// length (FIPS 180-4, 5.1.1), in one or two blocks.
#[repr(C, align(64))]
struct Tail([u8; 128]);

/// Where each lane's inner-hash blocks are: its whole blocks in the packet from `base[i]`
/// (`whole[i]` of them), then its tail's (`total[i]` in all); absent lanes have none.
struct Blocks {
    base: [*const u8; LANES],
    whole: [usize; LANES],
    total: [usize; LANES],
}

/// Writes each lane's tail, the end of its message padded (FIPS 180-4, 5.1.1) as the inner
/// hash's, which follows the key's block, and returns where the lanes' blocks are.
fn blocks(lanes: &[Lane<'_>], tails: &mut [Tail; LANES]) -> Blocks {
    let mut b = Blocks { base: [tails[0].0.as_ptr(); LANES], whole: [0; LANES], total: [0; LANES] };
    for (i, l) in lanes.iter().enumerate().take(LANES) {
        let msg = &l.data[l.auth.clone()];
        let (w, rest) = (msg.len() / 64, msg.len() % 64);
        let t = &mut tails[i].0;
        t[..rest].copy_from_slice(&msg[64 * w..]);
        t[rest] = 0x80;
        let tail_blocks = if rest + 9 > 64 { 2 } else { 1 };
        // The inner hash follows the key's block: 64 more bytes.
        let bits = (64 + msg.len() as u64) * 8;
        t[64 * tail_blocks - 8..64 * tail_blocks].copy_from_slice(&bits.to_be_bytes());
        b.base[i] = msg.as_ptr();
        b.whole[i] = w;
        b.total[i] = w + tail_blocks;
    }
    b
}

/// Returns HMAC-SHA1-96 of every lane's auth range.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn hmac(key: &CbcSha1X16, lanes: &[Lane<'_>]) -> [[u8; ICV_LEN]; LANES] {
    let mut tails = [const { Tail([0; 128]) }; LANES];
    let Blocks { base, whole, total } = blocks(lanes, &mut tails);
    let steps = total.iter().copied().max().unwrap_or(0);
    let bcast = |s: &[u32; 5]| s.map(|w| _mm512_set1_epi32(w as i32));
    let mut st = bcast(&key.ipad);
    for k in 0..steps {
        let mut rows = [_mm512_setzero_si512(); LANES];
        let mut active: u16 = 0;
        for (i, r) in rows.iter_mut().enumerate() {
            let p = if k < whole[i] {
                base[i].add(64 * k)
            } else if k < total[i] {
                tails[i].0.as_ptr().add(64 * (k - whole[i]))
            } else {
                tails[i].0.as_ptr()
            };
            if k < total[i] {
                active |= 1 << i;
            }
            *r = _mm512_loadu_si512(p.cast());
        }
        let w = transpose(&rows);
        let out = compress(&st, w);
        for (s, o) in st.iter_mut().zip(out) {
            *s = _mm512_mask_add_epi32(*s, active, *s, o);
        }
    }
    // The outer hash: the inner digest, then the padding of a 84-byte message.
    let zero = _mm512_setzero_si512();
    let mut w = [zero; 16];
    w[..5].copy_from_slice(&st);
    w[5] = _mm512_set1_epi32(0x8000_0000u32 as i32);
    w[15] = _mm512_set1_epi32((64 + 20) * 8);
    let outer = bcast(&key.opad);
    let out = compress(&outer, w);
    let mut icv = [[0u32; LANES]; 3];
    for (d, (o, s)) in icv.iter_mut().zip(out.iter().zip(&outer)) {
        _mm512_storeu_si512(d.as_mut_ptr().cast(), _mm512_add_epi32(*o, *s));
    }
    let mut tags = [[0u8; ICV_LEN]; LANES];
    for (i, t) in tags.iter_mut().enumerate() {
        for (c, d) in t.chunks_exact_mut(4).zip(&icv) {
            c.copy_from_slice(&d[i].to_be_bytes());
        }
    }
    // The tails hold the end of what goes on the wire (header, IV, ciphertext) and padding:
    // nothing secret to wipe.
    tags
}

/// Transposes sixteen lanes' 64-byte blocks (`rows[i]`, lane `i`) into the sixteen big-endian
/// message words, word `t` of every lane in vector `t`.
#[inline(always)]
unsafe fn transpose(rows: &[__m512i; LANES]) -> [__m512i; 16] {
    let swap = _mm512_broadcast_i32x4(_mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3));
    let r = rows.map(|x| _mm512_shuffle_epi8(x, swap));
    // Pairs of lanes interleaved by word, then quads by pairs of words: vector 4q + j holds,
    // in its 128-bit chunk c, word 4c + j of lanes 4q to 4q + 3.
    let mut t = [_mm512_setzero_si512(); 16];
    for m in 0..8 {
        t[2 * m] = _mm512_unpacklo_epi32(r[2 * m], r[2 * m + 1]);
        t[2 * m + 1] = _mm512_unpackhi_epi32(r[2 * m], r[2 * m + 1]);
    }
    let mut u = [_mm512_setzero_si512(); 16];
    for q in 0..4 {
        u[4 * q] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
        u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
        u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
        u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
    }
    // Then the 128-bit chunks, a 4 x 4 transpose for each j.
    let mut w = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[j], u[4 + j]);
        let v1 = _mm512_shuffle_i32x4::<0xEE>(u[j], u[4 + j]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + j], u[12 + j]);
        let v3 = _mm512_shuffle_i32x4::<0xEE>(u[8 + j], u[12 + j]);
        w[j] = _mm512_shuffle_i32x4::<0x88>(v0, v2);
        w[4 + j] = _mm512_shuffle_i32x4::<0xDD>(v0, v2);
        w[8 + j] = _mm512_shuffle_i32x4::<0x88>(v1, v3);
        w[12 + j] = _mm512_shuffle_i32x4::<0xDD>(v1, v3);
    }
    w
}

/// The 80 rounds of SHA-1 over one block per lane (FIPS 180-4, 6.1.2), from `st`; returns the
/// working variables, to be added to the state.
#[inline(always)]
unsafe fn compress(st: &[__m512i; 5], mut w: [__m512i; 16]) -> [__m512i; 5] {
    let [mut a, mut b, mut c, mut d, mut e] = *st;
    macro_rules! round {
        ($f:literal, $k:expr, $t:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident) => {
            let t = $t;
            if t >= 16 {
                let x = _mm512_ternarylogic_epi32::<0x96>(w[(t + 13) % 16], w[(t + 8) % 16], w[(t + 2) % 16]);
                w[t % 16] = _mm512_rol_epi32::<1>(_mm512_xor_si512(x, w[t % 16]));
            }
            let f = _mm512_ternarylogic_epi32::<$f>($b, $c, $d);
            let kw = _mm512_add_epi32(w[t % 16], _mm512_set1_epi32($k as i32));
            $e = _mm512_add_epi32(_mm512_add_epi32($e, _mm512_rol_epi32::<5>($a)), _mm512_add_epi32(f, kw));
            $b = _mm512_rol_epi32::<30>($b);
        };
    }
    macro_rules! five {
        ($f:literal, $k:expr, $t:expr) => {
            round!($f, $k, $t, a, b, c, d, e);
            round!($f, $k, $t + 1, e, a, b, c, d);
            round!($f, $k, $t + 2, d, e, a, b, c);
            round!($f, $k, $t + 3, c, d, e, a, b);
            round!($f, $k, $t + 4, b, c, d, e, a);
        };
    }
    // Choose, parity, majority, parity: ternary-logic tables of (b, c, d).
    for t in (0..20).step_by(5) {
        five!(0xCA, 0x5A82_7999u32, t);
    }
    for t in (20..40).step_by(5) {
        five!(0x96, 0x6ED9_EBA1u32, t);
    }
    for t in (40..60).step_by(5) {
        five!(0xE8, 0x8F1B_BCDCu32, t);
    }
    for t in (60..80).step_by(5) {
        five!(0x96, 0xCA62_C1D6u32, t);
    }
    [a, b, c, d, e]
}

/// [`hmac`] with the SHA extensions: a step hashes the next block of each lane in turn.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn hmac_sha_ni(key: &CbcSha1X16, lanes: &[Lane<'_>]) -> [[u8; ICV_LEN]; LANES] {
    let n = lanes.len().min(LANES);
    let mut tails = [const { Tail([0; 128]) }; LANES];
    let Blocks { base, whole, total } = blocks(lanes, &mut tails);
    let steps = total[..n].iter().copied().max().unwrap_or(0);
    let mut st = [State::of(&key.ipad); LANES];
    for k in 0..steps {
        for i in 0..n {
            if k < whole[i] {
                st[i].block(base[i].add(64 * k));
            } else if k < total[i] {
                st[i].block(tails[i].0.as_ptr().add(64 * (k - whole[i])));
            }
        }
    }
    // The outer hash: the inner digest, then the padding of a 84-byte message.
    let mut tags = [[0u8; ICV_LEN]; LANES];
    for (s, t) in st[..n].iter().zip(&mut tags) {
        let mut block = [0u8; 64];
        for (c, w) in block.chunks_exact_mut(4).zip(s.words()) {
            c.copy_from_slice(&w.to_be_bytes());
        }
        block[20] = 0x80;
        block[56..].copy_from_slice(&((64 + 20) as u64 * 8).to_be_bytes());
        let mut outer = State::of(&key.opad);
        outer.block(block.as_ptr());
        for (c, w) in t.chunks_exact_mut(4).zip(outer.words()) {
            c.copy_from_slice(&w.to_be_bytes());
        }
    }
    tags
}

/// A SHA-1 state as the SHA extensions keep it: A to D in `abcd` (A in the highest word), E in
/// the highest word of `e`.
#[derive(Clone, Copy)]
struct State {
    abcd: __m128i,
    e: __m128i,
}

impl State {
    #[inline(always)]
    unsafe fn of(h: &[u32; 5]) -> State {
        let w = h.map(|x| x as i32);
        State { abcd: _mm_set_epi32(w[0], w[1], w[2], w[3]), e: _mm_set_epi32(w[4], 0, 0, 0) }
    }

    #[inline(always)]
    unsafe fn words(&self) -> [u32; 5] {
        [
            _mm_extract_epi32::<3>(self.abcd) as u32,
            _mm_extract_epi32::<2>(self.abcd) as u32,
            _mm_extract_epi32::<1>(self.abcd) as u32,
            _mm_extract_epi32::<0>(self.abcd) as u32,
            _mm_extract_epi32::<3>(self.e) as u32,
        ]
    }

    /// Hashes the 64-byte block at `p` into the state (FIPS 180-4, 6.1.2): twenty groups of
    /// four rounds, the message schedule computed four words at a time alongside.
    #[inline(always)]
    // The last groups' schedule words are made and not used: the macro makes every group alike.
    #[allow(unused_assignments)]
    unsafe fn block(&mut self, p: *const u8) {
        // The block's bytes reversed, so that word 0, big-endian, is the highest.
        let swap = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
        let load = |o: usize| _mm_shuffle_epi8(_mm_loadu_si128(p.add(o).cast()), swap);
        let mut m = [load(0), load(16), load(32), load(48)];
        let mut x = self.abcd;
        // E plus the group's message words, alternating between two registers: a group's E is
        // computed from the A of four rounds before.
        let mut ee = [_mm_add_epi32(self.e, m[0]), _mm_setzero_si128()];
        // Group g (rounds 4g to 4g + 3) uses words m[g % 4] and makes the schedule's next words
        // from them: sha1msg1 for the words of group g + 3, the XOR for g + 2, sha1msg2 to
        // finish those of g + 1.
        macro_rules! group {
            ($g:literal, $f:literal) => {
                if $g > 0 {
                    ee[$g % 2] = _mm_sha1nexte_epu32(ee[$g % 2], m[$g % 4]);
                }
                ee[($g + 1) % 2] = x;
                if (3..=18).contains(&$g) {
                    m[($g + 1) % 4] = _mm_sha1msg2_epu32(m[($g + 1) % 4], m[$g % 4]);
                }
                x = _mm_sha1rnds4_epu32::<$f>(x, ee[$g % 2]);
                if (1..=16).contains(&$g) {
                    m[($g + 3) % 4] = _mm_sha1msg1_epu32(m[($g + 3) % 4], m[$g % 4]);
                }
                if (2..=17).contains(&$g) {
                    m[($g + 2) % 4] = _mm_xor_si128(m[($g + 2) % 4], m[$g % 4]);
                }
            };
        }
        group!(0, 0);
        group!(1, 0);
        group!(2, 0);
        group!(3, 0);
        group!(4, 0);
        group!(5, 1);
        group!(6, 1);
        group!(7, 1);
        group!(8, 1);
        group!(9, 1);
        group!(10, 2);
        group!(11, 2);
        group!(12, 2);
        group!(13, 2);
        group!(14, 2);
        group!(15, 3);
        group!(16, 3);
        group!(17, 3);
        group!(18, 3);
        group!(19, 3);
        self.e = _mm_sha1nexte_epu32(ee[0], self.e);
        self.abcd = _mm_add_epi32(x, self.abcd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};

    const NEEDS_SHA_NI: &str = "this test needs AVX2, VAES, VPCLMULQDQ and the SHA extensions; `make test` skips it on \
                                CPUs without them";

    /// The codes this CPU runs; `Code::ShaNi` must be one.
    fn codes_here() -> Vec<Code> {
        assert!(Code::ShaNi.runs_here(), "{}", NEEDS_SHA_NI);
        [Code::Avx512, Code::ShaNi].into_iter().filter(|c| c.runs_here()).collect()
    }

    /// HMAC keys longer than SHA-1's block are hashed first (RFC 2104): the pad states agree
    /// with the `hmac` crate's MAC for keys of every length around the block, in each code.
    #[test]
    fn hmac_keys_of_any_length_needs_shani() {
        for code in codes_here() {
            for klen in [0, 1, 20, 63, 64, 65, 100, 200] {
                let ak: Vec<u8> = (0..klen).map(|i| (i * 7 + 3) as u8).collect();
                let mut key = CbcSha1X16::EMPTY;
                assert!(key.prepare_for(code, &[0x11; 16], &ak));
                let mut data = vec![0u8; 8 + 16 + 64 + ICV_LEN];
                for (i, b) in data.iter_mut().enumerate() {
                    *b = i as u8;
                }
                let mut lanes = [Lane::new(&mut data, 8, 24..88, 0..88, 88).unwrap()];
                seal(&key, &mut lanes);
                let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&ak).unwrap();
                m.update(&data[..88]);
                assert_eq!(&m.finalize().into_bytes()[..ICV_LEN], &data[88..], "{code:?}: key of {klen} bytes");
            }
        }
    }

    /// Packets laid out as ESP's (8 bytes of header, the IV, the text, the ICV), of `blocks[i]`
    /// blocks of text each, their bytes from `seed`.
    fn packets(seed: u64, blocks: &[usize]) -> Vec<Vec<u8>> {
        let mut x = seed | 1;
        blocks
            .iter()
            .map(|&b| {
                (0..24 + 16 * b + ICV_LEN)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            })
            .collect()
    }

    fn lanes_of(packets: &mut [Vec<u8>]) -> Vec<Lane<'_>> {
        packets
            .iter_mut()
            .map(|d| {
                let text = d.len() - ICV_LEN;
                Lane::new(d, 8, 24..text, 0..text, text).unwrap()
            })
            .collect()
    }

    /// Where the CPU runs both codes, they seal every batch shape alike (one to sixteen lanes,
    /// lengths mixed, an odd and an even number of blocks, AES-128 and AES-256) and compute
    /// the same tags and plaintexts opening it.
    #[test]
    fn the_two_codes_agree_needs_shani_needs_avx512() {
        assert!(Code::Avx512.runs_here(), "{}", super::super::vaes_gcm::NEEDS_AVX512);
        assert_eq!(codes_here().len(), 2);
        for aes_len in [16, 32] {
            let (ek, ak) = (vec![0x5a; aes_len], [0xa5; 20]);
            let keys = [Code::Avx512, Code::ShaNi].map(|c| {
                let mut k = CbcSha1X16::EMPTY;
                assert!(k.prepare_for(c, &ek, &ak));
                k
            });
            for n in 1..=LANES {
                let blocks: Vec<usize> = (0..n).map(|i| (i * 37 + n * 11 + aes_len) % 96).collect();
                let plain = packets((n * aes_len) as u64, &blocks);
                let mut sealed = [plain.clone(), plain.clone()];
                let mut tags = [[[0u8; ICV_LEN]; LANES]; 2];
                for ((k, out), t) in keys.iter().zip(&mut sealed).zip(&mut tags) {
                    seal(k, &mut lanes_of(out));
                    let mut opened = out.clone();
                    open(k, &mut lanes_of(&mut opened), t);
                    for (o, p) in opened.iter().zip(&plain) {
                        assert_eq!(o[..o.len() - ICV_LEN], p[..p.len() - ICV_LEN], "{:?}: {n} lanes", k.code);
                    }
                }
                assert_eq!(sealed[0], sealed[1], "AES-{}: {n} lanes", aes_len * 8);
                assert_eq!(tags[0][..n], tags[1][..n], "AES-{}: {n} lanes", aes_len * 8);
                for (i, s) in sealed[0].iter().enumerate() {
                    assert_eq!(&tags[0][i][..], &s[s.len() - ICV_LEN..], "lane {i}: the tag opening computes");
                }
            }
        }
    }

    #[test]
    fn lanes_outside_the_packet_are_refused() {
        let mut d = [0u8; 64];
        assert!(Lane::new(&mut d, 8, 24..40, 0..40, 40).is_some());
        assert!(Lane::new(&mut d, 49, 24..40, 0..40, 40).is_none(), "IV past the end");
        assert!(Lane::new(&mut d, 8, 24..41, 0..40, 40).is_none(), "text not whole blocks");
        assert!(Lane::new(&mut d, 8, 24..80, 0..40, 40).is_none(), "text past the end");
        assert!(Lane::new(&mut d, 8, 24..40, 0..65, 40).is_none(), "auth past the end");
        assert!(Lane::new(&mut d, 8, 24..40, 0..40, 53).is_none(), "ICV past the end");
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = Lane::new(&mut d, 8, 40..24, 0..40, 40);
        assert!(backwards.is_none(), "reversed range");
    }
}
