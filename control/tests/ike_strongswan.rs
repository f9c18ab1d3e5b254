//! Interop of the IKEv1 engine with strongSwan: charon runs in one network namespace with
//! userspace ESP (kernel-libipsec, which only speaks ESP in UDP, so NAT-T is forced on both
//! sides), our engine runs in another through the `ipsecgw-ike-peer` driver, joined by a veth
//! pair. Each case checks that phase 1 and quick mode complete, that both sides hold the same
//! SPIs (mirrored), algorithms and keys (charon logs its keys), and that a wrong secret fails.
//!
//! Needs root, `ip` and strongSwan (`scripts/setup.sh` installs it); it fails, never skips,
//! without them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

const CHARON: &str = "/usr/lib/ipsec/charon";
const PLUGINS: &str = "/usr/lib/ipsec/plugins";
/// charon's side of the veth pair.
const SW: &str = "10.99.0.1";
/// Ours.
const GW: &str = "10.99.0.2";
/// The LANs behind each side: the traffic selectors.
const SW_LAN: &str = "10.2.0.0/24";
const GW_LAN: &str = "10.1.0.0/24";
const SECRET: &str = "gwejimezyfopmekun";
const PEER: &str = env!("CARGO_BIN_EXE_ipsecgw-ike-peer");

/// Fails with the fix when strongSwan or the tools are missing.
fn require_tools() {
    let need = [
        CHARON.to_string(),
        "/usr/sbin/swanctl".into(),
        format!("{PLUGINS}/libstrongswan-kernel-libipsec.so"),
        format!("{PLUGINS}/libstrongswan-gcm.so"),
        format!("{PLUGINS}/libstrongswan-openssl.so"),
    ];
    for p in &need {
        assert!(Path::new(p).exists(), "{p} is missing: run scripts/setup.sh (it installs strongSwan)");
    }
    let ip = Command::new("ip").arg("netns").arg("list").output();
    assert!(
        ip.is_ok_and(|o| o.status.success()),
        "`ip netns` does not work: these tests need root and iproute2 (scripts/setup.sh)"
    );
}

/// Runs a command and panics with its output when it fails.
fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One interop case: the two sides' settings.
#[derive(Clone, Debug)]
struct Case {
    /// charon's `aggressive`, our `exchange-mode`.
    aggressive: bool,
    /// charon's IKE proposal.
    ike: &'static str,
    /// charon's ESP proposal.
    esp: &'static str,
    /// Our `/ip ipsec peer` phase 1 arguments.
    peer: &'static str,
    /// Our `/ip ipsec proposal` arguments.
    proposal: &'static str,
    /// Our secret (charon always has [`SECRET`]).
    secret: &'static str,
}

/// The namespaces, charon and the driver of one case; all removed on drop.
struct Lab {
    sw_ns: String,
    gw_ns: String,
    dir: PathBuf,
    charon: Option<Child>,
    peer: Option<Child>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    /// Builds the namespaces and starts charon with the case's configuration.
    fn new(case: &Case) -> Lab {
        require_tools();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{:x}{n}", std::process::id());
        let dir = std::env::temp_dir().join(format!("ipsecgw-ike-sw-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut lab =
            Lab { sw_ns: format!("isgw-{tag}-sw"), gw_ns: format!("isgw-{tag}-gw"), dir, charon: None, peer: None };
        let (sw, gw) = (lab.sw_ns.clone(), lab.gw_ns.clone());
        sh(&["ip", "netns", "add", &sw]);
        sh(&["ip", "netns", "add", &gw]);
        let (va, vb) = (format!("is{tag}a"), format!("is{tag}b"));
        sh(&["ip", "link", "add", &va, "netns", &sw, "type", "veth", "peer", "name", &vb, "netns", &gw]);
        // Each LAN's first address sits on lo: charon routes the remote LAN from it.
        for (ns, dev, addr, lan) in [(&sw, &va, SW, "10.2.0.1/24"), (&gw, &vb, GW, "10.1.0.1/24")] {
            sh(&["ip", "-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "addr", "add", lan, "dev", "lo"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab.write_charon_config(case);
        lab.start_charon();
        lab
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn uri(&self) -> String {
        format!("unix://{}", self.path("charon.vici"))
    }

    fn write_charon_config(&self, case: &Case) {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ike/strongswan");
        let vars = [
            ("@DIR@", self.dir.to_string_lossy().into_owned()),
            ("@LOCAL@", SW.into()),
            ("@REMOTE@", GW.into()),
            ("@AGGRESSIVE@", if case.aggressive { "yes" } else { "no" }.into()),
            ("@IKE@", case.ike.into()),
            ("@ESP@", case.esp.into()),
            ("@LOCAL_TS@", SW_LAN.into()),
            ("@REMOTE_TS@", GW_LAN.into()),
            ("@PSK@", SECRET.into()),
        ];
        for f in ["strongswan.conf", "swanctl.conf"] {
            let mut text = std::fs::read_to_string(fixtures.join(f)).expect("fixture");
            for (k, v) in &vars {
                text = text.replace(k, v);
            }
            std::fs::write(self.dir.join(f), text).expect("write config");
        }
        let mode = if case.aggressive { "aggressive" } else { "main" };
        let gw = [
            format!("/ip ipsec proposal add name=p {}", case.proposal),
            format!("/ip ipsec peer add address={SW} exchange-mode={mode} {}", case.peer),
            format!("/ip ipsec pre-shared-secret add address={SW} secret=\"{}\"", case.secret),
            format!(
                "/ip ipsec policy add src-address={GW_LAN} dst-address={SW_LAN} action=encrypt \
                 sa-src-address={GW} sa-dst-address={SW} proposal=p tunnel=yes"
            ),
        ];
        std::fs::write(self.dir.join("gw.rsc"), gw.join("\n") + "\n").expect("write gw config");
    }

    /// Starts charon in its namespace with a private /run (its pid file), and loads swanctl.conf.
    fn start_charon(&mut self) {
        let log = std::fs::File::create(self.dir.join("charon.out")).expect("charon.out");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.sw_ns, "sh", "-c", &format!("mount -t tmpfs tmpfs /run && exec {CHARON}")])
            .env("STRONGSWAN_CONF", self.path("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start charon");
        self.charon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = self.dir.join("charon.vici").exists()
                && self.try_swanctl(&["--stats"], Duration::from_secs(2)).is_some_and(|o| o.status.success());
            if ok {
                break;
            }
            if let Some(Ok(Some(st))) = self.charon.as_mut().map(Child::try_wait) {
                panic!("charon exited ({st}): {}", self.read("charon.out"));
            }
            assert!(Instant::now() < deadline, "charon's vici socket did not come up: {}", self.read("charon.log"));
            std::thread::sleep(Duration::from_millis(50));
        }
        self.swanctl(&["--load-all", "--file", &self.path("swanctl.conf")]);
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Runs swanctl against this charon; None if it did not finish in time.
    fn try_swanctl(&self, args: &[&str], limit: Duration) -> Option<std::process::Output> {
        let mut child = Command::new("swanctl")
            .args(args)
            .args(["--uri", &self.uri()])
            .env("STRONGSWAN_CONF", self.path("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("swanctl");
        let pipe = |r: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut v);
                }
                v
            })
        };
        let out = pipe(child.stdout.take().map(|r| Box::new(r) as _));
        let err = pipe(child.stderr.take().map(|r| Box::new(r) as _));
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break Some(st);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
        status.map(|status| std::process::Output { status, stdout, stderr })
    }

    /// Runs swanctl against this charon; it must finish in time, and succeed unless it
    /// initiates.
    fn swanctl(&self, args: &[&str]) -> std::process::Output {
        let out = self
            .try_swanctl(args, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("swanctl {args:?} hung\n{}", self.log_tail()));
        assert!(
            out.status.success() || args[0] == "--initiate",
            "swanctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts our engine in the other namespace and waits until its sockets are bound.
    fn start_peer(&mut self, initiate: bool) -> Receiver<Json> {
        self.start_peer_with(initiate, &[])
    }

    /// Starts our engine with extra driver arguments.
    fn start_peer_with(&mut self, initiate: bool, extra: &[&str]) -> Receiver<Json> {
        let (cfg, ns) = (self.path("gw.rsc"), self.gw_ns.clone());
        let mut args =
            vec!["netns", "exec", ns.as_str(), PEER, "--local", GW, "--config", cfg.as_str(), "--force-nat-t"];
        args.extend(["--timeout", "12", "--linger", "1"]);
        if initiate {
            args.push("--initiate");
        }
        args.extend(extra);
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ipsecgw-ike-peer");
        let out = child.stdout.take().expect("stdout");
        self.peer = Some(child);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("ike-peer: {line}");
                if tx.send(parse_json(&line)).is_err() {
                    break;
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(10)).expect("ipsecgw-ike-peer did not start");
        assert_eq!(ready["event"], "ready", "{ready:?}");
        rx
    }

    /// Returns the first CHILD_SA charon lists once installed, as its raw fields, with the
    /// IKE_SA's fields prefixed by `ike.`.
    fn charon_child(&self) -> HashMap<String, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.swanctl(&["--list-sas", "--raw"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if let Some(at) = text.find("child-sas {") {
                let mut m: HashMap<String, String> =
                    fields(&text[..at]).into_iter().map(|(k, v)| (format!("ike.{k}"), v)).collect();
                m.extend(fields(&text[at..]));
                if m.get("state").is_some_and(|s| s == "INSTALLED") {
                    return m;
                }
            }
            assert!(Instant::now() < deadline, "charon lists no installed CHILD_SA: {text}\n{}", self.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Returns a key charon logged (`encryption initiator key`, ...), as hex.
    fn charon_key(&self, what: &str) -> Option<String> {
        let log = self.read("charon.log");
        let mut lines = log.lines().skip_while(|l| !l.contains(&format!("{what} =>")));
        let head = lines.next()?;
        let len: usize = head.split("=> ").nth(1)?.split(' ').next()?.parse().ok()?;
        let mut hex = String::new();
        for l in lines {
            let Some((_, dump)) = l.split_once("]") else { break };
            let Some((off, bytes)) = dump.trim_start().split_once(": ") else { break };
            if off.parse::<usize>().is_err() {
                break;
            }
            let area: String = bytes.chars().take(48).collect();
            for b in area.split_whitespace().filter(|b| b.len() == 2) {
                hex.push_str(&b.to_ascii_lowercase());
            }
            if hex.len() >= len * 2 {
                break;
            }
        }
        hex.truncate(len * 2);
        Some(hex)
    }

    fn log_tail(&self) -> String {
        let log = self.read("charon.log");
        let lines: Vec<&str> =
            log.lines().filter(|l| l.contains("[IKE]") || l.contains("[ENC]") || l.contains("[CFG]")).collect();
        let lines: Vec<&str> = lines.into_iter().filter(|l| !l.contains(": ")).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in [self.peer.take(), self.charon.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.sw_ns, &self.gw_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("charon's files kept in {}", self.dir.display());
        }
    }
}

type Json = HashMap<String, String>;

/// Parses one flat JSON object of string values, as the driver prints them.
fn parse_json(line: &str) -> Json {
    let inner = line.trim().trim_start_matches('{').trim_end_matches('}');
    let mut m = HashMap::new();
    for pair in inner.split("\",\"") {
        if let Some((k, v)) = pair.split_once("\":\"") {
            m.insert(k.trim_matches('"').to_string(), v.trim_end_matches('"').replace("\\\"", "\""));
        }
    }
    m
}

/// Returns the `key=value` fields of `swanctl --raw` output, the first of each key.
fn fields(text: &str) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    text.split(|c: char| c.is_whitespace() || c == '{' || c == '}')
        .filter_map(|t| t.split_once('='))
        .filter(|(k, _)| seen.insert(k.to_string()))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Collects the driver's events until it reports an SA, a failure or a timeout.
fn events(rx: &Receiver<Json>) -> Vec<Json> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Ok(e) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let end = matches!(e["event"].as_str(), "sa" | "failed" | "timeout");
        out.push(e);
        if end {
            break;
        }
    }
    out
}

fn find<'a>(evs: &'a [Json], kind: &str) -> Option<&'a Json> {
    evs.iter().find(|e| e["event"] == kind)
}

/// What both sides should agree on: our cipher and auth names, charon's algorithm fields.
struct Expect {
    cipher: &'static str,
    auth: &'static str,
    encr_alg: &'static str,
    encr_keysize: &'static str,
    integ_alg: Option<&'static str>,
    pfs: &'static str,
}

/// Runs a case with the given initiator and checks that both sides agree on the SA pair.
fn interop(case: Case, we_initiate: bool, want: Expect) {
    let mut lab = Lab::new(&case);
    let started = Instant::now();
    let rx = lab.start_peer(we_initiate);
    if !we_initiate {
        let out = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "10"]);
        assert!(out.status.success(), "swanctl --initiate failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    let evs = events(&rx);
    let role = if we_initiate { "initiator" } else { "responder" };
    let p1 = find(&evs, "phase1").unwrap_or_else(|| panic!("no phase 1: {evs:?}\n{}", lab.log_tail()));
    assert_eq!(p1["role"], role);
    assert_eq!(p1["mode"], if case.aggressive { "Aggressive" } else { "Main" });
    assert_eq!(p1["nat"], "true", "NAT-T must be on for kernel-libipsec");
    let sa = find(&evs, "sa").unwrap_or_else(|| panic!("no quick mode: {evs:?}\n{}", lab.log_tail()));
    let ch = lab.charon_child();
    eprintln!("established in {:?}", started.elapsed());

    // Phase 1: the same cookies.
    assert_eq!(ch["ike.initiator-spi"], p1["icookie"]);
    assert_eq!(ch["ike.responder-spi"], p1["rcookie"]);
    assert_eq!(ch["ike.state"], "ESTABLISHED");
    // Quick mode: charon's inbound SA is our outbound one and the other way round.
    assert_eq!(sa["role"], role);
    assert_eq!(ch["spi-in"], sa["out_esp_spi"], "charon {ch:?}\nours {sa:?}");
    assert_eq!(ch["spi-out"], sa["in_esp_spi"], "charon {ch:?}\nours {sa:?}");
    assert_eq!((ch["mode"].as_str(), ch["protocol"].as_str(), ch["encap"].as_str()), ("TUNNEL", "ESP", "yes"));
    assert_eq!(sa["encap"], "4500:4500");
    assert_eq!(ch["local-ts"], format!("[{SW_LAN}]"));
    assert_eq!(ch["remote-ts"], format!("[{GW_LAN}]"));
    assert_eq!((sa["local_ts"].as_str(), sa["remote_ts"].as_str()), (GW_LAN, SW_LAN));
    // The algorithms.
    for dir in ["in", "out"] {
        assert_eq!(sa[&format!("{dir}_esp_cipher")], want.cipher);
        assert_eq!(sa[&format!("{dir}_esp_auth")], want.auth);
        assert_eq!(sa[&format!("{dir}_esp_mode")], "Tunnel");
    }
    assert_eq!(ch["encr-alg"], want.encr_alg);
    assert_eq!(ch.get("encr-keysize").map_or("", String::as_str), want.encr_keysize, "{ch:?}");
    assert_eq!(ch.get("integ-alg").map(String::as_str), want.integ_alg);
    assert_eq!(sa["pfs"], want.pfs);
    match want.pfs {
        "none" => assert!(!ch.contains_key("dh-group"), "{ch:?}"),
        g => assert_eq!(ch["dh-group"], g.replace("Modp", "MODP_")),
    }
    // The keys: charon's "initiator" keys protect what the quick mode initiator sends.
    let (i_dir, r_dir) = if we_initiate { ("out", "in") } else { ("in", "out") };
    for (who, dir) in [("initiator", i_dir), ("responder", r_dir)] {
        let enc = lab.charon_key(&format!("encryption {who} key")).expect("charon logged no encryption key");
        assert_eq!(enc, sa[&format!("{dir}_esp_enc_key")], "{who} encryption key");
        if want.integ_alg.is_some() {
            let int = lab.charon_key(&format!("integrity {who} key")).expect("charon logged no integrity key");
            assert_eq!(int, sa[&format!("{dir}_esp_auth_key")], "{who} integrity key");
        }
    }
}

fn aes128_sha1(pfs: &'static str) -> Expect {
    Expect {
        cipher: "AesCbc128",
        auth: "HmacSha1_96",
        encr_alg: "AES_CBC",
        encr_keysize: "128",
        integ_alg: Some("HMAC_SHA1_96"),
        pfs,
    }
}

#[test]
fn we_initiate_main_mode_aes128_sha1_with_pfs() {
    let case = Case {
        aggressive: false,
        ike: "aes128-sha1-modp1024",
        esp: "aes128-sha1-modp1024",
        peer: "enc-algorithm=aes-128 hash-algorithm=sha dh-group=modp1024",
        proposal: "enc-algorithms=aes-128 auth-algorithms=sha1 pfs-group=modp1024 lifetime=30m",
        secret: SECRET,
    };
    interop(case, true, aes128_sha1("Modp1024"));
}

#[test]
fn strongswan_initiates_main_mode_3des_sha1_as_in_the_cisco_example() {
    let case = Case {
        aggressive: false,
        ike: "3des-sha1-modp1024",
        esp: "3des-sha1",
        peer: "enc-algorithm=3des hash-algorithm=sha dh-group=modp1024",
        proposal: "enc-algorithms=3des auth-algorithms=sha1 pfs-group=none lifetime=30m",
        secret: SECRET,
    };
    let want = Expect {
        cipher: "TdesCbc",
        auth: "HmacSha1_96",
        encr_alg: "3DES_CBC",
        encr_keysize: "",
        integ_alg: Some("HMAC_SHA1_96"),
        pfs: "none",
    };
    interop(case, false, want);
}

#[test]
fn we_initiate_aes128gcm16() {
    let case = Case {
        aggressive: false,
        ike: "aes256-sha256-modp2048",
        esp: "aes128gcm16",
        peer: "enc-algorithm=aes-256 hash-algorithm=sha256 dh-group=modp2048",
        proposal: "enc-algorithms=aes-128-gcm auth-algorithms=null pfs-group=none lifetime=30m",
        secret: SECRET,
    };
    let want = Expect {
        cipher: "AesGcm128",
        auth: "Null",
        encr_alg: "AES_GCM_16",
        encr_keysize: "128",
        integ_alg: None,
        pfs: "none",
    };
    interop(case, true, want);
}

#[test]
fn strongswan_initiates_aes128gcm16_with_pfs() {
    let case = Case {
        aggressive: false,
        ike: "aes128-sha1-modp1536",
        esp: "aes128gcm16-modp1536",
        peer: "enc-algorithm=aes-128 hash-algorithm=sha dh-group=modp1536",
        proposal: "enc-algorithms=aes-128-gcm auth-algorithms=null pfs-group=modp1536 lifetime=30m",
        secret: SECRET,
    };
    let want = Expect {
        cipher: "AesGcm128",
        auth: "Null",
        encr_alg: "AES_GCM_16",
        encr_keysize: "128",
        integ_alg: None,
        pfs: "Modp1536",
    };
    interop(case, false, want);
}

#[test]
fn aggressive_mode_both_ways() {
    for we_initiate in [true, false] {
        let case = Case {
            aggressive: true,
            ike: "aes128-sha1-modp1024",
            esp: "aes128-sha1",
            peer: "enc-algorithm=aes-128 hash-algorithm=sha dh-group=modp1024",
            proposal: "enc-algorithms=aes-128 auth-algorithms=sha1 pfs-group=none lifetime=30m",
            secret: SECRET,
        };
        interop(case, we_initiate, aes128_sha1("none"));
    }
}

#[test]
fn wrong_secret_is_authentication_failed() {
    let case = Case {
        aggressive: false,
        ike: "aes128-sha1-modp1024",
        esp: "aes128-sha1",
        peer: "enc-algorithm=aes-128 hash-algorithm=sha dh-group=modp1024",
        proposal: "enc-algorithms=aes-128 auth-algorithms=sha1 pfs-group=none lifetime=30m",
        secret: "not the secret",
    };
    // charon initiates: our responder cannot read message 5 and says AUTHENTICATION-FAILED.
    let mut lab = Lab::new(&case);
    let rx = lab.start_peer(false);
    let out = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "4"]);
    assert!(!out.status.success(), "charon established with a wrong secret");
    assert_auth_failed(&events(&rx));
    drop(lab);

    // We initiate: charon answers message 5 with PAYLOAD-MALFORMED under its own keys, which
    // ours do not read; the give-up after the retransmissions reports AUTHENTICATION-FAILED.
    let mut lab = Lab::new(&case);
    let rx = lab.start_peer_with(true, &["--retransmits", "2"]);
    assert_auth_failed(&events(&rx));
}

fn assert_auth_failed(evs: &[Json]) {
    assert!(find(evs, "phase1").is_none() && find(evs, "sa").is_none(), "{evs:?}");
    let failed = find(evs, "failed").unwrap_or_else(|| panic!("no failure: {evs:?}"));
    assert_eq!(failed["reason"], "AuthenticationFailed", "{evs:?}");
}
