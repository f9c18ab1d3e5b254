//! Tests of the ipsec-mb engine: known answers from the standards, and agreement with the
//! portable engine on random packets of every transform, tampered packets and bad jobs.

use super::*;
use crate::crypto::rust::RustEngine;
use crate::crypto::{GCM_SALT_LEN, Region};

/// SplitMix64: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// One packet and its job parameters, owned so it can be cloned and compared.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pkt {
    data: Vec<u8>,
    cipher: Region,
    auth: Region,
    iv: [u8; 16],
    aad: [u8; 12],
    aad_len: u8,
    icv: [u8; MAX_ICV_LEN],
}

impl Pkt {
    fn new(data: Vec<u8>, cipher: Region, auth: Region) -> Self {
        Pkt { data, cipher, auth, iv: [0; 16], aad: [0; 12], aad_len: 0, icv: [0; MAX_ICV_LEN] }
    }
}

/// Seals or opens `pkts` as one burst, copies each ICV back, and returns the statuses.
fn run<E: Engine>(e: &mut E, s: &E::Session, pkts: &mut [Pkt], seal: bool) -> Vec<JobStatus> {
    as_jobs(pkts, |jobs| if seal { e.seal(s, jobs) } else { e.open(s, jobs) })
}

/// Hands `pkts` to `f` as one burst of jobs, copies each ICV back, and returns the statuses.
fn as_jobs(pkts: &mut [Pkt], f: impl FnOnce(&mut [Job<'_>])) -> Vec<JobStatus> {
    let mut jobs: Vec<Job<'_>> = pkts
        .iter_mut()
        .map(|p| {
            let mut j = Job::new(&mut p.data, p.cipher, p.auth);
            (j.iv, j.aad, j.aad_len, j.icv) = (p.iv, p.aad, p.aad_len, p.icv);
            j
        })
        .collect();
    f(&mut jobs);
    let out: Vec<(JobStatus, [u8; MAX_ICV_LEN])> = jobs.iter().map(|j| (j.status, j.icv)).collect();
    drop(jobs);
    out.into_iter()
        .zip(pkts.iter_mut())
        .map(|((st, icv), p)| {
            p.icv = icv;
            st
        })
        .collect()
}

/// Every transform `Transform::new` accepts, AH-style auth-only ones included.
fn transforms() -> Vec<Transform> {
    let all = Cipher::ALL.iter().flat_map(|&c| Auth::ALL.iter().map(move |&a| Transform::new(c, a)));
    all.filter_map(Result::ok).collect()
}

/// Returns random keys for `xf` that `check_keys` accepts.
fn keys(rng: &mut Rng, xf: Transform) -> (Vec<u8>, Vec<u8>) {
    loop {
        let ek = rng.bytes(xf.cipher().key_len());
        let ak = rng.bytes(xf.auth().key_len());
        if check_keys(xf, &ek, &ak).is_ok() {
            return (ek, ak);
        }
    }
}

/// Builds a random packet: ESP (header, IV, payload) or, for the null cipher, sometimes AH-style
/// (the ICV covers the whole packet, nothing is ciphered).
fn packet(rng: &mut Rng, xf: Transform, enc_key: &[u8]) -> Pkt {
    let c = xf.cipher();
    if c == Cipher::Null && rng.below(2) == 0 {
        let n = 20 + rng.below(1480);
        let data = rng.bytes(n);
        let len = data.len();
        return Pkt::new(data, Region::default(), Region::new(0, len));
    }
    let iv_len = c.iv_len();
    let payload = match cbc_block(c) {
        Some(b) => b as usize * rng.below(95),
        None => rng.below(1500),
    };
    let data = rng.bytes(8 + iv_len + payload);
    let mut p = Pkt::new(data, Region::new(8 + iv_len, payload), Region::new(0, 8 + iv_len + payload));
    if c.is_aead() {
        // RFC 4106: nonce = salt (end of the key material) || explicit IV; AAD = SPI, sequence
        // number (and the high half of an extended one).
        p.iv[..GCM_SALT_LEN].copy_from_slice(&enc_key[enc_key.len() - GCM_SALT_LEN..]);
        p.iv[GCM_SALT_LEN..12].copy_from_slice(&p.data[8..16]);
        p.aad_len = if rng.below(2) == 0 { 8 } else { 12 };
        p.aad[..8].copy_from_slice(&p.data[..8]);
        p.aad[8..].copy_from_slice(&rng.bytes(4));
    } else {
        p.iv[..iv_len].copy_from_slice(&p.data[8..8 + iv_len]);
    }
    p
}

/// Seals `plain` with both engines, checks they agree, then opens each one's output with the
/// other engine and checks the plaintext comes back.
fn check_agreement(xf: Transform, plain: &[Pkt], ek: &[u8], ak: &[u8]) {
    for lanes in [HmacLanes::Simd, HmacLanes::ShaNi] {
        check_agreement_on(MbEngine::with_hmac_lanes(lanes).unwrap(), xf, plain, ek, ak);
    }
}

fn check_agreement_on(mut mb: MbEngine, xf: Transform, plain: &[Pkt], ek: &[u8], ak: &[u8]) {
    let mut rs = RustEngine;
    let sm = mb.session(xf, ek, ak).unwrap();
    let sr = rs.session(xf, ek, ak).unwrap();
    let icv_len = xf.icv_len();
    let (mut a, mut b) = (plain.to_vec(), plain.to_vec());
    let done = vec![JobStatus::Done; plain.len()];
    assert_eq!(run(&mut mb, &sm, &mut a, true), done, "{xf:?} seal ipsec-mb");
    assert_eq!(run(&mut rs, &sr, &mut b, true), done, "{xf:?} seal rust");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.data, y.data, "{xf:?} ciphertext of job {i}");
        assert_eq!(x.icv[..icv_len], y.icv[..icv_len], "{xf:?} ICV of job {i}");
        if xf.cipher() != Cipher::Null && x.cipher.len >= 8 {
            assert_ne!(x.data, plain[i].data, "{xf:?} job {i} was not encrypted");
        }
    }
    // Cross-open: ipsec-mb's output by rust, rust's by ipsec-mb.
    assert_eq!(run(&mut rs, &sr, &mut a, false), done, "{xf:?} rust opens ipsec-mb");
    assert_eq!(run(&mut mb, &sm, &mut b, false), done, "{xf:?} ipsec-mb opens rust");
    for (i, p) in plain.iter().enumerate() {
        assert_eq!(a[i].data, p.data, "{xf:?} plaintext of job {i} (rust)");
        assert_eq!(b[i].data, p.data, "{xf:?} plaintext of job {i} (ipsec-mb)");
    }
}

#[test]
fn engine_starts_with_matching_layout() {
    let e = MbEngine::new().expect("ipsec-mb manager");
    assert_eq!(e.name(), "ipsec-mb");
    assert_ne!(e.arch(), "unknown");
    assert_eq!(MbEngine::with_hmac_lanes(HmacLanes::ShaNi).unwrap().hmac_sha1_lanes(), "sha-ni");
    assert_eq!(MbEngine::with_hmac_lanes(HmacLanes::Simd).unwrap().hmac_sha1_lanes(), "simd");
    fn send<T: Send>() {}
    send::<MbEngine>();
    send::<MbSession>();
    assert_eq!(align_of::<MbKeys>(), 64);
}

#[test]
fn sessions_check_keys() {
    let mut e = MbEngine::new().unwrap();
    let xf = Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).unwrap();
    let err = e.session(xf, &[0; 15], &[0; 20]).unwrap_err();
    assert_eq!(err, KeyError::WrongKeyLen { alg: "aes-cbc-128", need: 16, got: 15 });
    let err = e.session(xf, &[0; 16], &[0; 16]).unwrap_err();
    assert_eq!(err, KeyError::WrongKeyLen { alg: "sha1hmac", need: 20, got: 16 });
    let des = Transform::new(Cipher::DesCbc, Auth::HmacMd5_96).unwrap();
    assert_eq!(e.session(des, &[0x01; 8], &[0; 16]).unwrap_err(), KeyError::WeakKey("des"));
    let s = e.session(xf, &[7; 16], &[9; 20]).unwrap();
    assert_eq!(s.transform(), xf);
}

#[test]
fn agrees_with_rust_engine_on_every_transform() {
    let mut rng = Rng(0x1b5e_c0de);
    let xfs = transforms();
    assert_eq!(xfs.len(), 25);
    for xf in xfs {
        for _ in 0..4 {
            let (ek, ak) = keys(&mut rng, xf);
            let n = 1 + rng.below(40);
            let plain: Vec<Pkt> = (0..n).map(|_| packet(&mut rng, xf, &ek)).collect();
            check_agreement(xf, &plain, &ek, &ak);
        }
    }
}

#[test]
fn auth_only_transforms_agree_with_rust_engine() {
    let mut rng = Rng(0xa4);
    for auth in [Auth::HmacMd5_96, Auth::HmacSha1_96, Auth::HmacSha256_128] {
        let xf = Transform::auth_only(auth).unwrap();
        let (ek, ak) = keys(&mut rng, xf);
        let plain: Vec<Pkt> = (0..50)
            .map(|i| {
                // AH: the ICV covers the whole packet; lengths from 0 across the hash block.
                let n = if i < 20 { i * 7 } else { rng.below(1500) };
                let data = rng.bytes(n);
                let len = data.len();
                Pkt::new(data, Region::default(), Region::new(0, len))
            })
            .collect();
        check_agreement(xf, &plain, &ek, &ak);
    }
}

#[test]
fn bursts_of_any_length() {
    let mut rng = Rng(7);
    let xfs = [
        Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).unwrap(),
        Transform::new(Cipher::TdesCbc, Auth::HmacMd5_96).unwrap(),
        Transform::new(Cipher::AesGcm128, Auth::Null).unwrap(),
        Transform::auth_only(Auth::HmacSha256_128).unwrap(),
    ];
    for xf in xfs {
        for n in [0, 1, 31, 32, 33, 100] {
            let (ek, ak) = keys(&mut rng, xf);
            let plain: Vec<Pkt> = (0..n).map(|_| packet(&mut rng, xf, &ek)).collect();
            check_agreement(xf, &plain, &ek, &ak);
        }
    }
}

#[test]
fn tampering_gives_auth_failed() {
    let mut rng = Rng(99);
    let mut mb = MbEngine::new().unwrap();
    let mut rs = RustEngine;
    for xf in transforms().into_iter().filter(|xf| xf.icv_len() > 0) {
        let (ek, ak) = keys(&mut rng, xf);
        let sm = mb.session(xf, &ek, &ak).unwrap();
        let sr = rs.session(xf, &ek, &ak).unwrap();
        let mut sealed = loop {
            let p = packet(&mut rng, xf, &ek);
            if p.cipher.len > 0 || xf.cipher() == Cipher::Null {
                break vec![p];
            }
        };
        assert_eq!(run(&mut mb, &sm, &mut sealed, true), [JobStatus::Done]);
        let p = &sealed[0];
        let mut bad = Vec::new();
        // A flipped ICV bit.
        let mut t = p.clone();
        t.icv[rng.below(xf.icv_len())] ^= 1 << rng.below(8);
        bad.push(t);
        if xf.cipher().is_aead() {
            // A flipped ciphertext bit, and a flipped AAD bit.
            let mut t = p.clone();
            let i = p.cipher.off as usize + rng.below(p.cipher.len as usize);
            t.data[i] ^= 0x80;
            bad.push(t);
            let mut t = p.clone();
            t.aad[rng.below(usize::from(p.aad_len))] ^= 0x01;
            bad.push(t);
        } else {
            // A flipped bit anywhere the ICV covers: header, IV or ciphertext.
            let mut t = p.clone();
            let i = p.auth.off as usize + rng.below(p.auth.len as usize);
            t.data[i] ^= 1 << rng.below(8);
            bad.push(t);
        }
        let failed = vec![JobStatus::AuthFailed; bad.len()];
        assert_eq!(run(&mut mb, &sm, &mut bad.clone(), false), failed, "{xf:?} ipsec-mb");
        assert_eq!(run(&mut rs, &sr, &mut bad, false), failed, "{xf:?} rust");
        // The untouched packet still opens.
        assert_eq!(run(&mut mb, &sm, &mut sealed, false), [JobStatus::Done], "{xf:?}");
    }
}

#[test]
fn bad_jobs_are_invalid_and_others_proceed() {
    let mut rng = Rng(3);
    let mut mb = MbEngine::new().unwrap();
    for xf in transforms() {
        let (ek, ak) = keys(&mut rng, xf);
        let s = mb.session(xf, &ek, &ak).unwrap();
        let good = loop {
            let p = packet(&mut rng, xf, &ek);
            if p.cipher.len > 0 || xf.cipher() == Cipher::Null {
                break p;
            }
        };
        let len = good.data.len();
        let mut pkts = vec![good.clone()];
        let mut expect = vec![JobStatus::Done];
        let mut push = |p: Pkt| {
            pkts.push(p);
            expect.push(JobStatus::Invalid);
        };
        // Cipher region past the end, and at an offset that overflows.
        let mut p = good.clone();
        p.cipher = Region::new(len - 8, 16);
        push(p);
        let mut p = good.clone();
        p.cipher = Region { off: u32::MAX, len: u32::MAX };
        push(p);
        if !xf.cipher().is_aead() {
            let mut p = good.clone();
            p.auth = Region::new(1, len);
            push(p);
        }
        if let Some(b) = cbc_block(xf.cipher()) {
            let mut p = good.clone();
            p.cipher.len -= b / 2;
            push(p);
        }
        if xf.cipher().is_aead() {
            let mut p = good.clone();
            p.aad_len = 13;
            push(p);
        }
        let mut empty = Pkt::new(Vec::new(), Region::new(0, 16), Region::new(0, 1));
        empty.aad_len = 8;
        push(empty);
        pkts.push(good.clone());
        expect.push(JobStatus::Done);

        let mut sealed = pkts.clone();
        assert_eq!(run(&mut mb, &s, &mut sealed, true), expect, "{xf:?} seal");
        let mut opened = sealed.clone();
        assert_eq!(run(&mut mb, &s, &mut opened, false), expect, "{xf:?} open");
        for i in [0, pkts.len() - 1] {
            assert_eq!(opened[i].data, good.data, "{xf:?} job {i}");
        }
        // Rejected jobs are left untouched.
        for i in 1..pkts.len() - 1 {
            assert_eq!(sealed[i].data, pkts[i].data, "{xf:?} job {i}");
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// Seals one packet that is all cipher region and ICV-covered, and returns it.
fn seal_one(xf: Transform, ek: &[u8], ak: &[u8], data: Vec<u8>, iv: &[u8], aad: &[u8]) -> Pkt {
    let mut mb = MbEngine::new().unwrap();
    let s = mb.session(xf, ek, ak).unwrap();
    let len = data.len();
    let cipher = if xf.cipher() == Cipher::Null { Region::default() } else { Region::new(0, len) };
    let mut p = Pkt::new(data.clone(), cipher, Region::new(0, len));
    p.iv[..iv.len()].copy_from_slice(iv);
    p.aad[..aad.len()].copy_from_slice(aad);
    p.aad_len = aad.len() as u8;
    let mut pkts = vec![p];
    assert_eq!(run(&mut mb, &s, &mut pkts, true), [JobStatus::Done]);
    let sealed = pkts[0].clone();
    assert_eq!(run(&mut mb, &s, &mut pkts, false), [JobStatus::Done]);
    assert_eq!(pkts[0].data, data, "{xf:?} opens to the plaintext");
    sealed
}

/// The GCM spec (McGrew and Viega), test cases 3 and 15: AES-128/256 with a 12-byte IV, no AAD.
/// RFC 4106 key material is the key followed by the salt, the IV's first four bytes.
#[test]
fn gcm_known_answers() {
    let k = "feffe9928665731c6d6a8f9467308308";
    let p = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
    let iv = hex("cafebabefacedbaddecaf888");
    let cases = [
        (
            Cipher::AesGcm128,
            hex(k),
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
            "4d5c2af327cd64a62cf35abd2ba6fab4",
        ),
        (
            Cipher::AesGcm256,
            hex(&[k, k].concat()),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
             8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            "b094dac5d93471bdec1a502270e3cc6c",
        ),
    ];
    for (c, key, ct, tag) in &cases {
        let xf = Transform::new(*c, Auth::Null).unwrap();
        let ek = [&key[..], &iv[..GCM_SALT_LEN]].concat();
        let s = seal_one(xf, &ek, &[], p.clone(), &iv, &[]);
        assert_eq!(s.data, hex(ct), "{c:?}");
        assert_eq!(s.icv[..], hex(tag)[..], "{c:?}");
    }
    // With AAD: test case 4's key, IV and plaintext, and the first 12 and 8 bytes of its AAD
    // (ESP's sizes; tags computed with OpenSSL).
    let xf = Transform::new(Cipher::AesGcm128, Auth::Null).unwrap();
    let ek = [&hex(k)[..], &iv[..GCM_SALT_LEN]].concat();
    let aad = hex("feedfacedeadbeeffeedface");
    for (n, tag) in [(12, "e9e4ab76b7ffeadc697938a20dcaf592"), (8, "c52dfb54afbb07a19affbee0614ce7a5")] {
        let s = seal_one(xf, &ek, &[], p[..60].to_vec(), &iv, &aad[..n]);
        assert_eq!(s.data[..], hex(cases[0].2)[..60]);
        assert_eq!(s.icv[..], hex(tag)[..], "AAD of {n} bytes");
    }
}

/// RFC 3602 section 4, cases 1 and 2; FIPS 81 appendix C (DES-CBC); a 3DES-CBC vector
/// computed with OpenSSL from the SP 800-67 example keys.
#[test]
fn cbc_known_answers() {
    let cases = [
        (
            Cipher::AesCbc128,
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            b"Single block msg".to_vec(),
            "e353779c1079aeb82708942dbe77181a",
        ),
        (
            Cipher::AesCbc128,
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            (0..32).collect(),
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        ),
        (
            Cipher::DesCbc,
            "0123456789abcdef",
            "1234567890abcdef",
            b"Now is the time for all ".to_vec(),
            "e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6",
        ),
        (
            Cipher::TdesCbc,
            "0123456789abcdef23456789abcdef01456789abcdef0123",
            "1234567890abcdef",
            b"The quick brown fox jump".to_vec(),
            "5ba523a59a5109710da06400f058192a743dc4df1c592655",
        ),
    ];
    for (c, key, iv, pt, ct) in cases {
        let xf = Transform::new(c, Auth::Null).unwrap();
        let s = seal_one(xf, &hex(key), &[], pt, &hex(iv), &[]);
        assert_eq!(s.data, hex(ct), "{c:?}");
    }
}

/// RFC 2202 cases 1 and 3 (HMAC-MD5, HMAC-SHA1) and RFC 4868 section 2.7.2.1 (HMAC-SHA-256),
/// truncated as RFC 2403, 2404 and 4868 do.
#[test]
fn hmac_known_answers() {
    let cases = [
        (Auth::HmacMd5_96, vec![0x0b; 16], b"Hi There".to_vec(), "9294727a3638bb1c13f48ef8"),
        (Auth::HmacMd5_96, vec![0xaa; 16], vec![0xdd; 50], "56be34521d144c88dbb8c733"),
        (Auth::HmacSha1_96, vec![0x0b; 20], b"Hi There".to_vec(), "b617318655057264e28bc0b6"),
        (Auth::HmacSha1_96, vec![0xaa; 20], vec![0xdd; 50], "125d7342b9ac11cd91a39af4"),
        (Auth::HmacSha256_128, vec![0x0b; 32], b"Hi There".to_vec(), "198a607eb44bfbc69903a0f1cf2bbdc5"),
    ];
    for (a, key, data, icv) in cases {
        let xf = Transform::auth_only(a).unwrap();
        let s = seal_one(xf, &[], &key, data.clone(), &[], &[]);
        assert_eq!(s.data, data, "{a:?} must not touch the data");
        assert_eq!(s.icv[..xf.icv_len()], hex(icv)[..], "{a:?}");
        assert!(s.icv[xf.icv_len()..].iter().all(|&b| b == 0), "{a:?} wrote past its ICV");
    }
}

#[test]
fn empty_regions_agree_with_rust_engine() {
    let mut rng = Rng(0xe);
    let mut mb = MbEngine::new().unwrap();
    for xf in transforms() {
        let (ek, ak) = keys(&mut rng, xf);
        let mut plain = Vec::new();
        for _ in 0..8 {
            let mut p = packet(&mut rng, xf, &ek);
            match plain.len() % 4 {
                // Nothing to cipher.
                0 => p.cipher.len = 0,
                // Nothing to authenticate (the library refuses empty HMAC jobs).
                1 if !xf.cipher().is_aead() => p.auth = Region::new(3, 0),
                // Neither.
                2 => (p.cipher.len, p.auth.len) = (0, 0),
                _ => {}
            }
            plain.push(p);
        }
        check_agreement(xf, &plain, &ek, &ak);
        if xf.icv_len() > 0 {
            let s = mb.session(xf, &ek, &ak).unwrap();
            let mut pkts = plain.clone();
            run(&mut mb, &s, &mut pkts, true);
            for p in &mut pkts {
                p.icv[0] ^= 0x40;
            }
            assert!(run(&mut mb, &s, &mut pkts, false).iter().all(|&st| st == JobStatus::AuthFailed), "{xf:?}");
        }
    }
}

#[test]
fn one_submission_over_many_sessions_agrees_with_one_session_at_a_time() {
    // With the SSE manager hashing, one submission feeds both managers.
    for lanes in [HmacLanes::Simd, HmacLanes::ShaNi] {
        one_submission_over_many_sessions(lanes);
    }
}

fn one_submission_over_many_sessions(lanes: HmacLanes) {
    // Jobs of every transform, interleaved in one call, DES ones (the RustCrypto fallback)
    // included, more than one round of BATCH: each job sealed with its own session's keys.
    let mut rng = Rng(0x5e55);
    let mut mb = MbEngine::with_hmac_lanes(lanes).unwrap();
    let mut rs = RustEngine;
    let xfs = transforms();
    let mut mb_sessions = Vec::new();
    let mut rs_sessions = Vec::new();
    let mut plain = Vec::new();
    let mut which = Vec::new();
    for (k, &xf) in xfs.iter().enumerate() {
        let (ek, ak) = keys(&mut rng, xf);
        mb_sessions.push(mb.session(xf, &ek, &ak).unwrap());
        rs_sessions.push(rs.session(xf, &ek, &ak).unwrap());
        for _ in 0..2 {
            plain.push(packet(&mut rng, xf, &ek));
            which.push(k);
        }
    }
    // Interleave: jobs of one session are not adjacent.
    let order: Vec<usize> = (0..plain.len()).map(|i| (i * 7) % plain.len()).collect();
    let plain: Vec<Pkt> = order.iter().map(|&i| plain[i].clone()).collect();
    let which: Vec<usize> = order.iter().map(|&i| which[i]).collect();
    let ms: Vec<&MbSession> = which.iter().map(|&k| &mb_sessions[k]).collect();
    let mut a = plain.clone();
    let st = as_jobs(&mut a, |jobs| mb.seal_each(&ms, jobs));
    assert!(st.iter().all(|&s| s == JobStatus::Done), "{st:?}");
    for (i, p) in plain.iter().enumerate() {
        let mut one = vec![p.clone()];
        assert_eq!(run(&mut rs, &rs_sessions[which[i]], &mut one, true), [JobStatus::Done]);
        let icv_len = xfs[which[i]].icv_len();
        assert_eq!(a[i].data, one[0].data, "{:?} job {i}", xfs[which[i]]);
        assert_eq!(a[i].icv[..icv_len], one[0].icv[..icv_len], "{:?} ICV of job {i}", xfs[which[i]]);
    }
    // And open them the same way, one tampered.
    // The first byte is under the HMAC of a packet whose transform has one.
    let hmac = |i: usize| xfs[which[i]].auth() != Auth::Null && a[i].auth.len > 0;
    let flip = (0..a.len()).find(|&i| hmac(i)).unwrap();
    a[flip].data[0] ^= 1;
    // Sessions are prepared on one engine and used on others (the control plane's, the
    // workers'), whatever manager each hashes on.
    let other = if lanes == HmacLanes::Simd { HmacLanes::ShaNi } else { HmacLanes::Simd };
    let mut mb = MbEngine::with_hmac_lanes(other).unwrap();
    let st = as_jobs(&mut a, |jobs| mb.open_each(&ms, jobs));
    for (i, s) in st.iter().enumerate() {
        let want = if i == flip { JobStatus::AuthFailed } else { JobStatus::Done };
        assert_eq!(*s, want, "{:?} job {i}", xfs[which[i]]);
        if i != flip {
            assert_eq!(a[i].data, plain[i].data, "{:?} plaintext of job {i}", xfs[which[i]]);
        }
    }
}
