//! Processes in network namespaces for the interop tests: start one with `ip netns exec`,
//! collect its output lines, wait for a line, stop it with a signal; and shell helpers.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../child_lines/mod.rs"]
mod child_lines;

/// Runs a command, returning its status and combined output.
pub fn sh(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub fn must(args: &[&str]) -> String {
    let (ok, out) = sh(args);
    assert!(ok, "{args:?} failed: {out}");
    out
}

/// A process started in a namespace, whose output lines are collected; killed on drop.
pub struct Proc {
    what: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line it printed so far.
    pub seen: Vec<String>,
}

impl Proc {
    pub fn start(what: &'static str, ns: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let lines = child_lines::collect(&mut child);
        Proc { what, child, lines, seen: Vec::new() }
    }

    /// Waits for a line containing `what`; returns it.
    pub fn wait_for(&mut self, what: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
            return Ok(l.clone());
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        return Ok(line);
                    }
                }
                Err(_) => break,
            }
        }
        Err(format!("{} never printed {what:?}; output:\n{}", self.what, self.seen.join("\n")))
    }

    /// Returns the output so far.
    pub fn output(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// Stops it with `signal` (`ip netns exec` execs it: same pid) and returns all its output.
    pub fn stop(mut self, signal: &str) -> String {
        let _ = Command::new("kill").args([signal, &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
