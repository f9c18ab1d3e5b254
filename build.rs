//! Build script of the root crate. The DPDK bindings (pkg-config, the C shim for DPDK's
//! static-inline functions, bindgen) are generated here once the DPDK issue lands; until then
//! the root crate links nothing native of its own (the dataplane's build script links ipsec-mb).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
