//! ipsecgw: the binary that wires the control plane, the dataplane and DPDK.
#![forbid(unsafe_code)]

fn main() {}
