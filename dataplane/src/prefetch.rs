//! Software prefetch: with thousands of SAs and policies, the state a packet needs is rarely
//! cached, and asking for all of a burst's lines before using any lets their misses overlap.
#![allow(unsafe_code)]

/// Lines of one object prefetched at most (the hot part of an SA bundle fits).
const MAX_LINES: usize = 24;

/// Hints that the first lines of `obj` (at most `MAX_LINES`) are needed soon.
#[inline(always)]
pub fn lines<T>(obj: &T) {
    let p = (obj as *const T).cast::<u8>();
    for i in 0..size_of::<T>().div_ceil(64).min(MAX_LINES) {
        line(p.wrapping_add(i * 64));
    }
}

/// Hints that the cache line at `p` is needed soon.
#[inline(always)]
pub fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing architecturally and cannot fault, whatever
    // the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
