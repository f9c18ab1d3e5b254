//! IKEv1 end to end with strongSwan: our gateway (`ipsecgw run`, DPDK `net_af_packet` on veths in
//! namespace `gw`) between host h1 (10.1.0.10) and charon (namespace `sw`, WAN 192.0.2.2, its
//! LAN address 10.2.0.1 on lo, userspace ESP from kernel-libipsec, which only speaks ESP in UDP,
//! so NAT-T is forced on both sides). The control process negotiates through the dataplane,
//! installs the SAs it gets, and h1's pings to 10.2.0.1 are answered.
//!
//! Per case: who initiates (our gateway, triggered by h1's ping hitting a `level=require` policy;
//! or charon, by `swanctl --initiate`), the algorithms, that the ping starts answering (and how
//! long after its first packet), and that both sides list the same SPIs. A wrong secret must
//! fail. Needs root, iproute2, ping and strongSwan (`scripts/setup.sh`); fails, never skips,
//! without them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod netns_support;

use netns_support::{Proc, must, sh};

const CHARON: &str = "/usr/lib/ipsec/charon";
const PLUGINS: &str = "/usr/lib/ipsec/plugins";
const GW_WAN: &str = "192.0.2.1";
const SW_WAN: &str = "192.0.2.2";
const SW_LAN_ADDR: &str = "10.2.0.1";
const SECRET: &str = "gwejimezyfopmekun";
/// Echo requests are sent this often while the SAs are negotiated.
const PING_INTERVAL: f64 = 0.1;

/// Fails (never skips) when a tool the test needs is missing.
fn require_tools() {
    let has = |args: &[&str]| Command::new(args[0]).args(&args[1..]).output().is_ok_and(|o| o.status.success());
    for p in [CHARON, "/usr/sbin/swanctl", &format!("{PLUGINS}/libstrongswan-kernel-libipsec.so")] {
        assert!(Path::new(p).exists(), "{p} is missing: run scripts/setup.sh (it installs strongSwan)");
    }
    for (what, ok) in [("ip netns (iproute2, and root)", has(&["ip", "netns", "list"])), ("ping", has(&["ping", "-V"]))]
    {
        assert!(ok, "{what} is missing: run scripts/setup.sh as root");
    }
}

/// One combination.
struct Case {
    name: &'static str,
    /// charon initiates (`swanctl --initiate`) instead of our gateway (on traffic).
    charon_initiates: bool,
    aggressive: bool,
    /// charon's IKE and ESP proposals.
    ike: &'static str,
    esp: &'static str,
    /// Our `/ip ipsec peer` and `/ip ipsec proposal` arguments.
    peer: &'static str,
    proposal: &'static str,
    /// Our secret (charon's is [`SECRET`]).
    secret: &'static str,
}

/// One lab at a time: each gateway busy-polls both cores of these machines.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The namespaces, charon and the gateway of one case; all removed on drop.
struct Lab {
    _serial: std::sync::MutexGuard<'static, ()>,
    gw: String,
    h1: String,
    sw: String,
    dir: PathBuf,
    charon: Option<Proc>,
    gateway: Option<Proc>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        require_tools();
        let serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = format!("{tag}{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("ipsecgw-ike-e2e-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            _serial: serial,
            gw: format!("iie-gw-{id}"),
            h1: format!("iie-h1-{id}"),
            sw: format!("iie-sw-{id}"),
            dir,
            charon: None,
            gateway: None,
        };
        for n in [&lab.gw, &lab.h1, &lab.sw] {
            let _ = sh(&["ip", "netns", "del", n]);
            must(&["ip", "netns", "add", n]);
            must(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        for (host, gw_if, addr) in [(&lab.h1, "gw-lan", "10.1.0.10/24"), (&lab.sw, "gw-wan", "192.0.2.2/24")] {
            must(&["ip", "-n", &lab.gw, "link", "add", gw_if, "type", "veth", "peer", "name", "eth0", "netns", host]);
            must(&["ip", "-n", &lab.gw, "link", "set", gw_if, "up"]);
            must(&["ip", "-n", host, "addr", "add", addr, "dev", "eth0"]);
            must(&["ip", "-n", host, "link", "set", "eth0", "up"]);
            // af_packet hands the gateway frames as the kernel built them: no checksum offload.
            for (ns, dev) in [(host.as_str(), "eth0"), (lab.gw.as_str(), gw_if)] {
                let _ = sh(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "rx", "off"]);
            }
        }
        must(&["ip", "-n", &lab.h1, "route", "add", "default", "via", "10.1.0.1"]);
        // charon's LAN: its address on lo, the source of what it routes into the tunnel.
        must(&["ip", "-n", &lab.sw, "addr", "add", "10.2.0.1/24", "dev", "lo"]);
        lab
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Writes charon's configuration (the IKE interop test's fixtures) and starts it.
    fn start_charon(&mut self, c: &Case) {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("control/tests/fixtures/ike/strongswan");
        let vars = [
            ("@DIR@", self.dir.to_string_lossy().into_owned()),
            ("@LOCAL@", SW_WAN.into()),
            ("@REMOTE@", GW_WAN.into()),
            ("@AGGRESSIVE@", if c.aggressive { "yes" } else { "no" }.into()),
            ("@IKE@", c.ike.into()),
            ("@ESP@", c.esp.into()),
            ("@LOCAL_TS@", "10.2.0.0/24".into()),
            ("@REMOTE_TS@", "10.1.0.0/24".into()),
            ("@PSK@", SECRET.into()),
        ];
        for f in ["strongswan.conf", "swanctl.conf"] {
            let mut text = std::fs::read_to_string(fixtures.join(f)).expect("fixture");
            for (k, v) in &vars {
                text = text.replace(k, v);
            }
            std::fs::write(self.dir.join(f), text).unwrap();
        }
        let conf = self.path("strongswan.conf");
        // A private /run for its pid file: each charon in its own mount namespace.
        let cmd = format!("mount -t tmpfs tmpfs /run && exec {CHARON}");
        self.charon = Some(Proc::start(
            "charon",
            &self.sw,
            &["unshare", "-m", "sh", "-c", &cmd],
            &[("STRONGSWAN_CONF", conf.as_str())],
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(Path::new(&self.path("charon.vici")).exists() && self.swanctl(&["--stats"]).0) {
            assert!(Instant::now() < deadline, "charon did not come up: {}", self.read("charon.log"));
            std::thread::sleep(Duration::from_millis(50));
        }
        let (ok, out) = self.swanctl(&["--load-all", "--file", &self.path("swanctl.conf")]);
        assert!(ok, "swanctl --load-all: {out}");
    }

    fn swanctl(&self, args: &[&str]) -> (bool, String) {
        let uri = format!("unix://{}", self.path("charon.vici"));
        let out = Command::new("swanctl")
            .args(args)
            .args(["--uri", &uri])
            .env("STRONGSWAN_CONF", self.path("strongswan.conf"))
            .stdin(Stdio::null())
            .output()
            .expect("swanctl");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// Writes our configuration and starts the gateway.
    fn start_gateway(&mut self, c: &Case) {
        let mode = if c.aggressive { "aggressive" } else { "main" };
        let config = format!(
            "/interface\n\
             add name=lan device=\"net_af_packet0,iface=gw-lan\"\n\
             add name=wan device=\"net_af_packet1,iface=gw-wan\"\n\
             /ip address\n\
             add address=10.1.0.1/24 interface=lan\n\
             add address={GW_WAN}/24 interface=wan\n\
             /ip ipsec proposal\n\
             add name=p1 {}\n\
             /ip ipsec peer\n\
             add address={SW_WAN}/32 exchange-mode={mode} {}\n\
             /ip ipsec pre-shared-secret\n\
             add address={SW_WAN} secret=\"{}\"\n\
             /ip ipsec policy\n\
             add src-address=10.1.0.0/24 dst-address=10.2.0.0/24 action=encrypt level=require tunnel=yes \
             sa-src-address={GW_WAN} sa-dst-address={SW_WAN} proposal=p1\n",
            c.proposal, c.peer, c.secret
        );
        let path = self.dir.join("gw.rsc");
        std::fs::write(&path, config).unwrap();
        let socket = self.path("ctl.sock");
        let bin = env!("CARGO_BIN_EXE_ipsecgw");
        let mut gw = Proc::start(
            "ipsecgw run",
            &self.gw,
            &[bin, "run", "--config", path.to_str().unwrap(), "--socket", &socket, "--seconds", "90", "--force-nat-t"],
            &[],
        );
        gw.wait_for("control: serving", Duration::from_secs(30)).unwrap();
        self.gateway = Some(gw);
    }

    /// Waits until both sides list the same single SA pair, other than `not`; returns its SPIs.
    fn wait_for_one_pair(&self, limit: Duration, not: &[u32], log: &str) -> Vec<u32> {
        let deadline = Instant::now() + limit;
        loop {
            let ours = our_spis(&self.exec("/ip ipsec installed-sa print"));
            let theirs = charon_spis(&self.swanctl(&["--list-sas"]).1);
            if ours.len() == 2 && ours == theirs && ours != not {
                return ours;
            }
            assert!(Instant::now() < deadline, "ours {ours:x?} charon {theirs:x?}\n{log}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Returns one `stats` counter of our gateway.
    fn stat(&self, name: &str) -> u64 {
        self.exec("stats").lines().find_map(|l| l.strip_prefix(&format!("{name}="))?.parse().ok()).unwrap_or(0)
    }

    /// Runs console commands on our gateway.
    fn exec(&self, cmd: &str) -> String {
        let bin = env!("CARGO_BIN_EXE_ipsecgw");
        must(&[bin, "exec", "--socket", &self.path("ctl.sock"), cmd])
    }

    /// Pings charon's LAN address from h1 every [`PING_INTERVAL`]; returns the sequence number
    /// of the first reply, the seconds from the start of the ping to that reply, and the
    /// replies out of `count`.
    fn ping(&self, count: u32) -> (Option<u32>, f64, u32, String) {
        ping_from(&self.h1, count)
    }
}

/// Pings charon's LAN address from namespace `ns`; see [`Lab::ping`].
fn ping_from(ns: &str, count: u32) -> (Option<u32>, f64, u32, String) {
    let (c, i) = (count.to_string(), PING_INTERVAL.to_string());
    let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let (_, out) = sh(&["ip", "netns", "exec", ns, "ping", "-D", "-n", "-c", &c, "-i", &i, "-W", "1", SW_LAN_ADDR]);
    // "[1764316039.123456] 64 bytes from 10.2.0.1: icmp_seq=2 ttl=63 time=0.5 ms"
    let first = out.lines().find(|l| l.contains("icmp_seq="));
    let seq =
        first.and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("icmp_seq=")).and_then(|n| n.parse().ok()));
    let at =
        first.and_then(|l| l.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok()).map_or(f64::NAN, |t| t - t0);
    let got =
        out.split(", ").find_map(|f| f.strip_suffix(" received").and_then(|n| n.trim().parse().ok())).unwrap_or(0);
    (seq, at, got, out)
}

impl Drop for Lab {
    fn drop(&mut self) {
        drop(self.gateway.take());
        drop(self.charon.take());
        for n in [&self.gw, &self.h1, &self.sw] {
            let _ = sh(&["ip", "netns", "del", n]);
        }
        if std::thread::panicking() {
            eprintln!("files kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Returns the hex SPIs (`spi=0x...`) our `installed-sa print` lists, as numbers.
fn our_spis(print: &str) -> Vec<u32> {
    let mut v: Vec<u32> = print
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("spi="))
        .filter_map(|s| {
            let s = s.trim_matches('"');
            s.strip_prefix("0x").map_or_else(|| s.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
        })
        .collect();
    v.sort_unstable();
    v
}

/// Returns the SPIs of the CHILD_SAs charon's `swanctl --list-sas` shows (its `in` and `out`
/// lines: `    in  c36882f1,      0 bytes, ...`).
fn charon_spis(list: &str) -> Vec<u32> {
    let mut v: Vec<u32> = list
        .lines()
        .map(str::trim_start)
        .filter_map(|l| l.strip_prefix("in ").or_else(|| l.strip_prefix("out ")))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|h| u32::from_str_radix(h.trim_end_matches(','), 16).ok())
        .collect();
    v.sort_unstable();
    v
}

fn run(c: &Case, tag: &str) {
    let mut lab = Lab::new(tag);
    let started = Instant::now();
    lab.start_charon(c);
    lab.start_gateway(c);
    if c.charon_initiates {
        let (ok, out) = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "20"]);
        assert!(ok, "{}: charon could not initiate: {out}\n{}", c.name, lab.read("charon.log"));
    }
    let (first, secs, got, out) = lab.ping(40);
    let gw_log = lab.gateway.as_mut().map(Proc::output).unwrap_or_default();
    let Some(first) = first else {
        panic!(
            "{}: no ping answered\n{out}\nours:\n{gw_log}\n{}\ncharon:\n{}",
            c.name,
            lab.exec("stats"),
            lab.read("charon.log")
        );
    };
    // Everything after the SAs are up is answered.
    assert_eq!(
        got,
        40 - first + 1,
        "{}: replies lost after the first\n{out}\nours:\n{gw_log}\n{}",
        c.name,
        lab.exec("stats")
    );
    let print = lab.exec("/ip ipsec installed-sa print");
    let ours = our_spis(&print);
    let (_, list) = lab.swanctl(&["--list-sas"]);
    let theirs = charon_spis(&list);
    assert_eq!(ours.len(), 2, "{}: one SA each way: {ours:x?}", c.name);
    // Live counters: both SAs carried the pings.
    let bytes: Vec<u64> = print
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("current-bytes=").and_then(|n| n.parse().ok()))
        .collect();
    assert!(bytes.len() == 2 && bytes.iter().all(|&b| b >= 84 * 30), "{}: counters {bytes:?}\n{print}", c.name);
    assert_eq!(ours, theirs, "{}: the same SPIs on both sides\n{list}", c.name);
    let gw = lab.gateway.take().unwrap();
    let report = gw.stop("-TERM");
    println!(
        "{}: first reply to icmp_seq={first}, {:.0} ms after the first echo request (one every {PING_INTERVAL} s); \
         {got} of {} answered from then on; SPIs {ours:x?}; case took {:.1} s",
        c.name,
        secs * 1000.0,
        40 - first + 1,
        started.elapsed().as_secs_f64()
    );
    assert!(report.contains("SAs with 192.0.2.2 up"), "{report}");
    // The negotiated keys (installed-sa print shows them to the console) are never logged.
    let keys: Vec<String> = print
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("enc-key=\"").or_else(|| w.strip_prefix("auth-key=\"")))
        .map(|k| k.trim_end_matches('"').to_ascii_lowercase())
        .filter(|k| k.len() >= 16)
        .collect();
    assert!(!keys.is_empty(), "installed-sa print shows the keys: {print}");
    for k in &keys {
        assert!(!report.to_ascii_lowercase().contains(&k[..16]), "{}: a key in our log", c.name);
    }
}

/// We initiate, main mode aes128-sha1-modp1024, ESP aes128-sha1, 30 minutes.
fn we_initiate_aes128_sha1(name: &'static str) -> Case {
    Case {
        name,
        charon_initiates: false,
        aggressive: false,
        ike: "aes128-sha1-modp1024",
        esp: "aes128-sha1",
        peer: "enc-algorithm=aes-128 hash-algorithm=sha dh-group=modp1024",
        proposal: "enc-algorithms=aes-128 auth-algorithms=sha1 pfs-group=none lifetime=30m",
        secret: SECRET,
    }
}

const CISCO_PEER: &str = "enc-algorithm=3des hash-algorithm=sha dh-group=modp1024";

#[test]
fn ike_with_strongswan_end_to_end() {
    let cases = [
        Case {
            name: "we initiate, main mode 3des-sha1-modp1024, ESP 3des-sha1 (the manual's Cisco example)",
            charon_initiates: false,
            aggressive: false,
            ike: "3des-sha1-modp1024",
            esp: "3des-sha1",
            peer: CISCO_PEER,
            proposal: "enc-algorithms=3des auth-algorithms=sha1 pfs-group=none lifetime=30m",
            secret: SECRET,
        },
        Case {
            name: "charon initiates, main mode 3des-sha1-modp1024, ESP aes128-sha1",
            charon_initiates: true,
            aggressive: false,
            ike: "3des-sha1-modp1024",
            esp: "aes128-sha1",
            peer: CISCO_PEER,
            proposal: "enc-algorithms=aes-128 auth-algorithms=sha1 pfs-group=none lifetime=30m",
            secret: SECRET,
        },
        Case {
            name: "charon initiates, main mode 3des-sha1-modp1024, ESP des-sha1 (the manual's example phase 2)",
            charon_initiates: true,
            aggressive: false,
            ike: "3des-sha1-modp1024",
            esp: "des-sha1",
            peer: CISCO_PEER,
            proposal: "enc-algorithms=des auth-algorithms=sha1 pfs-group=none lifetime=30m",
            secret: SECRET,
        },
        Case {
            name: "we initiate, main mode aes128-sha1-modp1024, ESP aes128gcm16 with PFS modp1024",
            charon_initiates: false,
            aggressive: false,
            ike: "aes128-sha1-modp1024",
            esp: "aes128gcm16-modp1024",
            peer: "enc-algorithm=aes-128 hash-algorithm=sha dh-group=modp1024",
            proposal: "enc-algorithms=aes-128-gcm auth-algorithms=null pfs-group=modp1024 lifetime=30m",
            secret: SECRET,
        },
        Case {
            name: "we initiate, aggressive mode aes128-sha1-modp1024, ESP aes128-sha1",
            charon_initiates: false,
            aggressive: true,
            ike: "aes128-sha1-modp1024",
            esp: "aes128-sha1",
            peer: "enc-algorithm=aes-128 hash-algorithm=sha dh-group=modp1024",
            proposal: "enc-algorithms=aes-128 auth-algorithms=sha1 pfs-group=none lifetime=30m",
            secret: SECRET,
        },
        Case {
            name: "charon initiates, main mode 3des-sha1-modp1024, ESP aes128gcm16",
            charon_initiates: true,
            aggressive: false,
            ike: "3des-sha1-modp1024",
            esp: "aes128gcm16",
            peer: CISCO_PEER,
            proposal: "enc-algorithms=aes-128-gcm auth-algorithms=null pfs-group=none lifetime=30m",
            secret: SECRET,
        },
    ];
    for (i, c) in cases.iter().enumerate() {
        run(c, &format!("c{i}"));
    }
}

#[test]
fn a_wrong_secret_fails_and_nothing_passes_in_clear() {
    let c = Case {
        name: "wrong secret",
        charon_initiates: true,
        aggressive: false,
        ike: "3des-sha1-modp1024",
        esp: "3des-sha1",
        peer: CISCO_PEER,
        proposal: "enc-algorithms=3des auth-algorithms=sha1 pfs-group=none lifetime=30m",
        secret: "not-the-secret",
    };
    let mut lab = Lab::new("w");
    lab.start_charon(&c);
    lab.start_gateway(&c);
    // charon initiates: its main-mode message 5 does not verify with our secret. (charon, as
    // responder, silently drops our undecryptable message 5: we would only time out.)
    let (ok, out) = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "8"]);
    assert!(!ok, "charon must not get SAs with a wrong secret: {out}");
    let mut gw = lab.gateway.take().unwrap();
    let failed = gw.wait_for("failed: AuthenticationFailed", Duration::from_secs(20));
    lab.gateway = Some(gw);
    let (first, _, got, out) = lab.ping(10);
    assert_eq!((first, got), (None, 0), "a wrong secret must not carry traffic: {out}");
    let print = lab.exec("/ip ipsec installed-sa print");
    assert!(our_spis(&print).is_empty(), "no SA with a wrong secret: {print}");
    let report = lab.gateway.take().unwrap().stop("-TERM");
    assert!(failed.is_ok(), "our log names the failure: {report}\ncharon:\n{}", lab.read("charon.log"));
    let no_sa = report.lines().find_map(|l| l.strip_prefix("drop no-sa=")).and_then(|n| n.parse::<u32>().ok());
    assert_eq!(no_sa, Some(10), "every echo request dropped and counted (level=require, no SA): {report}");
}

#[test]
fn our_rekey_at_the_soft_lifetime_keeps_the_ping_going() {
    // Our phase 2 lifetime is 20 s: at 16 s (80 %) we negotiate a new pair, send on it at once,
    // and keep decrypting on the old one until its hard lifetime; the peer is told to drop it.
    let c = Case {
        proposal: "enc-algorithms=aes-128 auth-algorithms=sha1 pfs-group=none lifetime=20s",
        ..we_initiate_aes128_sha1("rekey")
    };
    let mut lab = Lab::new("r");
    lab.start_charon(&c);
    lab.start_gateway(&c);
    let count = 240; // 24 s at 0.1 s
    let (first, _, got, out) = lab.ping(count);
    let first = first.unwrap_or_else(|| panic!("no ping answered: {out}"));
    let log = lab.gateway.as_mut().map(Proc::output).unwrap_or_default();
    let answered_after_first = count - first + 1;
    assert!(
        got + 1 >= answered_after_first,
        "at most one echo lost across the rekey: {got} of {answered_after_first}\n{out}\n{log}"
    );
    assert!(log.contains("soft lifetime reached, rekeying"), "{log}");
    let ups = log.matches("SAs with 192.0.2.2 up").count();
    assert!(ups >= 2, "a second pair: {log}");
    // The old pair is gone on both sides: one SA each way, the same SPIs.
    let ours = lab.wait_for_one_pair(Duration::from_secs(10), &[], &log);
    println!("rekey: {got} of {answered_after_first} echo requests answered across it; SPIs now {ours:x?}");
}

#[test]
fn killing_the_control_process_keeps_the_negotiated_tunnel_up() {
    // The dataplane keeps the SAs; the restarted control process adopts them and negotiates new
    // ones with charon (INITIAL-CONTACT makes charon drop the old ones), traffic flowing.
    let c = we_initiate_aes128_sha1("control restart");
    let mut lab = Lab::new("k");
    lab.start_charon(&c);
    lab.start_gateway(&c);
    let (first, _, _, out) = lab.ping(10);
    assert!(first.is_some(), "tunnel up first: {out}");
    let before = our_spis(&lab.exec("/ip ipsec installed-sa print"));
    let pid = lab.stat("control-pid");
    assert!(pid > 0, "the control process's pid in stats");
    let pid = pid.to_string();
    let count = 100u32;
    let pinger = std::thread::scope(|s| {
        let h1 = lab.h1.clone();
        let h = s.spawn(move || ping_from(&h1, count));
        std::thread::sleep(Duration::from_secs(2));
        must(&["kill", "-9", &pid]);
        h.join().unwrap()
    });
    let (_, _, got, out) = pinger;
    let log = lab.gateway.as_mut().map(Proc::output).unwrap_or_default();
    assert!(log.contains("adopted from the dataplane"), "{log}");
    assert!(got + 2 >= count, "at most two echo requests lost across the restart: {got} of {count}\n{out}\n{log}");
    let ours = lab.wait_for_one_pair(Duration::from_secs(15), &before, &log);
    println!("control restart: {got} of {count} echo requests answered across it; SPIs {before:x?} -> {ours:x?}");
}

#[test]
fn replayed_esp_from_the_peer_is_dropped_and_counted() {
    // charon's ESP (in UDP 4500) captured on the wire and sent again, five times over: the
    // negotiated inbound SA's anti-replay window drops every copy, the tunnel carries on.
    let c = we_initiate_aes128_sha1("replays");
    let mut lab = Lab::new("p");
    lab.start_charon(&c);
    lab.start_gateway(&c);
    let (first, _, _, out) = lab.ping(5);
    assert!(first.is_some(), "tunnel up first: {out}");
    let capture = lab.path("from-charon.pcap");
    let mut dumpcap = Proc::start(
        "dumpcap",
        &lab.sw,
        &["dumpcap", "-i", "eth0", "-f", "udp and src host 192.0.2.2 and dst port 4500", "-w", &capture],
        &[],
    );
    dumpcap.wait_for("Capturing on", Duration::from_secs(10)).unwrap();
    let (_, _, got, out) = lab.ping(20);
    assert_eq!(got, 20, "{out}");
    std::thread::sleep(Duration::from_millis(300));
    dumpcap.stop("-INT");
    let before = (lab.stat("drop-replayed"), lab.stat("drop-too-old"));
    let script = format!(
        "from scapy.all import rdpcap, sendp, UDP\n\
         p = [x for x in rdpcap('{capture}') if UDP in x and len(x[UDP].payload) > 8 \\\n\
              and bytes(x[UDP].payload)[:4] != bytes(4)]\n\
         assert len(p) >= 10, len(p)\n\
         for _ in range(5): sendp(p, iface='eth0', verbose=False)\n\
         print('sent', 5 * len(p))"
    );
    let sent = must(&["ip", "netns", "exec", &lab.sw, "/usr/bin/python3", "-c", &script]);
    let n: u64 = sent.trim().strip_prefix("sent ").and_then(|v| v.parse().ok()).expect("scapy's count");
    std::thread::sleep(Duration::from_millis(500));
    let after = (lab.stat("drop-replayed"), lab.stat("drop-too-old"));
    let dropped = (after.0 - before.0) + (after.1 - before.1);
    println!("replays: {n} copies of charon's ESP sent again, {dropped} dropped as replayed or too old");
    assert_eq!(dropped, n, "every replayed copy dropped and counted (none forwarded)");
    let (_, _, got, out) = lab.ping(5);
    assert_eq!(got, 5, "the tunnel carries on: {out}");
}
