//! EAL start-up errors, in a process whose EAL never starts: a NUL byte in an argument, a bad
//! `--vdev` device, and the refusal of any second `rte_eal_init`.

use std::process::ExitCode;

use ipsecgw::dpdk::testing::{Cases, eal_args, unique_prefix};
use ipsecgw::dpdk::{Eal, errno};

fn main() -> ExitCode {
    let prefix = unique_prefix("eal_errors");
    let mut cases = Cases::new(&prefix);

    cases.run("nul_byte_in_an_argument_is_einval_before_eal_runs", || {
        let err = Eal::init(["--vdev", "net_null0\0x"]).unwrap_err();
        assert_eq!(err.errno(), errno::EINVAL, "{err}");
    });
    cases.run("bad_vdev_is_a_typed_error", || {
        let err = Eal::init(eal_args(&prefix, "0", &["--vdev", "net_nosuchdriver0"])).unwrap_err();
        println!("  {err}");
        assert_eq!(err.op(), "rte_eal_init");
        assert!(err.errno() > 0 && !err.text().is_empty(), "{err}");
    });
    cases.run("second_init_is_refused_with_ealready", || {
        let err = Eal::init(eal_args(&prefix, "0", &[])).unwrap_err();
        assert_eq!(err.errno(), errno::EALREADY, "{err}");
    });
    cases.finish()
}
