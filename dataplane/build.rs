//! Build script: compiles the ipsec-mb engine's C shim and links Intel's multi-buffer library.
//!
//! No `-march=native`: the library dispatches on CPU features at run time (see CRYPTO-NOTES).

use std::path::Path;

const HEADER: &str = "/usr/include/intel-ipsec-mb.h";
const SHIM: &str = "src/crypto/ipsec_mb/shim.c";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-changed={HEADER}");
    // The engine module is compiled only on x86-64.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        return;
    }
    if !Path::new(HEADER).exists() {
        panic!("{HEADER} not found (libipsec-mb-dev): run scripts/setup.sh");
    }
    cc::Build::new().file(SHIM).opt_level(2).warnings(true).extra_warnings(true).compile("gw_ipsec_mb_shim");
    // After the shim, which depends on it.
    println!("cargo:rustc-link-lib=IPSec_MB");
}
