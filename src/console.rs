//! `ipsecgw control`, `ipsecgw console` and `ipsecgw exec`: the control process's command line,
//! and the two clients of its socket. The console edits lines (history, cursor keys) on a
//! terminal and reads plain lines otherwise; `exec` runs commands once and fails with the first
//! refused one, optionally wrapping the result in JSON for scripts.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use control::daemon::client::Client;
use control::daemon::server::{self, Options};
use control::daemon::{DEFAULT_SOCKET, dataplane_socket};

const CONTROL_USAGE: &str = "usage: ipsecgw control --config FILE [--socket PATH] [--dataplane PATH] [--force-nat-t]
  the control process; `ipsecgw run` starts it and restarts it if it dies
  --config FILE       the configuration, rewritten atomically on every accepted change
  --socket PATH       the control socket to serve consoles on (default /run/ipsecgw/ctl.sock)
  --dataplane PATH    the dataplane's socket (default: the control socket's path and .dp)
  --force-nat-t       make IKE peers encapsulate ESP in UDP even without a NAT";

const CONSOLE_USAGE: &str = "usage: ipsecgw console [--socket PATH]
  a RouterOS console on the running gateway (quit with `quit` or ^D)";

const EXEC_USAGE: &str = "usage: ipsecgw exec [--socket PATH] [--json] COMMAND...
  runs each COMMAND in one console session, stopping at the first refused one (exit status 1);
  --json prints {\"ok\":true,\"output\":\"...\"} or {\"ok\":false,\"error\":\"...\"}";

fn usage(usage: &str, err: &str) -> ExitCode {
    if !err.is_empty() {
        eprintln!("{err}");
    }
    eprintln!("{usage}");
    ExitCode::from(2)
}

/// `ipsecgw control`.
pub fn control_main(args: &[String]) -> ExitCode {
    let (mut config, mut socket, mut dataplane) = (None, PathBuf::from(DEFAULT_SOCKET), None);
    let mut force_nat_t = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--force-nat-t" {
            force_nat_t = true;
            continue;
        }
        let val = it.next().map(PathBuf::from);
        match (flag.as_str(), val) {
            ("--config", Some(v)) => config = Some(v),
            ("--socket", Some(v)) => socket = v,
            ("--dataplane", Some(v)) => dataplane = Some(v),
            ("-h" | "--help", _) => return usage(CONTROL_USAGE, ""),
            (f, _) => return usage(CONTROL_USAGE, &format!("control: bad argument {f}")),
        }
    }
    let Some(config) = config else { return usage(CONTROL_USAGE, "control: --config is required") };
    let dataplane = dataplane.unwrap_or_else(|| dataplane_socket(&socket));
    match server::run(&Options { config, socket, dataplane, force_nat_t }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("control: {e}");
            ExitCode::FAILURE
        }
    }
}

fn connect(socket: &Path, who: &str) -> Result<Client, ExitCode> {
    Client::connect(socket).map_err(|e| {
        eprintln!("{who}: cannot reach the control process at {}: {e}", socket.display());
        ExitCode::FAILURE
    })
}

/// `ipsecgw console`.
pub fn console_main(args: &[String]) -> ExitCode {
    let mut socket = PathBuf::from(DEFAULT_SOCKET);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--socket", Some(v)) => socket = PathBuf::from(v),
            ("-h" | "--help", _) => return usage(CONSOLE_USAGE, ""),
            (f, _) => return usage(CONSOLE_USAGE, &format!("console: bad argument {f}")),
        }
    }
    let mut client = match connect(&socket, "console") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = if std::io::stdin().is_terminal() { interactive(&mut client) } else { piped(&mut client) };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("console: {e}");
            ExitCode::FAILURE
        }
    }
}

fn is_quit(line: &str) -> bool {
    matches!(line.trim(), "quit" | "/quit" | "exit" | "/exit")
}

/// Runs one line and prints its output; returns whether it was accepted.
fn run_line(client: &mut Client, line: &str) -> std::io::Result<bool> {
    let out = client.command(line)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.text.as_bytes())?;
    if !out.text.is_empty() && !out.text.ends_with('\n') {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(out.ok)
}

/// Reads lines with editing and history until `quit` or ^D; ^C abandons the line.
fn interactive(client: &mut Client) -> Result<bool, String> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| e.to_string())?;
    loop {
        match editor.readline(client.prompt()) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line.as_str());
                if is_quit(&line) {
                    return Ok(true);
                }
                run_line(client, &line).map_err(|e| e.to_string())?;
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => return Ok(true),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Runs every line of standard input; the result tells whether all were accepted.
fn piped(client: &mut Client) -> Result<bool, String> {
    let mut all_ok = true;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if is_quit(&line) {
            break;
        }
        all_ok &= run_line(client, &line).map_err(|e| e.to_string())?;
    }
    Ok(all_ok)
}

/// Returns `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `ipsecgw exec`.
pub fn exec_main(args: &[String]) -> ExitCode {
    let (mut socket, mut json, mut commands) = (PathBuf::from(DEFAULT_SOCKET), false, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--socket" => match it.next() {
                Some(v) => socket = PathBuf::from(v),
                None => return usage(EXEC_USAGE, "exec: --socket needs a value"),
            },
            "--json" => json = true,
            "-h" | "--help" => return usage(EXEC_USAGE, ""),
            _ => commands.push(a.clone()),
        }
    }
    if commands.is_empty() {
        return usage(EXEC_USAGE, "exec: no command");
    }
    let report = |ok: bool, text: &str| {
        if json {
            let key = if ok { "output" } else { "error" };
            println!("{{\"ok\":{ok},\"{key}\":{}}}", json_string(text));
        } else if ok {
            print!("{text}");
        } else {
            eprintln!("{}", text.trim_end());
        }
    };
    let mut client = match Client::connect(&socket) {
        Ok(c) => c,
        Err(e) => {
            report(false, &format!("cannot reach the control process at {}: {e}", socket.display()));
            return ExitCode::FAILURE;
        }
    };
    let mut output = String::new();
    for cmd in &commands {
        match client.command(cmd) {
            Ok(out) if out.ok => output.push_str(&out.text),
            Ok(out) => {
                if !json {
                    print!("{output}");
                }
                report(false, &out.text);
                return ExitCode::FAILURE;
            }
            Err(e) => {
                report(false, &format!("control process: {e}"));
                return ExitCode::FAILURE;
            }
        }
    }
    report(true, &output);
    ExitCode::SUCCESS
}
