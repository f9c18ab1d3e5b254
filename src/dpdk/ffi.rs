//! FFI layer: DPDK 22.11's declarations as bindgen generated them from `shim.h` (build.rs keeps
//! the allowlist), including the C shim's `gw_*` functions over DPDK's static-inline functions.
//!
//! Raw and unsafe; the safe API is the rest of [`crate::dpdk`]. Thread-local per-lcore
//! variables (`rte_errno`, the lcore id) are never bound here: read them through `gw_errno()`
//! and `gw_lcore_id()`.
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case, dead_code, missing_docs)]
#![allow(clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/dpdk_bindings.rs"));
