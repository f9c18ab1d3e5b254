//! A gateway process for the control-plane tests: `ipsecgw run` on DPDK virtual devices (no
//! hugepages, its own EAL prefix) with its configuration and sockets in a directory of its own,
//! and `ipsecgw exec` against it. Everything is stopped and removed on drop.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../child_lines/mod.rs"]
mod child_lines;

pub const BIN: &str = env!("CARGO_BIN_EXE_ipsecgw");

/// A test's directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ipsecgw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `ipsecgw run`.
pub struct Gateway {
    pub child: Child,
    pub config: PathBuf,
    pub socket: PathBuf,
    lines: mpsc::Receiver<String>,
    /// Every line it printed so far (stdout and stderr, with its control process's).
    pub seen: Vec<String>,
}

/// What `ipsecgw exec` did.
pub struct Exec {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Gateway {
    /// Starts `ipsecgw run` on `config` with the control socket in `dir/ctl/`, and waits until
    /// its control process answers.
    pub fn start(config: &Path, dir: &Path) -> Gateway {
        let socket = dir.join("ctl").join("ctl.sock");
        let mut child = Command::new(BIN)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ipsecgw run");
        let lines = child_lines::collect(&mut child);
        let mut gw = Gateway { child, config: config.to_owned(), socket, lines, seen: Vec::new() };
        gw.wait_for("running", Duration::from_secs(30));
        gw.wait_until(Duration::from_secs(20), |gw| gw.exec(&["/"]).ok);
        gw
    }

    /// Collects what the gateway printed since the last call.
    pub fn drain(&mut self) {
        self.seen.extend(self.lines.try_iter());
    }

    /// Waits for a printed line containing `what`.
    pub fn wait_for(&mut self, what: &str, timeout: Duration) {
        if self.seen.iter().any(|l| l.contains(what)) {
            return;
        }
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(what);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("the gateway never printed {what:?}; output:\n{}", self.seen.join("\n"));
    }

    /// Retries `f` until it holds.
    pub fn wait_until(&mut self, timeout: Duration, mut f: impl FnMut(&mut Gateway) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if f(self) {
                return;
            }
            self.drain();
            assert!(self.alive(), "the gateway died; output:\n{}", self.seen.join("\n"));
            assert!(Instant::now() < deadline, "timed out; output:\n{}", self.seen.join("\n"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Tells whether the dataplane process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Runs `ipsecgw exec --socket S ARGS...`.
    pub fn exec(&self, args: &[&str]) -> Exec {
        let out: Output = Command::new(BIN)
            .arg("exec")
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn ipsecgw exec");
        Exec {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed and returns its output.
    pub fn must(&self, args: &[&str]) -> String {
        let e = self.exec(args);
        assert!(e.ok, "exec {args:?} failed: {}{}", e.stdout, e.stderr);
        e.stdout
    }

    /// Returns the value of one `stats` counter.
    pub fn stat(&self, name: &str) -> u64 {
        let out = self.must(&["stats"]);
        let prefix = format!("{name}=");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name} in stats:\n{out}"))
            .parse()
            .unwrap()
    }

    /// Returns the `sa ...` lines of `stats`: each installed SA's sequence number and counters.
    pub fn sa_lines(&self) -> Vec<String> {
        self.must(&["stats"]).lines().filter(|l| l.starts_with("sa ")).map(str::to_owned).collect()
    }

    /// Stops the gateway with SIGTERM and returns everything it printed.
    pub fn stop(mut self) -> Vec<String> {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.drain();
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Sends SIGKILL to a process.
pub fn kill9(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill -9");
}

/// Returns a configuration with two interfaces and one manually keyed encrypt policy, the
/// demo's R1 with `lan` and `wan` devices given.
pub fn r1_config(lan: &str, wan: &str) -> String {
    format!(
        "/interface
add name=lan device=\"{lan}\"
add name=wan device=\"{wan}\"
/ip address
add address=10.1.0.1/24 interface=lan
add address=192.0.2.1/24 interface=wan
/ip ipsec key
add name=k1 algorithm=aes-gcm length=160 key=0x000102030405060708090a0b0c0d0e0fcafebabe
add name=k2 algorithm=aes-gcm length=160 key=0xf0e1d2c3b4a5968778695a4b3c2d1e0fdeadbeef
/ip ipsec manual-sa
add name=sa1 esp-enc-key=k1/k2 esp-auth-key=none esp-spi=258/259
/ip ipsec policy
add src-address=10.1.0.0/24 dst-address=10.2.0.0/24 action=encrypt tunnel=yes sa-src-address=192.0.2.1 \\
    sa-dst-address=192.0.2.2 manual-sa=sa1
"
    )
}

/// Returns the Internet checksum of `b` (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes a pcap file of Ethernet frames.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4_u32.to_le_bytes().as_slice(), &2u16.to_le_bytes(), &4u16.to_le_bytes(), &[0; 8]] {
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for frame in frames {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    std::fs::write(path, out).unwrap();
}

/// Writes a pcap of `count` UDP packets from 10.1.0.5 to 10.2.0.5, broadcast at the Ethernet
/// layer (the gateway accepts broadcast frames, whatever its port's address).
pub fn write_udp_pcap(path: &Path, count: u16) {
    let frames: Vec<Vec<u8>> = (0..count)
        .map(|id| {
            let payload = [0u8; 32];
            let mut udp = Vec::new();
            udp.extend_from_slice(&1234u16.to_be_bytes());
            udp.extend_from_slice(&5678u16.to_be_bytes());
            udp.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
            udp.extend_from_slice(&[0, 0]);
            udp.extend_from_slice(&payload);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(20 + udp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&id.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 64, 17, 0, 0, 10, 1, 0, 5, 10, 2, 0, 5]);
            let c = checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let mut frame = vec![0xff; 6];
            frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
            frame.extend_from_slice(&ip);
            frame.extend_from_slice(&udp);
            frame
        })
        .collect();
    write_pcap(path, &frames);
}

/// Writes a pcap holding one ARP reply to 192.0.2.1: 192.0.2.2 is at 02:00:00:00:00:22.
pub fn write_arp_reply_pcap(path: &Path) {
    let mac = [0x02, 0, 0, 0, 0, 0x22];
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[192, 0, 2, 2]);
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&[192, 0, 2, 1]);
    frame.resize(60, 0);
    write_pcap(path, &[frame]);
}
