//! The dataplane's end of the control plane: the dataplane socket the control process connects
//! to, served from the slow-path loop without blocking it (non-blocking socket, frames gathered
//! as they come), and the supervision of the control process, which is started with the
//! dataplane and restarted with backoff whenever it dies; forwarding never waits for it.
//!
//! Requests turn into gateway operations: `Check` and `Apply` diff the desired state against
//! what is installed ([`Gateway::apply`]), `Sas` asks the worker for a snapshot and answers when
//! it arrives, `Stats` reads the counters.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use control::daemon::sock;
use control::daemon::wire::{DpReply, DpRequest, FrameBuf, InstalledSpec, PortInfo, SaEntry, VERSION, Wire, frame};
use dataplane::ctl::{SaKey, SaSnapshot};
use dataplane::pipeline::Stage;
use ipsecgw::gateway::Gateway;

/// Datagrams, and events, handed over per `Poll` at most.
const POLL_MAX: usize = 256;
/// How long a `Sas` request waits for the worker's snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(1);

struct Conn {
    stream: UnixStream,
    input: FrameBuf,
    output: Vec<u8>,
    hello: bool,
    closing: bool,
}

/// A `Sas` request waiting for the worker's snapshot.
struct PendingSas {
    deadline: Instant,
    expected: usize,
    got: Vec<SaSnapshot>,
}

/// The dataplane socket and its one control connection.
pub struct ControlLink {
    listener: UnixListener,
    path: PathBuf,
    conn: Option<Conn>,
    ports: Vec<PortInfo>,
    pending: Option<PendingSas>,
}

impl ControlLink {
    /// Listens at `path` (mode 0600) for the control process of a gateway with `ports`.
    pub fn bind(path: &Path, ports: Vec<PortInfo>) -> io::Result<ControlLink> {
        let listener = sock::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlLink { listener, path: path.to_owned(), conn: None, ports, pending: None })
    }

    /// Accepts a control connection, answers its requests, and sends what is ready. Call it
    /// from the slow-path loop, after polling the slow path (which gathers snapshots).
    pub fn poll(&mut self, gw: &mut Gateway, sup: &Supervisor) {
        self.accept();
        if let Some(p) = &mut self.pending {
            p.got.extend(gw.slow.take_snapshots());
            if p.got.len() >= p.expected || Instant::now() >= p.deadline {
                let p = self.pending.take().expect("pending");
                self.reply(&DpReply::Sas(entries(gw, p.got)));
            }
        }
        self.read();
        while self.pending.is_none() {
            let Some(conn) = &mut self.conn else { break };
            if conn.closing {
                break;
            }
            match conn.input.next_frame() {
                Ok(Some(body)) => match DpRequest::decode(&body) {
                    Ok(req) => self.handle(req, gw, sup),
                    Err(e) => self.fail(&format!("bad request: {e}")),
                },
                Ok(None) => break,
                Err(e) => self.fail(&format!("bad frame: {e}")),
            }
        }
        self.flush();
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if !sock::peer_allowed(&stream).unwrap_or(false) || stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    // The newest connection wins: a restarted control process replaces a dead one.
                    self.pending = None;
                    self.conn = Some(Conn {
                        stream,
                        input: FrameBuf::default(),
                        output: Vec::new(),
                        hello: false,
                        closing: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }

    fn read(&mut self) {
        let Some(conn) = &mut self.conn else { return };
        let mut buf = [0u8; 16 << 10];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    self.drop_conn();
                    return;
                }
                Ok(n) => conn.input.extend(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.drop_conn();
                    return;
                }
            }
        }
    }

    fn flush(&mut self) {
        let Some(conn) = &mut self.conn else { return };
        while !conn.output.is_empty() {
            match conn.stream.write(&conn.output) {
                Ok(n) => {
                    conn.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.drop_conn();
                    return;
                }
            }
        }
        if conn.closing {
            self.drop_conn();
        }
    }

    fn drop_conn(&mut self) {
        self.conn = None;
        self.pending = None;
    }

    fn reply(&mut self, msg: &DpReply) {
        if let Some(conn) = &mut self.conn {
            conn.output.extend_from_slice(&frame(msg));
        }
    }

    /// Answers with an error and closes the connection once it is sent.
    fn fail(&mut self, why: &str) {
        self.reply(&DpReply::Error(why.to_owned()));
        if let Some(conn) = &mut self.conn {
            conn.closing = true;
        }
    }

    fn handle(&mut self, req: DpRequest, gw: &mut Gateway, sup: &Supervisor) {
        let hello = self.conn.as_ref().is_some_and(|c| c.hello);
        match req {
            DpRequest::Hello { version } if version == VERSION => {
                if let Some(c) = &mut self.conn {
                    c.hello = true;
                }
                let (ports, policies) = (self.ports.clone(), gw.policies().to_vec());
                let sas = gw
                    .installed_sas()
                    .into_iter()
                    .map(|(s, added)| InstalledSpec {
                        policy_id: s.policy_id,
                        direction: s.direction,
                        spec: crate::config::sa_spec(s),
                        added,
                    })
                    .collect();
                self.reply(&DpReply::Hello { version: VERSION, ports, policies, sas });
            }
            DpRequest::Hello { version } => {
                self.fail(&format!("the dataplane speaks version {VERSION}, not {version}"));
            }
            _ if !hello => self.fail("hello expected"),
            DpRequest::Check(state) => {
                let reply = match gw.check(&self.setup(&state)) {
                    Ok(()) => DpReply::Ok,
                    Err(e) => DpReply::Error(e),
                };
                self.reply(&reply);
            }
            DpRequest::Apply(state) => {
                let reply = match gw.apply(&self.setup(&state)) {
                    Ok(r) => {
                        if r.changed() {
                            println!(
                                "ipsecgw: configuration applied: {} inbound and {} outbound SA sets installed, \
                                 {} removed, {} kept{}{}",
                                r.inbound_installed,
                                r.outbound_installed,
                                r.inbound_removed + r.outbound_removed,
                                r.kept,
                                if r.spd { ", SPD swapped" } else { "" },
                                if r.tables { ", tables swapped" } else { "" },
                            );
                        }
                        DpReply::Ok
                    }
                    Err(e) => DpReply::Error(e),
                };
                self.reply(&reply);
            }
            DpRequest::Sas => {
                let expected = gw.installed_sa_count();
                if expected == 0 {
                    self.reply(&DpReply::Sas(Vec::new()));
                } else {
                    let _ = gw.slow.take_snapshots();
                    gw.request_snapshot();
                    self.pending =
                        Some(PendingSas { deadline: Instant::now() + SNAPSHOT_WAIT, expected, got: Vec::new() });
                }
            }
            DpRequest::Stats => {
                let v = stats(gw, sup);
                self.reply(&DpReply::Stats(v));
            }
            DpRequest::Poll => {
                let datagrams = std::iter::from_fn(|| gw.slow.pop_datagram()).take(POLL_MAX).collect();
                let events = std::iter::from_fn(|| gw.slow.pop_event()).take(POLL_MAX).collect();
                self.reply(&DpReply::Events { datagrams, events });
            }
            DpRequest::Send(v) => {
                for d in &v {
                    gw.originate_udp(d);
                }
                self.reply(&DpReply::Ok);
            }
        }
    }

    fn setup(&self, state: &control::daemon::wire::State) -> ipsecgw::gateway::Setup {
        let devices: Vec<String> = self.ports.iter().map(|p| crate::run::port_name(&p.device).to_owned()).collect();
        crate::config::setup_from_state(state, &devices)
    }

    /// Removes the socket file.
    pub fn close(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Returns the installed SAs: the worker's snapshots with the keys they were installed with.
fn entries(gw: &Gateway, snaps: Vec<SaSnapshot>) -> Vec<SaEntry> {
    snaps
        .into_iter()
        .map(|snapshot| {
            let key = SaKey { src: snapshot.src, dst: snapshot.dst, proto: snapshot.proto, spi: snapshot.spi };
            let (enc_key, auth_key, added) = match gw.installed_sa(snapshot.direction, snapshot.policy_id, key) {
                Some((s, added)) => (s.enc_key.clone(), s.auth_key.clone(), added),
                None => Default::default(),
            };
            SaEntry { snapshot, enc_key, auth_key, added }
        })
        .collect()
}

/// Returns the gateway's counters by name.
fn stats(gw: &Gateway, sup: &Supervisor) -> Vec<(String, u64)> {
    let s = gw.stats();
    let mut v: Vec<(String, u64)> = [
        ("rx-packets", s.rx_packets),
        ("rx-bytes", s.rx_bytes),
        ("tx-packets", s.tx_packets),
        ("tx-bytes", s.tx_bytes),
        ("forwarded", s.forwarded),
        ("punted", s.punted),
        ("icmp-out", s.icmp_out),
        ("arp-replies", s.arp_replies),
        ("fragmented", s.fragmented),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    for (what, c) in [("outbound", s.outbound_cache), ("incoming", s.incoming_cache)] {
        v.push((format!("flow-cache-{what}-hits"), c.hits));
        v.push((format!("flow-cache-{what}-misses"), c.misses));
    }
    for (reason, n) in s.drops.nonzero() {
        v.push((format!("drop-{}", reason.label()), n));
    }
    // The per-stage cycle accounting, for the console's `runtime`.
    for st in Stage::ALL {
        let i = st as usize;
        v.push((format!("runtime-{}-cycles", st.name()), s.runtime.cycles[i]));
        v.push((format!("runtime-{}-packets", st.name()), s.runtime.packets[i]));
        v.push((format!("runtime-{}-calls", st.name()), s.runtime.calls[i]));
    }
    v.push(("runtime-sealed-alone".to_owned(), s.runtime.sealed_alone));
    let sl = &gw.slow.stats;
    for (k, n) in [
        ("arp-requests", sl.arp_requests),
        ("arp-learned", sl.arp_learned),
        ("held", sl.held),
        ("hold-dropped", sl.hold_dropped),
        ("ike-in", sl.ike_in),
        ("ike-out", sl.ike_out),
        ("ike-malformed", sl.ike_malformed),
        ("ike-queue-full", sl.ike_queue_full),
        ("ring-full", sl.ring_full),
    ] {
        v.push((format!("slow-path-{k}"), n));
    }
    for (i, (name, st)) in gw.port_stats().into_iter().enumerate() {
        // What the workers received from the port, published with their other counters.
        v.push((format!("port-{name}-worker-rx"), s.rx_by_port.get(i).copied().unwrap_or(0)));
        if let Some(st) = st {
            v.push((format!("port-{name}-ipackets"), st.ipackets));
            v.push((format!("port-{name}-opackets"), st.opackets));
            v.push((format!("port-{name}-imissed"), st.imissed));
        }
    }
    v.push(("installed-sas".into(), gw.installed_sa_count() as u64));
    v.push(("control-pid".into(), sup.pid().map_or(0, u64::from)));
    v.push(("control-restarts".into(), sup.restarts));
    v
}

/// Backoff of control process restarts: doubled after each quick death, up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A control process that lived this long died of something new: restart it without delay.
const STABLE: Duration = Duration::from_secs(30);
/// How often the child's status is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Starts the control process and restarts it when it dies.
pub struct Supervisor {
    args: Vec<String>,
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
    checked: Instant,
    /// How many times it was restarted.
    pub restarts: u64,
}

impl Supervisor {
    /// Starts `ipsecgw control` (this executable) with `args`.
    pub fn start(args: Vec<String>) -> Supervisor {
        let now = Instant::now();
        let mut s = Supervisor {
            args,
            child: None,
            started: now,
            backoff: BACKOFF_MIN,
            restart_at: Some(now),
            checked: now,
            restarts: 0,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        self.restart_at = None;
        self.started = Instant::now();
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        // Its own process group: a terminal's ^C reaches the dataplane, which stops it.
        let child = Command::new(exe).arg("control").args(&self.args).stdin(Stdio::null()).process_group(0).spawn();
        match child {
            Ok(c) => {
                println!("ipsecgw: control process started (pid {})", c.id());
                self.child = Some(c);
            }
            Err(e) => {
                eprintln!("ipsecgw: cannot start the control process: {e}");
                self.schedule();
            }
        }
    }

    fn schedule(&mut self) {
        if self.started.elapsed() >= STABLE {
            self.backoff = BACKOFF_MIN;
        }
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Notices a dead control process and restarts it when its backoff has passed.
    pub fn poll(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.checked) < CHECK_EVERY {
            return;
        }
        self.checked = now;
        if let Some(c) = &mut self.child
            && let Ok(Some(status)) = c.try_wait()
        {
            self.child = None;
            self.schedule();
            let wait = self.restart_at.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
            eprintln!("ipsecgw: control process exited ({status}); restarting in {} ms", wait.as_millis());
        }
        if self.restart_at.is_some_and(|t| now >= t) {
            self.restarts += 1;
            self.spawn();
        }
    }

    /// Returns the running control process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the control process: SIGTERM, then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        self.restart_at = None;
        let Some(mut c) = self.child.take() else { return };
        let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&c), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}
