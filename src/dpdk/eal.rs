//! EAL lifetime: start DPDK's environment abstraction layer once per process from an argument
//! list, and clean it up when the handle drops — unless DPDK objects are still alive.

use std::ffi::{CString, c_char, c_int};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::error::{DpdkError, errno};
use super::ffi;

/// Set by the first [`Eal::init`]: DPDK allows one `rte_eal_init` per process, even after a
/// failed one or `rte_eal_cleanup`.
static STARTED: AtomicBool = AtomicBool::new(false);

/// DPDK objects alive now (mempools whose mbufs are out, ports, launched lcore jobs): while any
/// is, dropping [`Eal`] must not free DPDK's memory under them.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Program name passed as `argv[0]`.
const PROGRAM: &str = "ipsecgw";

/// The running EAL. Create it first and drop it last, on the thread that created it (which
/// became the main lcore); it is neither `Send` nor `Sync`.
///
/// Dropping it runs `rte_eal_cleanup` if no pool, port or lcore job is left; otherwise it
/// leaves DPDK's memory to the process exit (with a line on stderr), which is always safe.
#[derive(Debug)]
pub struct Eal {
    _main_thread: PhantomData<*mut ()>,
}

impl Eal {
    /// Starts EAL with `args`: EAL options only (`-l 0-2`, `--vdev net_ring0`, `--no-huge`...),
    /// without a program name. The calling thread becomes the main lcore and is pinned.
    ///
    /// Fails with `EALREADY` on any call after the first, successful or not; with `EINVAL` if
    /// an argument holds a NUL byte; otherwise with EAL's `rte_errno` (a bad `--vdev` device
    /// gives `ENODEV`).
    pub fn init<I, S>(args: I) -> Result<Eal, DpdkError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut owned = vec![CString::new(PROGRAM).expect("no NUL")];
        for a in args {
            let a = a.as_ref();
            let c =
                CString::new(a).map_err(|_| DpdkError::new(format!("rte_eal_init: argument {a:?}"), errno::EINVAL))?;
            owned.push(c);
        }
        if STARTED.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::new("rte_eal_init: EAL already initialised in this process", errno::EALREADY));
        }
        // EAL may keep pointers into argv (getopt permutes it; some options are kept by
        // reference): both the strings and the array live for the rest of the process.
        let strings: &'static [CString] = Vec::leak(owned);
        let argv: &'static mut [*mut c_char] = Vec::leak(strings.iter().map(|s| s.as_ptr().cast_mut()).collect());
        let argc = argv.len() as c_int;
        // SAFETY: argv holds argc valid NUL-terminated strings that are never freed, and this is
        // the only call of rte_eal_init in the process (STARTED above).
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        Ok(Eal { _main_thread: PhantomData })
    }

    /// Returns true when IOVAs are virtual addresses (EAL picks that mode when physical
    /// addresses are unavailable, as without hugepages in a VM).
    pub fn iova_is_va(&self) -> bool {
        // SAFETY: EAL is running (`self`); the call only reads its configuration.
        unsafe { ffi::gw_iova_is_va() != 0 }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let live = LIVE.load(Ordering::Acquire);
        if live > 0 {
            eprintln!(
                "ipsecgw: {live} DPDK object(s) still alive (pools with mbufs out, ports or lcore jobs): skipping rte_eal_cleanup"
            );
            return;
        }
        // SAFETY: EAL was initialised (an Eal exists only after a successful init); this is the
        // main lcore's thread (Eal is !Send), and no pool, port or lcore job is left to use it.
        let ret = unsafe { ffi::rte_eal_cleanup() };
        if ret < 0 {
            eprintln!("ipsecgw: {}", DpdkError::new("rte_eal_cleanup", -ret));
        }
    }
}

/// Counts one more DPDK object that must not outlive EAL's memory.
pub(crate) fn retain() {
    LIVE.fetch_add(1, Ordering::AcqRel);
}

/// Counts one such object gone.
pub(crate) fn release() {
    LIVE.fetch_sub(1, Ordering::AcqRel);
}
