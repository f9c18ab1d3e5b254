//! Control plane of ipsecgw: the configuration model, the RouterOS console, the compilation of
//! the configuration into dataplane tables and SAs, and the daemon (the control process, its
//! sockets and their wire format); IKE (sans-IO) comes later.
#![forbid(unsafe_code)]

pub mod cli;
pub mod compile;
pub mod config;
pub mod daemon;
pub mod ike;
