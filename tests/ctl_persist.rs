//! The configuration file under faults: a full disk and a read-only filesystem refuse the change
//! with an error and leave the old file and the running state intact; a control process killed
//! (`kill -9`) again and again in the middle of a storm of saves always leaves a file that is one
//! of the configurations it saved, never a torn one.
//!
//! The configuration lives on a small tmpfs the test mounts (needs root).

mod ctl_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use control::config::Config;
use ctl_support::{Gateway, TempDir, kill9, r1_config};

const NULL_LAN: &str = "net_null0,no-rx=1";
const NULL_WAN: &str = "net_null1,no-rx=1";

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A tmpfs of `kb` kilobytes at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kb: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        sh(&["mount", "-t", "tmpfs", "-o", &format!("size={kb}k,mode=0700"), "tmpfs", dir.to_str().unwrap()]);
        Tmpfs(dir.to_owned())
    }

    fn remount(&self, opt: &str) {
        sh(&["mount", "-o", &format!("remount,{opt}"), self.0.to_str().unwrap()]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Returns the bytes free on the filesystem of `dir`.
fn free(dir: &Path) -> u64 {
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).unwrap()
}

/// Fills the filesystem of `dir` until fewer than `left` bytes are free.
fn fill(dir: &Path, left: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    while free(dir) >= left {
        if f.write_all(&[0u8; 1024]).and_then(|_| f.sync_all()).is_err() {
            break;
        }
    }
}

fn policies(gw: &Gateway) -> String {
    gw.must(&["/ip ipsec policy print"])
}

#[test]
fn a_full_disk_or_a_read_only_file_refuses_the_change_and_keeps_the_old_file() {
    let dir = TempDir::new("ctl-persist");
    let fs = Tmpfs::mount(&dir.path("etc"), 256);
    let config = dir.path("etc/gw.rsc");
    std::fs::write(&config, r1_config(NULL_LAN, NULL_WAN)).unwrap();
    let gw = Gateway::start(&config, &dir.0);
    gw.must(&["/ip ipsec policy add src-address=10.5.0.0/24 action=drop"]);
    let before = std::fs::read(&config).unwrap();
    let running = policies(&gw);
    let change = "/ip ipsec policy add src-address=10.6.0.0/24 action=drop";

    // Full: no room for the new file next to the old one.
    fill(&dir.path("etc"), 512);
    let e = gw.exec(&[change]);
    assert!(!e.ok, "refused on a full disk: {}", e.stdout);
    assert!(
        e.stderr.contains("failure: cannot save") || e.stdout.contains("failure: cannot save"),
        "{}{}",
        e.stdout,
        e.stderr
    );
    assert_eq!(std::fs::read(&config).unwrap(), before, "the old file is intact");
    assert_eq!(policies(&gw), running, "nothing changed in the running state");
    let stray: Vec<_> =
        std::fs::read_dir(dir.path("etc")).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert_eq!(stray.len(), 2, "no temporary file left behind: {stray:?}");

    // Read-only: the same.
    std::fs::remove_file(dir.path("etc/filler")).unwrap();
    fs.remount("ro");
    let e = gw.exec(&[change]);
    assert!(!e.ok, "refused on a read-only filesystem");
    assert_eq!(std::fs::read(&config).unwrap(), before);
    assert_eq!(policies(&gw), running);

    // Writable again: the change goes through.
    fs.remount("rw");
    gw.must(&[change]);
    assert!(policies(&gw).contains("10.6.0.0/24"));
    assert!(std::fs::read_to_string(&config).unwrap().contains("10.6.0.0/24"));
    drop(gw);
}

#[test]
fn a_control_process_killed_while_saving_never_leaves_a_torn_file() {
    let dir = TempDir::new("ctl-torn");
    let config = dir.path("gw.rsc");
    std::fs::write(&config, r1_config(NULL_LAN, NULL_WAN)).unwrap();
    let mut gw = Gateway::start(&config, &dir.0);
    // Every save adds one drop policy: each saved file holds the first k of them, in order.
    let src = |k: u32| format!("10.{}.{}.0/24", 10 + k / 250, k % 250);
    let saved = |text: &str| -> Vec<String> {
        let cfg = Config::parse(text).unwrap_or_else(|e| panic!("a torn file: {e}\n{text}"));
        cfg.entries::<control::config::Policy>()
            .iter()
            .filter(|e| e.item.action == dataplane::spd::Action::Drop)
            .map(|e| e.item.src_address.to_string())
            .collect()
    };
    // How long a change takes, so the kills can land before, during and after the save.
    let mut times: Vec<Duration> = (0..3)
        .map(|i| {
            let t = Instant::now();
            gw.must(&[&format!("/ip ipsec policy add src-address={} action=drop", src(i))]);
            t.elapsed()
        })
        .collect();
    times.sort();
    let exec_time = times[1];
    let (mut kills, mut accepted) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && kills < 6 {
        let before = saved(&std::fs::read_to_string(&config).unwrap());
        let k = before.len() as u32;
        let pid = gw.stat("control-pid") as u32;
        // Killed at some moment around this save: before, during or after it.
        let killer = std::thread::spawn(move || {
            std::thread::sleep(exec_time * (k % 8) / 5);
            kill9(pid);
        });
        let ok = gw.exec(&[&format!("/ip ipsec policy add src-address={} action=drop", src(k))]).ok;
        killer.join().unwrap();
        kills += 1;
        accepted += u32::from(ok);
        let after = saved(&std::fs::read_to_string(&config).unwrap());
        let want: Vec<String> = (0..=k).map(src).collect();
        assert!(after == before || after == want, "neither the old nor the new file: {after:?}");
        assert!(!ok || after == want, "an accepted change is in the file");
        // The supervisor restarts it; the next round starts from what it loaded.
        gw.wait_until(Duration::from_secs(20), |gw| gw.exec(&["/"]).ok);
    }
    println!(
        "{kills} kills of the control process around saves ({accepted} changes accepted before it died); no torn file"
    );
    assert!(kills >= 5, "only {kills} kills (restarts back off)");
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    println!("temporary files left by killed saves: {left:?}");
}
