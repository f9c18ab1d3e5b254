//! The portable engine: RustCrypto's block ciphers, CBC, GCM and HMAC, one job at a time.
//! The cross-check for the ipsec-mb engine, and the engine on machines without it.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use cbc::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit};
use des::{Des, TdesEde3};
use hmac::{Hmac, KeyInit as MacKeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::Sha256;
use zeroize::Zeroize;

use super::{Auth, Cipher, Engine, GCM_SALT_LEN, Job, JobStatus, KeyError, MAX_AAD_LEN, Transform, check_keys, icv_eq};

/// The RustCrypto engine. Stateless: everything lives in the sessions.
#[derive(Debug, Default)]
pub struct RustEngine;

// No byte of a session is left uninitialized: an SA is built on the stack and copied to the
// heap, and an uninitialized byte (an enum's unused payload, padding) carries whatever the stack
// held there, which was another key schedule's key (found by tests/zeroize.rs). So each key
// schedule has a box of its own, the enums have 8-byte tags and a payload in every variant, and
// the session spells its padding out.
#[repr(u64)]
enum CipherKey {
    // Never read: written so that the payload's bytes are initialized.
    #[allow(dead_code)]
    Null(usize) = 0,
    Des(Box<Des>),
    Tdes(Box<TdesEde3>),
    Aes128(Box<Aes128>),
    Aes192(Box<Aes192>),
    Aes256(Box<Aes256>),
    Gcm128(Box<Aes128Gcm>),
    Gcm256(Box<Aes256Gcm>),
}

#[repr(u64)]
enum AuthKey {
    #[allow(dead_code)]
    Null(usize) = 0,
    Md5(Box<Hmac<Md5>>),
    Sha1(Box<Hmac<Sha1>>),
    Sha256(Box<Hmac<Sha256>>),
}

/// One SA's key schedules and HMAC states. The RustCrypto types zeroize themselves on drop
/// (their `zeroize` features are on).
#[repr(C)]
pub struct RustSession {
    cipher: CipherKey,
    auth: AuthKey,
    xf: Transform,
    /// GCM: the salt, the key material's last 4 bytes (RFC 4106 section 4); zero otherwise.
    salt: [u8; GCM_SALT_LEN],
    pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<Transform>() == 2 && std::mem::size_of::<RustSession>() == 40);

impl Drop for RustSession {
    fn drop(&mut self) {
        // The key schedules zeroize themselves; the salt is key material too.
        self.salt.zeroize();
    }
}

impl std::fmt::Debug for RustSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustSession").field("xf", &self.xf).finish_non_exhaustive()
    }
}

fn aes_key_part(key: &[u8]) -> &[u8] {
    &key[..key.len() - GCM_SALT_LEN]
}

impl Engine for RustEngine {
    type Session = RustSession;

    fn name(&self) -> &'static str {
        "rust"
    }

    fn session(&mut self, xf: Transform, enc_key: &[u8], auth_key: &[u8]) -> Result<RustSession, KeyError> {
        check_keys(xf, enc_key, auth_key)?;
        let bad = |alg: Cipher| KeyError::WrongKeyLen { alg: alg.name(), need: alg.key_len(), got: enc_key.len() };
        let c = xf.cipher();
        let cipher = match c {
            Cipher::Null => CipherKey::Null(0),
            Cipher::DesCbc => CipherKey::Des(Box::new(Des::new_from_slice(enc_key).map_err(|_| bad(c))?)),
            Cipher::TdesCbc => CipherKey::Tdes(Box::new(TdesEde3::new_from_slice(enc_key).map_err(|_| bad(c))?)),
            Cipher::AesCbc128 => CipherKey::Aes128(Box::new(Aes128::new_from_slice(enc_key).map_err(|_| bad(c))?)),
            Cipher::AesCbc192 => CipherKey::Aes192(Box::new(Aes192::new_from_slice(enc_key).map_err(|_| bad(c))?)),
            Cipher::AesCbc256 => CipherKey::Aes256(Box::new(Aes256::new_from_slice(enc_key).map_err(|_| bad(c))?)),
            Cipher::AesGcm128 => {
                CipherKey::Gcm128(Box::new(Aes128Gcm::new_from_slice(aes_key_part(enc_key)).map_err(|_| bad(c))?))
            }
            Cipher::AesGcm256 => {
                CipherKey::Gcm256(Box::new(Aes256Gcm::new_from_slice(aes_key_part(enc_key)).map_err(|_| bad(c))?))
            }
        };
        let a = xf.auth();
        let bad = KeyError::WrongKeyLen { alg: a.name(), need: a.key_len(), got: auth_key.len() };
        let auth = match a {
            Auth::Null => AuthKey::Null(0),
            Auth::HmacMd5_96 => AuthKey::Md5(Box::new(MacKeyInit::new_from_slice(auth_key).map_err(|_| bad)?)),
            Auth::HmacSha1_96 => AuthKey::Sha1(Box::new(MacKeyInit::new_from_slice(auth_key).map_err(|_| bad)?)),
            Auth::HmacSha256_128 => AuthKey::Sha256(Box::new(MacKeyInit::new_from_slice(auth_key).map_err(|_| bad)?)),
        };
        let mut salt = [0; GCM_SALT_LEN];
        if c.is_aead() {
            salt.copy_from_slice(&enc_key[enc_key.len() - GCM_SALT_LEN..]);
        }
        Ok(RustSession { cipher, auth, xf, salt, pad: [0; 2] })
    }

    fn seal(&mut self, s: &RustSession, jobs: &mut [Job<'_>]) {
        for job in jobs {
            job.status = seal_one(s, job);
        }
    }

    fn open(&mut self, s: &RustSession, jobs: &mut [Job<'_>]) {
        for job in jobs {
            job.status = open_one(s, job);
        }
    }
}

/// The job's regions, checked against the packet and the session's transform.
struct Ranges {
    cipher: std::ops::Range<usize>,
    auth: std::ops::Range<usize>,
    iv: std::ops::Range<usize>,
    icv: std::ops::Range<usize>,
}

/// Returns the job's regions, if each fits the packet and the cipher region the block size.
fn ranges(s: &RustSession, job: &Job<'_>) -> Option<Ranges> {
    let len = job.data.len();
    let cipher = job.cipher.range(len)?;
    let c = s.xf.cipher();
    if c.is_cbc() && cipher.len() % c.pad_align() != 0 {
        return None;
    }
    let auth = job.auth.range(len)?;
    if c.is_aead() && auth.len() > MAX_AAD_LEN {
        return None;
    }
    Some(Ranges { cipher, auth, iv: job.iv_range(s.xf)?, icv: job.icv_range(s.xf)? })
}

fn seal_one(s: &RustSession, job: &mut Job<'_>) -> JobStatus {
    let Some(r) = ranges(s, job) else { return JobStatus::Invalid };
    match &s.cipher {
        CipherKey::Gcm128(g) => return gcm_seal(&**g, s, job, r),
        CipherKey::Gcm256(g) => return gcm_seal(&**g, s, job, r),
        _ => {}
    }
    let iv = block_iv(&job.data[r.iv]);
    cbc_encrypt(&s.cipher, &iv, &mut job.data[r.cipher]);
    let mut icv = [0u8; super::MAX_ICV_LEN];
    hmac(&s.auth, &job.data[r.auth], &mut icv[..r.icv.len()]);
    job.data[r.icv.clone()].copy_from_slice(&icv[..r.icv.len()]);
    JobStatus::Done
}

fn open_one(s: &RustSession, job: &mut Job<'_>) -> JobStatus {
    let Some(r) = ranges(s, job) else { return JobStatus::Invalid };
    match &s.cipher {
        CipherKey::Gcm128(g) => return gcm_open(&**g, s, job, r),
        CipherKey::Gcm256(g) => return gcm_open(&**g, s, job, r),
        _ => {}
    }
    let mut computed = [0u8; super::MAX_ICV_LEN];
    hmac(&s.auth, &job.data[r.auth], &mut computed[..r.icv.len()]);
    if !icv_eq(&computed[..r.icv.len()], &job.data[r.icv]) {
        return JobStatus::AuthFailed;
    }
    let iv = block_iv(&job.data[r.iv]);
    cbc_decrypt(&s.cipher, &iv, &mut job.data[r.cipher]);
    JobStatus::Done
}

/// Copies a CBC IV (8 or 16 bytes, or none for the null cipher) out of the packet: decrypting
/// in place overwrites nothing before the cipher region, but the IV must not alias it.
fn block_iv(iv: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..iv.len()].copy_from_slice(iv);
    out
}

/// Returns the RFC 4106 nonce: the session's salt, then the packet's explicit IV.
fn nonce(s: &RustSession, explicit_iv: &[u8]) -> aes_gcm::Nonce<aes_gcm::aead::consts::U12> {
    let mut n = aes_gcm::Nonce::<aes_gcm::aead::consts::U12>::default();
    n[..GCM_SALT_LEN].copy_from_slice(&s.salt);
    n[GCM_SALT_LEN..].copy_from_slice(explicit_iv);
    n
}

/// Copies the AAD out of the packet (it may not alias the cipher region written in place).
fn aad(data: &[u8], r: &Ranges) -> ([u8; MAX_AAD_LEN], usize) {
    let mut a = [0u8; MAX_AAD_LEN];
    let n = r.auth.len();
    a[..n].copy_from_slice(&data[r.auth.clone()]);
    (a, n)
}

fn gcm_seal<G: AeadInOut<TagSize = aes_gcm::aead::consts::U16, NonceSize = aes_gcm::aead::consts::U12>>(
    g: &G,
    s: &RustSession,
    job: &mut Job<'_>,
    r: Ranges,
) -> JobStatus {
    let n = nonce(s, &job.data[r.iv.clone()]);
    let (a, len) = aad(job.data, &r);
    match g.encrypt_inout_detached(&n, &a[..len], (&mut job.data[r.cipher]).into()) {
        Ok(tag) => {
            job.data[r.icv].copy_from_slice(&tag);
            JobStatus::Done
        }
        Err(_) => JobStatus::Invalid,
    }
}

fn gcm_open<G: AeadInOut<TagSize = aes_gcm::aead::consts::U16, NonceSize = aes_gcm::aead::consts::U12>>(
    g: &G,
    s: &RustSession,
    job: &mut Job<'_>,
    r: Ranges,
) -> JobStatus {
    let n = nonce(s, &job.data[r.iv.clone()]);
    let (a, len) = aad(job.data, &r);
    let mut tag = aes_gcm::Tag::<aes_gcm::aead::consts::U16>::default();
    tag.copy_from_slice(&job.data[r.icv]);
    // aes-gcm compares the tag in constant time and decrypts only if it verifies.
    match g.decrypt_inout_detached(&n, &a[..len], (&mut job.data[r.cipher]).into(), &tag) {
        Ok(()) => JobStatus::Done,
        Err(_) => JobStatus::AuthFailed,
    }
}

fn cbc_encrypt(key: &CipherKey, iv: &[u8; 16], data: &mut [u8]) {
    fn run<C: BlockCipherEncrypt + Clone>(c: &C, iv: &[u8], data: &mut [u8]) {
        let iv = cbc::cipher::Iv::<cbc::Encryptor<C>>::try_from(&iv[..data_block::<C>()]).expect("IV size");
        let mut mode = cbc::Encryptor::<C>::inner_iv_init(c.clone(), &iv);
        let (blocks, rest) = Block::<C>::slice_as_chunks_mut(data);
        debug_assert!(rest.is_empty());
        mode.encrypt_blocks(blocks);
    }
    match key {
        CipherKey::Des(c) => run(&**c, iv, data),
        CipherKey::Tdes(c) => run(&**c, iv, data),
        CipherKey::Aes128(c) => run(&**c, iv, data),
        CipherKey::Aes192(c) => run(&**c, iv, data),
        CipherKey::Aes256(c) => run(&**c, iv, data),
        CipherKey::Null(_) | CipherKey::Gcm128(_) | CipherKey::Gcm256(_) => {}
    }
}

fn cbc_decrypt(key: &CipherKey, iv: &[u8; 16], data: &mut [u8]) {
    fn run<C: BlockCipherDecrypt + Clone>(c: &C, iv: &[u8], data: &mut [u8]) {
        let iv = cbc::cipher::Iv::<cbc::Decryptor<C>>::try_from(&iv[..data_block::<C>()]).expect("IV size");
        let mut mode = cbc::Decryptor::<C>::inner_iv_init(c.clone(), &iv);
        let (blocks, rest) = Block::<C>::slice_as_chunks_mut(data);
        debug_assert!(rest.is_empty());
        mode.decrypt_blocks(blocks);
    }
    match key {
        CipherKey::Des(c) => run(&**c, iv, data),
        CipherKey::Tdes(c) => run(&**c, iv, data),
        CipherKey::Aes128(c) => run(&**c, iv, data),
        CipherKey::Aes192(c) => run(&**c, iv, data),
        CipherKey::Aes256(c) => run(&**c, iv, data),
        CipherKey::Null(_) | CipherKey::Gcm128(_) | CipherKey::Gcm256(_) => {}
    }
}

fn data_block<C: cbc::cipher::BlockSizeUser>() -> usize {
    C::block_size()
}

/// Writes the HMAC of `data`, truncated to `out.len()`, into `out`.
fn hmac(key: &AuthKey, data: &[u8], out: &mut [u8]) {
    fn run<M: Mac + Clone>(m: &M, data: &[u8], out: &mut [u8]) {
        let tag = m.clone().chain_update(data).finalize().into_bytes();
        out.copy_from_slice(&tag[..out.len()]);
    }
    match key {
        AuthKey::Null(_) => {}
        AuthKey::Md5(m) => run(&**m, data, out),
        AuthKey::Sha1(m) => run(&**m, data, out),
        AuthKey::Sha256(m) => run(&**m, data, out),
    }
}
