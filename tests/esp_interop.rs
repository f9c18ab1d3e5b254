//! Interop of our ESP and AH with independent implementations: runs tests/interop/esp_interop.py
//! (Wireshark's ESP dissector through tshark, and scapy's IPsec layer) against the built
//! `ipsecgw sa` binary. The peers are required, not optional: a missing one fails the test, so
//! that a machine without them cannot report interop as passing.

use std::path::Path;
use std::process::Command;

/// Debian's python3-scapy is installed for the system interpreter only (not for a pyenv one).
const PYTHON: &str = "/usr/bin/python3";
const SETUP: &str = "install the interop peers with scripts/setup.sh (tshark, python3-scapy)";

fn require(what: &str, ok: bool) {
    assert!(ok, "{what} is missing: {SETUP}");
}

#[test]
fn esp_and_ah_interoperate_with_tshark_and_scapy() {
    require(PYTHON, Path::new(PYTHON).exists());
    let scapy = Command::new(PYTHON).args(["-c", "import scapy.layers.ipsec"]).output();
    require("scapy (for /usr/bin/python3)", scapy.is_ok_and(|o| o.status.success()));
    let tshark = Command::new("tshark").arg("--version").output();
    require("tshark", tshark.is_ok_and(|o| o.status.success()));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/esp_interop.py");
    let out = Command::new(PYTHON)
        .arg(&script)
        .args(["--ipsecgw", env!("CARGO_BIN_EXE_ipsecgw")])
        .output()
        .expect("run the interop script");
    // Shown by the test harness on failure, or with --nocapture: the interop matrix.
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} failed ({}); its report is above", script.display(), out.status);
}
