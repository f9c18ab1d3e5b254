//! Known-answer checks of the IKEv1 key derivations against values computed independently by
//! fixtures/ike/kat.py (Python's hashlib, hmac and integers): SKEYID, SKEYID_d/a/e, the cipher
//! key expansion, the IVs, KEYMAT with and without PFS, HASH_I/HASH_R, NAT-D, the MODP primes
//! and Diffie-Hellman in every group.

use std::collections::HashMap;

use control::ike::Rng;
use control::ike::crypto::{DhKey, Group, HashAlg, P1Cipher, Phase1Keys, derive_iv, keymat};

fn kat() -> HashMap<String, Vec<u8>> {
    include_str!("fixtures/ike/kat.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), hex::decode(v).unwrap()))
        .collect()
}

const PSK: &[u8] = b"gwejimezyfopmekun";
const CI: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const CR: [u8; 8] = [0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8];

fn nonces() -> (Vec<u8>, Vec<u8>) {
    ((0..16).collect(), (100..120).collect())
}

#[test]
fn skeyid_and_key_expansion() {
    let k = kat();
    let (ni, nr) = nonces();
    let gxy = &k["gxy"];
    for (name, h) in [("md5", HashAlg::Md5), ("sha1", HashAlg::Sha1), ("sha256", HashAlg::Sha256)] {
        for (cname, c) in [
            ("des", P1Cipher::Des),
            ("3des", P1Cipher::Tdes),
            ("aes128", P1Cipher::Aes(128)),
            ("aes192", P1Cipher::Aes(192)),
            ("aes256", P1Cipher::Aes(256)),
        ] {
            let keys = Phase1Keys::derive(h, c, PSK, &ni, &nr, gxy, &CI, &CR);
            assert_eq!(&keys.skeyid[..], &k[&format!("{name}.skeyid")][..], "{name}");
            assert_eq!(&keys.d[..], &k[&format!("{name}.skeyid_d")][..], "{name}");
            assert_eq!(&keys.a[..], &k[&format!("{name}.skeyid_a")][..], "{name}");
            assert_eq!(&keys.e[..], &k[&format!("{name}.skeyid_e")][..], "{name}");
            assert_eq!(&keys.enc[..], &k[&format!("{name}.enc.{cname}")][..], "{name} {cname}");
        }
        let sai = &k["sai"];
        let idi = &k["idi"];
        let keys = Phase1Keys::derive(h, P1Cipher::Tdes, PSK, &ni, &nr, gxy, &CI, &CR);
        let (gxi, gxr) = (&k["gxi"], &k["gxr"]);
        let hash_i = h.prf(&keys.skeyid, &[gxi, gxr, &CI, &CR, sai, idi]);
        let hash_r = h.prf(&keys.skeyid, &[gxr, gxi, &CR, &CI, sai, idi]);
        assert_eq!(&hash_i[..], &k[&format!("{name}.hash_i")][..]);
        assert_eq!(&hash_r[..], &k[&format!("{name}.hash_r")][..]);
        let natd = h.hash(&[&CI, &CR, &[10, 0, 0, 1], &500u16.to_be_bytes()]);
        assert_eq!(natd, k[&format!("{name}.natd")]);
        for bs in [8usize, 16] {
            let iv = derive_iv(h, bs, &[gxi, gxr]);
            assert_eq!(iv, k[&format!("{name}.iv{bs}")]);
            let iv2 = derive_iv(h, bs, &[&iv, &0x0102_0304u32.to_be_bytes()]);
            assert_eq!(iv2, k[&format!("{name}.iv{bs}.msgid")]);
        }
        let d = &keys.d;
        let km = keymat(h, d, None, 3, 0x1234_5678, &ni, &nr, 64);
        assert_eq!(&km[..], &k[&format!("{name}.keymat.esp.64")][..]);
        let km = keymat(h, d, Some(&k["gqm"]), 3, 0x1234_5678, &ni, &nr, 64);
        assert_eq!(&km[..], &k[&format!("{name}.keymat.esp.64.pfs")][..]);
        let km = keymat(h, d, None, 2, 0x9abc_def0, &ni, &nr, 20);
        assert_eq!(&km[..], &k[&format!("{name}.keymat.ah.20")][..]);
    }
}

/// Hands out fixed bytes: the private exponents of the fixture.
struct Fixed(Vec<u8>);

impl Rng for Fixed {
    fn fill(&mut self, out: &mut [u8]) {
        let n = out.len();
        out.copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
    }
}

#[test]
fn modp_groups_and_diffie_hellman() {
    let k = kat();
    for (n, g) in [(1, Group::Modp768), (2, Group::Modp1024), (5, Group::Modp1536), (14, Group::Modp2048)] {
        assert_eq!(g.prime(), &k[&format!("modp{n}.prime")][..], "group {n}");
        let mut rng = Fixed([k["dh.x1"].clone(), k["dh.x2"].clone()].concat());
        let a = DhKey::generate(g, &mut rng);
        let b = DhKey::generate(g, &mut rng);
        assert_eq!(a.public(), &k[&format!("modp{n}.y1")][..], "group {n}");
        assert_eq!(b.public(), &k[&format!("modp{n}.y2")][..], "group {n}");
        assert_eq!(&a.shared(b.public()).unwrap()[..], &k[&format!("modp{n}.shared")][..], "group {n}");
        assert_eq!(&b.shared(a.public()).unwrap()[..], &k[&format!("modp{n}.shared")][..], "group {n}");
    }
}
