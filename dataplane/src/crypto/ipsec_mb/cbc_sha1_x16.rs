//! AES-CBC + HMAC-SHA1-96 for sixteen packets of one SA at once, on AVX-512 with VAES: sealing,
//! and opening (the hash as in sealing, then each packet's blocks decrypted four at a time).
//!
//! The library's sixteen lanes compute the same thing, but a job goes through its manager
//! twice (the inner hash, then the outer one, each job copied into and out of lane state), and
//! at 64 bytes its kernels were about a quarter of the engine's cycles (`perf`, AES-128-CBC +
//! HMAC-SHA1 bursts of 128 ESP payloads of 64 bytes: the SHA-1 kernel 22%, the AES-CBC one 4%,
//! the manager's code about 40%). Here one call takes the whole batch through both:
//!
//! - AES-CBC: a 256-bit vector holds one block of two lanes, eight vectors the sixteen
//!   chains, whose rounds interleave.
//! - HMAC-SHA1: a 512-bit vector holds one 32-bit word of each lane. A step loads each lane's
//!   next 64-byte block, transposes the sixteen into the sixteen message words, runs the 80
//!   rounds and adds the result to the lanes that had a block to hash. The outer hash's only
//!   block is built in registers from the inner digests, which are already word by lane.
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
    _pad: [u32; 5],
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

/// Tells whether this CPU runs [`CbcSha1X16`].
pub(crate) fn available() -> bool {
    super::vaes_gcm::available_avx512()
}

impl CbcSha1X16 {
    /// A key that seals nothing: [`CbcSha1X16::ready`] is false until prepared.
    pub(crate) const EMPTY: CbcSha1X16 =
        CbcSha1X16 { rounds: 0, ipad: H0, opad: H0, _pad: [0; 5], rk: [[0; 16]; 15], dk: [[0; 16]; 15] };

    /// Prepares, in place (no copy of the keys is left elsewhere), an AES key of 16 or 32
    /// bytes and an HMAC-SHA1 key of any length; false, and left as it was, for another AES
    /// key length or on a CPU without the instructions.
    pub(crate) fn prepare(&mut self, aes_key: &[u8], auth_key: &[u8]) -> bool {
        if !available() || !(aes_key.len() == 16 || aes_key.len() == 32) {
            return false;
        }
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
        if key.rounds == 10 {
            cbc::<10>(key, lanes);
        } else {
            cbc::<14>(key, lanes);
        }
        let icv = hmac(key, lanes);
        for (i, l) in lanes.iter_mut().enumerate() {
            l.data[l.icv..l.icv + ICV_LEN].copy_from_slice(&icv[i]);
        }
    }
}

/// Writes HMAC-SHA1-96 of each lane's auth range to `tags`, then decrypts its text in place
/// with AES-CBC from its IV; the ICV fields are not read (the caller compares). Takes the first
/// [`LANES`] lanes.
pub(crate) fn open(key: &CbcSha1X16, lanes: &mut [Lane<'_>], tags: &mut [[u8; ICV_LEN]; LANES]) {
    if !key.ready() {
        return;
    }
    let n = lanes.len().min(LANES);
    let lanes = &mut lanes[..n];
    // SAFETY: as in `seal`.
    unsafe {
        *tags = hmac(key, lanes);
        if key.rounds == 10 {
            decrypt::<10>(key, lanes);
        } else {
            decrypt::<14>(key, lanes);
        }
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

/// AES-CBC encryption of every lane's text, block by block, the sixteen chains together.
/// Lanes past their text, and absent ones, read and write a scratch block.
#[target_feature(enable = "aes,avx2,avx512f,avx512bw,avx512vl,vaes")]
unsafe fn cbc<const R: usize>(key: &CbcSha1X16, lanes: &mut [Lane<'_>]) {
    let mut scratch = [0u8; 16];
    let sp = scratch.as_mut_ptr();
    let mut base = [sp; LANES];
    let mut blocks = [0usize; LANES];
    let mut ivs = [[0u8; 16]; LANES];
    for (i, l) in lanes.iter_mut().enumerate() {
        let p = l.data.as_mut_ptr();
        base[i] = p.add(l.text.start);
        blocks[i] = l.text.len() / 16;
        ivs[i].copy_from_slice(&l.data[l.iv..l.iv + 16]);
    }
    let steps = blocks.iter().copied().max().unwrap_or(0);
    let mut rk = [_mm256_setzero_si256(); 15];
    for (r, k) in rk.iter_mut().zip(&key.rk).take(R + 1) {
        *r = _mm256_broadcastsi128_si256(_mm_loadu_si128(k.as_ptr().cast()));
    }
    // Eight vectors of two lanes: 1.5 to 2.5% fewer cycles for the whole batch than four of
    // four lanes (bursts of 128, 64 to 1,420 bytes). Two batches' 32 chains at once took 10
    // to 13% more at 512 and 1,420 bytes.
    let mut chain = [_mm256_setzero_si256(); 8];
    for (g, c) in chain.iter_mut().enumerate() {
        *c = load2(ivs[2 * g].as_ptr(), ivs[2 * g + 1].as_ptr());
    }
    for j in 0..steps {
        let mut ptr = [sp; LANES];
        for (i, p) in ptr.iter_mut().enumerate() {
            if j < blocks[i] {
                *p = base[i].add(16 * j);
            }
        }
        let mut x = [_mm256_setzero_si256(); 8];
        for g in 0..8 {
            let p = load2(ptr[2 * g], ptr[2 * g + 1]);
            x[g] = _mm256_ternarylogic_epi32::<0x96>(p, chain[g], rk[0]);
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

/// Loads two lanes' 16-byte blocks into one vector.
#[inline(always)]
unsafe fn load2(a: *const u8, b: *const u8) -> __m256i {
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(_mm_loadu_si128(a.cast())), _mm_loadu_si128(b.cast()))
}

/// One lane's message blocks past its whole ones: the rest of its bytes, the padding and the
/// length (FIPS 180-4, 5.1.1), in one or two blocks.
#[repr(C, align(64))]
struct Tail([u8; 128]);

/// Returns HMAC-SHA1-96 of every lane's auth range.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn hmac(key: &CbcSha1X16, lanes: &[Lane<'_>]) -> [[u8; ICV_LEN]; LANES] {
    let mut tails = [const { Tail([0; 128]) }; LANES];
    let mut base = [tails[0].0.as_ptr(); LANES];
    // Per lane: whole blocks in the packet, then all its blocks; absent lanes have none.
    let mut whole = [0usize; LANES];
    let mut total = [0usize; LANES];
    for (i, l) in lanes.iter().enumerate() {
        let msg = &l.data[l.auth.clone()];
        let (w, rest) = (msg.len() / 64, msg.len() % 64);
        let t = &mut tails[i].0;
        t[..rest].copy_from_slice(&msg[64 * w..]);
        t[rest] = 0x80;
        let tail_blocks = if rest + 9 > 64 { 2 } else { 1 };
        // The inner hash follows the key's block: 64 more bytes.
        let bits = (64 + msg.len() as u64) * 8;
        t[64 * tail_blocks - 8..64 * tail_blocks].copy_from_slice(&bits.to_be_bytes());
        base[i] = msg.as_ptr();
        whole[i] = w;
        total[i] = w + tail_blocks;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};

    /// HMAC keys longer than SHA-1's block are hashed first (RFC 2104): the pad states agree
    /// with the `hmac` crate's MAC for keys of every length around the block.
    #[test]
    fn hmac_keys_of_any_length_needs_avx512() {
        assert!(available(), "{}", super::super::vaes_gcm::NEEDS_AVX512);
        for klen in [0, 1, 20, 63, 64, 65, 100, 200] {
            let ak: Vec<u8> = (0..klen).map(|i| (i * 7 + 3) as u8).collect();
            let mut key = CbcSha1X16::EMPTY;
            assert!(key.prepare(&[0x11; 16], &ak));
            let mut data = vec![0u8; 8 + 16 + 64 + ICV_LEN];
            for (i, b) in data.iter_mut().enumerate() {
                *b = i as u8;
            }
            let mut lanes = [Lane::new(&mut data, 8, 24..88, 0..88, 88).unwrap()];
            seal(&key, &mut lanes);
            let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&ak).unwrap();
            m.update(&data[..88]);
            assert_eq!(&m.finalize().into_bytes()[..ICV_LEN], &data[88..], "key of {klen} bytes");
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
