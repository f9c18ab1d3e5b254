//! DPDK errors: a failed call named by what we asked, with the errno DPDK reported (through
//! `rte_errno` or a negative return value) and `rte_strerror`'s text for it.

use std::ffi::{CStr, c_int};
use std::fmt;

use super::ffi;

/// A failed DPDK call. Not for the per-packet path, where failures are counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkError {
    op: String,
    errno: i32,
    text: String,
}

impl DpdkError {
    /// Creates an error for `op` with a positive errno value.
    pub fn new(op: impl Into<String>, errno: i32) -> Self {
        // SAFETY: rte_strerror accepts any value, needs no EAL, and returns a NUL-terminated
        // string (static, or in a per-thread buffer) that is copied before anything else runs.
        let text = unsafe { CStr::from_ptr(ffi::rte_strerror(errno as c_int)) };
        DpdkError { op: op.into(), errno, text: text.to_string_lossy().into_owned() }
    }

    /// Creates an error for `op` from the calling thread's `rte_errno`.
    pub(crate) fn from_rte_errno(op: impl Into<String>) -> Self {
        // SAFETY: the shim reads the calling thread's rte_errno; no preconditions.
        let errno = unsafe { ffi::gw_errno() };
        Self::new(op, errno)
    }

    /// Returns `Ok(ret)` for a non-negative return value, else the error for `-ret`.
    pub(crate) fn check(op: &str, ret: c_int) -> Result<c_int, DpdkError> {
        if ret < 0 { Err(Self::new(op, -ret)) } else { Ok(ret) }
    }

    /// Returns the operation that failed, such as `rte_eth_dev_configure(net_ring0)`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// Returns the errno value (`libc` numbering, or DPDK's own above `RTE_MIN_ERRNO`).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// Returns `rte_strerror`'s text for the errno.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (errno {})", self.op, self.text, self.errno)
    }
}

impl std::error::Error for DpdkError {}

/// Errno values the wrappers report themselves, as `i32` like [`DpdkError::errno`].
pub mod errno {
    use super::ffi;

    /// EAL was already initialised in this process.
    pub const EALREADY: i32 = ffi::EALREADY as i32;
    /// An argument is invalid (a NUL byte in a string, a queue out of range...).
    pub const EINVAL: i32 = ffi::EINVAL as i32;
    /// No such device (an unknown port name).
    pub const ENODEV: i32 = ffi::ENODEV as i32;
    /// The resource is taken (a queue handed out twice).
    pub const EBUSY: i32 = ffi::EBUSY as i32;
    /// The device does not support the operation.
    pub const ENOTSUP: i32 = ffi::ENOTSUP as i32;
    /// Out of memory (mempool creation).
    pub const ENOMEM: i32 = ffi::ENOMEM as i32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_strerror_text_without_eal() {
        let e = DpdkError::new("rte_eth_dev_get_port_by_name(nope)", errno::ENODEV);
        assert_eq!(e.errno(), errno::ENODEV);
        assert_eq!(e.text(), "No such device");
        assert_eq!(e.to_string(), "rte_eth_dev_get_port_by_name(nope): No such device (errno 19)");
        assert!(DpdkError::check("x", 3).is_ok());
        assert_eq!(DpdkError::check("x", -errno::EINVAL).unwrap_err().errno(), errno::EINVAL);
    }
}
