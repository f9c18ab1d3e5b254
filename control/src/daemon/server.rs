//! The control process (`ipsecgw control`): it loads the configuration file, connects to the
//! dataplane's socket, adopts the policy ids the dataplane already runs and sends the whole
//! desired state (the dataplane keeps every unchanged SA), then serves console sessions on the
//! control socket. Every accepted change is checked by compiling it and asking the dataplane,
//! saved atomically to the configuration file, and then applied.
//!
//! It lives only as long as the dataplane: it exits when its parent goes away or the dataplane
//! connection breaks, and the dataplane starts a new one.

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dataplane::ctl::SaSnapshot;
use dataplane::pipeline::Direction as DpDirection;
use dataplane::spd::Policy;
use thiserror::Error;

use super::ike::IkeDriver;
use super::sock;
use super::wire::{
    CtlReply, CtlRequest, DpReply, DpRequest, InstalledSpec, PortInfo, SaEntry, State, VERSION, read_msg, write_msg,
};
use crate::cli::{Console, Direction, InstalledSa, Validator};
use crate::compile::{CompileError, SaSpec, compile};
use crate::config::{Config, Interface, LoadError};

/// How often the IKE loop asks the dataplane for datagrams and events when idle.
const IKE_POLL: Duration = Duration::from_millis(5);
/// How long the dataplane may take to answer before the control process gives up on it.
const DP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control process stopped.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// The configuration file could not be loaded.
    #[error("{0}")]
    Load(#[from] LoadError),
    /// The configuration does not compile.
    #[error("{path}: {error}")]
    Compile {
        /// The configuration file.
        path: String,
        /// Why.
        error: CompileError,
    },
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// The dataplane refused or misunderstood something.
    #[error("dataplane: {0}")]
    Dataplane(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Where the control process finds its configuration and sockets.
#[derive(Clone, Debug)]
pub struct Options {
    /// The configuration file (an export script), rewritten on every accepted change.
    pub config: PathBuf,
    /// The control socket to serve consoles on.
    pub socket: PathBuf,
    /// The dataplane's socket.
    pub dataplane: PathBuf,
    /// Make IKE peers encapsulate ESP in UDP even without a NAT between us.
    pub force_nat_t: bool,
}

/// What a running dataplane says it runs.
pub struct Running {
    /// Its ports.
    pub ports: Vec<PortInfo>,
    /// Its policies, with their ids.
    pub policies: Vec<Policy>,
    /// Its SAs, with their keys.
    pub sas: Vec<InstalledSpec>,
}

/// The connection to the dataplane: one request, one reply.
pub struct DpLink {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl DpLink {
    /// Connects and says hello; returns the link, the dataplane's ports, the policies it runs
    /// and its SAs.
    pub fn connect(path: &Path) -> Result<(DpLink, Running), DaemonError> {
        let what = format!("dataplane socket {}", path.display());
        let writer = UnixStream::connect(path).map_err(io_err(&what))?;
        writer.set_read_timeout(Some(DP_TIMEOUT)).map_err(io_err(&what))?;
        writer.set_write_timeout(Some(DP_TIMEOUT)).map_err(io_err(&what))?;
        let reader = BufReader::new(writer.try_clone().map_err(io_err(&what))?);
        let mut link = DpLink { reader, writer };
        match link.call(&DpRequest::Hello { version: VERSION })? {
            DpReply::Hello { version: VERSION, ports, policies, sas } => Ok((link, Running { ports, policies, sas })),
            DpReply::Hello { version, .. } => {
                Err(DaemonError::Dataplane(format!("it speaks version {version}, we speak {VERSION}")))
            }
            DpReply::Error(e) => Err(DaemonError::Dataplane(e)),
            other => Err(DaemonError::Dataplane(format!("unexpected answer to hello: {other:?}"))),
        }
    }

    /// Sends a request and waits for its reply.
    pub fn call(&mut self, req: &DpRequest) -> Result<DpReply, DaemonError> {
        write_msg(&mut self.writer, req).map_err(io_err("dataplane"))?;
        read_msg(&mut self.reader).map_err(io_err("dataplane"))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Gives the configuration's enabled policies the ids of the running policies they equal
/// (everything but the id compared, in order), so the dataplane recognises them and their SAs.
pub fn adopt_policy_ids(cfg: &mut Config, running: &[Policy]) -> Result<(), CompileError> {
    let compiled = compile(cfg)?;
    let mut used = vec![false; running.len()];
    let mut ids = HashMap::new();
    let content = |p: &Policy| Policy { id: 0, ..*p };
    for p in &compiled.policies {
        if let Some(i) = (0..running.len()).find(|&i| !used[i] && content(&running[i]) == content(p)) {
            used[i] = true;
            ids.insert(p.id, running[i].id);
        }
    }
    cfg.renumber(&ids);
    Ok(())
}

/// Checks that the configuration's interfaces are the dataplane's ports (which cannot change
/// while it runs).
pub fn check_ports(cfg: &Config, ports: &[PortInfo]) -> Result<(), String> {
    let want: Vec<(&str, &str)> =
        cfg.entries::<Interface>().iter().map(|e| (e.item.name.as_str(), e.item.device.as_str())).collect();
    let have: Vec<(&str, &str)> = ports.iter().map(|p| (p.name.as_str(), p.device.as_str())).collect();
    if want == have {
        return Ok(());
    }
    let list = have.iter().map(|(n, d)| format!("{n} ({d})")).collect::<Vec<_>>().join(", ");
    Err(format!("interfaces are fixed while the gateway runs: {list}; restart ipsecgw run to change them"))
}

/// Returns the `installed-sa print` view of an installed SA.
pub fn installed_sa(e: &SaEntry) -> InstalledSa {
    let s: &SaSnapshot = &e.snapshot;
    let spec = SaSpec {
        key: dataplane::ctl::SaKey { src: s.src, dst: s.dst, proto: s.proto, spi: s.spi },
        mode: s.mode,
        xf: s.xf,
        enc_key: e.enc_key.clone(),
        auth_key: e.auth_key.clone(),
        replay_window: s.replay_window,
        lifetimes: s.lifetimes,
        dont_fragment: dataplane::sa::DontFragment::Clear,
        encap: None,
    };
    let direction = match s.direction {
        DpDirection::In => Direction::In,
        DpDirection::Out => Direction::Out,
    };
    let mut sa = spec.snapshot(direction, s.policy_id, e.added);
    sa.state = s.state;
    sa.current_bytes = s.counters.bytes;
    sa
}

/// Sorts installed SAs for display: by policy, outbound first, ESP before AH.
pub fn sort_entries(v: &mut [SaEntry]) {
    v.sort_by_key(|e| {
        let s = &e.snapshot;
        (s.policy_id, s.direction == DpDirection::In, s.proto == dataplane::sa::IpsecProto::Ah, s.spi)
    });
}

/// The control process's state, shared by its sessions.
struct Daemon {
    path: PathBuf,
    config: Mutex<Config>,
    dp: Arc<Mutex<DpLink>>,
    ports: Arc<Vec<PortInfo>>,
    ike: Mutex<IkeDriver>,
}

impl Daemon {
    /// Asks the dataplane, exiting the process if the dataplane is gone: the dataplane starts a
    /// fresh control process, which resynchronises.
    fn call(dp: &Mutex<DpLink>, req: &DpRequest) -> DpReply {
        match lock(dp).call(req) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("control: lost the dataplane ({e}); exiting");
                std::process::exit(1);
            }
        }
    }

    fn validator(&self) -> Validator {
        let (dp, ports) = (Arc::clone(&self.dp), Arc::clone(&self.ports));
        Box::new(move |cfg: &Config| {
            let compiled = compile(cfg).map_err(|e| e.to_string())?;
            check_ports(cfg, &ports)?;
            match Daemon::call(&dp, &DpRequest::Check(State::from(&compiled))) {
                DpReply::Ok => Ok(()),
                DpReply::Error(e) => Err(e),
                other => Err(format!("unexpected answer from the dataplane: {other:?}")),
            }
        })
    }

    fn sas(dp: &Mutex<DpLink>) -> Result<Vec<SaEntry>, String> {
        match Daemon::call(dp, &DpRequest::Sas) {
            DpReply::Sas(mut v) => {
                sort_entries(&mut v);
                Ok(v)
            }
            DpReply::Error(e) => Err(e),
            other => Err(format!("unexpected answer from the dataplane: {other:?}")),
        }
    }

    /// Sends the desired state to the dataplane: the configuration's, with the SAs IKE
    /// negotiated.
    fn push(&self, cfg: &Config) -> Result<(), String> {
        let compiled = compile(cfg).map_err(|e| e.to_string())?;
        let mut state = State::from(&compiled);
        state.sas.extend(lock(&self.ike).sas());
        match Daemon::call(&self.dp, &DpRequest::Apply(state)) {
            DpReply::Ok => Ok(()),
            DpReply::Error(e) => Err(e),
            other => Err(format!("unexpected answer from the dataplane: {other:?}")),
        }
    }

    /// Returns the counters as `name=value` lines, then one line per installed SA.
    fn stats(&self) -> Result<String, String> {
        let mut out = String::new();
        match Daemon::call(&self.dp, &DpRequest::Stats) {
            DpReply::Stats(v) => {
                for (name, n) in v {
                    out.push_str(&format!("{name}={n}\n"));
                }
            }
            DpReply::Error(e) => return Err(e),
            other => return Err(format!("unexpected answer from the dataplane: {other:?}")),
        }
        out.push_str(&lock(&self.ike).stats());
        for e in Daemon::sas(&self.dp)? {
            let s = &e.snapshot;
            let dir = if s.direction == DpDirection::In { "in" } else { "out" };
            let proto = if s.proto == dataplane::sa::IpsecProto::Ah { "ah" } else { "esp" };
            out.push_str(&format!(
                "sa policy-id={} direction={dir} sa-type={proto} spi={} seq={} packets={} bytes={}\n",
                s.policy_id, s.spi, s.seq, s.counters.packets, s.counters.bytes
            ));
        }
        Ok(out)
    }

    /// Returns the workers' per-stage cycle accounting (like VPP's `show runtime`).
    fn runtime(&self) -> Result<String, String> {
        let v = match Daemon::call(&self.dp, &DpRequest::Stats) {
            DpReply::Stats(v) => v,
            DpReply::Error(e) => return Err(e),
            other => return Err(format!("unexpected answer from the dataplane: {other:?}")),
        };
        let mut rt = dataplane::pipeline::Runtime::default();
        for st in dataplane::pipeline::Stage::ALL {
            let i = st as usize;
            let get = |what: &str| {
                let key = format!("runtime-{}-{what}", st.name());
                v.iter().find(|(k, _)| *k == key).map_or(0, |&(_, n)| n)
            };
            (rt.cycles[i], rt.packets[i], rt.calls[i]) = (get("cycles"), get("packets"), get("calls"));
        }
        rt.sealed_alone = v.iter().find(|(k, _)| k == "runtime-sealed-alone").map_or(0, |&(_, n)| n);
        Ok(rt.table())
    }

    /// Runs one command line of a session whose current menu is `path`.
    fn execute(&self, path: &mut String, line: &str) -> Result<String, String> {
        if matches!(line.trim(), "stats" | "/stats") {
            return self.stats();
        }
        if matches!(line.trim(), "runtime" | "/runtime") {
            return self.runtime();
        }
        let mut cfg = lock(&self.config);
        let mut console = Console::new(cfg.clone());
        if !path.is_empty() {
            console.execute(&format!("/{path}")).map_err(|e| e.to_string())?;
        }
        console.set_validator(self.validator());
        let dp = Arc::clone(&self.dp);
        console.set_installed_sas(Box::new(move || match Daemon::sas(&dp) {
            Ok(v) => v.iter().map(installed_sa).collect(),
            Err(_) => Vec::new(),
        }));
        let result = console.execute(line);
        *path = path_of(&console.prompt());
        let out = result.map_err(|e| e.to_string())?;
        if console.generation() > 0 {
            let next = console.into_config();
            next.save(&self.path).map_err(|e| format!("failure: cannot save {}: {e}", self.path.display()))?;
            lock(&self.ike).set_config(Instant::now(), &next);
            *cfg = next;
            self.push(&cfg).map_err(|e| format!("failure: saved, but the dataplane did not apply it: {e}"))?;
        }
        Ok(out)
    }

    /// Drives IKE: moves datagrams and events between the dataplane and the engine, runs its
    /// timers, and pushes the desired state when the negotiated SAs change. Never returns.
    fn ike_loop(&self) {
        loop {
            let (datagrams, events) = match Daemon::call(&self.dp, &DpRequest::Poll) {
                DpReply::Events { datagrams, events } => (datagrams, events),
                other => {
                    eprintln!("control: unexpected answer to poll: {other:?}");
                    (Vec::new(), Vec::new())
                }
            };
            let busy = !datagrams.is_empty() || !events.is_empty();
            let now = Instant::now();
            let (out, changed, next) = {
                let mut ike = lock(&self.ike);
                for d in &datagrams {
                    ike.datagram(now, d);
                }
                for e in events {
                    ike.event(now, e);
                }
                ike.tick(now);
                (ike.transmits(), ike.take_changed(), ike.next_timeout())
            };
            if changed {
                let cfg = lock(&self.config);
                if let Err(e) = self.push(&cfg) {
                    eprintln!("control: installing the IKE SAs failed: {e}");
                }
            }
            if !out.is_empty() {
                match Daemon::call(&self.dp, &DpRequest::Send(out)) {
                    DpReply::Ok => {}
                    other => eprintln!("control: sending IKE datagrams: {other:?}"),
                }
            }
            if !busy {
                let wait = next.map_or(IKE_POLL, |t| t.saturating_duration_since(Instant::now()).min(IKE_POLL));
                std::thread::sleep(wait);
            }
        }
    }

    /// Serves one console client until it hangs up.
    fn session(&self, stream: UnixStream) -> io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        match read_msg(&mut reader)? {
            CtlRequest::Hello { version: VERSION } => {}
            other => {
                let text = match other {
                    CtlRequest::Hello { version } => format!("version {version} is not ours ({VERSION})"),
                    CtlRequest::Command(_) => "hello expected".into(),
                };
                return write_msg(&mut writer, &CtlReply::Output { ok: false, text, prompt: String::new() });
            }
        }
        let mut path = String::new();
        write_msg(&mut writer, &CtlReply::Hello { version: VERSION, prompt: prompt_of(&path) })?;
        loop {
            let line = match read_msg(&mut reader) {
                Ok(CtlRequest::Command(line)) => line,
                Ok(CtlRequest::Hello { .. }) => "hello".into(),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            let (ok, text) = match self.execute(&mut path, &line) {
                Ok(t) => (true, t),
                Err(e) => (false, e),
            };
            write_msg(&mut writer, &CtlReply::Output { ok, text, prompt: prompt_of(&path) })?;
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Returns the console prompt of a menu path (`ip ipsec policy`), as `Console::prompt` does.
fn prompt_of(path: &str) -> String {
    let mut c = Console::new(Config::new());
    if !path.is_empty() {
        let _ = c.execute(&format!("/{path}"));
    }
    c.prompt()
}

/// Returns the menu path a console prompt shows.
fn path_of(prompt: &str) -> String {
    let p = prompt.strip_prefix("[admin@ipsecgw] ").unwrap_or(prompt);
    p.strip_suffix("> ").unwrap_or(p).trim().to_owned()
}

/// Exits when the parent (the dataplane) is gone: it asks the kernel for SIGTERM on its death,
/// and watches for being re-parented in case it died before that.
fn watch_parent(socket: PathBuf) {
    let parent = std::os::unix::process::parent_id();
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    std::thread::spawn(move || {
        loop {
            if std::os::unix::process::parent_id() != parent {
                let _ = std::fs::remove_file(&socket);
                eprintln!("control: the dataplane is gone; exiting");
                std::process::exit(0);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

/// Runs the control process until the dataplane goes away.
pub fn run(opts: &Options) -> Result<(), DaemonError> {
    watch_parent(opts.socket.clone());
    let mut config = Config::load(&opts.config)?;
    let compile_err = |error| DaemonError::Compile { path: opts.config.display().to_string(), error };
    let (mut link, running) = DpLink::connect(&opts.dataplane)?;
    let ports = running.ports;
    check_ports(&config, &ports).map_err(DaemonError::Dataplane)?;
    adopt_policy_ids(&mut config, &running.policies).map_err(compile_err)?;
    let compiled = compile(&config).map_err(compile_err)?;
    // The SAs IKE negotiated before a restart keep running: adopted, then renegotiated.
    let mut ike = IkeDriver::new(&config, opts.force_nat_t);
    ike.adopt(Instant::now(), unix_now(), &running.sas);
    let mut state = State::from(&compiled);
    state.sas.extend(ike.sas());
    match link.call(&DpRequest::Apply(state))? {
        DpReply::Ok => {}
        DpReply::Error(e) => return Err(DaemonError::Dataplane(e)),
        other => return Err(DaemonError::Dataplane(format!("unexpected answer: {other:?}"))),
    }
    let listener = sock::bind(&opts.socket).map_err(io_err(format!("control socket {}", opts.socket.display())))?;
    println!("control: serving {} on {} (pid {})", opts.config.display(), opts.socket.display(), std::process::id());
    let daemon = Arc::new(Daemon {
        path: opts.config.clone(),
        config: Mutex::new(config),
        dp: Arc::new(Mutex::new(link)),
        ports: Arc::new(ports),
        ike: Mutex::new(ike),
    });
    let d = Arc::clone(&daemon);
    std::thread::spawn(move || d.ike_loop());
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("control: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        match sock::peer_allowed(&stream) {
            Ok(true) => {}
            Ok(false) => {
                // Read its hello first, so the refusal reaches it rather than a broken pipe.
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                    let _ = read_msg::<CtlRequest>(&mut &stream);
                    let refusal =
                        CtlReply::Output { ok: false, text: "permission denied".into(), prompt: String::new() };
                    let _ = write_msg(&mut &stream, &refusal);
                });
                continue;
            }
            Err(e) => {
                eprintln!("control: peer credentials: {e}");
                continue;
            }
        }
        let d = Arc::clone(&daemon);
        std::thread::spawn(move || {
            if let Err(e) = d.session(stream) {
                eprintln!("control: session: {e}");
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_and_paths_agree() {
        for path in ["", "ip", "ip ipsec", "ip ipsec policy", "interface", "ip ipsec installed-sa"] {
            assert_eq!(path_of(&prompt_of(path)), path);
        }
        assert_eq!(prompt_of(""), "[admin@ipsecgw] > ");
    }

    #[test]
    fn a_reloaded_configuration_adopts_the_running_policy_ids() {
        let script = include_str!("../../../tests/fixtures/demo/r1.rsc");
        let mut running_cfg = Config::parse(script).unwrap();
        // The running process had removed and re-added things: its ids are not the parse's.
        let mut c = Console::new(running_cfg.clone());
        c.execute("/ip ipsec policy add src-address=10.9.0.0/24 dst-address=10.8.0.0/24 action=drop").unwrap();
        c.execute("/ip ipsec policy move 1 0").unwrap();
        running_cfg = c.into_config();
        let running = compile(&running_cfg).unwrap().policies;
        let mut fresh = Config::parse(&running_cfg.export()).unwrap();
        assert_ne!(compile(&fresh).unwrap().policies, running, "the parse numbers afresh");
        adopt_policy_ids(&mut fresh, &running).unwrap();
        let adopted = compile(&fresh).unwrap();
        assert_eq!(adopted.policies, running);
        assert_eq!(adopted.sas, compile(&running_cfg).unwrap().sas);
        assert_eq!(fresh, running_cfg);
    }
}
