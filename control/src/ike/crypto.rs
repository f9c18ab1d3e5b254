//! IKEv1 cryptography: the negotiated hash as PRF (HMAC, RFC 2409 5), the phase 1 CBC ciphers,
//! MODP Diffie-Hellman with constant-time exponentiation, and the key derivations of RFC 2409:
//! SKEYID and its children (5), key expansion (Appendix B), the IVs (Appendix B) and KEYMAT (5.5).

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U768, U1024, U1536, U2048, Uint};
use des::{Des, TdesEde3};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::Rng;
use super::groups;
use crate::config::{DhGroup, HashAlgorithm, PeerEncAlgorithm, PfsGroup};

/// A secret byte string that is wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// The negotiated hash, used as HMAC for the PRF (RFC 2409 5: "the HMAC version of the
/// negotiated hash").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// MD5 (phase 1 attribute value 1).
    Md5,
    /// SHA-1 (2).
    Sha1,
    /// SHA2-256 (4, RFC 4868 does not change IKEv1's number).
    Sha256,
}

impl HashAlg {
    /// Returns the algorithm of a peer's `hash-algorithm`.
    pub fn from_config(h: HashAlgorithm) -> Self {
        match h {
            HashAlgorithm::Md5 => HashAlg::Md5,
            HashAlgorithm::Sha => HashAlg::Sha1,
            HashAlgorithm::Sha256 => HashAlg::Sha256,
        }
    }

    /// Returns the phase 1 attribute value (RFC 2409 Appendix A).
    pub fn attr(self) -> u64 {
        match self {
            HashAlg::Md5 => 1,
            HashAlg::Sha1 => 2,
            HashAlg::Sha256 => 4,
        }
    }

    /// Returns the output length in bytes.
    pub fn out_len(self) -> usize {
        match self {
            HashAlg::Md5 => 16,
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
        }
    }

    /// Returns the hash of the concatenated parts.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Md5 => run::<Md5>(parts),
            HashAlg::Sha1 => run::<Sha1>(parts),
            HashAlg::Sha256 => run::<Sha256>(parts),
        }
    }

    /// Returns prf(key, parts...) as HMAC.
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Secret {
            // HMAC takes keys of any length (RFC 2104 2); the error case cannot occur.
            let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else { return Zeroizing::new(Vec::new()) };
            for p in parts {
                m.update(p);
            }
            Zeroizing::new(m.finalize().into_bytes().to_vec())
        }
        match self {
            HashAlg::Md5 => run::<Hmac<Md5>>(key, parts),
            HashAlg::Sha1 => run::<Hmac<Sha1>>(key, parts),
            HashAlg::Sha256 => run::<Hmac<Sha256>>(key, parts),
        }
    }
}

/// A phase 1 cipher (RFC 2409 Appendix A; AES per RFC 3602 with the key length attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum P1Cipher {
    /// DES-CBC (1).
    Des,
    /// 3DES-CBC (5).
    Tdes,
    /// AES-CBC (7) with a key of 128, 192 or 256 bits.
    Aes(u16),
}

impl P1Cipher {
    /// Returns the cipher of a peer's `enc-algorithm`.
    pub fn from_config(e: PeerEncAlgorithm) -> Self {
        match e {
            PeerEncAlgorithm::Des => P1Cipher::Des,
            PeerEncAlgorithm::Tdes => P1Cipher::Tdes,
            PeerEncAlgorithm::Aes128 => P1Cipher::Aes(128),
            PeerEncAlgorithm::Aes192 => P1Cipher::Aes(192),
            PeerEncAlgorithm::Aes256 => P1Cipher::Aes(256),
        }
    }

    /// Returns the encryption algorithm attribute value and the key length attribute, if any.
    pub fn attrs(self) -> (u64, Option<u64>) {
        match self {
            P1Cipher::Des => (1, None),
            P1Cipher::Tdes => (5, None),
            P1Cipher::Aes(bits) => (7, Some(u64::from(bits))),
        }
    }

    /// Returns the cipher named by the attributes, if we support it.
    pub fn from_attrs(alg: u64, key_len: Option<u64>) -> Option<Self> {
        match (alg, key_len) {
            (1, None) => Some(P1Cipher::Des),
            (5, None) => Some(P1Cipher::Tdes),
            (7, Some(b @ (128 | 192 | 256))) => Some(P1Cipher::Aes(b as u16)),
            _ => None,
        }
    }

    /// Returns the key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            P1Cipher::Des => 8,
            P1Cipher::Tdes => 24,
            P1Cipher::Aes(bits) => usize::from(bits) / 8,
        }
    }

    /// Returns the block length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            P1Cipher::Des | P1Cipher::Tdes => 8,
            P1Cipher::Aes(_) => 16,
        }
    }

    /// Encrypts `data` (whole blocks) in place in CBC mode. Returns false if the key, IV or data
    /// length is wrong.
    pub fn encrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> bool {
        fn run<C: BlockCipherEncrypt + KeyInit>(key: &[u8], iv: &[u8], data: &mut [u8]) -> bool {
            let Ok(mut m) = cbc::Encryptor::<C>::new_from_slices(key, iv) else { return false };
            let (blocks, rest) = Block::<C>::slice_as_chunks_mut(data);
            if !rest.is_empty() {
                return false;
            }
            m.encrypt_blocks(blocks);
            true
        }
        match self {
            P1Cipher::Des => run::<Des>(key, iv, data),
            P1Cipher::Tdes => run::<TdesEde3>(key, iv, data),
            P1Cipher::Aes(128) => run::<Aes128>(key, iv, data),
            P1Cipher::Aes(192) => run::<Aes192>(key, iv, data),
            P1Cipher::Aes(256) => run::<Aes256>(key, iv, data),
            P1Cipher::Aes(_) => false,
        }
    }

    /// Decrypts `data` (whole blocks) in place in CBC mode. Returns false if the key, IV or data
    /// length is wrong.
    pub fn decrypt(self, key: &[u8], iv: &[u8], data: &mut [u8]) -> bool {
        fn run<C: BlockCipherDecrypt + KeyInit>(key: &[u8], iv: &[u8], data: &mut [u8]) -> bool {
            let Ok(mut m) = cbc::Decryptor::<C>::new_from_slices(key, iv) else { return false };
            let (blocks, rest) = Block::<C>::slice_as_chunks_mut(data);
            if !rest.is_empty() {
                return false;
            }
            m.decrypt_blocks(blocks);
            true
        }
        match self {
            P1Cipher::Des => run::<Des>(key, iv, data),
            P1Cipher::Tdes => run::<TdesEde3>(key, iv, data),
            P1Cipher::Aes(128) => run::<Aes128>(key, iv, data),
            P1Cipher::Aes(192) => run::<Aes192>(key, iv, data),
            P1Cipher::Aes(256) => run::<Aes256>(key, iv, data),
            P1Cipher::Aes(_) => false,
        }
    }
}

/// A MODP Diffie-Hellman group (RFC 2409 6, RFC 3526).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Group 1, 768 bits.
    Modp768,
    /// Group 2, 1024 bits.
    Modp1024,
    /// Group 5, 1536 bits.
    Modp1536,
    /// Group 14, 2048 bits.
    Modp2048,
}

/// The bits of a private exponent: twice the 128-bit strength the largest group offers
/// (RFC 3526 8 suggests 2x the strength), so exponentiation stays cheap in every group.
pub const PRIVATE_BITS: u32 = 256;

impl Group {
    /// Every group.
    pub const ALL: [Group; 4] = [Group::Modp768, Group::Modp1024, Group::Modp1536, Group::Modp2048];

    /// Returns the group of a peer's `dh-group`.
    pub fn from_config(g: DhGroup) -> Self {
        match g {
            DhGroup::Modp768 => Group::Modp768,
            DhGroup::Modp1024 => Group::Modp1024,
            DhGroup::Modp1536 => Group::Modp1536,
            DhGroup::Modp2048 => Group::Modp2048,
        }
    }

    /// Returns the group of a proposal's `pfs-group`, if any.
    pub fn from_pfs(g: PfsGroup) -> Option<Self> {
        match g {
            PfsGroup::None => None,
            PfsGroup::Modp768 => Some(Group::Modp768),
            PfsGroup::Modp1024 => Some(Group::Modp1024),
            PfsGroup::Modp1536 => Some(Group::Modp1536),
            PfsGroup::Modp2048 => Some(Group::Modp2048),
        }
    }

    /// Returns the group description number (RFC 2409 Appendix A, RFC 3526).
    pub fn number(self) -> u64 {
        match self {
            Group::Modp768 => 1,
            Group::Modp1024 => 2,
            Group::Modp1536 => 5,
            Group::Modp2048 => 14,
        }
    }

    /// Returns the group with a description number.
    pub fn from_number(n: u64) -> Option<Self> {
        Group::ALL.into_iter().find(|g| g.number() == n)
    }

    /// Returns the prime, big-endian.
    pub fn prime(self) -> &'static [u8] {
        match self {
            Group::Modp768 => &groups::MODP768,
            Group::Modp1024 => &groups::MODP1024,
            Group::Modp1536 => &groups::MODP1536,
            Group::Modp2048 => &groups::MODP2048,
        }
    }

    /// Returns the length of public values and shared secrets in bytes.
    pub fn value_len(self) -> usize {
        self.prime().len()
    }

    /// Tells whether a peer's public value is acceptable: as long as the prime, 1 < y < p-1.
    pub fn valid_public(self, y: &[u8]) -> bool {
        let p = self.prime();
        if y.len() != p.len() {
            return false;
        }
        let mut p_minus_1 = p.to_vec();
        // p is odd, so p-1 only clears the lowest bit.
        if let Some(last) = p_minus_1.last_mut() {
            *last &= 0xfe;
        }
        let greater_than_one = y[..y.len() - 1].iter().any(|&b| b != 0) || y[y.len() - 1] > 1;
        greater_than_one && y < &p_minus_1[..]
    }

    /// Returns base^exp mod p in constant time for the exponent (at most [`PRIVATE_BITS`] bits).
    fn pow(self, base: &[u8], exp: &[u8]) -> Vec<u8> {
        match self {
            Group::Modp768 => pow_n::<{ U768::LIMBS }>(self.prime(), base, exp),
            Group::Modp1024 => pow_n::<{ U1024::LIMBS }>(self.prime(), base, exp),
            Group::Modp1536 => pow_n::<{ U1536::LIMBS }>(self.prime(), base, exp),
            Group::Modp2048 => pow_n::<{ U2048::LIMBS }>(self.prime(), base, exp),
        }
    }
}

/// Left-pads `v` to `len` bytes into a wiped buffer.
fn padded(v: &[u8], len: usize) -> Secret {
    let mut out = Zeroizing::new(vec![0u8; len]);
    let n = v.len().min(len);
    out[len - n..].copy_from_slice(&v[v.len() - n..]);
    out
}

fn pow_n<const L: usize>(prime: &[u8], base: &[u8], exp: &[u8]) -> Vec<u8> {
    let len = prime.len();
    let p = Uint::<L>::from_be_slice(prime);
    // The primes are constants and odd; a failure here would be a bug in groups.rs.
    let Some(p) = Odd::new(p).into_option() else { return vec![0; len] };
    let params = FixedMontyParams::new_vartime(p);
    let b = Uint::<L>::from_be_slice(&padded(base, len));
    let mut e = Uint::<L>::from_be_slice(&padded(exp, len));
    let r = FixedMontyForm::new(&b, &params).pow_bounded_exp(&e, PRIVATE_BITS).retrieve();
    e.zeroize();
    r.to_be_bytes().as_ref().to_vec()
}

/// One side's Diffie-Hellman key pair; the private exponent is wiped on drop.
pub struct DhKey {
    group: Group,
    private: Secret,
    public: Vec<u8>,
}

impl std::fmt::Debug for DhKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DhKey").field("group", &self.group).finish_non_exhaustive()
    }
}

impl DhKey {
    /// Draws a private exponent of [`PRIVATE_BITS`] bits (top bit set) and computes g^x.
    pub fn generate(group: Group, rng: &mut dyn Rng) -> Self {
        let mut private = Zeroizing::new(vec![0u8; PRIVATE_BITS as usize / 8]);
        rng.fill(&mut private);
        private[0] |= 0x80;
        let public = group.pow(&[2], &private);
        DhKey { group, private, public }
    }

    /// Returns the group.
    pub fn group(&self) -> Group {
        self.group
    }

    /// Returns g^x, as long as the prime.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Returns g^xy for the peer's public value, or `None` if the value is invalid.
    pub fn shared(&self, peer: &[u8]) -> Option<Secret> {
        if !self.group.valid_public(peer) {
            return None;
        }
        Some(Zeroizing::new(self.group.pow(peer, &self.private)))
    }
}

/// Expands key material: K1 = prf(K, 0), Kn = prf(K, Kn-1), K = K1 | K2 | ... truncated to
/// `need` (RFC 2409 Appendix B). Key material already long enough is truncated.
pub fn expand(hash: HashAlg, key: &[u8], need: usize) -> Secret {
    if key.len() >= need {
        return Zeroizing::new(key[..need].to_vec());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(need + hash.out_len()));
    let mut k = hash.prf(key, &[&[0]]);
    loop {
        out.extend_from_slice(&k);
        if out.len() >= need {
            break;
        }
        k = hash.prf(key, &[&k]);
    }
    out.truncate(need);
    out
}

/// The keys of an ISAKMP SA (RFC 2409 5); all wiped on drop.
pub struct Phase1Keys {
    /// SKEYID = prf(pre-shared-key, Ni_b | Nr_b).
    pub skeyid: Secret,
    /// SKEYID_d, for phase 2 KEYMAT.
    pub d: Secret,
    /// SKEYID_a, for the phase 2 and informational hashes.
    pub a: Secret,
    /// SKEYID_e.
    pub e: Secret,
    /// The cipher key derived from SKEYID_e (Appendix B).
    pub enc: Secret,
}

impl std::fmt::Debug for Phase1Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Phase1Keys(..)")
    }
}

impl Phase1Keys {
    /// Derives the keys for pre-shared key authentication.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        hash: HashAlg,
        cipher: P1Cipher,
        psk: &[u8],
        ni: &[u8],
        nr: &[u8],
        gxy: &[u8],
        ci: &[u8; 8],
        cr: &[u8; 8],
    ) -> Self {
        let skeyid = hash.prf(psk, &[ni, nr]);
        let d = hash.prf(&skeyid, &[gxy, ci, cr, &[0]]);
        let a = hash.prf(&skeyid, &[&d, gxy, ci, cr, &[1]]);
        let e = hash.prf(&skeyid, &[&a, gxy, ci, cr, &[2]]);
        let enc = expand(hash, &e, cipher.key_len());
        Phase1Keys { skeyid, d, a, e, enc }
    }
}

/// Returns KEYMAT for one SA: K1 | K2 | ... with Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |]
/// protocol | SPI | Ni_b | Nr_b) and K0 empty (RFC 2409 5.5), truncated to `need`.
#[allow(clippy::too_many_arguments)]
pub fn keymat(
    hash: HashAlg,
    skeyid_d: &[u8],
    gqm: Option<&[u8]>,
    protocol: u8,
    spi: u32,
    ni: &[u8],
    nr: &[u8],
    need: usize,
) -> Secret {
    let spi = spi.to_be_bytes();
    let g = gqm.unwrap_or(&[]);
    let mut out = Zeroizing::new(Vec::with_capacity(need + hash.out_len()));
    let mut k = Zeroizing::new(Vec::new());
    while out.len() < need {
        k = hash.prf(skeyid_d, &[&k, g, &[protocol], &spi, ni, nr]);
        out.extend_from_slice(&k);
    }
    out.truncate(need);
    out
}

/// Returns the first `block` bytes of hash(parts...), the IV derivation of Appendix B.
pub fn derive_iv(hash: HashAlg, block: usize, parts: &[&[u8]]) -> Vec<u8> {
    let mut h = hash.hash(parts);
    h.truncate(block);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u8);
    impl Rng for Counter {
        fn fill(&mut self, out: &mut [u8]) {
            for b in out {
                self.0 = self.0.wrapping_mul(31).wrapping_add(7);
                *b = self.0;
            }
        }
    }

    #[test]
    fn diffie_hellman_agrees_in_every_group() {
        let mut rng = Counter(1);
        for g in Group::ALL {
            let a = DhKey::generate(g, &mut rng);
            let b = DhKey::generate(g, &mut rng);
            assert_eq!(a.public().len(), g.value_len());
            let s1 = a.shared(b.public()).unwrap();
            let s2 = b.shared(a.public()).unwrap();
            assert_eq!(&s1[..], &s2[..], "{g:?}");
        }
    }

    #[test]
    fn public_values_are_validated() {
        let g = Group::Modp768;
        let mut one = vec![0u8; g.value_len()];
        one[g.value_len() - 1] = 1;
        assert!(!g.valid_public(&one));
        one[g.value_len() - 1] = 2;
        assert!(g.valid_public(&one));
        let p = g.prime().to_vec();
        assert!(!g.valid_public(&p));
        let mut pm1 = p.clone();
        pm1[g.value_len() - 1] -= 1;
        assert!(!g.valid_public(&pm1));
        pm1[g.value_len() - 1] -= 1;
        assert!(g.valid_public(&pm1));
        assert!(!g.valid_public(&p[1..]));
        assert!(!g.valid_public(&vec![0; g.value_len()]));
    }

    #[test]
    fn cbc_round_trips() {
        for c in [P1Cipher::Des, P1Cipher::Tdes, P1Cipher::Aes(128), P1Cipher::Aes(192), P1Cipher::Aes(256)] {
            let key: Vec<u8> = (0..c.key_len() as u8).collect();
            let iv = vec![9u8; c.block_len()];
            let mut data = vec![0x5au8; c.block_len() * 3];
            assert!(c.encrypt(&key, &iv, &mut data));
            assert_ne!(data, vec![0x5au8; c.block_len() * 3]);
            assert!(c.decrypt(&key, &iv, &mut data));
            assert_eq!(data, vec![0x5au8; c.block_len() * 3]);
            assert!(!c.encrypt(&key, &iv, &mut [0u8; 5]));
        }
    }

    #[test]
    fn expansion_follows_appendix_b() {
        let k = [7u8; 16];
        let e = expand(HashAlg::Md5, &k, 24);
        let k1 = HashAlg::Md5.prf(&k, &[&[0]]);
        let k2 = HashAlg::Md5.prf(&k, &[&k1]);
        assert_eq!(&e[..16], &k1[..]);
        assert_eq!(&e[16..], &k2[..8]);
        assert_eq!(&expand(HashAlg::Sha256, &[1; 32], 24)[..], &[1; 24]);
    }
}
