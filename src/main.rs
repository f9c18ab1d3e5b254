//! ipsecgw: the binary that wires the control plane, the dataplane and DPDK.
//!
//! Subcommands: `run` (the gateway: the DPDK dataplane, which starts the control process),
//! `control` (the control process), `console` and `exec` (its clients), `demo` (two gateways on
//! DPDK virtual devices with manual SAs and traffic generators), `selftest` (a manually keyed
//! ESP/AH round trip on both crypto engines, without DPDK) and `sa` (seal or open a pcap with
//! one SA, for interop checks with other implementations).
#![forbid(unsafe_code)]

use std::process::ExitCode;

mod bench;
mod builtin;
mod config;
mod console;
mod demo;
mod dpserver;
mod pcap;
mod run;
mod satool;
mod secgw;
mod selftest;

const USAGE: &str = "usage: ipsecgw <command> [args]

commands:
  run --config FILE [--socket PATH]
                       one gateway on DPDK from its configuration, with its control process
                       (see `ipsecgw run --help`)
  console [--socket PATH]
                       a RouterOS console on the running gateway (prompt, line editing)
  exec [--json] [--socket PATH] 'COMMAND'...
                       run console commands once; exit status 1 if one is refused; `stats`
                       prints the dataplane's counters, `runtime` its per-stage cycles
  control --config FILE --socket PATH --dataplane PATH
                       the control process (`run` starts and restarts it)
  demo [--seconds N] [--size BYTES]
                       two gateways on DPDK virtual devices, traffic between their LANs
  bench [--transform T] [--size N|imix] [--direction out|in] [--rounds R]
                       one worker's throughput against dpdk-test-crypto-perf (`ipsecgw bench --help`)
  selftest             seal and open packets through manually keyed SAs on both engines
  sa seal|open ...     apply one SA to every packet of a pcap (see `ipsecgw sa --help`)

The control socket (default /run/ipsecgw/ctl.sock, mode 0600 in a 0700 directory) admits root
only; every accepted change is saved at once to the configuration file as an export script.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(&args[1..]),
        Some("selftest") => selftest::run(),
        Some("bench") => bench::main(&args[1..]),
        Some("bench-run") => bench::run_main(&args[1..]),
        Some("run") => run::main(&args[1..]),
        Some("control") => console::control_main(&args[1..]),
        Some("console") => console::console_main(&args[1..]),
        Some("exec") => console::exec_main(&args[1..]),
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
