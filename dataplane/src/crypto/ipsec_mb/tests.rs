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

/// One packet and its job parameters, owned so it can be cloned and compared. The ICV's place
/// is the packet's last [`MAX_ICV_LEN`] bytes, outside the other regions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pkt {
    data: Vec<u8>,
    cipher: Region,
    auth: Region,
    iv: u32,
    icv: u32,
}

impl Pkt {
    /// A packet of `body` then room for the ICV.
    fn new(mut body: Vec<u8>, cipher: Region, auth: Region, iv: usize) -> Self {
        let icv = body.len() as u32;
        body.extend_from_slice(&[0; MAX_ICV_LEN]);
        Pkt { data: body, cipher, auth, iv: iv as u32, icv }
    }

    /// The packet without its ICV.
    fn body(&self) -> &[u8] {
        &self.data[..(self.icv as usize).min(self.data.len())]
    }

    /// The ICV's place.
    fn icv_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.icv as usize..]
    }
}

/// Seals or opens `pkts` as one burst and returns the statuses.
fn run<E: Engine>(e: &mut E, s: &E::Session, pkts: &mut [Pkt], seal: bool) -> Vec<JobStatus> {
    as_jobs(pkts, |jobs| if seal { e.seal(s, jobs) } else { e.open(s, jobs) })
}

/// Hands `pkts` to `f` as one burst of jobs and returns the statuses.
fn as_jobs(pkts: &mut [Pkt], f: impl FnOnce(&mut [Job<'_>])) -> Vec<JobStatus> {
    let mut jobs: Vec<Job<'_>> =
        pkts.iter_mut().map(|p| Job::new(&mut p.data, p.cipher, p.auth, p.iv as usize, p.icv as usize)).collect();
    f(&mut jobs);
    jobs.iter().map(|j| j.status).collect()
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

/// Builds a random packet: ESP (header, IV, payload, ICV) or, for the null cipher, sometimes
/// AH-style (the ICV covers the whole packet, nothing is ciphered).
fn packet(rng: &mut Rng, xf: Transform) -> Pkt {
    let c = xf.cipher();
    if c == Cipher::Null && rng.below(2) == 0 {
        let n = 20 + rng.below(1480);
        return Pkt::new(rng.bytes(n), Region::default(), Region::new(0, n), 0);
    }
    // GCM's AAD is the header: SPI and sequence number (and the high half of an extended one,
    // RFC 4106 section 5).
    let head = if c.is_aead() && rng.below(2) == 0 { 12 } else { 8 };
    let iv_len = c.iv_len();
    let payload = match cbc_block(c) {
        Some(b) => b as usize * rng.below(95),
        None => rng.below(1500),
    };
    let data = rng.bytes(head + iv_len + payload);
    let auth = if c.is_aead() { head } else { head + iv_len + payload };
    Pkt::new(data, Region::new(head + iv_len, payload), Region::new(0, auth), head)
}

/// Seals `plain` with both engines, checks they agree, then opens each one's output with the
/// other engine and checks the plaintext comes back.
fn check_agreement(xf: Transform, plain: &[Pkt], ek: &[u8], ak: &[u8]) {
    for lanes in [HmacLanes::Simd, HmacLanes::ShaNi] {
        for gcm in [GcmCode::Library, GcmCode::Vaes] {
            check_agreement_on(MbEngine::with_code(lanes, gcm).unwrap(), xf, plain, ek, ak);
        }
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
        assert_eq!(x.data, y.data, "{xf:?} ciphertext and ICV of job {i}");
        let icv = x.icv as usize;
        assert!(x.data[icv + icv_len..].iter().all(|&b| b == 0), "{xf:?} job {i}: wrote past its ICV");
        if xf.cipher() != Cipher::Null && x.cipher.len >= 8 {
            assert_ne!(x.body(), plain[i].body(), "{xf:?} job {i} was not encrypted");
        }
    }
    // Cross-open: ipsec-mb's output by rust, rust's by ipsec-mb.
    assert_eq!(run(&mut rs, &sr, &mut a, false), done, "{xf:?} rust opens ipsec-mb");
    assert_eq!(run(&mut mb, &sm, &mut b, false), done, "{xf:?} ipsec-mb opens rust");
    for (i, p) in plain.iter().enumerate() {
        assert_eq!(a[i].body(), p.body(), "{xf:?} plaintext of job {i} (rust)");
        assert_eq!(b[i].body(), p.body(), "{xf:?} plaintext of job {i} (ipsec-mb)");
    }
}

/// With the SHA extensions' manager, a sealed AES-CBC + HMAC job of at least `SPLIT_FROM`
/// bytes to encrypt goes as two jobs on two managers: bursts mixing lengths on both sides of
/// the threshold seal as RustCrypto seals them, and each engine opens the other's packets.
#[test]
fn long_cbc_jobs_split_across_the_managers_seal_as_rustcrypto_does() {
    assert!(MbEngine::with_hmac_lanes(HmacLanes::ShaNi).unwrap().describe().contains("from 1024 bytes"));
    assert!(!MbEngine::with_hmac_lanes(HmacLanes::Simd).unwrap().describe().contains("from 1024 bytes"));
    let mut rng = Rng(0x5b17);
    let at = SPLIT_FROM as usize;
    for xf in [(Cipher::AesCbc128, Auth::HmacSha1_96), (Cipher::AesCbc256, Auth::HmacSha256_128)] {
        let xf = Transform::new(xf.0, xf.1).unwrap();
        let (ek, ak) = keys(&mut rng, xf);
        let plain: Vec<Pkt> = [at - 16, at, at + 16, 16, at + 400, 1488, at - 16, at]
            .iter()
            .map(|&payload| {
                let data = rng.bytes(8 + 16 + payload);
                Pkt::new(data, Region::new(8 + 16, payload), Region::new(0, 8 + 16 + payload), 8)
            })
            .collect();
        check_agreement_on(MbEngine::with_hmac_lanes(HmacLanes::ShaNi).unwrap(), xf, &plain, &ek, &ak);
    }
}

/// One long CBC job ahead of a full batch of short ones: the library returns jobs in order, so
/// while the long one sits in its lane the short ones finish and wait behind it until the
/// library's queue is full, and the library must then complete the long one itself (the shim
/// submits a whole batch before flushing).
#[test]
fn a_long_job_ahead_of_a_batch_of_short_ones() {
    let mut rng = Rng(0x10e6);
    for xf in [
        Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).unwrap(),
        Transform::new(Cipher::AesCbc256, Auth::HmacSha256_128).unwrap(),
    ] {
        let (ek, ak) = keys(&mut rng, xf);
        let esp = |rng: &mut Rng, payload: usize| {
            let data = rng.bytes(8 + 16 + payload);
            Pkt::new(data, Region::new(24, payload), Region::new(0, 24 + payload), 8)
        };
        let mut plain = vec![esp(&mut rng, 1488)];
        while plain.len() < BATCH {
            let payload = 16 * (1 + rng.below(4));
            plain.push(esp(&mut rng, payload));
        }
        check_agreement(xf, &plain, &ek, &ak);
    }
}

#[test]
fn engine_starts_with_matching_layout() {
    let e = MbEngine::new().expect("ipsec-mb manager");
    assert_eq!(e.name(), "ipsec-mb");
    assert_ne!(e.arch(), "unknown");
    assert_eq!(MbEngine::with_hmac_lanes(HmacLanes::ShaNi).unwrap().hmac_sha1_lanes(), "sha-ni");
    assert_eq!(MbEngine::with_hmac_lanes(HmacLanes::Simd).unwrap().hmac_sha1_lanes(), "simd");
    let code = |gcm| MbEngine::with_code(HmacLanes::Auto, gcm).unwrap().gcm_code();
    assert_eq!(code(GcmCode::Library), "library");
    let vaes = if vaes_gcm::available() { "vaes" } else { "library" };
    assert_eq!(code(GcmCode::Vaes), vaes);
    assert_eq!(code(GcmCode::Auto), if e.arch() == "avx2" { vaes } else { "library" });
    fn send<T: Send>() {}
    send::<MbEngine>();
    send::<MbSession>();
    assert_eq!(align_of::<MbKeys>(), 64);
}

/// The engine takes a kernel of its own only where the CPU runs it, and each kernel refuses
/// keys elsewhere: on a CPU without AVX-512 (where `make test` skips the `*_needs_avx512` tests)
/// this is what is left to check, that the library's code seals instead.
#[test]
fn the_engine_takes_each_kernel_only_where_the_cpu_runs_it() {
    let d = MbEngine::new().unwrap().describe();
    assert_eq!(d.contains("4 at a time"), gcm_x4::available(), "{d}");
    assert_eq!(d.contains("16 at a time"), cbc_sha1_x16::available(), "{d}");
    assert_eq!(gcm_x4::GcmX4::new(&[1; 16]).is_some(), gcm_x4::available());
    assert_eq!(vaes_gcm::VaesGcm::new(&[1; 16]).is_some(), vaes_gcm::available());
    let mut k = cbc_sha1_x16::CbcSha1X16::EMPTY;
    assert_eq!(k.prepare(&[1; 16], &[2; 20]), cbc_sha1_x16::available());
    // The kernels' own checks agree with the CPU's flags as Linux reports them.
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let flags: Vec<&str> = info.lines().find(|l| l.starts_with("flags")).unwrap_or("").split_whitespace().collect();
        let has = |f: &[&str]| f.iter().all(|f| flags.contains(f));
        let vaes = ["aes", "pclmulqdq", "avx2", "vaes", "vpclmulqdq"];
        assert_eq!(vaes_gcm::available(), has(&vaes));
        let avx512 = has(&vaes) && has(&["avx512f", "avx512bw", "avx512vl"]);
        assert_eq!(gcm_x4::available(), has(&vaes));
        assert_eq!(cbc_sha1_x16::available(), avx512 || has(&vaes) && has(&["sha_ni", "ssse3", "sse4_1"]));
    }
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
            let plain: Vec<Pkt> = (0..n).map(|_| packet(&mut rng, xf)).collect();
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
                Pkt::new(rng.bytes(n), Region::default(), Region::new(0, n), 0)
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
            let plain: Vec<Pkt> = (0..n).map(|_| packet(&mut rng, xf)).collect();
            check_agreement(xf, &plain, &ek, &ak);
        }
    }
}

#[test]
fn tampering_gives_auth_failed() {
    tampering_gives_auth_failed_on(GcmCode::Library);
    tampering_gives_auth_failed_on(GcmCode::Vaes);
}

fn tampering_gives_auth_failed_on(gcm: GcmCode) {
    let mut rng = Rng(99);
    let mut mb = MbEngine::with_code(HmacLanes::Auto, gcm).unwrap();
    let mut rs = RustEngine;
    for xf in transforms().into_iter().filter(|xf| xf.icv_len() > 0) {
        let (ek, ak) = keys(&mut rng, xf);
        let sm = mb.session(xf, &ek, &ak).unwrap();
        let sr = rs.session(xf, &ek, &ak).unwrap();
        let mut sealed = loop {
            let p = packet(&mut rng, xf);
            if p.cipher.len > 0 || xf.cipher() == Cipher::Null {
                break vec![p];
            }
        };
        assert_eq!(run(&mut mb, &sm, &mut sealed, true), [JobStatus::Done]);
        let p = &sealed[0];
        let mut bad = Vec::new();
        // A flipped ICV bit.
        let mut t = p.clone();
        t.icv_mut()[rng.below(xf.icv_len())] ^= 1 << rng.below(8);
        bad.push(t);
        if xf.cipher().is_aead() {
            // A flipped ciphertext bit, and a flipped AAD bit.
            let mut t = p.clone();
            let i = p.cipher.off as usize + rng.below(p.cipher.len as usize);
            t.data[i] ^= 0x80;
            bad.push(t);
            let mut t = p.clone();
            t.data[p.auth.off as usize + rng.below(p.auth.len as usize)] ^= 0x01;
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
            let p = packet(&mut rng, xf);
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
            p.auth = Region::new(0, 13);
            push(p);
            // An AAD of a valid length that runs past the end.
            let mut p = good.clone();
            p.auth = Region::new(len - 4, 8);
            push(p);
        }
        if xf.cipher().iv_len() > 0 {
            // The IV runs past the end.
            let mut p = good.clone();
            p.iv = (len - xf.cipher().iv_len() + 1) as u32;
            push(p);
        }
        if xf.icv_len() > 0 {
            // The ICV runs past the end.
            let mut p = good.clone();
            p.icv = (len - xf.icv_len() + 1) as u32;
            push(p);
        }
        push(Pkt { data: Vec::new(), cipher: Region::new(0, 16), auth: Region::new(0, 1), iv: 0, icv: 0 });
        pkts.push(good.clone());
        expect.push(JobStatus::Done);

        let mut sealed = pkts.clone();
        assert_eq!(run(&mut mb, &s, &mut sealed, true), expect, "{xf:?} seal");
        let mut opened = sealed.clone();
        assert_eq!(run(&mut mb, &s, &mut opened, false), expect, "{xf:?} open");
        for i in [0, pkts.len() - 1] {
            assert_eq!(opened[i].body(), good.body(), "{xf:?} job {i}");
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

/// Seals one packet `aad || iv || data || ICV`, where `data` is the cipher region and (without
/// AEAD) the HMAC's input, opens it again, and returns the sealed `data` and the ICV's place.
fn seal_one(xf: Transform, ek: &[u8], ak: &[u8], data: Vec<u8>, iv: &[u8], aad: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let sealed = seal_one_on(GcmCode::Library, xf, ek, ak, data.clone(), iv, aad);
    assert_eq!(seal_one_on(GcmCode::Vaes, xf, ek, ak, data, iv, aad), sealed, "{xf:?}: the library and VAES code");
    sealed
}

fn seal_one_on(
    gcm: GcmCode,
    xf: Transform,
    ek: &[u8],
    ak: &[u8],
    data: Vec<u8>,
    iv: &[u8],
    aad: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut mb = MbEngine::with_code(HmacLanes::Auto, gcm).unwrap();
    let s = mb.session(xf, ek, ak).unwrap();
    let (len, off) = (data.len(), aad.len() + iv.len());
    let cipher = if xf.cipher() == Cipher::Null { Region::default() } else { Region::new(off, len) };
    let auth = if xf.cipher().is_aead() { Region::new(0, aad.len()) } else { Region::new(off, len) };
    let mut pkts = vec![Pkt::new([aad, iv, &data].concat(), cipher, auth, aad.len())];
    assert_eq!(run(&mut mb, &s, &mut pkts, true), [JobStatus::Done]);
    let sealed = (pkts[0].body()[off..].to_vec(), pkts[0].icv_mut().to_vec());
    assert_eq!(run(&mut mb, &s, &mut pkts, false), [JobStatus::Done]);
    assert_eq!(pkts[0].body()[off..], data, "{xf:?} opens to the plaintext");
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
        let (data, icv) = seal_one(xf, &ek, &[], p.clone(), &iv[GCM_SALT_LEN..], &[]);
        assert_eq!(data, hex(ct), "{c:?}");
        assert_eq!(icv[..], hex(tag)[..], "{c:?}");
    }
    // With AAD: test case 4's key, IV and plaintext, and the first 12 and 8 bytes of its AAD
    // (ESP's sizes; tags computed with OpenSSL).
    let xf = Transform::new(Cipher::AesGcm128, Auth::Null).unwrap();
    let ek = [&hex(k)[..], &iv[..GCM_SALT_LEN]].concat();
    let aad = hex("feedfacedeadbeeffeedface");
    for (n, tag) in [(12, "e9e4ab76b7ffeadc697938a20dcaf592"), (8, "c52dfb54afbb07a19affbee0614ce7a5")] {
        let (data, icv) = seal_one(xf, &ek, &[], p[..60].to_vec(), &iv[GCM_SALT_LEN..], &aad[..n]);
        assert_eq!(data[..], hex(cases[0].2)[..60]);
        assert_eq!(icv[..], hex(tag)[..], "AAD of {n} bytes");
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
        let (data, _) = seal_one(xf, &hex(key), &[], pt, &hex(iv), &[]);
        assert_eq!(data, hex(ct), "{c:?}");
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
        let (sealed, got) = seal_one(xf, &[], &key, data.clone(), &[], &[]);
        assert_eq!(sealed, data, "{a:?} must not touch the data");
        assert_eq!(got[..xf.icv_len()], hex(icv)[..], "{a:?}");
        assert!(got[xf.icv_len()..].iter().all(|&b| b == 0), "{a:?} wrote past its ICV");
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
            let mut p = packet(&mut rng, xf);
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
                p.icv_mut()[0] ^= 0x40;
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
        for _ in 0..(2 * BATCH).div_ceil(xfs.len()).max(2) {
            plain.push(packet(&mut rng, xf));
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
        assert_eq!(a[i].data, one[0].data, "{:?} job {i}", xfs[which[i]]);
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
            assert_eq!(a[i].body(), plain[i].body(), "{:?} plaintext of job {i}", xfs[which[i]]);
        }
    }
}

#[test]
fn gcm_prefetch_covers_the_round_keys_and_short_messages_powers() {
    // intel-ipsec-mb's gcm_defines: 15 round keys from 0, then the hash key powers. A message
    // of n blocks (n up to 7) reads powers 1 to n: in the AVX2 layout the 8th is at 240 and
    // the 1st at 352, in the wide one the 48th at 240 and the 1st at 992, in the SSE one the
    // 1st at 240 and the 8th at 352, their Karatsuba halves from 368.
    let power = |layout, p: u16| match layout {
        GcmLayout::Avx2 => 352 - (p - 1) * 16,
        GcmLayout::Wide => 992 - (p - 1) * 16,
        GcmLayout::Sse => 240 + (p - 1) * 16,
    };
    for layout in [GcmLayout::Sse, GcmLayout::Avx2, GcmLayout::Wide] {
        for (aes256, round_keys) in [(false, 11u16), (true, 15)] {
            let l = gcm_lines(layout, aes256);
            let halves = (1..=7u16).map(|p| 368 + (p - 1) * 16).filter(|_| layout == GcmLayout::Sse);
            let needed = (0..round_keys).map(|k| k * 16).chain((1..=7u16).map(|p| power(layout, p))).chain(halves);
            for off in needed {
                assert!(l.contains(&(off / 64 * 64)), "{layout:?}, aes256 {aes256}: byte {off} not fetched");
            }
        }
    }
    // AES-128 leaves out the line that only AES-256 and messages of 8 blocks read, and the
    // wide layout the lines of the AVX2 one, which its code never reads.
    for layout in [GcmLayout::Avx2, GcmLayout::Wide] {
        assert!(!gcm_lines(layout, false).contains(&192));
        assert!(gcm_lines(layout, true).contains(&192));
    }
    assert!(!gcm_lines(GcmLayout::Wide, false).iter().any(|l| (256..=320).contains(l)));
}

/// The keys a packet's size needs are among those prefetched for its length: ESP's payload,
/// the packet in tunnel mode or its payload past an IPv4 header of 20 to 60 bytes in transport
/// mode, plus the trailer's two bytes, padded to AES-GCM's four.
#[test]
fn gcm_prefetch_by_length_covers_the_keys_of_every_mode() {
    for len in 20u32..=1600 {
        let (short, long) = sizes_sealed(len);
        let tunnel = std::iter::once(len as usize);
        let transport = (20..=60).step_by(4).filter(|&ihl| ihl <= len).map(|ihl| (len - ihl) as usize);
        for inner in tunnel.chain(transport) {
            let sealed = (inner + 2).next_multiple_of(4);
            if sealed <= gcm_x4::MAX_LEN {
                assert!(short, "{len} bytes: {sealed} to encrypt, the short keys not fetched");
            } else {
                assert!(long, "{len} bytes: {sealed} to encrypt, the library's keys not fetched");
            }
        }
    }
    // A 64-byte frame's packet (50 bytes) needs only the short keys, a 1,420-byte frame's
    // only the library's.
    assert_eq!(sizes_sealed(50), (true, false));
    assert_eq!(sizes_sealed(1406), (false, true));
}

#[test]
fn cbc_prefetch_covers_the_keys_of_the_cipher_only() {
    // Encryption round keys from 1024 in gw_mb_keys: 11, 13 or 15 of 16 bytes; DES key
    // schedules from 1536: 16 subkeys of 8 bytes, one or three.
    for (c, from, keys, size) in [
        (Cipher::AesCbc128, 1024, 11u16, 16),
        (Cipher::AesCbc192, 1024, 13, 16),
        (Cipher::AesCbc256, 1024, 15, 16),
        (Cipher::DesCbc, 1536, 16, 8),
        (Cipher::TdesCbc, 1536, 48, 8),
    ] {
        let lines = cbc_lines(c);
        let needed: Vec<u16> = (0..keys).map(|k| (from + k * size) / 64 * 64).collect();
        assert!(needed.iter().all(|l| lines.contains(l)), "{c:?}");
        assert!(lines.iter().all(|l| needed.contains(l)), "{c:?}: a line it never reads");
    }
    assert!(cbc_lines(Cipher::AesGcm128).is_empty());
}

#[test]
fn des_agrees_with_rustcrypto_on_the_library_and_on_the_fallback() {
    // Which one runs depends on the manager; both are checked here whatever this CPU picks.
    let mut rng = Rng(0xde5);
    for c in [Cipher::DesCbc, Cipher::TdesCbc] {
        let xf = Transform::new(c, Auth::HmacSha1_96).unwrap();
        let (ek, ak) = keys(&mut rng, xf);
        let plain: Vec<Pkt> = (0..20).map(|_| packet(&mut rng, xf)).collect();
        for on_library in [false, true] {
            let mut e = MbEngine::new().unwrap();
            e.des_on_library = on_library;
            assert_eq!(!matches!(e.session(xf, &ek, &ak).unwrap().keys, Keys::Rust(_)), on_library, "{c:?}");
            check_agreement_on(e, xf, &plain, &ek, &ak);
        }
    }
}

#[test]
fn rounds_small_and_large_agree_with_rustcrypto() {
    // Up to SMALL_ROUND jobs an AVX-512 engine hands AES-CBC and HMAC to its SSE manager,
    // above it to its lanes; DES stays where the engine put it.
    let e = MbEngine::new().unwrap();
    assert_eq!(
        e.small.is_some(),
        e.arch() == "avx512" && e.sha_ni.is_none() && unsafe { gw_mb_has_shani(e.mgr.as_ptr()) } != 0
    );
    let mut rng = Rng(0x5a11);
    for (c, a) in [
        (Cipher::AesCbc128, Auth::HmacSha1_96),
        (Cipher::AesCbc256, Auth::HmacSha256_128),
        (Cipher::Null, Auth::HmacMd5_96),
        (Cipher::TdesCbc, Auth::HmacSha1_96),
    ] {
        let xf = Transform::new(c, a).unwrap();
        let (ek, ak) = keys(&mut rng, xf);
        for k in [1, SMALL_ROUND, SMALL_ROUND + 1, SMALL_ROUND + 4] {
            let plain: Vec<Pkt> = (0..k).map(|_| packet(&mut rng, xf)).collect();
            check_agreement_on(MbEngine::new().unwrap(), xf, &plain, &ek, &ak);
        }
    }
}

#[test]
fn gcm_layout_is_where_the_sessions_powers_are() {
    // The engine's probe and a real session's key block agree: the wide layout writes the
    // powers short messages read at the end, the AVX2 one right after the round keys.
    let mut e = MbEngine::with_code(HmacLanes::Simd, GcmCode::Library).unwrap();
    let xf = Transform::new(Cipher::AesGcm128, Auth::Null).unwrap();
    let mut rng = Rng(0x1a10);
    let (ek, ak) = keys(&mut rng, xf);
    let s = e.session(xf, &ek, &ak).unwrap();
    let Keys::Lib(keys) = &s.keys else { panic!("a GCM session on the library has its key block") };
    let at = |r: std::ops::Range<usize>| keys.lib.0[r].iter().any(|&b| b != 0);
    match e.gcm_layout {
        GcmLayout::Wide => assert!(at(960..1008)),
        GcmLayout::Avx2 => assert!(at(320..368) && !at(960..1008)),
        GcmLayout::Sse => assert!(at(240..256) && !at(960..1008)),
    }
    let wide = e.gcm_layout == GcmLayout::Wide;
    assert!(!wide || e.arch() == "avx512", "the wide layout is the AVX-512 manager's");
}

/// Short AES-GCM packets go four at a time to `GcmX4` where the CPU has it, the others one by
/// one: bursts mixing both, of every size up to nine, seal and open as RustCrypto does on each
/// code; in a burst of short packets opened together, only the tampered one fails.
#[test]
fn short_gcm_bursts_agree_with_rustcrypto_and_fail_alone() {
    let mut rng = Rng(0x64);
    for c in [Cipher::AesGcm128, Cipher::AesGcm256] {
        let xf = Transform::new(c, Auth::Null).unwrap();
        let (ek, ak) = keys(&mut rng, xf);
        for n in 1..=9 {
            let plain: Vec<Pkt> = (0..n).map(|_| short_gcm_packet(&mut rng)).collect();
            for gcm in [GcmCode::Library, GcmCode::Vaes, GcmCode::Auto] {
                check_agreement_on(MbEngine::with_code(HmacLanes::Auto, gcm).unwrap(), xf, &plain, &ek, &ak);
            }
            let mut mb = MbEngine::new().unwrap();
            let s = mb.session(xf, &ek, &ak).unwrap();
            let mut sealed = plain.clone();
            assert_eq!(run(&mut mb, &s, &mut sealed, true), vec![JobStatus::Done; n]);
            let bad = rng.below(n);
            let at = sealed[bad].icv as usize + rng.below(16);
            sealed[bad].data[at] ^= 1 << rng.below(8);
            let mut want = vec![JobStatus::Done; n];
            want[bad] = JobStatus::AuthFailed;
            assert_eq!(run(&mut mb, &s, &mut sealed, false), want, "{c:?}, {n} packets, job {bad} tampered");
        }
    }
}

/// An ESP packet for AES-GCM, mostly with at most 64 bytes to encrypt; one in four has more,
/// which the one-packet code takes.
fn short_gcm_packet(rng: &mut Rng) -> Pkt {
    let head = if rng.below(2) == 0 { 12 } else { 8 };
    let payload = if rng.below(4) == 0 { 65 + rng.below(40) } else { rng.below(65) };
    Pkt::new(rng.bytes(head + 8 + payload), Region::new(head + 8, payload), Region::new(0, head), head)
}

/// The engine seals alone the AES-GCM jobs it would seal one at a time anyway (those with more
/// than 64 bytes to encrypt where GcmX4 takes the shorter ones, all of them where it does not),
/// and no others; `seal_alone` seals them as RustCrypto does, and marks a bad one invalid
/// without writing to its packet.
#[test]
fn gcm_jobs_sealed_alone_agree_with_rustcrypto() {
    let mut rng = Rng(0xa1);
    for gcm in [GcmCode::Library, GcmCode::Vaes, GcmCode::Auto] {
        let mut mb = MbEngine::with_code(HmacLanes::Auto, gcm).unwrap();
        let mut sealed = [0; 2];
        for xf in transforms() {
            let (ek, ak) = keys(&mut rng, xf);
            let sm = mb.session(xf, &ek, &ak).unwrap();
            let sr = RustEngine.session(xf, &ek, &ak).unwrap();
            let from = xf.cipher().is_aead().then_some(if mb.gcm_x4 { 65 } else { 0 });
            assert_eq!(mb.seals_alone_from(&sm), from, "{gcm:?} {xf:?}");
            let Some(from) = from else { continue };
            for round in 0..60 {
                let good = packet(&mut rng, xf);
                if good.cipher.len < from {
                    continue;
                }
                let mut bad = good.clone();
                // An AAD longer than RFC 4106's.
                bad.auth = Region::new(0, 13);
                let what = format!("{gcm:?} {xf:?} round {round}, {} bytes", good.cipher.len);
                let mut a = vec![bad.clone()];
                let status = as_jobs(&mut a, |jobs| mb.seal_alone(&sm, &mut jobs[0]));
                assert_eq!((status[0], &a[0]), (JobStatus::Invalid, &bad), "{what}: refused untouched");
                let mut a = vec![good.clone()];
                let status = as_jobs(&mut a, |jobs| mb.seal_alone(&sm, &mut jobs[0]));
                let mut b = vec![good.clone()];
                assert_eq!(run(&mut RustEngine, &sr, &mut b, true), [JobStatus::Done]);
                assert_eq!((status[0], &a[0]), (JobStatus::Done, &b[0]), "{what}: sealed as RustCrypto");
                sealed[usize::from(good.cipher.len > 64)] += 1;
            }
        }
        assert!(sealed[1] > 0 && (sealed[0] > 0) != mb.gcm_x4, "{gcm:?}: {sealed:?} sealed (short, long)");
    }
}

/// Short AES-GCM packets of many SAs, both key sizes, interleaved in one call: batched across
/// SAs, each is sealed under its own SA's key as RustCrypto seals it, and in opening only the
/// tampered one fails.
#[test]
fn short_gcm_over_many_sessions_agrees_with_rustcrypto() {
    let mut rng = Rng(0x4a4);
    for gcm in [GcmCode::Library, GcmCode::Vaes, GcmCode::Auto] {
        let mut mb = MbEngine::with_code(HmacLanes::Auto, gcm).unwrap();
        let mut rs = RustEngine;
        let (mut ms, mut rss, mut plain, mut which) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for k in 0..6 {
            let xf =
                Transform::new(if k % 3 == 2 { Cipher::AesGcm256 } else { Cipher::AesGcm128 }, Auth::Null).unwrap();
            let (ek, ak) = keys(&mut rng, xf);
            ms.push(mb.session(xf, &ek, &ak).unwrap());
            rss.push(rs.session(xf, &ek, &ak).unwrap());
        }
        for i in 0..45 {
            plain.push(short_gcm_packet(&mut rng));
            which.push((i * 5 + i / 7) % 6);
        }
        let sessions: Vec<&MbSession> = which.iter().map(|&k| &ms[k]).collect();
        let mut a = plain.clone();
        let st = as_jobs(&mut a, |jobs| mb.seal_each(&sessions, jobs));
        assert!(st.iter().all(|&s| s == JobStatus::Done), "{gcm:?}: {st:?}");
        for (i, p) in plain.iter().enumerate() {
            let mut one = vec![p.clone()];
            assert_eq!(run(&mut rs, &rss[which[i]], &mut one, true), [JobStatus::Done]);
            assert_eq!(a[i].data, one[0].data, "{gcm:?} job {i}");
        }
        let flip = rng.below(a.len());
        let at = a[flip].icv as usize;
        a[flip].data[at] ^= 0x10;
        let st = as_jobs(&mut a, |jobs| mb.open_each(&sessions, jobs));
        for (i, s) in st.iter().enumerate() {
            let want = if i == flip { JobStatus::AuthFailed } else { JobStatus::Done };
            assert_eq!(*s, want, "{gcm:?} job {i}");
            if i != flip {
                assert_eq!(a[i].body(), plain[i].body(), "{gcm:?} plaintext of job {i}");
            }
        }
    }
}

/// AES-CBC + HMAC-SHA1-96 runs of one session go sixteen at a time to `CbcSha1X16` where the
/// CPU has it: every job it takes (runs of at least `MIN_X16`, by length, a last batch of fewer
/// than `min_lanes` left to the library) is sealed as RustCrypto seals it, lengths mixed
/// within a batch; RustCrypto's packets open, and only a tampered one fails.
#[test]
fn cbc_sha1_x16_batches_agree_with_rustcrypto_needs_shani() {
    assert!(cbc_sha1_x16::available(), "this test needs VAES and AVX-512 or the SHA extensions");
    let mut rng = Rng(0xcb16);
    for c in [Cipher::AesCbc128, Cipher::AesCbc256] {
        let xf = Transform::new(c, Auth::HmacSha1_96).unwrap();
        let mut mb = MbEngine::new().unwrap();
        let mut rs = RustEngine;
        // Short runs of short packets too: batches of few lanes take only those.
        let code = cbc_sha1_x16::Code::best().unwrap();
        let runs = [1, MIN_X16 - 1, MIN_X16, 4, 5, 8, 15, 16, 17, 19, 20, 21, 33, 100, BATCH];
        for (n, short) in runs.iter().flat_map(|&n| [(n, false), (n, true)]) {
            let (ek, ak) = keys(&mut rng, xf);
            let sm = mb.session(xf, &ek, &ak).unwrap();
            let sr = rs.session(xf, &ek, &ak).unwrap();
            let plain: Vec<Pkt> = (0..n)
                .map(|_| {
                    if !short {
                        return packet(&mut rng, xf);
                    }
                    let len = 16 * rng.below(9);
                    Pkt::new(rng.bytes(24 + len), Region::new(24, len), Region::new(0, 24 + len), 8)
                })
                .collect();
            let mut a = plain.clone();
            let mut done = 0;
            let st = as_jobs(&mut a, |jobs| done = cbc_batches(|_| &sm, jobs, true));
            for (i, s) in st.iter().enumerate() {
                let want = if done >> i & 1 != 0 { JobStatus::Done } else { JobStatus::Pending };
                assert_eq!(*s, want, "{c:?} {n} jobs: job {i}");
            }
            // Runs go in batches of 16 by length; a last batch (or the only one) of fewer than
            // its longest text allows stays.
            let mut lens: Vec<u32> = plain.iter().map(|p| p.cipher.len).collect();
            lens.sort_unstable();
            let last = n % 16;
            let want = if last != 0 && last < min_lanes(code, lens[n - 1]) { n - last } else { n };
            assert_eq!(done.count_ones() as usize, want, "{c:?} {n} jobs (short: {short})");
            // Short texts take batches of the code's fewest lanes and more.
            if short {
                let few = min_lanes(code, 0);
                assert_eq!(done.count_ones() as usize, n - n % 16 + if n % 16 >= few { n % 16 } else { 0 });
            }
            for (i, p) in plain.iter().enumerate() {
                if done >> i & 1 == 0 {
                    continue;
                }
                let mut one = vec![p.clone()];
                assert_eq!(run(&mut rs, &sr, &mut one, true), [JobStatus::Done]);
                assert_eq!(a[i].data, one[0].data, "{c:?} {n} jobs: job {i} ({} bytes)", p.cipher.len);
            }
            // Opening RustCrypto's packets: the same jobs are taken, each comes back as it
            // was, and only a tampered one fails.
            let mut b = plain.clone();
            assert!(run(&mut rs, &sr, &mut b, true).iter().all(|&s| s == JobStatus::Done));
            let bad = rng.below(n);
            let at = rng.below(b[bad].icv as usize + cbc_sha1_x16::ICV_LEN);
            b[bad].data[at] ^= 1 << rng.below(8);
            let mut opened = 0;
            let st = as_jobs(&mut b, |jobs| opened = cbc_batches(|_| &sm, jobs, false));
            for (i, s) in st.iter().enumerate() {
                let want = match (opened >> i & 1 != 0, i == bad) {
                    (false, _) => JobStatus::Pending,
                    (true, false) => JobStatus::Done,
                    (true, true) => JobStatus::AuthFailed,
                };
                assert_eq!(*s, want, "{c:?} {n} jobs: opening job {i} (tampered: {bad})");
            }
            assert_eq!(opened, done, "{c:?} {n} jobs: opening takes the jobs sealing took");
            for (i, p) in plain.iter().enumerate() {
                if opened >> i & 1 != 0 && i != bad {
                    assert_eq!(b[i].body(), p.body(), "{c:?} {n} jobs: plaintext of job {i}");
                }
            }
        }
    }
}

/// The whole engine with and without `CbcSha1X16`, and RustCrypto, agree on bursts of every
/// size up to 40, and each opens the others' output.
#[test]
fn cbc_sha1_bursts_agree_with_and_without_x16() {
    let mut rng = Rng(0x1600);
    for c in [Cipher::AesCbc128, Cipher::AesCbc192, Cipher::AesCbc256] {
        let xf = Transform::new(c, Auth::HmacSha1_96).unwrap();
        for n in 1..=40 {
            let (ek, ak) = keys(&mut rng, xf);
            let plain: Vec<Pkt> = (0..n).map(|_| packet(&mut rng, xf)).collect();
            for on in [false, true] {
                check_agreement_on(MbEngine::new().unwrap().with_cbc_x16(on), xf, &plain, &ek, &ak);
            }
        }
    }
}
