//! Build script of the root crate: the DPDK boundary of `src/dpdk/`.
//!
//! Finds libdpdk (22.11) with pkg-config, compiles the C shim over DPDK's static-inline functions
//! and thread-local variables (`src/dpdk/shim.c`) with the full `pkg-config --cflags libdpdk`
//! (it carries `-include rte_config.h` and `-march=corei7`), and generates bindings for a tight
//! allowlist into `OUT_DIR/dpdk_bindings.rs`. See DPDK-NOTES.md for why each bindgen option is set.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use bindgen::callbacks::{IntKind, ParseCallbacks};

const SHIM_C: &str = "src/dpdk/shim.c";
const SHIM_H: &str = "src/dpdk/shim.h";
const SETUP: &str = "libdpdk (DPDK 22.11) not found by pkg-config: run scripts/setup.sh";

/// DPDK functions the safe wrappers call (the shim's `gw_*` come from `shim.h`).
const FUNCTIONS: &[&str] = &[
    "gw_.*",
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_strerror",
    "rte_eal_remote_launch",
    "rte_eal_wait_lcore",
    "rte_get_main_lcore",
    "rte_get_next_lcore",
    "rte_lcore_count",
    "rte_lcore_to_socket_id",
    "rte_socket_id",
    "rte_get_tsc_hz",
    "rte_thread_register",
    "rte_thread_unregister",
    "rte_pktmbuf_free_bulk",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_promiscuous_enable",
    "rte_eth_link_get_nowait",
    "rte_eth_stats_get",
    "rte_eth_stats_reset",
    "rte_eth_macaddr_get",
    "rte_eth_dev_get_mtu",
    "rte_ring_create",
    "rte_eth_from_rings",
];

/// Constants (macros and enum values). Never the per-lcore variables: they are thread-local.
const VARS: &[&str] = &[
    "LCORE_ID_ANY",
    "SOCKET_ID_ANY",
    "RTE_MAX_LCORE",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MBUF_DEFAULT_BUF_SIZE",
    "RTE_MEMPOOL_NAMESIZE",
    "RTE_ETH_NAME_MAX_LEN",
    "RTE_ETH_MQ_RX_.*",
    "RTE_ETH_MQ_TX_.*",
    "RTE_ETH_RSS_.*",
    "RTE_ETH_RX_OFFLOAD_.*",
    "RTE_ETH_TX_OFFLOAD_.*",
    "RTE_ETH_LINK_(UP|DOWN|FULL_DUPLEX|HALF_DUPLEX)",
    "RTE_ETH_SPEED_NUM_(NONE|UNKNOWN)",
    "RTE_MBUF_F_RX_RSS_HASH",
    "RING_F_(SP_ENQ|SC_DEQ|EXACT_SZ)",
    "E(ALREADY|INVAL|NODEV|NOTSUP|OPNOTSUPP|NOMEM|NOENT|EXIST|BUSY|IO|PERM|AGAIN|NOSPC)",
];

/// Types the wrappers use by value (the rest is reached from these and the functions).
const TYPES: &[&str] = &["rte_eth_conf", "rte_eth_dev_info", "rte_eth_stats", "rte_eth_link", "rte_ether_addr"];

/// Only ever behind a pointer, or dragged in and never used (the rte_flow family does not
/// compile as generated: a packed struct holding an aligned one, E0588).
const OPAQUE: &[&str] = &["rte_mempool", "rte_ring", "rte_flow_.*", "rte_l2tpv2_.*", "rte_gtp_.*"];

/// Macros built on `RTE_BIT64()` that must be `u64` like the fields they go into; the clang
/// macro fallback would make them `u32`.
const U64_PREFIXES: &[&str] = &["RTE_ETH_RSS_", "RTE_ETH_RX_OFFLOAD_", "RTE_ETH_TX_OFFLOAD_", "RTE_MBUF_F_"];

#[derive(Debug)]
struct Wide64;

impl ParseCallbacks for Wide64 {
    fn int_macro(&self, name: &str, _value: i64) -> Option<IntKind> {
        U64_PREFIXES.iter().any(|p| name.starts_with(p)).then_some(IntKind::U64)
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={SHIM_C}");
    println!("cargo:rerun-if-changed={SHIM_H}");

    let dpdk = pkg_config::Config::new().atleast_version("22.11").cargo_metadata(false).probe("libdpdk");
    let dpdk = dpdk.unwrap_or_else(|_| panic!("{SETUP}"));
    let cflags = dpdk_cflags();

    let mut shim = cc::Build::new();
    shim.file(SHIM_C).opt_level(2).warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("gw_dpdk_shim");

    // After the shim, which depends on them.
    for dir in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib={lib}");
    }
    // The net_ring driver, for `rte_eth_from_rings` (crossed port pairs). It is also the plugin
    // EAL loads from its driver directory: the same file, so the loader maps it once.
    println!("cargo:rustc-link-lib=rte_net_ring");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let mut builder = bindgen::Builder::default()
        .header(SHIM_H)
        .clang_args(&cflags)
        .rust_edition(bindgen::RustEdition::Edition2024)
        .formatter(bindgen::Formatter::None)
        .generate_comments(false)
        .derive_debug(false)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .wrap_unsafe_ops(true)
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(&out)
        .parse_callbacks(Box::new(Wide64));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for t in OPAQUE {
        builder = builder.opaque_type(t);
    }
    let bindings = builder.generate().expect("bindgen failed on src/dpdk/shim.h");
    bindings.write_to_file(out.join("dpdk_bindings.rs")).expect("writing the DPDK bindings");
}

/// Returns every flag of `pkg-config --cflags libdpdk`, for both the shim and bindgen's clang.
fn dpdk_cflags() -> Vec<String> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = Command::new(pkg_config).args(["--cflags", "libdpdk"]).output();
    let out = match out {
        Ok(o) if o.status.success() => o.stdout,
        _ => panic!("{SETUP}"),
    };
    String::from_utf8(out).expect("pkg-config output is UTF-8").split_whitespace().map(str::to_owned).collect()
}
