//! ipsecgw as a library: the DPDK boundary the binary and the EAL integration tests share.
//!
//! The crate denies unsafe code; [`dpdk`] is the one module that opts out, and every unsafe
//! block in it carries a `// SAFETY:` line.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod dpdk;
pub mod gateway;
