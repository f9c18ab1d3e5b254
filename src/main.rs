//! ipsecgw: the binary that wires the control plane, the dataplane and DPDK.
//!
//! Subcommands: `demo` (a manually keyed ESP/AH round trip on both crypto engines) and `sa`
//! (seal or open a pcap with one SA, for interop checks against other implementations).
//! `run`, `control`, `console` and `exec` arrive with the DPDK and configuration issues.
#![forbid(unsafe_code)]

use std::process::ExitCode;

mod demo;
mod pcap;
mod satool;

const USAGE: &str = "usage: ipsecgw <command> [args]

commands:
  demo                 seal and open packets through manually keyed SAs on both engines
  sa seal|open ...     apply one SA to every packet of a pcap (see `ipsecgw sa --help`)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(),
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
