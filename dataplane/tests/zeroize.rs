//! Keys are wiped before their memory is freed: a global allocator scans every block freed while
//! an SA is built, used and dropped (directly, and the way a worker retires a removed SA) for the
//! key's bytes. AES's first round key is the key itself, so a schedule freed without being
//! zeroized shows up as well as a stray copy of the raw key.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Cipher, Engine, Transform};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};

/// The key under watch: 16 bytes unlikely to appear by chance.
const KEY: [u8; 16] = *b"\x8e\x17\xd3\x5a\xc4\x01\x9b\xe2\x66\x3f\xa8\x50\x7d\xb1\x2c\xf4";

struct Scanning;

/// The bytes looked for: the key's first 8, so that a DES key shows up too.
const WATCH: usize = 8;

static SCAN: AtomicBool = AtomicBool::new(false);
static FOUND: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every operation to the system allocator; before freeing, it only reads the
// block it is handed, which is valid for `layout.size()` bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCAN.load(Ordering::Relaxed) && layout.size() >= WATCH {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until freed below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(WATCH).any(|w| w == &KEY[..WATCH]) {
                FOUND.fetch_add(1, Ordering::Relaxed);
            }
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// Returns how many blocks freed while `f` ran still held the key.
fn freed_with_key(f: impl FnOnce()) -> usize {
    FOUND.store(0, Ordering::SeqCst);
    SCAN.store(true, Ordering::SeqCst);
    f();
    SCAN.store(false, Ordering::SeqCst);
    FOUND.load(Ordering::SeqCst)
}

fn sa<E: Engine>(e: &mut E, cipher: Cipher, auth: Auth) -> Sa<E::Session> {
    let xf = Transform::new(cipher, auth).unwrap();
    // Built at their final size: a Vec that grows frees its old buffer unwiped.
    let key_of = |len: usize, fill: u8| {
        let mut k = zeroize::Zeroizing::new(Vec::with_capacity(len));
        k.extend(KEY.iter().chain(std::iter::repeat(&fill)).take(len));
        k
    };
    let (enc, auth_key) = (key_of(cipher.key_len(), 0x42), key_of(auth.key_len(), 0x24));
    let cfg = SaConfig {
        spi: 0x100,
        proto: IpsecProto::Esp,
        mode: Mode::Tunnel,
        src: Ipv4Addr::new(192, 0, 2, 1),
        dst: Ipv4Addr::new(192, 0, 2, 2),
        xf,
        enc_key: &enc,
        auth_key: &auth_key,
        replay_window: 64,
        lifetimes: Lifetimes::default(),
        dont_fragment: DontFragment::Clear,
    };
    Sa::new(e, &cfg, 0).unwrap()
}

fn check<E: Engine>(e: &mut E, name: &str) {
    for (cipher, auth) in [
        (Cipher::AesCbc128, Auth::HmacSha1_96),
        (Cipher::AesGcm128, Auth::Null),
        (Cipher::AesCbc256, Auth::HmacSha256_128),
        (Cipher::Null, Auth::HmacMd5_96),
        (Cipher::DesCbc, Auth::HmacSha1_96),
        (Cipher::TdesCbc, Auth::HmacMd5_96),
        (Cipher::AesCbc192, Auth::HmacSha1_96),
        (Cipher::AesGcm256, Auth::Null),
    ] {
        // On the heap, as workers hold them (Box<Bundle>, Box<InboundSa>).
        let n = freed_with_key(|| drop(Box::new(sa(e, cipher, auth))));
        assert_eq!(n, 0, "{name} {cipher:?}/{auth:?}: {n} freed blocks still held the key");
    }
}

#[test]
fn sa_keys_are_wiped_before_their_memory_is_freed() {
    // The scanner finds a key left in freed memory.
    assert_eq!(freed_with_key(|| drop(KEY.to_vec())), 1, "the scanner works");
    assert_eq!(freed_with_key(|| drop(zeroize::Zeroizing::new(KEY.to_vec()))), 0);
    check(&mut RustEngine, "rust");
    #[cfg(target_arch = "x86_64")]
    check(&mut dataplane::crypto::ipsec_mb::MbEngine::new().unwrap(), "ipsec-mb");
}
