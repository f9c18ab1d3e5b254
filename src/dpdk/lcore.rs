//! Lcores: which EAL cores exist, launching a closure on a worker lcore and waiting for it,
//! registering a plain thread with EAL, and the TSC clock.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use super::eal::{self, Eal};
use super::error::{DpdkError, errno};
use super::ffi;

/// Returns the calling thread's lcore id; `None` on a thread EAL does not know.
pub fn current() -> Option<u32> {
    // SAFETY: the shim reads the calling thread's per-lcore variable; no preconditions.
    let id = unsafe { ffi::gw_lcore_id() };
    (id != ffi::LCORE_ID_ANY).then_some(id)
}

/// Returns the main lcore's id (the thread that started EAL).
pub fn main_lcore() -> u32 {
    // SAFETY: reads EAL's configuration; no preconditions.
    unsafe { ffi::rte_get_main_lcore() }
}

/// Returns how many lcores EAL runs (main included); 0 before EAL starts.
pub fn count() -> u32 {
    // SAFETY: reads EAL's configuration; no preconditions.
    unsafe { ffi::rte_lcore_count() }
}

/// Returns the worker lcores (every enabled lcore but the main one), in order.
pub fn workers() -> impl Iterator<Item = u32> {
    let next = |i: u32| {
        // SAFETY: reads EAL's configuration; any i is accepted (u32::MAX starts the scan).
        let n = unsafe { ffi::rte_get_next_lcore(i, 1, 0) };
        (n < ffi::RTE_MAX_LCORE).then_some(n)
    };
    std::iter::successors(next(u32::MAX), move |&i| next(i))
}

/// Returns the NUMA socket of an lcore.
pub fn socket(lcore: u32) -> u32 {
    // SAFETY: DPDK returns 0 for an lcore id out of range.
    unsafe { ffi::rte_lcore_to_socket_id(lcore) }
}

/// Returns the time-stamp counter (`rte_rdtsc`).
pub fn tsc() -> u64 {
    // SAFETY: reads the TSC; no preconditions.
    unsafe { ffi::gw_rdtsc() }
}

/// Returns TSC ticks per second, as EAL measured it at start.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads EAL's measurement (0 before EAL starts).
    unsafe { ffi::rte_get_tsc_hz() }
}

/// What a launched closure and its lcore share: written by the lcore, read after the wait.
struct Slot<T> {
    f: Option<Box<dyn FnOnce() -> T + Send>>,
    out: Option<std::thread::Result<T>>,
    done: AtomicBool,
}

/// The function EAL runs on the worker lcore.
unsafe extern "C" fn trampoline<T>(arg: *mut c_void) -> c_int {
    let slot = arg.cast::<Slot<T>>();
    // SAFETY: `arg` is the Slot that `launch` leaked; its LcoreJob frees it only after
    // rte_eal_wait_lcore returned, i.e. after this function. Until then only this lcore touches
    // `f` and `out`, and the main lcore only `done` (through a shared reference).
    unsafe {
        let f = (*slot).f.take().expect("an lcore job runs once");
        (*slot).out = Some(panic::catch_unwind(AssertUnwindSafe(f)));
        (*slot).done.store(true, Ordering::Release);
    }
    0
}

/// Runs `f` on worker lcore `lcore` (`rte_eal_remote_launch`). Call from the main lcore.
///
/// Fails with `EINVAL` if `lcore` is not a worker, `EBUSY` if it is still running a job.
pub fn launch<F, T>(_eal: &Eal, lcore: u32, f: F) -> Result<LcoreJob<T>, DpdkError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if !workers().any(|w| w == lcore) {
        return Err(DpdkError::new(format!("rte_eal_remote_launch: lcore {lcore} is not a worker"), errno::EINVAL));
    }
    let slot = Box::new(Slot::<T> { f: Some(Box::new(f)), out: None, done: AtomicBool::new(false) });
    let slot = NonNull::from(Box::leak(slot));
    // SAFETY: `&Eal` proves EAL runs and, being !Send, that this is the main lcore; the slot
    // stays allocated until the job is waited for (LcoreJob::join or drop).
    let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline::<T>), slot.as_ptr().cast(), lcore) };
    if ret < 0 {
        // SAFETY: the launch failed, so the lcore never saw the slot: reclaim it.
        drop(unsafe { Box::from_raw(slot.as_ptr()) });
        return Err(DpdkError::new(format!("rte_eal_remote_launch(lcore {lcore})"), -ret));
    }
    eal::retain();
    Ok(LcoreJob { lcore, slot: Some(slot), _main_thread: PhantomData })
}

/// A closure running on a worker lcore. [`join`](Self::join) waits for its result; dropping
/// the job waits too (a worker must never outlive what it borrows from EAL).
pub struct LcoreJob<T> {
    lcore: u32,
    slot: Option<NonNull<Slot<T>>>,
    _main_thread: PhantomData<*mut ()>,
}

impl<T> LcoreJob<T> {
    /// Returns the lcore the job runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Returns true once the closure has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        let slot = self.slot.expect("slot held until waited");
        // SAFETY: the slot stays allocated until waited for; `done` is atomic, and no one holds
        // a unique reference to the slot.
        unsafe { (*slot.as_ptr()).done.load(Ordering::Acquire) }
    }

    /// Waits for the closure and returns its value, resuming its panic if it panicked.
    pub fn join(mut self) -> T {
        match self.wait() {
            Ok(v) => v,
            Err(p) => panic::resume_unwind(p),
        }
    }

    fn wait(&mut self) -> Result<T, Box<dyn Any + Send>> {
        let slot = self.slot.take().expect("waited once");
        // SAFETY: the job was launched on this lcore; the wait returns after the trampoline
        // returned, and makes its writes visible.
        unsafe { ffi::rte_eal_wait_lcore(self.lcore) };
        eal::release();
        // SAFETY: the lcore is done with the slot, which `launch` leaked from a Box.
        let slot = unsafe { Box::from_raw(slot.as_ptr()) };
        slot.out.expect("the trampoline stores a result")
    }
}

impl<T> Drop for LcoreJob<T> {
    fn drop(&mut self) {
        if self.slot.is_some() {
            drop(self.wait());
        }
    }
}

/// A plain thread's registration with EAL (`rte_thread_register`): it gets an lcore id and a
/// mempool cache. Unregisters on drop, on the same thread (it is not `Send`).
#[derive(Debug)]
pub struct ThreadRegistration {
    _this_thread: PhantomData<*mut ()>,
}

/// Registers the calling thread with EAL; fails if it already is an lcore or none is free.
pub fn register_thread() -> Result<ThreadRegistration, DpdkError> {
    if current().is_some() {
        return Err(DpdkError::new("rte_thread_register: already an lcore", errno::EBUSY));
    }
    // SAFETY: registers the calling thread; EAL reports errors through rte_errno.
    if unsafe { ffi::rte_thread_register() } < 0 {
        return Err(DpdkError::from_rte_errno("rte_thread_register"));
    }
    Ok(ThreadRegistration { _this_thread: PhantomData })
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself (the registration is !Send).
        unsafe { ffi::rte_thread_unregister() }
    }
}
