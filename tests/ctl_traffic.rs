//! Configuration changes under traffic: a LAN host's packets (DPDK's `net_pcap` replaying them
//! without end) are sealed by one policy's outbound SA while the console changes everything
//! around it: policies added in front of it, another policy's SAs installed, rekeyed, disabled
//! and enabled, the policy itself changed without touching its SAs, and the control process
//! killed and restarted. The SA is never reinstalled (its sequence number only grows) and no
//! packet is dropped for want of an SA or policy.

mod ctl_support;

use std::time::Duration;

use ctl_support::{Gateway, TempDir, kill9, r1_config, write_arp_reply_pcap, write_udp_pcap};

/// Returns the sequence number of the outbound SA spi 259.
fn seq(gw: &Gateway) -> u64 {
    let lines = gw.sa_lines();
    let l = lines.iter().find(|l| l.contains("direction=out sa-type=esp spi=259 ")).expect("SA 259 installed");
    l.split_whitespace().find_map(|w| w.strip_prefix("seq=")).unwrap().parse().unwrap()
}

/// Returns the counters that must not grow while the configuration changes.
fn losses(gw: &Gateway) -> Vec<(String, u64)> {
    let out = gw.must(&["stats"]);
    ["drop-no-sa", "drop-policy-drop", "drop-no-route", "slow-path-hold-dropped"]
        .iter()
        .map(|name| {
            let prefix = format!("{name}=");
            (name.to_string(), out.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.parse().unwrap()))
        })
        .collect()
}

#[test]
fn changes_under_traffic_keep_the_sa_and_lose_nothing() {
    let dir = TempDir::new("ctl-traffic");
    let (lan_in, wan_in) = (dir.path("lan-in.pcap"), dir.path("wan-in.pcap"));
    write_udp_pcap(&lan_in, 8);
    write_arp_reply_pcap(&wan_in);
    let lan = format!("net_pcap0,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", lan_in.display());
    let wan = format!("net_pcap1,rx_pcap={},tx_pcap=/dev/null", wan_in.display());
    let config = dir.path("gw.rsc");
    std::fs::write(&config, r1_config(&lan, &wan)).unwrap();
    let mut gw = Gateway::start(&config, &dir.0);

    // Traffic flows, sealed, and the WAN next hop is resolved (from the replayed ARP reply).
    gw.wait_until(Duration::from_secs(20), |gw| gw.stat("slow-path-arp-learned") > 0 && seq(gw) > 10_000);
    std::thread::sleep(Duration::from_millis(200));
    let base = losses(&gw);
    let mut last = seq(&gw);
    let k = |n: u8| format!("0x{}", format!("{n:02x}").repeat(20));
    let steps: Vec<Vec<String>> = vec![
        vec!["/ip ipsec policy add src-address=10.9.0.0/24 dst-address=10.8.0.0/24 action=drop".into()],
        vec!["/ip ipsec policy move 1 0".into()],
        vec![
            format!("/ip ipsec key add name=k3 algorithm=aes-gcm length=160 key={}", k(0x33)),
            "/ip ipsec manual-sa add name=sa2 esp-enc-key=k3/k3 esp-auth-key=none esp-spi=300/301".into(),
            "/ip ipsec policy add src-address=10.1.0.0/24 dst-address=10.3.0.0/24 action=encrypt tunnel=yes \
             sa-src-address=192.0.2.1 sa-dst-address=192.0.2.3 manual-sa=sa2"
                .into(),
        ],
        vec![format!("/ip ipsec key set k3 key={}", k(0x44))],
        vec!["/ip ipsec policy disable 2".into()],
        vec!["/ip ipsec policy enable 2".into()],
        vec!["/ip ipsec policy set 1 level=use".into()],
        vec!["kill".into()],
        vec!["/ip ipsec policy remove 0".into()],
        vec!["/ip ipsec manual-sa set sa2 esp-spi=302/303".into()],
    ];
    for step in &steps {
        if step[0] == "kill" {
            let pid = gw.stat("control-pid") as u32;
            let restarts = gw.stat("control-restarts");
            kill9(pid);
            gw.wait_until(Duration::from_secs(20), |gw| {
                let e = gw.exec(&["stats"]);
                e.ok && e.stdout.contains(&format!("control-restarts={}\n", restarts + 1))
            });
        } else {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            gw.must(&args);
        }
        std::thread::sleep(Duration::from_millis(100));
        let now = seq(&gw);
        assert!(now > last, "after {step:?}: sequence number {now} not past {last}: the SA was reinstalled");
        last = now;
    }
    assert_eq!(losses(&gw), base, "packets were lost during the changes");
    let print = gw.must(&["/ip ipsec policy print"]);
    assert!(print.contains("10.3.0.0/24") && !print.contains("10.9.0.0/24"), "{print}");
    // The console shows where the worker's cycles go, per stage.
    let runtime = gw.must(&["runtime"]);
    let ipsec = runtime.lines().find(|l| l.starts_with("ipsec ")).expect("an ipsec row");
    let packets: u64 = ipsec.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(packets > 0 && runtime.contains("cycles/packet"), "{runtime}");
    let lines = gw.stop();
    assert!(!lines.iter().any(|l| l.starts_with("drop no-sa") || l.starts_with("drop policy-drop")), "{lines:?}");
}
