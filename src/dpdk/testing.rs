//! A tiny runner for EAL integration tests: EAL allows one init per process and pins its
//! thread, so each EAL scenario is a `harness = false` test binary whose `main` starts EAL,
//! runs its cases in sequence through [`Cases`], and ends with a libtest-style summary line.

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Returns a file prefix unique to this process: `gw_<name>_<pid>`.
pub fn unique_prefix(name: &str) -> String {
    format!("gw_{name}_{}", std::process::id())
}

/// Returns EAL arguments for a test: no hugepages (256 MB), no PCI probing, no shared
/// config or telemetry, the given file prefix and lcores (`"0"`, `"0,1"`), then `extra`
/// (`--vdev` options).
pub fn eal_args(prefix: &str, lcores: &str, extra: &[&str]) -> Vec<String> {
    let base =
        ["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry", "--file-prefix", prefix, "-l", lcores];
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// Splits test arguments as libtest reads them: the words that select cases by name, and the
/// values of `--skip` (or `--skip=`) that leave cases out. Other options are ignored, with the
/// value of those of libtest's that take one.
fn filters(args: impl IntoIterator<Item = String>) -> (Vec<String>, Vec<String>) {
    const WITH_VALUE: [&str; 5] = ["--test-threads", "--color", "--format", "--logfile", "-Z"];
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--skip" {
            skips.extend(args.next());
        } else if let Some(v) = a.strip_prefix("--skip=") {
            skips.push(v.to_owned());
        } else if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    (filters, skips)
}

/// Runs named cases in sequence, catching panics, and reports like libtest.
#[derive(Debug)]
pub struct Cases {
    prefix: String,
    filters: Vec<String>,
    skips: Vec<String>,
    passed: usize,
    failed: Vec<String>,
    filtered: usize,
    start: Instant,
}

impl Cases {
    /// Starts a run whose EAL uses `prefix`, filtering the cases by name as libtest does with
    /// the command line's words and `--skip` options (see [`filters`]).
    pub fn new(prefix: &str) -> Cases {
        let (filters, skips) = filters(std::env::args().skip(1));
        Cases {
            prefix: prefix.to_owned(),
            filters,
            skips,
            passed: 0,
            failed: Vec::new(),
            filtered: 0,
            start: Instant::now(),
        }
    }

    /// Runs case `name` unless filtered out; a panic fails it.
    pub fn run(&mut self, name: &str, case: impl FnOnce()) {
        let wanted = self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()));
        if !wanted || self.skips.iter().any(|s| name.contains(s.as_str())) {
            self.filtered += 1;
            return;
        }
        let ok = panic::catch_unwind(AssertUnwindSafe(case)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            self.passed += 1;
        } else {
            self.failed.push(name.to_owned());
        }
    }

    /// Removes EAL's runtime directory of the prefix, prints the summary and returns the exit
    /// status. Call it after dropping the `Eal`.
    pub fn finish(self) -> ExitCode {
        for dir in runtime_dirs(&self.prefix) {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !self.failed.is_empty() {
            println!("\nfailures:");
            for f in &self.failed {
                println!("    {f}");
            }
        }
        let verdict = if self.failed.is_empty() { "ok" } else { "FAILED" };
        println!(
            "\ntest result: {verdict}. {} passed; {} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
            self.passed,
            self.failed.len(),
            self.filtered,
            self.start.elapsed().as_secs_f64()
        );
        if self.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

/// Where EAL puts `<prefix>/`: /var/run/dpdk for root, else $XDG_RUNTIME_DIR/dpdk or /tmp/dpdk.
fn runtime_dirs(prefix: &str) -> Vec<PathBuf> {
    let mut bases = vec![PathBuf::from("/var/run/dpdk"), PathBuf::from("/tmp/dpdk")];
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        bases.push(PathBuf::from(x).join("dpdk"));
    }
    bases.into_iter().map(|b| b.join(prefix)).collect()
}

#[cfg(test)]
mod tests {
    use super::filters;

    fn split(args: &[&str]) -> (Vec<String>, Vec<String>) {
        filters(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments_select_and_skip_cases_as_libtest_reads_them() {
        let none: Vec<String> = Vec::new();
        assert_eq!(split(&[]), (none.clone(), none.clone()));
        assert_eq!(split(&["--skip", "_needs_avx512"]), (none.clone(), vec!["_needs_avx512".to_string()]));
        assert_eq!(split(&["--skip=a", "tx", "--nocapture", "--test-threads", "1", "rx"]).0, ["tx", "rx"]);
        assert_eq!(split(&["--skip=a", "--skip", "b"]).1, ["a", "b"]);
        assert_eq!(split(&["--skip"]), (none.clone(), none));
    }
}
