//! The gateway as a router for real Linux hosts: network namespaces h1 and h2 (10.1.0.10 and
//! 10.2.0.20) reach it over veth pairs that it drives with DPDK's `net_af_packet`, from a third
//! namespace. It must answer ARP and ping, forward between the LANs, and send the ICMP errors
//! (and count the drops) of TTL expiry, no route and a DF packet larger than the MTU.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod child_lines;

/// Runs a command, returning its status and combined output.
fn sh(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn must(args: &[&str]) {
    let (ok, out) = sh(args);
    assert!(ok, "{args:?} failed: {out}");
}

/// Namespaces and veths of one run, removed on drop.
struct Topology {
    ns: [String; 3],
}

impl Topology {
    fn new() -> Topology {
        let id = std::process::id() % 100000;
        let ns = [format!("gwt-gw-{id}"), format!("gwt-h1-{id}"), format!("gwt-h2-{id}")];
        let t = Topology { ns };
        let [gw, h1, h2] = [&t.ns[0], &t.ns[1], &t.ns[2]];
        for n in &t.ns {
            must(&["ip", "netns", "add", n]);
            must(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        for (host, gw_if, addr, gw_addr) in
            [(h1, "gw-lan1", "10.1.0.10/24", "10.1.0.1"), (h2, "gw-lan2", "10.2.0.20/24", "10.2.0.1")]
        {
            must(&["ip", "-n", gw, "link", "add", gw_if, "type", "veth", "peer", "name", "eth0", "netns", host]);
            must(&["ip", "-n", gw, "link", "set", gw_if, "up"]);
            must(&["ip", "-n", host, "addr", "add", addr, "dev", "eth0"]);
            must(&["ip", "-n", host, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", host, "route", "add", "default", "via", gw_addr]);
            // The gateway reads frames as the kernel hands them to af_packet: have the hosts
            // fill in their checksums instead of leaving them to an offload that is not there.
            for ns_if in [(host.as_str(), "eth0"), (gw.as_str(), gw_if)] {
                let _ = sh(&["ip", "netns", "exec", ns_if.0, "ethtool", "-K", ns_if.1, "tx", "off", "rx", "off"]);
            }
        }
        t
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for n in &self.ns {
            let _ = sh(&["ip", "netns", "del", n]);
        }
    }
}

/// The gateway process; killed on drop if still running.
struct Gateway {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Gateway {
    /// Runs the gateway in `ns` with `queues` queue pairs per port and the EAL lcores `lcores`
    /// (one worker per lcore after the first), from the fixture config in a private copy (the
    /// control process saves its configuration there).
    fn start(ns: &str, queues: u16, lcores: &str, dir: &std::path::Path) -> Gateway {
        let fixture = include_str!("fixtures/netns/router.rsc");
        let config = dir.join("router.rsc");
        std::fs::write(&config, fixture.replace("qpairs=QP", &format!("qpairs={queues}"))).unwrap();
        let socket = dir.join("ctl.sock");
        let (config, socket) = (config.to_str().unwrap(), socket.to_str().unwrap());
        let bin = env!("CARGO_BIN_EXE_ipsecgw");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, bin, "run", "--config", config, "--socket", socket, "--lcores", lcores])
            .args(["--seconds", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ipsecgw run");
        let lines = child_lines::collect(&mut child);
        let gw = Gateway { child, lines };
        gw.wait_for("running", Duration::from_secs(20));
        gw
    }

    /// Waits for a line containing `what`, returning everything seen until then.
    fn wait_for(&self, what: &str, timeout: Duration) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(what);
                    seen.push(line);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("gateway never printed {what:?}; output:\n{}", seen.join("\n"));
    }

    /// Stops the gateway with SIGTERM and returns its final report.
    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        self.lines.try_iter().collect()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(ns: &str, extra: &[&str], dst: &str) -> (bool, String) {
    let mut args = vec!["ip", "netns", "exec", ns, "ping", "-n", "-c", "2", "-W", "2"];
    args.extend_from_slice(extra);
    args.push(dst);
    sh(&args)
}

#[test]
fn routes_for_linux_hosts_over_af_packet() {
    // One worker; then two workers (three lcores on this machine's two CPUs), each polling its
    // own queue of both ports.
    for (queues, lcores) in [(1, "0,1"), (2, "0@0,1@1,2@1")] {
        routes_with(queues, lcores);
    }
}

fn routes_with(queues: u16, lcores: &str) {
    let (ok, out) = sh(&["ip", "netns", "list"]);
    assert!(ok, "ip netns unavailable ({out}): run scripts/setup.sh as root");
    let topo = Topology::new();
    let [gw_ns, h1, h2] = [&topo.ns[0], &topo.ns[1], &topo.ns[2]];
    let dir = std::env::temp_dir().join(format!("ipsecgw-netns-{}-{queues}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gw = Gateway::start(gw_ns, queues, lcores, &dir);

    // ARP and ping for the gateway's own addresses.
    let (ok, out) = ping(h1, &[], "10.1.0.1");
    assert!(ok, "h1 cannot ping its gateway:\n{out}");
    let (ok, out) = ping(h2, &[], "10.2.0.1");
    assert!(ok, "h2 cannot ping its gateway:\n{out}");
    // Forwarding between the LANs, both ways (the gateway resolves the far host itself).
    let (ok, out) = ping(h1, &[], "10.2.0.20");
    assert!(ok, "h1 cannot reach h2 through the gateway:\n{out}");
    assert!(out.contains("ttl=63"), "one hop: TTL decremented once:\n{out}");
    let (ok, out) = ping(h2, &[], "10.1.0.10");
    assert!(ok, "h2 cannot reach h1:\n{out}");
    // ICMP errors, each from the gateway's address on h1's LAN.
    let (_, out) = ping(h1, &["-t", "1"], "10.2.0.20");
    assert!(out.contains("From 10.1.0.1") && out.contains("Time to live exceeded"), "{out}");
    let (_, out) = ping(h1, &[], "172.16.0.1");
    assert!(out.contains("From 10.1.0.1") && out.contains("Unreachable"), "{out}");
    let (_, out) = ping(h1, &["-M", "do", "-s", "1450"], "10.2.0.20");
    assert!(out.contains("mtu = 1400") || out.contains("mtu=1400"), "fragmentation needed with the MTU:\n{out}");
    // Without DF the gateway fragments to the 1400-byte MTU and h2 reassembles.
    let (ok, out) = ping(h1, &["-M", "dont", "-s", "1450"], "10.2.0.20");
    assert!(ok && out.contains("1458 bytes from 10.2.0.20"), "fragmented ping:\n{out}");

    let report = gw.stop().join("\n");
    for want in ["drop ttl-exceeded=", "drop no-route=", "drop fragmentation-needed="] {
        assert!(report.contains(want), "{want} missing from the gateway's report:\n{report}");
    }
    assert!(!report.contains("drop bad-checksum"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
