//! The control process end to end: `ipsecgw run` on null devices starts it, `ipsecgw exec` and
//! `ipsecgw console` change the configuration through it. An accepted change reaches the
//! dataplane (installed-sa print), is saved to the configuration file (which parses back to the
//! same configuration) and survives a restart; a refused one exits non-zero with a RouterOS-style
//! error and changes neither the file nor the dataplane. The sockets are root-only.

mod ctl_support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use control::config::Config;
use ctl_support::{BIN, Gateway, TempDir, r1_config};

const NULL_LAN: &str = "net_null0,no-rx=1";
const NULL_WAN: &str = "net_null1,no-rx=1";

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Returns `installed-sa print` as (spi, direction, enc-key) triples, in print order.
fn installed(gw: &Gateway) -> Vec<(u32, String, String)> {
    let out = gw.must(&["/ip ipsec installed-sa print"]);
    let field = |block: &str, name: &str| -> String {
        let at = block.find(&format!(" {name}=")).unwrap_or_else(|| panic!("no {name} in {block}"));
        let rest = &block[at + name.len() + 2..];
        rest.split_whitespace().next().unwrap().trim_matches('"').to_owned()
    };
    out.split("\n\n")
        .filter(|b| b.contains("spi="))
        .map(|b| {
            let b = format!(" {}", b.trim_start().split_once(' ').unwrap().1);
            (field(&b, "spi").parse().unwrap(), field(&b, "direction"), field(&b, "enc-key"))
        })
        .collect()
}

#[test]
fn exec_changes_are_applied_saved_and_refused_whole() {
    let dir = TempDir::new("ctl-exec");
    let config = dir.path("gw.rsc");
    std::fs::write(&config, r1_config(NULL_LAN, NULL_WAN)).unwrap();
    let mut gw = Gateway::start(&config, &dir.0);

    // (c) Only root can reach the sockets: both 0600, in a directory made 0700.
    let dp_socket = dir.path("ctl/ctl.sock.dp");
    assert_eq!(mode(&gw.socket), 0o600, "control socket mode");
    assert_eq!(mode(&dp_socket), 0o600, "dataplane socket mode");
    assert_eq!(mode(&dir.path("ctl")), 0o700, "socket directory mode");

    // Another user cannot connect: the modes stop it, and with the modes opened up on purpose
    // the control process still refuses it after reading its credentials (SO_PEERCRED).
    if std::path::Path::new("/usr/bin/setpriv").exists() {
        let as_nobody = |cmd: &str| {
            Command::new("/usr/bin/setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "exec", "--socket"])
                .arg(&gw.socket)
                .arg(cmd)
                .output()
                .unwrap()
        };
        let add = "/ip ipsec policy add src-address=10.7.0.0/24 action=drop";
        let out = as_nobody(add);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("Permission denied (os error 13)"), "{err}");
        let chmod =
            |p: &std::path::Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        chmod(&dir.path("ctl"), 0o777);
        chmod(&gw.socket, 0o777);
        let out = as_nobody(add);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("permission denied") && !err.contains("os error"), "{err}");
        chmod(&dir.path("ctl"), 0o700);
        chmod(&gw.socket, 0o600);
        assert!(!std::fs::read_to_string(&config).unwrap().contains("10.7.0.0"));
    } else {
        eprintln!("no setpriv: the non-root connection checks are skipped");
    }

    // The configuration file's SAs are installed.
    let k2 = "f0e1d2c3b4a5968778695a4b3c2d1e0fdeadbeef";
    assert_eq!(
        installed(&gw),
        vec![(259, "out".into(), k2.into()), (258, "in".into(), "000102030405060708090a0b0c0d0e0fcafebabe".into())]
    );

    // A new key, manual SA and policy, in one session.
    let k3 = "1111111111111111111111111111111111111111";
    gw.must(&[
        &format!("/ip ipsec key add name=k3 algorithm=aes-gcm length=160 key=0x{k3}"),
        "/ip ipsec manual-sa add name=sa2 esp-enc-key=k3/k3 esp-auth-key=none esp-spi=300/301",
        "/ip ipsec policy",
        "add src-address=10.1.0.0/24 dst-address=10.3.0.0/24 action=encrypt tunnel=yes sa-src-address=192.0.2.1 \
         sa-dst-address=192.0.2.3 manual-sa=sa2",
    ]);
    let print = gw.must(&["/ip ipsec policy print"]);
    assert!(print.contains("10.3.0.0/24") && print.contains("10.2.0.0/24"), "{print}");
    let export = gw.must(&["/ip ipsec manual-sa export"]);
    assert!(export.contains("add name=sa2") && export.contains("esp-spi=300/301"), "{export}");
    let sas = installed(&gw);
    assert_eq!(sas.len(), 4, "{sas:?}");
    assert!(sas.contains(&(301, "out".into(), k3.into())) && sas.contains(&(300, "in".into(), k3.into())));

    // The file was rewritten, and it parses back to the running configuration.
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains("name=sa2") && saved.contains("10.3.0.0/24"), "{saved}");
    let running = Config::parse(&gw.must(&["/export"])).unwrap();
    assert_eq!(Config::parse(&saved).unwrap(), running);
    assert_eq!(mode(&config), 0o600, "the file holds keys");

    // A changed key replaces that policy's SAs and leaves the others alone.
    let k4 = "2222222222222222222222222222222222222222";
    gw.must(&[&format!("/ip ipsec key set k3 key=0x{k4}")]);
    let sas = installed(&gw);
    assert!(sas.contains(&(301, "out".into(), k4.into())) && sas.contains(&(259, "out".into(), k2.into())));
    gw.wait_for("1 inbound and 1 outbound SA sets installed, 0 removed, 2 kept", Duration::from_secs(5));

    // Refused commands: a bad command name, a reference to nothing, and a change the compiler
    // refuses (a reserved SPI). Each exits non-zero with a RouterOS-style message and changes
    // neither the file nor the dataplane.
    let before_file = std::fs::read(&config).unwrap();
    let before_sas = installed(&gw);
    for (cmd, message) in [
        ("/ip ipsec bogus", "bad command name bogus"),
        ("/ip ipsec policy add src-address=10.9.0.0/24 manual-sa=nope", "input does not match any value of manual-sa"),
        ("/ip ipsec manual-sa set sa2 esp-spi=5/301", "failure: manual-sa sa2: esp-spi 5 is reserved"),
        ("/interface add name=x device=net_null9", "failure: interfaces are fixed while the gateway runs"),
    ] {
        let e = gw.exec(&[cmd]);
        assert!(!e.ok, "{cmd} was accepted");
        assert!(e.stderr.contains(message), "{cmd}: {}", e.stderr);
        let j = gw.exec(&["--json", cmd]);
        assert!(!j.ok);
        assert!(j.stdout.starts_with("{\"ok\":false,\"error\":\"") && j.stdout.contains(message), "{}", j.stdout);
    }
    assert_eq!(std::fs::read(&config).unwrap(), before_file, "a refused command rewrote the file");
    assert_eq!(installed(&gw), before_sas);
    let j = gw.must(&["--json", "/ip ipsec manual-sa print"]);
    assert!(j.starts_with("{\"ok\":true,\"output\":\"") && j.contains("sa2"), "{j}");

    // The console without a terminal reads plain lines, and keeps its menu between them.
    let mut console = Command::new(BIN)
        .args(["console", "--socket"])
        .arg(&gw.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    console.stdin.take().unwrap().write_all(b"/ip ipsec manual-sa\nprint\nquit\n").unwrap();
    let out = console.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sa2"));

    // A restart restores the saved configuration.
    let lines = gw.stop();
    assert!(lines.iter().any(|l| l.starts_with("counters:")), "{lines:?}");
    // Keys reach the console (installed-sa print, export) and the file, never the logs.
    for key in ["000102030405060708090a0b0c0d0e0f", k2, k3, k4] {
        let leak = lines.iter().find(|l| l.to_ascii_lowercase().contains(&key[..16]));
        assert!(leak.is_none(), "a key in the gateway's output: {leak:?}");
    }
    assert!(!gw_socket_exists(&dir), "the sockets are removed on exit");
    let gw = Gateway::start(&config, &dir.0);
    assert_eq!(installed(&gw), before_sas);
    gw.stop();
}

fn gw_socket_exists(dir: &TempDir) -> bool {
    dir.path("ctl/ctl.sock").exists() || dir.path("ctl/ctl.sock.dp").exists()
}
