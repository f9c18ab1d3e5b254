//! The dataplane outlives its control process: after `kill -9` of `ipsecgw control` the
//! dataplane keeps running, starts a new control process, and that one resynchronises without
//! reinstalling anything: the SAs that carried traffic keep their sequence numbers, counters
//! and installation times. A configuration change afterwards leaves the unchanged SAs alone too.
//!
//! Traffic: the LAN port is DPDK's `net_pcap` replaying five UDP packets from 10.1.0.5 to
//! 10.2.0.5, which the encrypt policy seals with the outbound SA (spi 259, sequence 1..5).

mod ctl_support;

use std::time::Duration;

use ctl_support::{Gateway, TempDir, kill9, r1_config, write_udp_pcap};

const PACKETS: u16 = 5;

#[test]
fn a_killed_control_process_is_restarted_and_resyncs_without_reinstalling() {
    let dir = TempDir::new("ctl-respawn");
    let pcap = dir.path("lan-in.pcap");
    write_udp_pcap(&pcap, PACKETS);
    let lan = format!("net_pcap0,rx_pcap={},tx_pcap={}", pcap.display(), dir.path("lan-out.pcap").display());
    let config = dir.path("gw.rsc");
    std::fs::write(&config, r1_config(&lan, "net_null1,no-rx=1")).unwrap();
    let mut gw = Gateway::start(&config, &dir.0);

    // The packets went through the outbound SA.
    let sealed = format!("direction=out sa-type=esp spi=259 seq={PACKETS} packets={PACKETS} ");
    gw.wait_until(Duration::from_secs(10), |gw| gw.sa_lines().iter().any(|l| l.contains(&sealed)));
    let sealed_line = gw.sa_lines().into_iter().find(|l| l.contains(&sealed)).unwrap();
    let forwarded = gw.stat("forwarded");
    assert_eq!(forwarded, u64::from(PACKETS));

    // A change adds a policy in front of the first one and keeps the SAs that carried traffic.
    // The file now lists the policies in another order than they were created in, so a fresh
    // parse numbers them differently from the running ids: the restarted control process must
    // adopt the running ids for its resync to recognise the SAs.
    gw.must(&[
        "/ip ipsec manual-sa add name=sa2 esp-enc-key=k2/k1 esp-auth-key=none esp-spi=400/401",
        "/ip ipsec policy add src-address=10.1.0.0/24 dst-address=10.4.0.0/24 action=encrypt tunnel=yes \
         sa-src-address=192.0.2.1 sa-dst-address=192.0.2.4 manual-sa=sa2",
        "/ip ipsec policy move 1 0",
    ]);
    gw.wait_for("1 inbound and 1 outbound SA sets installed, 0 removed, 2 kept", Duration::from_secs(5));
    let sas = gw.sa_lines();
    assert_eq!(sas.len(), 4, "{sas:?}");
    assert!(sas.contains(&sealed_line), "the change reinstalled the SA that carried traffic: {sas:?}");
    let print = gw.must(&["/ip ipsec installed-sa print"]);
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(file.find("10.4.0.0/24") < file.find("10.2.0.0/24"), "{file}");

    // kill -9 the control process: the dataplane keeps running and starts another.
    let first = gw.stat("control-pid") as u32;
    assert_eq!(gw.stat("control-restarts"), 0);
    gw.drain();
    let applied_before = applied(&gw);
    kill9(first);
    gw.wait_for("control process exited", Duration::from_secs(5));
    assert!(gw.alive(), "the dataplane died with its control process");
    gw.wait_until(Duration::from_secs(20), |gw| {
        let e = gw.exec(&["stats"]);
        e.ok && e.stdout.contains("control-restarts=1") && !e.stdout.contains(&format!("control-pid={first}\n"))
    });
    gw.drain();

    // The resynchronised state is the same SAs, not reinstalled ones: sequence numbers,
    // counters and installation times all carried on.
    assert_eq!(gw.sa_lines(), sas);
    assert_eq!(gw.must(&["/ip ipsec installed-sa print"]), print);
    assert_eq!(gw.stat("forwarded"), forwarded, "forwarding state survived");
    assert_eq!(applied(&gw), applied_before, "the resync pushed something: {:?}", gw.seen);

    // The new control process accepts changes, again keeping what did not change.
    gw.must(&["/ip ipsec policy add src-address=10.1.0.0/24 dst-address=10.5.0.0/24 action=drop"]);
    assert_eq!(gw.sa_lines(), sas);
    let lines = gw.stop();
    assert!(
        lines.iter().any(|l| l.contains("0 inbound and 0 outbound SA sets installed, 0 removed, 4 kept, SPD swapped"))
    );
}

fn applied(gw: &Gateway) -> usize {
    gw.seen.iter().filter(|l| l.contains("configuration applied")).count()
}
