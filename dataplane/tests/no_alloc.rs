//! Proves the per-packet path allocates nothing: a counting global allocator watches ESP and
//! AH seal/open of whole bursts on both engines, after the SAs and buffers exist.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use dataplane::buf::{Burst, HeapBuf};
use dataplane::crypto::Engine;
use dataplane::crypto::rust::RustEngine;
use dataplane::sa::{IpsecProto, Mode};
use dataplane::stats::Stats;

struct Counting;

// Only the test's own thread counts: the harness's other threads may allocate meanwhile (a CI
// run once counted 4 allocations no rerun reproduced). A const-initialised thread-local needs
// no allocation to read.
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: defers every operation to the system allocator and only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_while<R>(f: impl FnOnce() -> R) -> (usize, R) {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.set(true);
    let r = f();
    COUNTING.set(false);
    (ALLOCS.load(Ordering::SeqCst), r)
}

fn check<E: Engine>(e: &mut E, name: &str) {
    for (proto, xfs) in [(IpsecProto::Esp, esp_transforms()), (IpsecProto::Ah, ah_transforms())] {
        for xf in xfs {
            for mode in [Mode::Tunnel, Mode::Transport] {
                let mut pair = PairSpec::new(proto, mode, xf).build(e);
                let (src, dst) = if mode == Mode::Tunnel { (LAN1, LAN2) } else { (R1, R2) };
                let packets: Vec<Vec<u8>> = (0..32).map(|i| udp_packet(src, dst, i * 40, 0, false)).collect();
                let mut b: Burst<HeapBuf> = burst_of(&packets);
                let mut st = Stats::default();
                let (n, ()) = allocations_while(|| {
                    seal(proto, &mut pair.out, e, &mut b, &mut st);
                    open(proto, &mut pair.inb, e, &mut b, &mut st);
                });
                assert_eq!(b.len(), 32, "{name} {proto:?} {xf:?} {mode:?}");
                assert_eq!(n, 0, "{name} {proto:?} {xf:?} {mode:?} allocated {n} times");
            }
        }
    }
}

#[test]
fn seal_and_open_allocate_nothing() {
    check(&mut RustEngine, "rust");
    #[cfg(target_arch = "x86_64")]
    check(&mut dataplane::crypto::ipsec_mb::MbEngine::new().unwrap(), "ipsec-mb");
}
