//! Control plane of ipsecgw: the configuration model, the RouterOS console, IKE (sans-IO) and the
//! daemon that drives them. Filled in by the configuration and IKE issues; no unsafe code here.
#![forbid(unsafe_code)]
