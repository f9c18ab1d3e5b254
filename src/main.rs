//! ipsecgw: the binary that wires the control plane, the dataplane and DPDK.
//!
//! Subcommands: `demo` (two gateways on DPDK virtual devices with manual SAs and traffic
//! generators), `selftest` (a manually keyed ESP/AH round trip on both crypto engines, without
//! DPDK) and `sa` (seal or open a pcap with one SA, for interop checks with other
//! implementations). `run`, `control`, `console` and `exec` arrive with the configuration issue.
#![forbid(unsafe_code)]

use std::process::ExitCode;

mod builtin;
mod config;
mod demo;
mod pcap;
mod run;
mod satool;
mod selftest;

const USAGE: &str = "usage: ipsecgw <command> [args]

commands:
  demo [--seconds N] [--size BYTES]
                       two gateways on DPDK virtual devices, traffic between their LANs
  run --config FILE    one gateway on DPDK from its configuration (see `ipsecgw run --help`)
  selftest             seal and open packets through manually keyed SAs on both engines
  sa seal|open ...     apply one SA to every packet of a pcap (see `ipsecgw sa --help`)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(&args[1..]),
        Some("selftest") => selftest::run(),
        Some("run") => run::main(&args[1..]),
        Some("sa") => satool::main(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
