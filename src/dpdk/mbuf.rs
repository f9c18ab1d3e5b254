//! The owning mbuf: one single-segment DPDK packet buffer, freed back to its pool on drop, and
//! the dataplane's [`PacketBuf`] over it.

use std::fmt;
use std::ptr::NonNull;
use std::slice;

use dataplane::buf::{PacketBuf, grow_by_parts};
use dataplane::stats::DropReason;

use super::ffi;

/// An owned `rte_mbuf`: exactly one `Mbuf` points at a given mbuf, and dropping it frees the
/// mbuf. `repr(transparent)` over the pointer, so a `Burst<Mbuf>` is an array of
/// `struct rte_mbuf *` that rx/tx burst read and write in place.
///
/// Single-segment: the packet bytes are the first segment's. We enable no scattered receive,
/// so every mbuf we allocate or receive has one segment.
#[repr(transparent)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an Mbuf is the only reference to its mbuf, and freeing an mbuf to its pool is safe
// from any thread, so ownership may move between threads (worker lcores).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid mbuf from a pktmbuf pool that nothing else frees or uses afterwards.
    pub unsafe fn from_raw(m: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf(m)
    }

    /// Gives up ownership: the caller must free the mbuf (or hand it to DPDK).
    pub fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let m = self.0;
        std::mem::forget(self);
        m
    }

    /// Returns the raw mbuf, still owned by `self`.
    pub fn as_ptr(&self) -> *mut ffi::rte_mbuf {
        self.0.as_ptr()
    }

    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: the mbuf is valid and owned by self for the life of the borrow.
        unsafe { self.0.as_ref() }
    }

    fn raw_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: the mbuf is valid and owned by self; `&mut self` makes the borrow exclusive.
        unsafe { self.0.as_mut() }
    }

    /// Returns the port the packet arrived on (as the driver set it on receive).
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Returns the device's RSS hash of the packet, if the driver computed one.
    pub fn rss_hash(&self) -> Option<u32> {
        if self.raw().ol_flags & ffi::RTE_MBUF_F_RX_RSS_HASH == 0 {
            return None;
        }
        // SAFETY: the mbuf is valid; the shim reads the hash union.
        Some(unsafe { ffi::gw_mbuf_rss_hash(self.0.as_ptr()) })
    }

    /// Returns the length of the whole packet (all segments; equal to `len()` here).
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Returns the number of segments (1 for every mbuf this crate makes or receives).
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf, so this is the one free of it.
        unsafe { ffi::gw_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off starts data_len initialised bytes inside the mbuf's
        // buffer, which self owns for the life of the borrow.
        unsafe { slice::from_raw_parts(m.buf_addr.cast::<u8>().add(m.data_off.into()), m.data_len.into()) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (p, len) = (m.buf_addr.cast::<u8>(), m.data_len.into());
        // SAFETY: as in `data`, and `&mut self` makes the borrow exclusive.
        unsafe { slice::from_raw_parts_mut(p.add(m.data_off.into()), len) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.raw().data_off.into()
    }

    #[inline]
    fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    #[inline]
    fn len(&self) -> usize {
        self.raw().data_len.into()
    }

    // The length changes are `rte_pktmbuf_prepend`, `_append`, `_adj` and `_trim` done in
    // place on the header fields, without a call through the C shim per packet (four per
    // sealed packet). Each refuses what DPDK's refuses and then changes nothing. Append and trim
    // work on the last segment, which is this one: a chained mbuf (none is made or received
    // here) goes through DPDK's own functions.

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        let Ok(n) = u16::try_from(n) else { return false };
        if n > m.data_off {
            return false;
        }
        // data_off + data_len <= buf_len <= u16::MAX, so data_len + n cannot overflow.
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        true
    }

    #[inline]
    fn append(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else { return false };
        if self.raw().nb_segs != 1 {
            // SAFETY: self owns a valid mbuf; DPDK checks the tailroom and changes nothing without.
            return !unsafe { ffi::gw_pktmbuf_append(self.0.as_ptr(), n) }.is_null();
        }
        if usize::from(n) > self.tailroom() {
            return false;
        }
        let m = self.raw_mut();
        m.data_len += n;
        m.pkt_len += u32::from(n);
        true
    }

    #[inline]
    fn grow(&mut self, front: usize, back: usize) -> Result<(), DropReason> {
        if self.raw().nb_segs != 1 {
            return grow_by_parts(self, front, back);
        }
        let m = self.raw_mut();
        let (off, len) = (usize::from(m.data_off), usize::from(m.data_len));
        if front > off {
            return Err(DropReason::NoHeadroom);
        }
        if back > usize::from(m.buf_len) - off - len {
            return Err(DropReason::NoTailroom);
        }
        // Both fit: the new data ends within buf_len, which is a u16.
        m.data_off = (off - front) as u16;
        m.data_len = (len + front + back) as u16;
        m.pkt_len += (front + back) as u32;
        Ok(())
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        let Ok(n) = u16::try_from(n) else { return false };
        if n > m.data_len {
            return false;
        }
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else { return false };
        if self.raw().nb_segs != 1 {
            // SAFETY: self owns a valid mbuf; DPDK checks the length and changes nothing if short.
            return unsafe { ffi::gw_pktmbuf_trim(self.0.as_ptr(), n) == 0 };
        }
        let m = self.raw_mut();
        if n > m.data_len {
            return false;
        }
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }
}
