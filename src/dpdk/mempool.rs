//! Mempools: a pool of packet mbufs (`rte_pktmbuf_pool_create`, packed where IOVAs allow) with
//! a unique name, and the allocation of fresh, owned [`Mbuf`]s from it.

use std::ffi::{CString, c_int};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dataplane::buf::{BURST, Burst, PacketBuf};

use super::eal::{self, Eal};
use super::error::DpdkError;
use super::ffi;
use super::mbuf::Mbuf;

/// Numbers the pools of this process, for their unique names.
static NEXT_POOL: AtomicU32 = AtomicU32::new(0);

/// How to size a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Mbufs in the pool (a power of two minus one is the most memory-efficient).
    pub mbufs: u32,
    /// Per-lcore cache size: at most 512 and at most `mbufs / 1.5`; 0 for none.
    pub cache: u32,
    /// Bytes of each mbuf's buffer, headroom included.
    pub data_room: u16,
    /// NUMA socket to allocate on; `None` for any.
    pub socket: Option<u32>,
}

impl PoolConfig {
    /// Headroom of a fresh mbuf (`RTE_PKTMBUF_HEADROOM`).
    pub const HEADROOM: usize = ffi::RTE_PKTMBUF_HEADROOM as usize;
    /// DPDK's default buffer size: 2048 bytes of data after the headroom.
    pub const DEFAULT_DATA_ROOM: u16 = ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { mbufs: 8191, cache: 256, data_room: Self::DEFAULT_DATA_ROOM, socket: None }
    }
}

/// A pktmbuf pool; clones share it (ports keep one for their rx queues).
///
/// The pool is freed when the last clone drops and every mbuf has come back; if mbufs are still
/// out it stays allocated until the process exits, so a late [`Mbuf`] drop is always safe.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    ptr: NonNull<ffi::rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: a DPDK mempool is built for concurrent use from any thread (multi-producer and
// multi-consumer ring, per-lcore caches); the handle itself is immutable.
unsafe impl Send for PoolInner {}
// SAFETY: as above: every operation through `&PoolInner` is a thread-safe DPDK call.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool named `gw_pool_<n>` (unique in the process).
    pub fn create(_eal: &Eal, cfg: &PoolConfig) -> Result<Mempool, DpdkError> {
        let name = format!("gw_pool_{}", NEXT_POOL.fetch_add(1, Ordering::Relaxed));
        let cname = CString::new(name.clone()).expect("no NUL");
        let socket = cfg.socket.map_or(ffi::SOCKET_ID_ANY, |s| s as c_int);
        // SAFETY: EAL is running (`_eal`), the name is a valid C string that DPDK copies, and
        // the sizes are plain values DPDK validates.
        let ptr = unsafe { ffi::gw_pktmbuf_pool_create(cname.as_ptr(), cfg.mbufs, cfg.cache, cfg.data_room, socket) };
        let ptr =
            NonNull::new(ptr).ok_or_else(|| DpdkError::from_rte_errno(format!("gw_pktmbuf_pool_create({name})")))?;
        eal::retain();
        Ok(Mempool { inner: Arc::new(PoolInner { ptr, name, size: cfg.mbufs }) })
    }

    /// Returns the pool's unique name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Returns true when the pool's mbufs may cross page boundaries: in IOVA-as-VA mode, where
    /// they are still contiguous for DMA. Without hugepages a pool that keeps each mbuf inside
    /// one 4 KiB page starts every mbuf at the same offset in its page, and multi-buffer crypto
    /// then works on sixteen packets that compete for the same cache sets (see shim.c).
    pub fn packed(&self) -> bool {
        // SAFETY: the pool is valid for the life of `self`.
        unsafe { ffi::gw_mempool_packed(self.inner.ptr.as_ptr()) != 0 }
    }

    /// Returns how many mbufs the pool holds in all.
    pub fn capacity(&self) -> u32 {
        self.inner.size
    }

    /// Returns how many mbufs are free (in the pool or in an lcore cache).
    pub fn available(&self) -> u32 {
        self.inner.available()
    }

    /// Returns how many mbufs are out (owned by code, rx descriptors or tx queues).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid for the life of `self`.
        unsafe { ffi::rte_mempool_in_use_count(self.inner.ptr.as_ptr()) }
    }

    /// Returns the raw pool, for DPDK calls the wrappers do not cover.
    pub fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.inner.ptr.as_ptr()
    }

    /// Allocates an empty mbuf with the default headroom; `None` if the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is a pktmbuf pool, valid for the life of `self`.
        let m = unsafe { ffi::gw_pktmbuf_alloc(self.inner.ptr.as_ptr()) };
        // SAFETY: a non-null result is a fresh mbuf that nothing else references.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Allocates an mbuf holding a copy of `bytes`; `None` if the pool is empty or the bytes do
    /// not fit in the tailroom.
    pub fn alloc_from(&self, bytes: &[u8]) -> Option<Mbuf> {
        let mut m = self.alloc()?;
        if !m.append(bytes.len()) {
            return None;
        }
        m.data_mut().copy_from_slice(bytes);
        Some(m)
    }

    /// Appends `n` empty mbufs to `out`, all or none (one `rte_pktmbuf_alloc_bulk`); false if
    /// the pool has fewer free or `out` has no room for `n`.
    pub fn alloc_bulk(&self, out: &mut Burst<Mbuf>, n: usize) -> bool {
        let len = out.len();
        if n > BURST - len {
            return false;
        }
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, so the free tail of `out`
        // can hold the n pointers; on success DPDK wrote n fresh mbufs we now own, on failure
        // nothing (and the length is unchanged).
        unsafe {
            let dst = out.as_mut_ptr().add(len).cast::<*mut ffi::rte_mbuf>();
            if ffi::gw_pktmbuf_alloc_bulk(self.inner.ptr.as_ptr(), dst, n as u32) != 0 {
                return false;
            }
            out.set_len(len + n);
        }
        true
    }
}

impl PoolInner {
    fn available(&self) -> u32 {
        // SAFETY: the pool is valid for the life of `self`.
        unsafe { ffi::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        if self.available() < self.size {
            // Mbufs are still out (in code, or stuck in a device ring): they will come back
            // here, so the pool stays, and so does EAL's memory (it stays counted as live).
            return;
        }
        // SAFETY: no clone, port queue or mbuf refers to the pool any more.
        unsafe { ffi::rte_mempool_free(self.ptr.as_ptr()) };
        eal::release();
    }
}
