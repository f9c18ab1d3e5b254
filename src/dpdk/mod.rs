//! The DPDK boundary of ipsecgw (DPDK 22.11 through bindgen and a small C shim; see build.rs and
//! DPDK-NOTES.md): the one module of the root crate allowed to use `unsafe`.
//!
//! - [`eal`]: start EAL once from an argument list; [`Eal`] cleans up on drop.
//! - [`mempool`]: pktmbuf pools; [`mbuf`]: the owning [`Mbuf`], a [`dataplane::buf::PacketBuf`].
//! - [`port`]: ethdev ports by device name; [`EthQueue`] is a [`dataplane::port::Port`].
//! - [`generator`]: a queue's built-in traffic source for benchmarks, in place of its device.
//! - [`lcore`]: launch closures on worker lcores, lcore ids, the TSC clock.
//! - [`shutdown`]: the stop flag SIGINT/SIGTERM set and workers poll between bursts.
//! - [`testing`]: the runner of the `harness = false` EAL test binaries.
//! - [`DpdkError`]: every fallible call's error, from `rte_errno` with `rte_strerror`'s text.
//!
//! Ownership rules: an [`Mbuf`] is the only owner of its mbuf (freed on drop, handed over to
//! the driver by tx); pools, ports and lcore jobs must be gone before [`Eal`] drops, or EAL's
//! memory is left to the process exit.

pub mod eal;
mod error;
pub mod ffi;
pub mod generator;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod shutdown;
pub mod testing;

pub use eal::Eal;
pub use error::{DpdkError, errno};
pub use generator::Generator;
pub use lcore::LcoreJob;
pub use mbuf::Mbuf;
pub use mempool::{Mempool, PoolConfig};
pub use port::{EthPort, EthQueue, Link, PortConfig, PortStats};
