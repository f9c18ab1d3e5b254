//! Control plane of ipsecgw: the configuration model, the RouterOS console, the compilation of
//! the configuration into dataplane tables and SAs; IKE (sans-IO) and the daemon come later.
#![forbid(unsafe_code)]

pub mod cli;
pub mod compile;
pub mod config;
