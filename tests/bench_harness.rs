//! `ipsecgw bench` end to end on DPDK virtual devices: a row with thousands of policies
//! forwards what it receives. Its configuration fills the worker's ring, which once lost the
//! next hop's static neighbour entry, and with it every packet: the row reported 0 Mpps and
//! passed (a round whose traffic does not leave the gateway now fails).

use std::process::Command;

#[test]
fn a_row_with_thousands_of_policies_forwards_every_packet() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipsecgw"))
        .args(["bench", "--policies", "4000", "--rounds", "1", "--seconds", "1", "--warmup", "1", "--no-ceiling"])
        .output()
        .expect("run ipsecgw bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for feed in ["median: ours ", "median: ours on the built-in generator "] {
        let line = text.lines().find(|l| l.starts_with(feed)).unwrap_or_else(|| panic!("no {feed:?} line:\n{text}"));
        let mpps: f64 = line[feed.len()..].split_whitespace().next().and_then(|v| v.parse().ok()).expect(line);
        assert!(mpps > 0.0, "{line}");
    }
    // The row's cost against one policy, measured in the same rounds.
    let cost = "median: cost of 4000 policies on the built-in generator, cycles/packet against one policy in the same round = ";
    let line = text.lines().find(|l| l.starts_with(cost)).unwrap_or_else(|| panic!("no cost line:\n{text}"));
    let factor: f64 = line[cost.len()..].trim().parse().expect(line);
    assert!(factor.is_finite() && factor > 0.0, "{line}");
}
