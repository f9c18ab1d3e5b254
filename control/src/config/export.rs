//! Export of the configuration as a console script that recreates it, replay of such a script,
//! and atomic persistence to a file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use thiserror::Error;

use super::{Config, DEFAULT_PROPOSAL, Menu};
use crate::cli::{CliError, Console};

/// The first line of an exported script.
const HEADER: &str = "# ipsecgw configuration: a RouterOS v2.6 console script";

/// Why a saved configuration could not be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A command of the script was refused.
    #[error("line {line}: {command}: {error}")]
    Command {
        /// The line number, from 1.
        line: usize,
        /// The command.
        command: String,
        /// The console's error.
        error: CliError,
    },
}

/// Quotes a value for the console when it is empty or holds anything but plain word characters.
pub fn quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-:/,@+*".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return value.into();
    }
    let mut q = String::with_capacity(value.len() + 2);
    q.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn args_line(cmd: &str, args: &[(&'static str, String)]) -> String {
    let mut line = cmd.to_owned();
    for (f, v) in args {
        line.push(' ');
        line.push_str(f);
        line.push('=');
        line.push_str(&quote(v));
    }
    line
}

impl Config {
    /// Returns the commands that recreate one menu on a fresh router, without the menu line.
    /// Fields at their defaults are left out.
    pub fn export_commands(&self, menu: Menu) -> Vec<String> {
        let table = self.table(menu);
        let mut lines = Vec::new();
        let mut default_at = None;
        for i in 0..table.len() {
            let args = table.export_args(i);
            if menu == Menu::Proposal && table.name_at(i) == Some(DEFAULT_PROPOSAL) {
                // The default proposal exists on a fresh router: set what differs, then place it.
                default_at = Some(i);
                let args: Vec<_> = args.into_iter().filter(|(f, _)| *f != "name").collect();
                if !args.is_empty() {
                    lines.insert(0, args_line(&format!("set {DEFAULT_PROPOSAL}"), &args));
                }
                continue;
            }
            lines.push(args_line("add", &args));
        }
        if let Some(k) = default_at.filter(|&k| k > 0) {
            // After the adds the default is first; `move` puts it before the item now at k + 1.
            lines.push(if k + 1 < table.len() {
                format!("move {DEFAULT_PROPOSAL} {}", k + 1)
            } else {
                format!("move {DEFAULT_PROPOSAL}")
            });
        }
        lines
    }

    /// Returns one menu's part of an export: its path line and its commands, or nothing.
    pub fn export_menu(&self, menu: Menu) -> String {
        let cmds = self.export_commands(menu);
        if cmds.is_empty() {
            return String::new();
        }
        let mut out = menu.path();
        out.push('\n');
        for c in cmds {
            out.push_str(&c);
            out.push('\n');
        }
        out
    }

    /// Returns the whole configuration as a console script; `Config::parse` of it gives back an
    /// equal configuration.
    pub fn export(&self) -> String {
        let mut out = format!("{HEADER}\n");
        for menu in Menu::ALL {
            out.push_str(&self.export_menu(menu));
        }
        out
    }

    /// Replays a console script (an export) on a fresh configuration. Blank lines and lines
    /// starting with `#` are skipped; a line ending in `\` continues on the next.
    pub fn parse(script: &str) -> Result<Config, LoadError> {
        let mut console = Console::new(Config::new());
        let mut pending = String::new();
        let mut first = 0;
        for (n, raw) in script.lines().enumerate() {
            if pending.is_empty() {
                first = n + 1;
            }
            let (text, more) = match raw.trim_end().strip_suffix('\\') {
                Some(t) => (t, true),
                None => (raw, false),
            };
            pending.push_str(text);
            if more {
                continue;
            }
            let line = std::mem::take(&mut pending);
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            console.execute(trimmed).map_err(|error| LoadError::Command {
                line: first,
                command: trimmed.into(),
                error,
            })?;
        }
        Ok(console.into_config())
    }

    /// Writes the export to `path` atomically: a temporary file in the same directory (mode
    /// 0600: it holds keys and secrets), fsynced, renamed over the target, and the directory
    /// fsynced, so a crash leaves either the old file or the new one.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
        let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(self.export().as_bytes())?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Reads and replays a file written by [`Config::save`].
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let script =
            fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.display().to_string(), source })?;
        Config::parse(&script)
    }
}
