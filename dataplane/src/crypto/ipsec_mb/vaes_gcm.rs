//! AES-GCM on VAES and VPCLMULQDQ with 256-bit vectors (two blocks per instruction), for CPUs
//! that have them without AVX-512: there intel-ipsec-mb 1.3 runs its AVX2 GCM, one block per
//! AES instruction. On an AMD EPYC (Zen 3) the gateway sealed 1,420-byte frames in 0.72 times
//! the cycles per packet with this code, 512-byte ones in 0.83 (`bench/THROUGHPUT.md`, "At stop
//! 26"); the engine picks it when the library's manager is AVX2.
//!
//! GHASH is computed as POLYVAL (RFC 8452, appendix A): GHASH(H, X) = ByteReverse(POLYVAL(
//! mulX(ByteReverse(H)), ByteReverse(X)...)). POLYVAL's product `a·b·x^-128 mod x^128 + x^127 +
//! x^126 + x^121 + 1` is a carry-less multiplication followed by a Montgomery reduction of two
//! more carry-less multiplications by the constant `0xc2 << 56`, with no bit shifts. Eight
//! blocks are multiplied by the eight powers of the hash key and summed before one reduction.
//!
//! Constant time: AES rounds and carry-less products are single instructions whose timing does
//! not depend on data, and no branch or address depends on a key, a plaintext or a tag.
#![allow(unsafe_code)]
// Every unsafe function below is an intrinsics kernel: its safety condition is the CPU's,
// checked once in `VaesGcm::new`, and its pointer reads and writes stay within the slices it is
// given. Marking each intrinsic again would say nothing more.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The low 64 bits of POLYVAL's reduction constant `x^127 + x^126 + x^121` shifted down by 64.
const POLY: i64 = 0xc200_0000_0000_0000_u64 as i64;

/// Blocks per GHASH window: the hash key powers kept, one reduction per window.
const WINDOW: usize = 8;

/// One SA's AES-GCM key: round keys and hash key powers, zeroized on drop. Exists only on a CPU
/// with AES-NI, PCLMULQDQ, AVX2, VAES and VPCLMULQDQ ([`VaesGcm::new`] checks), which is what
/// makes its methods safe to call.
#[derive(Zeroize, ZeroizeOnDrop)]
#[repr(C, align(64))]
pub(crate) struct VaesGcm {
    /// 10 for AES-128, 14 for AES-256. In the first line with the rest a job reads, so that
    /// AES-128's key takes five lines in all.
    rounds: u32,
    _pad: [u32; 3],
    /// POLYVAL hash key powers, highest first: `hp[WINDOW - k]` is the key to the power `k`
    /// (each times `x^-128(k-1)`, as repeated POLYVAL products give), so that the blocks of a
    /// window line up with `hp` from its end.
    hp: [[u8; 16]; WINDOW],
    /// Round keys; AES-128 uses the first 11.
    rk: [[u8; 16]; 15],
}

impl std::fmt::Debug for VaesGcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaesGcm").field("rounds", &self.rounds).finish_non_exhaustive()
    }
}

/// A packet's GCM nonce (RFC 4106 section 4): the SA's salt and the packet's explicit IV.
pub(crate) struct Nonce {
    pub salt: [u8; 4],
    pub iv: [u8; 8],
}

/// Additional authenticated data of at most 16 bytes (ESP's is 8 or 12), as the little-endian
/// words of its zero-padded block, and its length.
pub(crate) struct Aad {
    pub words: [u64; 2],
    pub len: u8,
}

impl Aad {
    /// Takes the first 16 bytes of `aad` at most.
    pub(crate) fn new(aad: &[u8]) -> Aad {
        let word = |b: &[u8]| b.iter().rev().fold(0u64, |w, &x| w << 8 | u64::from(x));
        let n = aad.len().min(16);
        let (lo, hi) = aad[..n].split_at(n.min(8));
        Aad { words: [word(lo), word(hi)], len: n as u8 }
    }
}

/// Tells whether this CPU has what [`VaesGcm`] needs and AVX-512 (F, BW and VL) too: the
/// instructions of the AVX-512 codes of [`super::gcm_x4`] and [`super::cbc_sha1_x16`].
pub(crate) fn available_avx512() -> bool {
    available()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

/// What a test of a 512-bit kernel says on a CPU without it. Such tests are named
/// `*_needs_avx512`, and `make test` skips them, saying so, where the CPU lacks the instructions
/// (`scripts/cpu-test-skips.sh`); `the_engine_takes_each_kernel_only_where_the_cpu_runs_it`
/// checks there that the engine does not use them.
#[cfg(test)]
pub(crate) const NEEDS_AVX512: &str =
    "this test needs AVX-512 (F, BW, VL), VAES and VPCLMULQDQ; `make test` skips it on CPUs without them";

/// As [`NEEDS_AVX512`], for the tests of [`VaesGcm`] itself, named `*_needs_vaes`.
#[cfg(test)]
pub(crate) const NEEDS_VAES: &str =
    "this test needs AVX2, VAES and VPCLMULQDQ; `make test` skips it on CPUs without them";

/// Tells whether this CPU runs [`VaesGcm`].
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("aes")
        && is_x86_feature_detected!("pclmulqdq")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("vaes")
        && is_x86_feature_detected!("vpclmulqdq")
}

impl VaesGcm {
    /// Prepares `key` (16 or 32 bytes); `None` for another length or on a CPU without the
    /// instructions.
    pub(crate) fn new(key: &[u8]) -> Option<Box<VaesGcm>> {
        if !available() || !(key.len() == 16 || key.len() == 32) {
            return None;
        }
        let mut k = Box::new(VaesGcm { rounds: 0, _pad: [0; 3], hp: [[0; 16]; WINDOW], rk: [[0; 16]; 15] });
        // SAFETY: `available` checked every instruction set the functions enable.
        k.rounds = unsafe { schedule(key, &mut k.rk, &mut k.hp) };
        Some(k)
    }

    /// The bytes from the start that a job reads, with a key of 128 bits, then 256: the hash
    /// key powers and the round keys. Known without reading the key, which may not be cached.
    pub(crate) const HOT_BYTES: [usize; 2] =
        [std::mem::offset_of!(VaesGcm, rk) + 16 * 11, std::mem::offset_of!(VaesGcm, rk) + 16 * 15];

    /// Encrypts `data` in place under the nonce (RFC 4106: the salt, then the explicit IV;
    /// counter blocks from 2) and returns the tag over `aad` and the ciphertext.
    pub(crate) fn seal(&self, nonce: &Nonce, aad: &Aad, data: &mut [u8]) -> [u8; 16] {
        // SAFETY: `self` exists only where `available` said yes.
        unsafe {
            let ej0 = self.ctr(nonce, data);
            let s = self.ghash(aad, data);
            finish(s, ej0)
        }
    }

    /// Returns the tag over `aad` and the ciphertext `data`, then decrypts `data` in place. The
    /// caller compares the tag.
    pub(crate) fn open(&self, nonce: &Nonce, aad: &Aad, data: &mut [u8]) -> [u8; 16] {
        // SAFETY: as in `seal`.
        unsafe {
            let s = self.ghash(aad, data);
            let ej0 = self.ctr(nonce, data);
            finish(s, ej0)
        }
    }
}

/// Expands an AES key of 16 or 32 bytes into `rk` and writes the POLYVAL hash key powers to
/// `hp`, highest first: `hp[hp.len() - k]` is the hash key to the power `k` (times
/// `x^-128(k-1)`, as repeated POLYVAL products give). Returns the rounds: 10 or 14.
#[target_feature(enable = "aes,pclmulqdq,avx2")]
pub(super) unsafe fn schedule(key: &[u8], rk: &mut [[u8; 16]; 15], hp: &mut [[u8; 16]]) -> u32 {
    let rounds = if key.len() == 16 {
        expand128(key, rk);
        10
    } else {
        expand256(key, rk);
        14
    };
    // The hash key: the zero block, encrypted.
    let r = rounds as usize;
    let mut h = load(&rk[0]);
    for k in &rk[1..r] {
        h = _mm_aesenc_si128(h, load(k));
    }
    h = _mm_aesenclast_si128(h, load(&rk[r]));
    let h1 = mul_x(_mm_shuffle_epi8(h, rev_mask()));
    let mut p = h1;
    for (k, out) in hp.iter_mut().rev().enumerate() {
        if k > 0 {
            let (lo, mid, hi) = mul(p, h1);
            p = reduce(lo, mid, hi);
        }
        store(out, p);
    }
    rounds
}

impl VaesGcm {
    #[target_feature(enable = "aes,pclmulqdq,avx2,vaes,vpclmulqdq")]
    unsafe fn ctr(&self, nonce: &Nonce, data: &mut [u8]) -> __m128i {
        if self.rounds == 10 { self.ctr_rounds::<10>(nonce, data) } else { self.ctr_rounds::<14>(nonce, data) }
    }

    /// XORs `data` with the keystream of counter blocks 2, 3, ... (RFC 4106: the nonce, then a
    /// 32-bit big-endian counter) and returns the encryption of block 1, which masks the tag.
    /// The last blocks and block 1 go through the rounds together, so that their latencies
    /// overlap.
    #[target_feature(enable = "aes,pclmulqdq,avx2,vaes,vpclmulqdq")]
    unsafe fn ctr_rounds<const R: usize>(&self, nonce: &Nonce, data: &mut [u8]) -> __m128i {
        let rk = &self.rk;
        // The counter is kept little-endian in the last word, so that vector adds count; each
        // block's last four bytes are swapped to big-endian before encryption. Built in
        // registers: a vector loaded from bytes just stored would wait for the stores.
        let w = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let base = _mm256_broadcastsi128_si256(_mm_set_epi32(0, w(&nonce.iv[4..]), w(&nonce.iv[..4]), w(&nonce.salt)));
        let mut ctr = _mm256_add_epi32(base, _mm256_set_epi32(3, 0, 0, 0, 2, 0, 0, 0));
        let j1 = _mm256_add_epi32(base, _mm256_set_epi32(1, 0, 0, 0, 1, 0, 0, 0));
        let swap = _mm256_broadcastsi128_si256(_mm_set_epi8(12, 13, 14, 15, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
        let two = _mm256_set_epi32(2, 0, 0, 0, 2, 0, 0, 0);
        let mut next = || {
            let c = _mm256_shuffle_epi8(ctr, swap);
            ctr = _mm256_add_epi32(ctr, two);
            c
        };
        let len = data.len();
        let p = data.as_mut_ptr();
        let mut off = 0;
        while len - off >= 128 {
            let mut x = [next(), next(), next(), next()];
            encrypt_blocks::<R, 4>(&mut x, rk);
            for (i, x) in x.iter().enumerate() {
                xor32(p.add(off + 32 * i), *x);
            }
            off += 128;
        }
        // The rest (under 128 bytes) and block 1, in one batch of up to five pairs.
        let rest = len - off;
        let j1 = _mm256_shuffle_epi8(j1, swap);
        let mut ks = [_mm256_setzero_si256(); 4];
        let ej0 = match rest.div_ceil(32) {
            0 => last::<R, 1>([j1], rk, &mut ks),
            1 => last::<R, 2>([next(), j1], rk, &mut ks),
            2 => last::<R, 3>([next(), next(), j1], rk, &mut ks),
            3 => last::<R, 4>([next(), next(), next(), j1], rk, &mut ks),
            _ => last::<R, 5>([next(), next(), next(), next(), j1], rk, &mut ks),
        };
        let mut k = 0;
        while len - off >= 32 {
            xor32(p.add(off), ks[k]);
            off += 32;
            k += 1;
        }
        if off < len {
            let mut tail = _mm256_castsi256_si128(ks[k % 4]);
            if len - off >= 16 {
                let q = p.add(off).cast::<__m128i>();
                _mm_storeu_si128(q, _mm_xor_si128(_mm_loadu_si128(q), tail));
                off += 16;
                tail = _mm256_extracti128_si256::<1>(ks[k % 4]);
            }
            xor_tail(data, off, tail);
        }
        ej0
    }

    /// GHASH of `aad` (at most 16 bytes: one block), `ct` and the lengths block, in POLYVAL
    /// form. The blocks are taken in windows of eight; the first window is the short one, so
    /// that every later window but the last (which holds the lengths) is eight whole
    /// ciphertext blocks read where they lie.
    #[target_feature(enable = "aes,pclmulqdq,avx2,vaes,vpclmulqdq")]
    unsafe fn ghash(&self, aad: &Aad, ct: &[u8]) -> __m128i {
        let a = usize::from(aad.len > 0);
        let full = ct.len() / 16;
        let nb = ct.len().div_ceil(16);
        let total = a + nb + 1;
        let aad_block = _mm_set_epi64x(aad.words[1] as i64, aad.words[0] as i64);
        let last = if nb > full { partial_block(ct, full * 16) } else { _mm_setzero_si128() };
        // The lengths in bits, big-endian, as the block's bytes would load.
        let bits = |n: usize| (n as u64 * 8).swap_bytes() as i64;
        let lens = _mm_set_epi64x(bits(ct.len()), bits(usize::from(aad.len)));
        let block = |i: usize| match i.checked_sub(a) {
            None => aad_block,
            Some(j) if j < full => _mm_loadu_si128(ct.as_ptr().add(16 * j).cast()),
            Some(j) if j < nb => last,
            Some(_) => lens,
        };
        // Window 0 holds the first `first` blocks of the stream, at the end of its slots.
        let first = (total - 1) % WINDOW + 1;
        let mut w = [_mm_setzero_si128(); WINDOW];
        for k in 0..first {
            w[WINDOW - first + k] = block(k);
        }
        let mut s = self.absorb(_mm_setzero_si128(), |q| pair(&w, q), (WINDOW - first) / 2);
        let mut i = first;
        while i < total {
            if i >= a && i + WINDOW <= a + full {
                let p = ct.as_ptr().add(16 * (i - a));
                s = self.absorb(s, |q| _mm256_loadu_si256(p.add(32 * q).cast()), 0);
            } else {
                for (k, w) in w.iter_mut().enumerate() {
                    *w = block(i + k);
                }
                s = self.absorb(s, |q| pair(&w, q), 0);
            }
            i += WINDOW;
        }
        s
    }

    /// Folds a window of eight blocks, given in pairs from pair `from` on (the pairs before
    /// are zero), into `s`: (s + b0)·H^8 + b1·H^7 + ... + b7·H, reduced once.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,avx2,vaes,vpclmulqdq")]
    unsafe fn absorb(&self, s: __m128i, pairs: impl Fn(usize) -> __m256i, from: usize) -> __m128i {
        let rev = _mm256_broadcastsi128_si256(rev_mask());
        let hp = self.hp.as_ptr().cast::<u8>();
        let (mut lo, mut mid, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256());
        for q in from..WINDOW / 2 {
            let mut b = _mm256_shuffle_epi8(pairs(q), rev);
            if q == 0 {
                b = _mm256_xor_si256(b, _mm256_zextsi128_si256(s));
            }
            let h = _mm256_loadu_si256(hp.add(32 * q).cast());
            lo = _mm256_xor_si256(lo, _mm256_clmulepi64_epi128::<0x00>(b, h));
            hi = _mm256_xor_si256(hi, _mm256_clmulepi64_epi128::<0x11>(b, h));
            mid = _mm256_xor_si256(mid, _mm256_clmulepi64_epi128::<0x01>(b, h));
            mid = _mm256_xor_si256(mid, _mm256_clmulepi64_epi128::<0x10>(b, h));
        }
        reduce(fold(lo), fold(mid), fold(hi))
    }
}

/// Returns the tag: GHASH (`s`, in POLYVAL's byte order) masked with the encryption of block 1.
#[target_feature(enable = "avx2")]
unsafe fn finish(s: __m128i, ej0: __m128i) -> [u8; 16] {
    let mut tag = [0u8; 16];
    store(&mut tag, _mm_xor_si128(_mm_shuffle_epi8(s, rev_mask()), ej0));
    tag
}

/// Runs the last batch of the keystream: `N - 1` pairs into `ks`, and block 1 (the last
/// pair's low half), which it returns.
#[inline]
#[target_feature(enable = "avx2,vaes")]
unsafe fn last<const R: usize, const N: usize>(
    mut x: [__m256i; N],
    rk: &[[u8; 16]; 15],
    ks: &mut [__m256i; 4],
) -> __m128i {
    encrypt_blocks::<R, N>(&mut x, rk);
    for (k, x) in ks.iter_mut().zip(&x[..N - 1]) {
        *k = *x;
    }
    _mm256_castsi256_si128(x[N - 1])
}

/// XORs the 32 bytes at `p` with `x`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn xor32(p: *mut u8, x: __m256i) {
    let p = p.cast::<__m256i>();
    _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), x));
}

/// Byte shuffles for the last, partial block: `SHIFT[16 - n..]` moves the last `n` bytes of a
/// vector to its front and zeroes the rest; `SHIFT[16 + n..]` moves its first `n` bytes to its
/// end and zeroes the rest.
const SHIFT: [u8; 48] = {
    let mut t = [0x80u8; 48];
    let mut i = 0;
    while i < 16 {
        t[i] = i as u8;
        t[32 + i] = i as u8;
        i += 1;
    }
    t
};

/// Returns the bytes of `ct` from `off` to its end (fewer than 16), zero-padded to a block.
/// Reads the 16 bytes that end where `ct` does and shifts them down, where there are 16.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn partial_block(ct: &[u8], off: usize) -> __m128i {
    let n = ct.len() - off;
    if ct.len() < 16 {
        let mut b = [0u8; 16];
        b[..n].copy_from_slice(&ct[off..]);
        return load(&b);
    }
    let v = _mm_loadu_si128(ct.as_ptr().add(ct.len() - 16).cast());
    _mm_shuffle_epi8(v, _mm_loadu_si128(SHIFT.as_ptr().add(16 - n).cast()))
}

/// XORs the bytes of `data` from `off` to its end (fewer than 16) with the first bytes of `ks`.
/// Where `data` has 16 bytes, rewrites the 16 that end where it does, the keystream shifted up
/// to its last bytes and zeros below them, so that the bytes before `off` stay as they are.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn xor_tail(data: &mut [u8], off: usize, ks: __m128i) {
    let n = data.len() - off;
    if data.len() < 16 {
        let mut b = [0u8; 16];
        store(&mut b, ks);
        for (d, k) in data[off..].iter_mut().zip(b) {
            *d ^= k;
        }
        b.zeroize();
        return;
    }
    let p = data.as_mut_ptr().add(data.len() - 16).cast::<__m128i>();
    let up = _mm_shuffle_epi8(ks, _mm_loadu_si128(SHIFT.as_ptr().add(16 + n).cast()));
    _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), up));
}

/// The pair of blocks `2q` and `2q + 1` of a window.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn pair(w: &[__m128i; WINDOW], q: usize) -> __m256i {
    _mm256_set_m128i(w[2 * q + 1], w[2 * q])
}

/// Runs the AES rounds over `N` pairs of blocks.
#[inline]
#[target_feature(enable = "avx2,vaes")]
unsafe fn encrypt_blocks<const R: usize, const N: usize>(x: &mut [__m256i; N], rk: &[[u8; 16]; 15]) {
    // Each round key is broadcast from memory where it is used: kept in registers, the round
    // keys and the blocks do not fit in sixteen, and the spills cost more than the loads.
    let key = |r: usize| _mm256_broadcastsi128_si256(load(&rk[r]));
    let k = key(0);
    for x in x.iter_mut() {
        *x = _mm256_xor_si256(*x, k);
    }
    for r in 1..R {
        let k = key(r);
        for x in x.iter_mut() {
            *x = _mm256_aesenc_epi128(*x, k);
        }
    }
    let k = key(R);
    for x in x.iter_mut() {
        *x = _mm256_aesenclast_epi128(*x, k);
    }
}

/// Reverses the bytes of a block: GCM's byte order to POLYVAL's.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn rev_mask() -> __m128i {
    _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load(b: &[u8; 16]) -> __m128i {
    _mm_loadu_si128(b.as_ptr().cast())
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store(b: &mut [u8; 16], v: __m128i) {
    _mm_storeu_si128(b.as_mut_ptr().cast(), v)
}

/// XORs the two 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn fold(v: __m256i) -> __m128i {
    _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
}

/// The unreduced carry-less product of `a` and `b`: low, middle and high parts.
#[inline]
#[target_feature(enable = "pclmulqdq,avx2")]
pub(super) unsafe fn mul(a: __m128i, b: __m128i) -> (__m128i, __m128i, __m128i) {
    let mid = _mm_xor_si128(_mm_clmulepi64_si128::<0x01>(a, b), _mm_clmulepi64_si128::<0x10>(a, b));
    (_mm_clmulepi64_si128::<0x00>(a, b), mid, _mm_clmulepi64_si128::<0x11>(a, b))
}

/// Reduces the 256-bit product `lo + mid·x^64 + hi·x^128` to POLYVAL's `product·x^-128`: two
/// Montgomery steps, each cancelling 64 low bits with a multiple of the field polynomial.
#[inline]
#[target_feature(enable = "pclmulqdq,avx2")]
pub(super) unsafe fn reduce(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
    let p0 = _mm_xor_si128(lo, _mm_slli_si128::<8>(mid));
    let p1 = _mm_xor_si128(hi, _mm_srli_si128::<8>(mid));
    let poly = _mm_set_epi64x(0, POLY);
    let x = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(p0), _mm_clmulepi64_si128::<0x00>(p0, poly));
    let y = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(x), _mm_clmulepi64_si128::<0x00>(x, poly));
    _mm_xor_si128(p1, y)
}

/// Multiplies by `x` in POLYVAL's field (RFC 8452's mulX_POLYVAL), without a branch.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul_x(v: __m128i) -> __m128i {
    let mut b = [0u8; 16];
    _mm_storeu_si128(b.as_mut_ptr().cast(), v);
    let v = u128::from_le_bytes(b);
    let carry = v >> 127;
    let r = (v << 1) ^ (0u128.wrapping_sub(carry) & (0xc2u128 << 120 | 1));
    b = r.to_le_bytes();
    let out = _mm_loadu_si128(b.as_ptr().cast());
    b.zeroize();
    out
}

/// AES-128 key expansion with AESKEYGENASSIST.
#[target_feature(enable = "aes,avx2")]
unsafe fn expand128(key: &[u8], rk: &mut [[u8; 16]; 15]) {
    let mut k = _mm_loadu_si128(key.as_ptr().cast());
    store(&mut rk[0], k);
    macro_rules! round {
        ($i:expr, $rcon:expr) => {
            k = mix(k, _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(k)));
            store(&mut rk[$i], k);
        };
    }
    round!(1, 0x01);
    round!(2, 0x02);
    round!(3, 0x04);
    round!(4, 0x08);
    round!(5, 0x10);
    round!(6, 0x20);
    round!(7, 0x40);
    round!(8, 0x80);
    round!(9, 0x1b);
    round!(10, 0x36);
}

/// AES-256 key expansion with AESKEYGENASSIST.
#[target_feature(enable = "aes,avx2")]
unsafe fn expand256(key: &[u8], rk: &mut [[u8; 16]; 15]) {
    let mut a = _mm_loadu_si128(key.as_ptr().cast());
    let mut b = _mm_loadu_si128(key.as_ptr().add(16).cast());
    store(&mut rk[0], a);
    store(&mut rk[1], b);
    macro_rules! round {
        ($i:expr, $rcon:expr) => {
            a = mix(a, _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(b)));
            store(&mut rk[$i], a);
        };
    }
    macro_rules! half {
        ($i:expr) => {
            b = mix(b, _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(a)));
            store(&mut rk[$i], b);
        };
    }
    round!(2, 0x01);
    half!(3);
    round!(4, 0x02);
    half!(5);
    round!(6, 0x04);
    half!(7);
    round!(8, 0x08);
    half!(9);
    round!(10, 0x10);
    half!(11);
    round!(12, 0x20);
    half!(13);
    round!(14, 0x40);
}

/// One step of the key schedule: each word of `k` XORed with every word before it, then `t`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mix(k: __m128i, t: __m128i) -> __m128i {
    let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    let k = _mm_xor_si128(k, _mm_slli_si128::<8>(k));
    _mm_xor_si128(k, t)
}

#[cfg(test)]
mod tests {
    use aes_gcm::aead::AeadInOut;
    use aes_gcm::aead::consts::U12;
    use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
    use proptest::prelude::*;

    use super::*;

    /// RustCrypto's answer: the ciphertext and the 16-byte tag.
    fn reference(key: &[u8], nonce: &[u8; 12], aad: &[u8], pt: &[u8]) -> (Vec<u8>, [u8; 16]) {
        let mut ct = pt.to_vec();
        let mut n = aes_gcm::Nonce::<U12>::default();
        n.copy_from_slice(nonce);
        let tag = if key.len() == 16 {
            Aes128Gcm::new_from_slice(key).unwrap().encrypt_inout_detached(&n, aad, ct.as_mut_slice().into()).unwrap()
        } else {
            Aes256Gcm::new_from_slice(key).unwrap().encrypt_inout_detached(&n, aad, ct.as_mut_slice().into()).unwrap()
        };
        let mut t = [0u8; 16];
        t.copy_from_slice(&tag);
        (ct, t)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Every length from empty to past a jumbo ESP payload, AAD from none to a block, both
        /// key sizes: the same ciphertext and tag as RustCrypto, and opening gives it all back.
        #[test]
        fn agrees_with_rustcrypto_needs_vaes(
            key in prop::collection::vec(any::<u8>(), 32),
            aes256 in any::<bool>(),
            nonce in any::<[u8; 12]>(),
            aad in prop::collection::vec(any::<u8>(), 0..=16),
            pt in prop::collection::vec(any::<u8>(), 0..1700),
        ) {
            prop_assert!(available(), "{}", NEEDS_VAES);
            let key = if aes256 { &key[..] } else { &key[..16] };
            let g = VaesGcm::new(key).unwrap();
            let (want_ct, want_tag) = reference(key, &nonce, &aad, &pt);
            let n = Nonce { salt: nonce[..4].try_into().unwrap(), iv: nonce[4..].try_into().unwrap() };
            let a = Aad::new(&aad);
            let mut data = pt.clone();
            let tag = g.seal(&n, &a, &mut data);
            prop_assert_eq!(&data, &want_ct);
            prop_assert_eq!(tag, want_tag);
            prop_assert_eq!(g.open(&n, &a, &mut data), want_tag);
            prop_assert_eq!(data, pt);
        }
    }

    /// The GCM specification's test case 3 (AES-128, four blocks, no AAD): a fixed answer, not
    /// another library's.
    /// With AES-128 a job reads five lines from the key's start, as the library's key block
    /// took: one more costs a miss per packet with thousands of SAs.
    #[test]
    fn aes128_keys_fit_five_lines() {
        assert_eq!(VaesGcm::HOT_BYTES, [320, 384]);
        assert_eq!(size_of::<VaesGcm>(), 384);
    }

    #[test]
    fn sp800_38d_test_case_3_needs_vaes() {
        assert!(available(), "{}", NEEDS_VAES);
        let key = hex::decode("feffe9928665731c6d6a8f9467308308").unwrap();
        let nonce: [u8; 12] = hex::decode("cafebabefacedbaddecaf888").unwrap().try_into().unwrap();
        let pt = hex::decode(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        )
        .unwrap();
        let ct = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";
        let g = VaesGcm::new(&key).unwrap();
        let mut data = pt.clone();
        let n = Nonce { salt: nonce[..4].try_into().unwrap(), iv: nonce[4..].try_into().unwrap() };
        let tag = g.seal(&n, &Aad::new(&[]), &mut data);
        assert_eq!(hex::encode(&data), ct);
        assert_eq!(hex::encode(tag), "4d5c2af327cd64a62cf35abd2ba6fab4");
    }
}
