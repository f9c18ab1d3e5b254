//! Software prefetch: with thousands of SAs and policies, the state a packet needs is rarely
//! cached, and asking for all of a burst's lines before using any lets their misses overlap.
//!
//! The lines go to L2, not L1 (`PREFETCHT1`): a burst of 128 packets over as many SAs asks
//! for some 9 lines each, 72 KB against an L1 of 32 KB, so lines sent to L1 were evicted
//! before their use; and on AMD's Zen 4 a prefetch to L1 holds one of the L1's few miss
//! buffers until its line arrives, so the prefetch instructions themselves stalled (half the
//! samples of the outbound SPD pass sat on two of them). Zen 4 sends T1 and T2 to L2 only.
#![allow(unsafe_code)]

/// Hints that the first `bytes` of `obj` (at most all of it) are needed soon: every cache line
/// they overlap, one more than `bytes / 64` when `obj` does not start a line (a heap object is
/// usually only 16-byte aligned).
#[inline(always)]
pub fn front<T>(obj: &T, bytes: usize) {
    each_line(obj, bytes, line);
}

/// As [`front`], to L1 (`PREFETCHT0`): for lines already in L2, a few steps before their
/// use, where a T0 prefetch waits little for its miss buffer (the SA's hot lines in the burst
/// driver, which the SPD stage sent to L2 and the packets in between pushed out of L1).
#[inline(always)]
pub fn front_l1<T>(obj: &T, bytes: usize) {
    each_line(obj, bytes, hint::<true>);
}

/// Calls `f` with the start of every cache line the first `bytes` of `obj` overlap.
#[inline(always)]
fn each_line<T>(obj: &T, bytes: usize, f: impl Fn(*const u8)) {
    let p = (obj as *const T).cast::<u8>();
    let skew = p as usize % 64;
    for i in 0..lines(skew, bytes.min(size_of::<T>())) {
        f(p.wrapping_add(i * 64).wrapping_sub(skew));
    }
}

/// Returns how many cache lines `bytes` bytes starting `skew` bytes into a line overlap.
#[inline(always)]
fn lines(skew: usize, bytes: usize) -> usize {
    if bytes == 0 { 0 } else { (skew + bytes).div_ceil(64) }
}

/// Hints that the cache line at `p` is needed soon.
#[inline(always)]
pub fn line(p: *const u8) {
    hint::<false>(p);
}

/// Prefetches the cache line at `p` to L1 (`PREFETCHT0`) or to L2 (`PREFETCHT1`).
#[inline(always)]
fn hint<const L1: bool>(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing architecturally and cannot fault, whatever
    // the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
        if L1 { _mm_prefetch::<_MM_HINT_T0>(p.cast()) } else { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_region_covers_every_line_it_overlaps() {
        assert_eq!(super::lines(0, 256), 4);
        assert_eq!(super::lines(16, 256), 5);
        assert_eq!(super::lines(48, 16), 1);
        assert_eq!(super::lines(48, 17), 2);
        assert_eq!(super::lines(8, 0), 0);
    }
}
