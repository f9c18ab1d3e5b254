//! AES-GCM for four short packets at once, on VAES and VPCLMULQDQ: with AVX-512, or with AVX2
//! only (AMD EPYC from Zen 3 on), see [`Code`].
//!
//! A packet of up to four blocks (64 bytes: ESP's payload of a 64-byte frame) is one 512-bit
//! vector, or two 256-bit ones. Sealed alone, its AES rounds and its GHASH are chains of dependent instructions,
//! and the library's code waits on their latency with the execution units mostly idle. Here
//! the counter blocks of four packets, and their four tag masks in a fifth vector, go through
//! the rounds together: five independent chains where one ran (ten of half the width with
//! AVX2). Packets shorter than 64 bytes are read and written through byte masks, which also
//! give GHASH their zero padding; AVX2 has no byte masks, and moves them by masked 32-bit words
//! and the last bytes one by one instead.
//!
//! GHASH is computed as POLYVAL, as in [`super::vaes_gcm`]: a packet of `n` blocks hashes the
//! AAD block, its ciphertext blocks and the lengths block, `n + 2` blocks multiplied by the hash
//! key powers `H^(n+2)` down to `H` and reduced once. The powers are kept highest first with two
//! zero blocks after `H`, so that the four powers of a packet's ciphertext are one load at an
//! offset that depends on `n` only (the blocks past `n` are zero and meet zero or any power).
//!
//! Constant time: AES rounds, carry-less products and masked moves are single instructions
//! whose timing does not depend on data; the masks and offsets depend on lengths only, which
//! are public.
#![allow(unsafe_code)]
// Every unsafe function below is an intrinsics kernel: its safety condition is the CPU's,
// checked once in `GcmX4::new`, and its masked reads and writes stay within the slices given.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::vaes_gcm::{fold, mul, reduce, rev_mask, schedule, store};

/// The longest packet (bytes to encrypt) a lane takes.
pub(crate) const MAX_LEN: usize = 64;

/// Lanes: packets sealed or opened together.
pub(crate) const LANES: usize = 4;

/// Which instructions a [`GcmX4`] key's batches run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Code {
    /// 512-bit vectors: a packet a vector, byte-masked loads and stores.
    Avx512,
    /// 256-bit vectors: a packet in two, moved by masked words and bytes.
    Avx2,
}

impl Code {
    /// The code this CPU runs best, if any.
    pub(crate) fn best() -> Option<Code> {
        if super::vaes_gcm::available_avx512() {
            Some(Code::Avx512)
        } else if super::vaes_gcm::available() {
            Some(Code::Avx2)
        } else {
            None
        }
    }

    /// Tells whether this CPU runs the code.
    pub(crate) fn runs_here(self) -> bool {
        match self {
            Code::Avx512 => super::vaes_gcm::available_avx512(),
            Code::Avx2 => super::vaes_gcm::available(),
        }
    }
}

/// One SA's AES-GCM key for [`GcmX4`]: round keys and hash key powers, zeroized on drop. Exists
/// only on a CPU with the instructions ([`GcmX4::new`] checks), which makes its methods safe.
#[derive(Zeroize, ZeroizeOnDrop)]
#[repr(C, align(64))]
pub(crate) struct GcmX4 {
    /// 10 for AES-128, 14 for AES-256.
    rounds: u32,
    /// The instructions its batches run on (not secret); a batch runs its first lane's.
    #[zeroize(skip)]
    code: Code,
    _pad: [u32; 2],
    /// POLYVAL hash key powers `H^6` down to `H`, then two zero blocks.
    hp: [[u8; 16]; 8],
    /// Round keys; AES-128 uses the first 11.
    rk: [[u8; 16]; 15],
}

impl std::fmt::Debug for GcmX4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcmX4").field("rounds", &self.rounds).finish_non_exhaustive()
    }
}

/// One packet of a batch: its SA's key and salt, then slices of the packet: its explicit IV
/// (RFC 4106), its AAD (at most 16 bytes), the bytes to encrypt or decrypt in place (at most
/// [`MAX_LEN`]) and its ICV field (at most 16 bytes), which sealing fills with the tag.
pub(crate) struct Lane<'a> {
    pub key: &'a GcmX4,
    pub salt: &'a [u8; 4],
    pub iv: &'a [u8; 8],
    pub aad: &'a [u8],
    pub data: &'a mut [u8],
    pub icv: &'a mut [u8],
}

/// Tells whether this CPU runs [`GcmX4`] (one of its codes).
pub(crate) fn available() -> bool {
    Code::best().is_some()
}

impl GcmX4 {
    /// Prepares `key` (16 or 32 bytes) for the best code of this CPU; `None` for another length
    /// or on a CPU without the instructions.
    pub(crate) fn new(key: &[u8]) -> Option<Box<GcmX4>> {
        GcmX4::new_for(Code::best()?, key)
    }

    /// As [`new`](Self::new), for `code`; `None` where this CPU does not run it.
    pub(crate) fn new_for(code: Code, key: &[u8]) -> Option<Box<GcmX4>> {
        if !code.runs_here() || !(key.len() == 16 || key.len() == 32) {
            return None;
        }
        let mut k = Box::new(GcmX4 { rounds: 0, code, _pad: [0; 2], hp: [[0; 16]; 8], rk: [[0; 16]; 15] });
        // SAFETY: `available` checked every instruction set the functions enable.
        k.rounds = unsafe { schedule(key, &mut k.rk, &mut k.hp[..6]) };
        Some(k)
    }

    /// Returns the AES rounds of the key: 10 or 14. A batch takes keys of one size.
    pub(crate) fn rounds(&self) -> u32 {
        self.rounds
    }

    /// The bytes from the start that a batch reads, with a key of 128 bits, then 256: the hash
    /// key powers and the round keys.
    pub(crate) const HOT_BYTES: [usize; 2] =
        [std::mem::offset_of!(GcmX4, rk) + 16 * 11, std::mem::offset_of!(GcmX4, rk) + 16 * 15];
}

/// Encrypts each lane's data in place under its key and the nonce of its salt and IV (RFC
/// 4106: counter blocks from 2) and writes the tag over its AAD and ciphertext to its ICV
/// field, truncated to the field. Takes the first [`LANES`] lanes; a lane past a limit, or
/// whose key is not of the first lane's size, is left as it is.
pub(crate) fn seal(lanes: &mut [Lane<'_>]) {
    let mut tags = [[0u8; 16]; LANES];
    dispatch::<true>(lanes, &mut tags);
}

/// Writes each lane's tag over its AAD and ciphertext to `tags`, then decrypts its data in
/// place; the ICV fields are not read (the caller compares). Limits as for [`seal`].
pub(crate) fn open(lanes: &mut [Lane<'_>], tags: &mut [[u8; 16]; LANES]) {
    dispatch::<false>(lanes, tags);
}

fn dispatch<const SEAL: bool>(lanes: &mut [Lane<'_>], tags: &mut [[u8; 16]; LANES]) {
    let Some(first) = lanes.first() else { return };
    let key = first.key;
    // One SA's packets share the round keys: broadcast, not gathered lane by lane.
    let same = lanes.iter().all(|l| std::ptr::eq(l.key, key));
    // SAFETY: a `GcmX4` exists only where its code runs.
    unsafe {
        match (key.code, key.rounds == 10, same) {
            (Code::Avx512, true, true) => batch::<10, SEAL, true>(lanes, tags),
            (Code::Avx512, true, false) => batch::<10, SEAL, false>(lanes, tags),
            (Code::Avx512, false, true) => batch::<14, SEAL, true>(lanes, tags),
            (Code::Avx512, false, false) => batch::<14, SEAL, false>(lanes, tags),
            (Code::Avx2, true, true) => batch2::<10, SEAL, true>(lanes, tags),
            (Code::Avx2, true, false) => batch2::<10, SEAL, false>(lanes, tags),
            (Code::Avx2, false, true) => batch2::<14, SEAL, true>(lanes, tags),
            (Code::Avx2, false, false) => batch2::<14, SEAL, false>(lanes, tags),
        }
    }
}

/// What both codes take from a batch's lanes: each lane's round keys (the first lane's for
/// absent ones and lanes past a limit), whether it is within the limits, and its nonce block
/// with the counter word zero.
struct Setup<'k> {
    rk: [&'k [[u8; 16]; 15]; LANES],
    ok: [bool; LANES],
    nonce: [__m128i; LANES],
}

#[inline(always)]
unsafe fn setup<'k, const R: usize>(lanes: &[Lane<'k>]) -> Setup<'k> {
    let mut s = Setup { rk: [&lanes[0].key.rk; LANES], ok: [false; LANES], nonce: [_mm_setzero_si128(); LANES] };
    for (i, l) in lanes.iter().enumerate().take(LANES) {
        s.ok[i] = l.data.len() <= MAX_LEN && l.aad.len() <= 16 && l.icv.len() <= 16 && l.key.rounds as usize == R;
        if s.ok[i] {
            s.rk[i] = &l.key.rk;
        }
        // The salt, then the IV, as the nonce's bytes would load.
        let salt = u64::from(u32::from_le_bytes(*l.salt));
        let iv = u64::from_le_bytes(*l.iv);
        s.nonce[i] = _mm_set_epi64x((iv >> 32) as i64, (salt | iv << 32) as i64);
    }
    s
}

/// A lane's tag: `ct` is its ciphertext blocks' products with their hash key powers, summed
/// (low, middle, high); to them go the AAD block `aad` (zero-padded, `aad_len` bytes) with
/// `H^(blocks + 2)` and the lengths block with `H`, reduced once, then the tag mask `ej1`. `hp`
/// is the key's powers.
#[inline]
#[target_feature(enable = "pclmulqdq,avx2")]
unsafe fn tag(hp: *const u8, len: usize, aad: __m128i, aad_len: usize, ct: [__m128i; 3], ej1: __m128i) -> __m128i {
    let blocks = len.div_ceil(16);
    let bits = |n: usize| (n as u64 * 8).swap_bytes() as i64;
    let a = _mm_shuffle_epi8(aad, rev_mask());
    let lens = _mm_shuffle_epi8(_mm_set_epi64x(bits(len), bits(aad_len)), rev_mask());
    let ha = _mm_loadu_si128(hp.add(16 * (4 - blocks)).cast());
    let h1 = _mm_loadu_si128(hp.add(16 * 5).cast());
    let (alo, amid, ahi) = mul(a, ha);
    let (llo, lmid, lhi) = mul(lens, h1);
    let s = reduce(
        _mm_xor_si128(ct[0], _mm_xor_si128(alo, llo)),
        _mm_xor_si128(ct[1], _mm_xor_si128(amid, lmid)),
        _mm_xor_si128(ct[2], _mm_xor_si128(ahi, lhi)),
    );
    _mm_xor_si128(_mm_shuffle_epi8(s, rev_mask()), ej1)
}

#[target_feature(enable = "aes,pclmulqdq,avx2,avx512f,avx512bw,avx512vl,vaes,vpclmulqdq")]
unsafe fn batch<const R: usize, const SEAL: bool, const SAME: bool>(
    lanes: &mut [Lane<'_>],
    tags: &mut [[u8; 16]; LANES],
) {
    let n = lanes.len().min(LANES);
    let lanes = &mut lanes[..n];
    let Setup { rk, ok, nonce } = setup::<R>(lanes);
    // The byte mask of each lane's data (none for a lane past a limit).
    let mut mask = [0u64; LANES];
    for (i, l) in lanes.iter().enumerate() {
        let len = l.data.len();
        if ok[i] {
            mask[i] = if len == MAX_LEN { u64::MAX } else { (1u64 << len) - 1 };
        }
    }
    // Counter blocks 2 to 5 of each lane, and block 1 of every lane (the tag masks). The
    // counter is big-endian in the last word.
    let be = |c: u32| c.swap_bytes() as i32;
    let ctrs = _mm512_set_epi32(be(5), 0, 0, 0, be(4), 0, 0, 0, be(3), 0, 0, 0, be(2), 0, 0, 0);
    let mut x = [_mm512_setzero_si512(); LANES + 1];
    for (x, &b) in x.iter_mut().zip(&nonce) {
        *x = _mm512_or_si512(_mm512_broadcast_i32x4(b), ctrs);
    }
    let mut j1 = _mm512_castsi128_si512(nonce[0]);
    j1 = _mm512_inserti32x4::<1>(j1, nonce[1]);
    j1 = _mm512_inserti32x4::<2>(j1, nonce[2]);
    j1 = _mm512_inserti32x4::<3>(j1, nonce[3]);
    x[LANES] = _mm512_or_si512(j1, _mm512_set_epi32(be(1), 0, 0, 0, be(1), 0, 0, 0, be(1), 0, 0, 0, be(1), 0, 0, 0));
    encrypt::<R, SAME>(&mut x, &rk);
    let e = x[LANES];
    let ej1 = [
        _mm512_extracti32x4_epi32::<0>(e),
        _mm512_extracti32x4_epi32::<1>(e),
        _mm512_extracti32x4_epi32::<2>(e),
        _mm512_extracti32x4_epi32::<3>(e),
    ];
    let rev = _mm512_broadcast_i32x4(rev_mask());
    for (i, l) in lanes.iter_mut().enumerate() {
        let hp = l.key.hp.as_ptr().cast::<u8>();
        let m = mask[i];
        let len = if ok[i] { l.data.len() } else { 0 };
        let p = l.data.as_mut_ptr();
        let input = _mm512_maskz_loadu_epi8(m, p.cast());
        let output = _mm512_xor_si512(input, x[i]);
        _mm512_mask_storeu_epi8(p.cast(), m, output);
        // GHASH reads the ciphertext, zero past the data.
        let ct = if SEAL { _mm512_maskz_mov_epi8(m, output) } else { input };
        let blocks = len.div_ceil(16);
        let b = _mm512_shuffle_epi8(ct, rev);
        let h = _mm512_loadu_si512(hp.add(16 * (5 - blocks)).cast());
        let lo = _mm512_clmulepi64_epi128::<0x00>(b, h);
        let hi = _mm512_clmulepi64_epi128::<0x11>(b, h);
        let mid = _mm512_xor_si512(_mm512_clmulepi64_epi128::<0x01>(b, h), _mm512_clmulepi64_epi128::<0x10>(b, h));
        let aad_len = if ok[i] { l.aad.len() } else { 0 };
        let a = _mm_maskz_loadu_epi8(((1u32 << aad_len) - 1) as u16, l.aad.as_ptr().cast());
        let tag = tag(hp, len, a, aad_len, [fold4(lo), fold4(mid), fold4(hi)], ej1[i]);
        if SEAL {
            let icv_len = if ok[i] { l.icv.len() } else { 0 };
            _mm_mask_storeu_epi8(l.icv.as_mut_ptr().cast(), ((1u32 << icv_len) - 1) as u16, tag);
        } else {
            store(&mut tags[i], tag);
        }
    }
}

/// XORs the four blocks of `v`.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
unsafe fn fold4(v: __m512i) -> __m128i {
    let y = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
    _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256::<1>(y))
}

/// Runs the AES rounds over the vectors: lane `i`'s under `rk[i]`, and the tag masks (one
/// block of each lane) each under its lane's key; when the lanes share one key (`SAME`), all
/// under `rk[0]`, broadcast once a round.
#[inline]
#[target_feature(enable = "avx512f,vaes")]
unsafe fn encrypt<const R: usize, const SAME: bool>(x: &mut [__m512i; LANES + 1], rk: &[&[[u8; 16]; 15]; LANES]) {
    let keys = |r: usize| -> [__m512i; LANES + 1] {
        let key = |i: usize| _mm512_broadcast_i32x4(_mm_loadu_si128(rk[i][r].as_ptr().cast()));
        if SAME {
            return [key(0); LANES + 1];
        }
        let k: [__m512i; LANES] = std::array::from_fn(key);
        // The tag masks' key takes block `i` from lane `i`'s broadcast key.
        let mixed = _mm512_mask_blend_epi64(0b1100_0000, k[0], k[3]);
        let mixed = _mm512_mask_blend_epi64(0b0011_0000, mixed, k[2]);
        [k[0], k[1], k[2], k[3], _mm512_mask_blend_epi64(0b0000_1100, mixed, k[1])]
    };
    for (x, k) in x.iter_mut().zip(keys(0)) {
        *x = _mm512_xor_si512(*x, k);
    }
    for r in 1..R {
        for (x, k) in x.iter_mut().zip(keys(r)) {
            *x = _mm512_aesenc_epi128(*x, k);
        }
    }
    for (x, k) in x.iter_mut().zip(keys(R)) {
        *x = _mm512_aesenclast_epi128(*x, k);
    }
}

/// [`batch`] on 256-bit vectors: lane `i`'s counter blocks 2 and 3 in `x[2i]`, 4 and 5 in
/// `x[2i + 1]`, the tag masks of lanes 0 and 1 in `x[8]`, of 2 and 3 in `x[9]`. Each lane's data
/// is loaded zero past its end (what GHASH needs) and only its own bytes are written back
/// ([`load_partial`], [`store_partial`]).
#[target_feature(enable = "aes,pclmulqdq,avx2,vaes,vpclmulqdq")]
unsafe fn batch2<const R: usize, const SEAL: bool, const SAME: bool>(
    lanes: &mut [Lane<'_>],
    tags: &mut [[u8; 16]; LANES],
) {
    let n = lanes.len().min(LANES);
    let lanes = &mut lanes[..n];
    let Setup { rk, ok, nonce } = setup::<R>(lanes);
    let be = |c: u32| c.swap_bytes() as i32;
    let ctr = |a: u32, b: u32| _mm256_set_epi32(be(b), 0, 0, 0, be(a), 0, 0, 0);
    let mut x = [_mm256_setzero_si256(); 2 * LANES + 2];
    for (i, &b) in nonce.iter().enumerate() {
        let b = _mm256_broadcastsi128_si256(b);
        x[2 * i] = _mm256_or_si256(b, ctr(2, 3));
        x[2 * i + 1] = _mm256_or_si256(b, ctr(4, 5));
    }
    x[2 * LANES] = _mm256_or_si256(_mm256_set_m128i(nonce[1], nonce[0]), ctr(1, 1));
    x[2 * LANES + 1] = _mm256_or_si256(_mm256_set_m128i(nonce[3], nonce[2]), ctr(1, 1));
    encrypt2::<R, SAME>(&mut x, &rk);
    let ej1 = [
        _mm256_castsi256_si128(x[2 * LANES]),
        _mm256_extracti128_si256::<1>(x[2 * LANES]),
        _mm256_castsi256_si128(x[2 * LANES + 1]),
        _mm256_extracti128_si256::<1>(x[2 * LANES + 1]),
    ];
    let rev = _mm256_broadcastsi128_si256(rev_mask());
    for (i, l) in lanes.iter_mut().enumerate() {
        let hp = l.key.hp.as_ptr().cast::<u8>();
        let len = if ok[i] { l.data.len() } else { 0 };
        let p = l.data.as_mut_ptr();
        let input = load_partial(p, len);
        let output = [_mm256_xor_si256(input[0], x[2 * i]), _mm256_xor_si256(input[1], x[2 * i + 1])];
        store_partial(p, len, output);
        // GHASH reads the ciphertext, zero past the data.
        let ct = if SEAL {
            let keep = data_mask(len);
            [_mm256_and_si256(output[0], keep[0]), _mm256_and_si256(output[1], keep[1])]
        } else {
            input
        };
        let blocks = len.div_ceil(16);
        let h = hp.add(16 * (5 - blocks));
        let (mut lo, mut mid, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
        for (k, c) in ct.iter().enumerate() {
            let c = _mm256_shuffle_epi8(*c, rev);
            let h = _mm256_loadu_si256(h.add(32 * k).cast());
            lo = _mm256_xor_si256(lo, _mm256_clmulepi64_epi128::<0x00>(c, h));
            hi = _mm256_xor_si256(hi, _mm256_clmulepi64_epi128::<0x11>(c, h));
            mid = _mm256_xor_si256(mid, _mm256_clmulepi64_epi128::<0x01>(c, h));
            mid = _mm256_xor_si256(mid, _mm256_clmulepi64_epi128::<0x10>(c, h));
        }
        let aad_len = if ok[i] { l.aad.len() } else { 0 };
        let a = _mm256_castsi256_si128(load_partial(l.aad.as_ptr(), aad_len)[0]);
        let tag = tag(hp, len, a, aad_len, [fold(lo), fold(mid), fold(hi)], ej1[i]);
        if SEAL {
            let icv_len = if ok[i] { l.icv.len() } else { 0 };
            store_partial(l.icv.as_mut_ptr(), icv_len, [_mm256_zextsi128_si256(tag), _mm256_setzero_si256()]);
        } else {
            store(&mut tags[i], tag);
        }
    }
}

/// For `len` of at most 64 bytes, per 32-bit word of two vectors: whether the word is whole
/// within the first `len` bytes, and whether it is the partial word at their end (of `len % 4`
/// bytes). AVX2 moves memory by words under a mask, not by bytes; the partial word goes byte by
/// byte, without a call (a call would spill every live vector).
#[inline(always)]
unsafe fn word_masks(len: usize) -> ([__m256i; 2], [__m256i; 2]) {
    let words = _mm256_set1_epi32((len / 4) as i32);
    let idx = [_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15)];
    (idx.map(|i| _mm256_cmpgt_epi32(words, i)), idx.map(|i| _mm256_cmpeq_epi32(words, i)))
}

/// The byte mask of the first `len` (at most 64) bytes of two vectors.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn data_mask(len: usize) -> [__m256i; 2] {
    let (whole, part) = word_masks(len);
    let bytes = _mm256_set1_epi32(((1u64 << (8 * (len % 4))) - 1) as i32);
    [0, 1].map(|k| _mm256_or_si256(whole[k], _mm256_and_si256(part[k], bytes)))
}

/// Loads the first `len` (at most 64) bytes at `p` into two vectors, zero past them; reads no
/// byte past them.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load_partial(p: *const u8, len: usize) -> [__m256i; 2] {
    let (whole, part) = word_masks(len);
    let end = len & !3;
    let mut tail = 0u32;
    for j in 0..len % 4 {
        tail |= u32::from(*p.add(end + j)) << (8 * j);
    }
    let tail = _mm256_set1_epi32(tail as i32);
    // A masked load reads only its selected words, and faults on no other.
    [0, 1].map(|k| {
        let v = _mm256_maskload_epi32(p.wrapping_add(32 * k).cast(), whole[k]);
        _mm256_blendv_epi8(v, tail, part[k])
    })
}

/// Stores the first `len` (at most 64) bytes of two vectors at `p`; writes no byte past them.
/// Whole vectors go as they are; the rest through a copy on the stack, eight bytes at a time
/// and then fewer: a masked store (`VPMASKMOVD`) took a sixth of the batch's samples on AMD
/// EPYC (Zen 3), which runs it slowly.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_partial(p: *mut u8, len: usize, v: [__m256i; 2]) {
    // No vector indexed by a variable: that put the pair on the stack through a call.
    let [v0, v1] = v;
    let last = if len >= 32 {
        _mm256_storeu_si256(p.cast(), v0);
        if len == 64 {
            _mm256_storeu_si256(p.add(32).cast(), v1);
            return;
        }
        v1
    } else {
        v0
    };
    let mut rest = [0u8; 32];
    _mm256_storeu_si256(rest.as_mut_ptr().cast(), last);
    // `rest` holds the data's bytes from `len & !31`, which `dst` points to.
    let (dst, n) = (p.add(len & !31), len % 32);
    let mut at = 0;
    while at + 8 <= n {
        dst.add(at).cast::<u64>().write_unaligned(rest.as_ptr().add(at).cast::<u64>().read_unaligned());
        at += 8;
    }
    if at + 4 <= n {
        dst.add(at).cast::<u32>().write_unaligned(rest.as_ptr().add(at).cast::<u32>().read_unaligned());
        at += 4;
    }
    while at < n {
        *dst.add(at) = rest[at];
        at += 1;
    }
}

/// [`encrypt`] on [`batch2`]'s vectors: lane `i`'s two under `rk[i]`, each tag-mask vector
/// under its two lanes' keys; all under `rk[0]` when the lanes share one key (`SAME`).
#[inline]
#[target_feature(enable = "avx2,vaes")]
unsafe fn encrypt2<const R: usize, const SAME: bool>(x: &mut [__m256i; 2 * LANES + 2], rk: &[&[[u8; 16]; 15]; LANES]) {
    let keys = |r: usize| -> [__m256i; 2 * LANES + 2] {
        let key = |i: usize| _mm_loadu_si128(rk[i][r].as_ptr().cast());
        if SAME {
            return [_mm256_broadcastsi128_si256(key(0)); 2 * LANES + 2];
        }
        let k: [__m128i; LANES] = std::array::from_fn(key);
        let b = k.map(|k| _mm256_broadcastsi128_si256(k));
        [b[0], b[0], b[1], b[1], b[2], b[2], b[3], b[3], _mm256_set_m128i(k[1], k[0]), _mm256_set_m128i(k[3], k[2])]
    };
    for (x, k) in x.iter_mut().zip(keys(0)) {
        *x = _mm256_xor_si256(*x, k);
    }
    for r in 1..R {
        for (x, k) in x.iter_mut().zip(keys(r)) {
            *x = _mm256_aesenc_epi128(*x, k);
        }
    }
    for (x, k) in x.iter_mut().zip(keys(R)) {
        *x = _mm256_aesenclast_epi128(*x, k);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::vaes_gcm::{Aad, Nonce, VaesGcm};
    use super::*;

    /// The codes this CPU runs; it must run one.
    fn codes_here() -> Vec<Code> {
        assert!(available(), "{}", super::super::vaes_gcm::NEEDS_VAES);
        [Code::Avx512, Code::Avx2].into_iter().filter(|c| c.runs_here()).collect()
    }

    /// A packet laid out as ESP's: AAD, IV, data, ICV.
    struct Packet {
        bytes: Vec<u8>,
        aad: usize,
        data: usize,
    }

    impl Packet {
        fn new(aad: &[u8], iv: &[u8; 8], data: &[u8]) -> Packet {
            let bytes = [aad, iv, data, &[0xee; 16]].concat();
            Packet { bytes, aad: aad.len(), data: data.len() }
        }

        fn lane<'a>(&'a mut self, key: &'a GcmX4, salt: &'a [u8; 4]) -> Lane<'a> {
            let (head, tail) = self.bytes.split_at_mut(self.aad + 8);
            let (aad, iv) = head.split_at(self.aad);
            let (data, icv) = tail.split_at_mut(self.data);
            Lane { key, salt, iv: iv.try_into().unwrap(), aad, data, icv }
        }

        fn data(&self) -> &[u8] {
            &self.bytes[self.aad + 8..][..self.data]
        }

        fn icv(&self) -> &[u8] {
            &self.bytes[self.aad + 8 + self.data..]
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Batches of one to four lanes of every length up to 64 bytes, AAD from none to a
        /// block, both key sizes, the lanes under one key or each under its own: each lane
        /// sealed and opened as the one-packet code does it.
        #[test]
        fn each_lane_is_what_the_one_packet_code_gives_needs_vaes(
            aes256 in any::<bool>(),
            one_key in any::<bool>(),
            lanes in prop::collection::vec(
                (
                    any::<[u8; 32]>(),
                    any::<[u8; 4]>(),
                    any::<[u8; 8]>(),
                    prop::collection::vec(any::<u8>(), 0..=16),
                    prop::collection::vec(any::<u8>(), 0..=MAX_LEN),
                ),
                1..=LANES,
            ),
        ) {
            prop_assert!(available(), "{}", super::super::vaes_gcm::NEEDS_VAES);
            for code in codes_here() {
                let len = if aes256 { 32 } else { 16 };
                let key_of = |i: usize| &lanes[if one_key { 0 } else { i }].0[..len];
                let salt_of = |i: usize| &lanes[if one_key { 0 } else { i }].1;
                let x4: Vec<Box<GcmX4>> = (0..lanes.len()).map(|i| GcmX4::new_for(code, key_of(i)).unwrap()).collect();
                // One key: the lanes share one `GcmX4`, as one SA's packets do.
                let key = |i: usize| &*x4[if one_key { 0 } else { i }];
                let mut want = Vec::new();
                for (i, (_, _, iv, aad, pt)) in lanes.iter().enumerate() {
                    let mut d = pt.clone();
                    let tag = VaesGcm::new(key_of(i)).unwrap().seal(&Nonce { salt: *salt_of(i), iv: *iv }, &Aad::new(aad), &mut d);
                    want.push((d, tag));
                }
                let mut pkts: Vec<Packet> = lanes.iter().map(|(_, _, iv, aad, pt)| Packet::new(aad, iv, pt)).collect();
                let mut batch: Vec<Lane<'_>> = pkts.iter_mut().enumerate().map(|(i, p)| p.lane(key(i), salt_of(i))).collect();
                seal(&mut batch);
                drop(batch);
                for (i, (d, t)) in want.iter().enumerate() {
                    prop_assert_eq!(pkts[i].data(), &d[..], "lane {} ciphertext", i);
                    prop_assert_eq!(pkts[i].icv(), &t[..], "lane {} tag", i);
                }
                let mut tags = [[0u8; 16]; LANES];
                let mut batch: Vec<Lane<'_>> = pkts.iter_mut().enumerate().map(|(i, p)| p.lane(key(i), salt_of(i))).collect();
                open(&mut batch, &mut tags);
                drop(batch);
                for (i, (_, t)) in want.iter().enumerate() {
                    prop_assert_eq!(pkts[i].data(), &lanes[i].4[..], "lane {} plaintext", i);
                    prop_assert_eq!(tags[i], *t, "lane {} tag on opening", i);
                }
            }
        }
    }

    /// A lane longer than 64 bytes, with an ICV field past 16 bytes, or with a key of another
    /// size than the first lane's is left as it is; the others are sealed.
    #[test]
    fn a_lane_past_a_limit_is_not_touched_needs_vaes() {
        for code in codes_here() {
            a_lane_past_a_limit_is_not_touched_in(code);
        }
    }

    fn a_lane_past_a_limit_is_not_touched_in(code: Code) {
        let x4 = GcmX4::new_for(code, &[7; 16]).unwrap();
        let x4_256 = GcmX4::new_for(code, &[7; 32]).unwrap();
        let one = VaesGcm::new(&[7; 16]).unwrap();
        let mut short = Packet::new(&[3; 8], &[2; 8], &[1; 20]);
        let mut long = Packet::new(&[3; 8], &[2; 8], &[1; MAX_LEN + 1]);
        let mut wide = Packet::new(&[3; 8], &[2; 8], &[1; 20]);
        wide.bytes.push(0xee);
        let mut other = Packet::new(&[3; 8], &[2; 8], &[1; 20]);
        let (long0, wide0, other0) = (long.bytes.clone(), wide.bytes.clone(), other.bytes.clone());
        let salt = [9; 4];
        let mut batch =
            [long.lane(&x4, &salt), short.lane(&x4, &salt), wide.lane(&x4, &salt), other.lane(&x4_256, &salt)];
        seal(&mut batch);
        let mut want = vec![1u8; 20];
        let tag = one.seal(&Nonce { salt, iv: [2; 8] }, &Aad::new(&[3; 8]), &mut want);
        assert_eq!(short.data(), &want[..]);
        assert_eq!(short.icv(), &tag[..]);
        assert_eq!(long.bytes, long0, "{code:?}");
        assert_eq!(wide.bytes, wide0, "{code:?}");
        assert_eq!(other.bytes, other0, "{code:?}");
    }
}
