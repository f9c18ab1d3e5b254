//! Software prefetch: with thousands of SAs and policies, the state a packet needs is rarely
//! cached, and asking for all of a burst's lines before using any lets their misses overlap.
#![allow(unsafe_code)]

/// Hints that the first `bytes` of `obj` (at most all of it) are needed soon.
#[inline(always)]
pub fn front<T>(obj: &T, bytes: usize) {
    let p = (obj as *const T).cast::<u8>();
    for i in 0..bytes.min(size_of::<T>()).div_ceil(64) {
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
