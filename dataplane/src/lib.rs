//! The ipsecgw dataplane: everything a worker core does to a packet, with no DPDK dependency.
//!
//! Packet bytes are touched only through [`wire`] views; crypto goes through the batch
//! [`crypto::Engine`] trait; every drop is counted under a [`stats::DropReason`].
//! Unsafe code is confined to the `crypto::ipsec_mb` FFI boundary and the [`prefetch`] hint.
#![deny(unsafe_code)]

pub mod ah;
pub mod buf;
pub mod bundle;
pub mod classify;
pub mod crypto;
pub mod ctl;
pub mod esp;
pub mod fasthash;
pub mod pipeline;
pub mod port;
pub mod prefetch;
pub mod replay;
pub mod route;
pub mod sa;
pub mod slowpath;
pub mod spd;
pub mod stats;
pub mod wire;
pub mod worker;
mod xform;
