//! Packet buffers: the trait every packet store implements (DPDK mbufs in the root crate, a
//! heap buffer here for tests), and `Burst`, the fixed-capacity batch the stages pass along.

use arrayvec::ArrayVec;

use crate::stats::DropReason;

/// Packets per burst: the rx/tx burst size of the workers, and the vector every stage works on.
///
/// A burst has fixed costs in every stage (clock reads of the stage accounting, ring polls,
/// calls, the descriptor arrays), and the SPD and SA prefetches of a burst overlap their misses:
/// 128 packets amortise both better than DPDK's customary 32 (stop 22: outbound AES-128-GCM
/// 64 B took 0.875 times the cycles per packet on the generator and 0.915 times on `net_pcap`,
/// 10,000 policies 0.82 times; paired medians, `bench/THROUGHPUT.md`). Stages index a burst
/// with `u8`.
pub const BURST: usize = 128;
const _: () = assert!(BURST <= u8::MAX as usize, "stages index a burst with u8");

/// [`PacketBuf::grow`] by `prepend` and `append`.
pub fn grow_by_parts<B: PacketBuf + ?Sized>(buf: &mut B, front: usize, back: usize) -> Result<(), DropReason> {
    if buf.headroom() < front {
        return Err(DropReason::NoHeadroom);
    }
    if buf.tailroom() < back {
        return Err(DropReason::NoTailroom);
    }
    if !buf.prepend(front) {
        return Err(DropReason::NoHeadroom);
    }
    if !buf.append(back) {
        buf.adj(front);
        return Err(DropReason::NoTailroom);
    }
    Ok(())
}

/// A contiguous packet with headroom and tailroom, like a single-segment `rte_mbuf`.
pub trait PacketBuf {
    /// Returns the packet bytes.
    fn data(&self) -> &[u8];
    /// Returns the packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Returns how many bytes can be prepended.
    fn headroom(&self) -> usize;
    /// Returns how many bytes can be appended.
    fn tailroom(&self) -> usize;
    /// Grows the packet by `n` bytes at the front; false (and no change) without headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Grows the packet by `n` bytes at the end; false (and no change) without tailroom.
    fn append(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false (and no change) if the packet is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the end; false (and no change) if the packet is shorter.
    fn trim(&mut self, n: usize) -> bool;

    /// Grows the packet by `front` bytes at the front and `back` at the end; without the room,
    /// changes nothing and says which room is short.
    fn grow(&mut self, front: usize, back: usize) -> Result<(), DropReason> {
        grow_by_parts(self, front, back)
    }

    /// Returns the length of the packet.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// Returns true for an empty packet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A packet buffer on the heap, with the layout of a 2 KiB mbuf (128 bytes of headroom).
/// For tests, benches and the demo; the worker path uses DPDK mbufs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapBuf {
    mem: Box<[u8]>,
    start: usize,
    end: usize,
}

impl HeapBuf {
    /// Headroom of a fresh buffer, as `RTE_PKTMBUF_HEADROOM`.
    pub const HEADROOM: usize = 128;
    /// Room of a fresh buffer, as a default 2048-byte mbuf data room plus its headroom.
    pub const ROOM: usize = 2048 + Self::HEADROOM;

    /// Creates a buffer holding `bytes` after the default headroom.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::with_room(bytes, Self::HEADROOM, Self::ROOM.max(Self::HEADROOM + bytes.len()))
    }

    /// Creates a buffer holding `bytes` after `headroom` bytes, in `room` bytes in all.
    pub fn with_room(bytes: &[u8], headroom: usize, room: usize) -> Self {
        assert!(headroom + bytes.len() <= room, "HeapBuf: room too small for the bytes");
        let mut mem = vec![0u8; room].into_boxed_slice();
        mem[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        HeapBuf { mem, start: headroom, end: headroom + bytes.len() }
    }
}

impl PacketBuf for HeapBuf {
    fn data(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.end]
    }
    fn headroom(&self) -> usize {
        self.start
    }
    fn tailroom(&self) -> usize {
        self.mem.len() - self.end
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.end += n;
        true
    }
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.start += n;
        true
    }
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.end -= n;
        true
    }
}

/// A source of fresh packet buffers (a DPDK mempool, or the heap in tests): used off the
/// per-packet path, by the control plane to build ARP requests and its own packets.
pub trait BufAlloc {
    /// The buffers it hands out.
    type Buf: PacketBuf;
    /// Returns an empty buffer with the default headroom, or `None` when exhausted.
    fn alloc(&self) -> Option<Self::Buf>;
}

/// Allocates [`HeapBuf`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapAlloc;

impl BufAlloc for HeapAlloc {
    type Buf = HeapBuf;
    fn alloc(&self) -> Option<HeapBuf> {
        Some(HeapBuf::from_slice(&[]))
    }
}

/// A burst of packets: a fixed-capacity array, never allocated per burst.
pub type Burst<B> = ArrayVec<B, BURST>;

/// Keeps the elements of `v` whose flag in `keep` is set, in order (an element without a flag
/// stays: nothing is dropped uncounted).
pub(crate) fn retain_marked<T, const N: usize>(v: &mut ArrayVec<T, N>, keep: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        keep.get(i - 1).copied().unwrap_or(true)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_buf_room_operations() {
        let mut b = HeapBuf::with_room(&[1, 2, 3], 2, 6);
        assert_eq!((b.headroom(), b.tailroom()), (2, 1));
        assert!(!b.prepend(3));
        assert!(b.prepend(2));
        assert_eq!(b.data(), &[0, 0, 1, 2, 3]);
        assert!(!b.append(2));
        assert!(b.append(1));
        assert_eq!(b.len(), 6);
        assert!(b.adj(2) && b.trim(1));
        assert_eq!(b.data(), &[1, 2, 3]);
        assert!(!b.adj(4) && !b.trim(4));
        assert!(b.adj(3) && b.is_empty());
        let mut b = HeapBuf::with_room(&[1, 2, 3], 2, 6);
        assert_eq!(b.grow(3, 0), Err(DropReason::NoHeadroom));
        assert_eq!(b.grow(2, 2), Err(DropReason::NoTailroom));
        assert_eq!(b.data(), &[1, 2, 3], "unchanged");
        assert_eq!(b.grow(2, 1), Ok(()));
        assert_eq!(b.data(), &[0, 0, 1, 2, 3, 0]);
    }
}
