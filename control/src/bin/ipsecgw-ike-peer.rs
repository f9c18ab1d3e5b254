//! A small UDP driver of the sans-IO IKE engine for interop tests: binds UDP 500 and 4500 on one
//! address, feeds the [`Endpoint`] from both sockets, sends its datagrams, and prints its events
//! as JSON lines on stdout, one flat object of strings per line. It exits after the first SA
//! pair is up (and a linger to answer retransmissions), on the first failure, or on a timeout.
//!
//! ```text
//! ipsecgw-ike-peer --local ADDR --config FILE [--initiate] [--force-nat-t]
//!                  [--timeout SECS] [--linger SECS] [--retransmits N]
//! ```
//!
//! FILE holds console lines (`/ip ipsec peer add ...`); `--initiate` acquires the first policy.
//! The first line printed is `{"event":"ready"}` once both sockets are bound.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use control::cli::Console;
use control::compile::SaSpec;
use control::config::{Config, Policy};
use control::ike::{ChildSa, Endpoint, EndpointConfig, Event, IKE_PORT, NAT_T_PORT, ProxyId, Role};

/// The command line.
struct Args {
    local: Ipv4Addr,
    config: String,
    initiate: bool,
    force_nat_t: bool,
    timeout: Duration,
    linger: Duration,
    retransmits: u32,
}

fn usage() -> String {
    "usage: ipsecgw-ike-peer --local ADDR --config FILE [--initiate] [--force-nat-t] [--timeout SECS] \
     [--linger SECS] [--retransmits N]"
        .into()
}

/// Parses the command line.
fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        local: Ipv4Addr::UNSPECIFIED,
        config: String::new(),
        initiate: false,
        force_nat_t: false,
        timeout: Duration::from_secs(20),
        linger: Duration::from_secs(1),
        retransmits: 4,
    };
    let mut it = std::env::args().skip(1);
    let secs = |v: Option<String>| -> Result<Duration, String> {
        let v = v.ok_or_else(usage)?;
        v.parse::<f64>().map(Duration::from_secs_f64).map_err(|e| format!("{v}: {e}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--local" => {
                let v = it.next().ok_or_else(usage)?;
                a.local = v.parse().map_err(|e| format!("--local {v}: {e}"))?;
            }
            "--config" => a.config = it.next().ok_or_else(usage)?,
            "--initiate" => a.initiate = true,
            "--force-nat-t" => a.force_nat_t = true,
            "--timeout" => a.timeout = secs(it.next())?,
            "--linger" => a.linger = secs(it.next())?,
            "--retransmits" => {
                let v = it.next().ok_or_else(usage)?;
                a.retransmits = v.parse().map_err(|e| format!("--retransmits {v}: {e}"))?;
            }
            _ => return Err(usage()),
        }
    }
    if a.local.is_unspecified() || a.config.is_empty() {
        return Err(usage());
    }
    Ok(a)
}

/// Reads a configuration from console lines.
fn load_config(path: &str) -> Result<Config, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut c = Console::new(Config::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        c.execute(line).map_err(|e| format!("{path}: {line}: {e}"))?;
    }
    Ok(c.into_config())
}

/// Builds one flat JSON object of string values (the values are addresses, names and hex).
struct Json(String);

impl Json {
    fn new(event: &str) -> Self {
        Json(format!("{{\"event\":\"{event}\""))
    }

    fn field(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        let v = value.to_string().replace('\\', "\\\\").replace('"', "\\\"");
        let _ = write!(self.0, ",\"{key}\":\"{v}\"");
        self
    }

    fn sa(self, dir: &str, s: &Option<SaSpec>) -> Self {
        let Some(s) = s else { return self };
        self.field(&format!("{dir}_spi"), format_args!("{:08x}", s.key.spi))
            .field(&format!("{dir}_proto"), format_args!("{:?}", s.key.proto))
            .field(&format!("{dir}_src"), s.key.src)
            .field(&format!("{dir}_dst"), s.key.dst)
            .field(&format!("{dir}_mode"), format_args!("{:?}", s.mode))
            .field(&format!("{dir}_cipher"), format_args!("{:?}", s.xf.cipher()))
            .field(&format!("{dir}_auth"), format_args!("{:?}", s.xf.auth()))
            .field(&format!("{dir}_enc_key"), hex(&s.enc_key))
            .field(&format!("{dir}_auth_key"), hex(&s.auth_key))
    }

    fn print(self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}}}", self.0);
        let _ = out.flush();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Initiator => "initiator",
        Role::Responder => "responder",
    }
}

fn proxy(p: &ProxyId) -> String {
    format!("{}/{}", p.addr, p.len)
}

fn child(c: &ChildSa) -> Json {
    Json::new("sa")
        .field("role", role(c.role))
        .field("peer", c.peer)
        .field("proposal", &c.proposal)
        .field("local_ts", proxy(&c.local_id))
        .field("remote_ts", proxy(&c.remote_id))
        .field("life_secs", c.life_secs)
        .field("pfs", c.pfs.map_or("none".into(), |g| format!("{g:?}")))
        .field("encap", c.encap.map_or("none".into(), |e| format!("{}:{}", e.local_port, e.remote_port)))
        .sa("in_esp", &c.inbound.esp)
        .sa("out_esp", &c.outbound.esp)
        .sa("in_ah", &c.inbound.ah)
        .sa("out_ah", &c.outbound.ah)
}

/// Prints an event; tells whether it ends the run (an SA pair, or a failure).
fn report(e: &Event) -> bool {
    match e {
        Event::Phase1Established { peer, remote, role: r, mode, icookie, rcookie, nat, lifetime } => {
            Json::new("phase1")
                .field("peer", peer)
                .field("remote", remote)
                .field("role", role(*r))
                .field("mode", format_args!("{mode:?}"))
                .field("icookie", hex(icookie))
                .field("rcookie", hex(rcookie))
                .field("nat", nat)
                .field("lifetime", lifetime)
                .print();
            false
        }
        Event::SaEstablished(c) => {
            child(c).print();
            true
        }
        Event::Failed { peer, policy_id, reason } => {
            Json::new("failed")
                .field("peer", peer)
                .field("policy", policy_id.map_or("none".into(), |p| p.to_string()))
                .field("reason", format_args!("{reason:?}"))
                .print();
            true
        }
        Event::Phase1Deleted { peer, .. } => {
            Json::new("phase1_deleted").field("peer", peer).print();
            false
        }
        Event::SaDeleted { peer, policy_id, .. } => {
            Json::new("sa_deleted").field("peer", peer).field("policy", policy_id).print();
            false
        }
    }
}

fn run(a: Args) -> Result<(), String> {
    let conf = load_config(&a.config)?;
    let policy = conf.entries::<Policy>().first().map(|p| p.id);
    let mut ec = EndpointConfig::new(a.local);
    ec.force_nat_t = a.force_nat_t;
    ec.retransmit_initial = Duration::from_millis(500);
    ec.retransmit_limit = a.retransmits;
    let mut ep = Endpoint::new(ec, conf, Box::new(rand_core::OsRng));

    let bind = |port| -> Result<UdpSocket, String> {
        let s = UdpSocket::bind((a.local, port)).map_err(|e| format!("bind {}:{port}: {e}", a.local))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let socks = [(IKE_PORT, bind(IKE_PORT)?), (NAT_T_PORT, bind(NAT_T_PORT)?)];
    Json::new("ready").print();

    let start = Instant::now();
    if a.initiate {
        let id = policy.ok_or("--initiate: the configuration has no policy")?;
        ep.acquire(start, id).map_err(|e| e.to_string())?;
    }
    let mut done: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        if done.is_some_and(|d| now >= d) {
            break;
        }
        if now >= start + a.timeout {
            Json::new("timeout").print();
            break;
        }
        let mut busy = false;
        for (_, s) in &socks {
            match s.recv_from(&mut buf) {
                Ok((n, from)) => {
                    ep.handle(now, from, &buf[..n]);
                    busy = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(format!("recv: {e}")),
            }
        }
        if ep.poll_timeout().is_some_and(|t| t <= now) {
            ep.handle_timeout(now);
        }
        while let Some(t) = ep.poll_transmit() {
            let Some((_, s)) = socks.iter().find(|(p, _)| *p == t.local_port) else { continue };
            if let Err(e) = s.send_to(&t.bytes, t.remote) {
                Json::new("send_error").field("remote", t.remote).field("error", e).print();
            }
            busy = true;
        }
        while let Some(e) = ep.poll_event() {
            if report(&e) && done.is_none() {
                done = Some(now + a.linger);
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let st = ep.stats();
    Json::new("stats")
        .field("received", st.received)
        .field("sent", st.sent)
        .field("retransmits", st.retransmits)
        .field("dropped", st.total_dropped())
        .field("last_drop", format_args!("{:?}", st.last))
        .print();
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipsecgw-ike-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
