//! `ipsecgw run`: one gateway on DPDK from its configuration file: EAL with the interfaces'
//! virtual devices, the ports, the worker on its own lcore, and the slow path on the main
//! lcore, until SIGINT/SIGTERM (or `--seconds`), then the final counters.
//!
//! The slow-path loop also serves the dataplane socket (`SOCKET.dp`) and supervises the control
//! process (`ipsecgw control`, started as a child and restarted if it dies), which owns the
//! configuration and serves consoles on `SOCKET`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use control::daemon::wire::PortInfo;
use control::daemon::{DEFAULT_SOCKET, dataplane_socket};
use dataplane::worker::Cadence;
use ipsecgw::dpdk::{Eal, Mempool, PoolConfig, lcore, shutdown};
use ipsecgw::gateway::{Gateway, Setup};

use crate::dpserver::{ControlLink, Supervisor};

const USAGE: &str = "usage: ipsecgw run --config FILE [--socket PATH] [--lcores 0,1] [--seconds N] [--stats-every N]
                   [--force-nat-t]
  --config FILE     the gateway's configuration (a RouterOS export script), rewritten by the
                    control process on every accepted change
  --socket PATH     the control socket for ipsecgw console/exec (default /run/ipsecgw/ctl.sock);
                    the dataplane listens on PATH.dp for the control process
  --lcores LIST     EAL lcores: the first runs the slow path, the second the worker (default 0,1)
  --seconds N       stop after N seconds (default: run until SIGINT or SIGTERM)
  --stats-every N   print the counters every N seconds (default 0: only at the end)
  --force-nat-t     make IKE peers encapsulate ESP in UDP 4500 even without a NAT (RFC 3947
                    NAT-D made to differ), for peers whose ESP is userspace ESP in UDP only";

struct Args {
    config: String,
    socket: PathBuf,
    lcores: String,
    seconds: Option<u64>,
    stats_every: u64,
    force_nat_t: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        config: String::new(),
        socket: PathBuf::from(DEFAULT_SOCKET),
        lcores: "0,1".into(),
        seconds: None,
        stats_every: 0,
        force_nat_t: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => a.config = val()?,
            "--socket" => a.socket = PathBuf::from(val()?),
            "--lcores" => a.lcores = val()?,
            "--seconds" => a.seconds = Some(val()?.parse().map_err(|_| "--seconds takes a number")?),
            "--stats-every" => a.stats_every = val()?.parse().map_err(|_| "--stats-every takes a number")?,
            "--force-nat-t" => a.force_nat_t = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.config.is_empty() {
        return Err("--config is required".into());
    }
    Ok(a)
}

pub fn main(args: &[String]) -> ExitCode {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("run: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("run: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the EAL `--vdev` arguments the interfaces need: every device given with arguments
/// (`net_af_packet0,iface=veth0`) or named after a virtual driver (`net_null0`).
fn vdev_args(setup: &Setup) -> Vec<String> {
    let mut v = Vec::new();
    for i in &setup.ifaces {
        if i.device.contains(',') || (i.device.starts_with("net_") && !i.device.starts_with("net_ring_")) {
            v.push("--vdev".into());
            v.push(i.device.clone());
        }
    }
    v
}

/// Returns the EAL option that takes the lcore list `lcores`.
fn lcore_flag(lcores: &str) -> &'static str {
    if lcores.contains('@') || lcores.contains('(') { "--lcores" } else { "-l" }
}

/// Returns the port name of a device string: what precedes its arguments.
pub fn port_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

fn run(a: &Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&a.config).map_err(|e| format!("{}: {e}", a.config))?;
    let mut setup = crate::config::setup_from_script(&text).map_err(|e| format!("{}: {e}", a.config))?;
    setup.name = a.config.clone();
    let vdevs = vdev_args(&setup);
    let ports: Vec<PortInfo> =
        setup.ifaces.iter().map(|i| PortInfo { name: i.name.clone(), device: i.device.clone() }).collect();
    for i in &mut setup.ifaces {
        i.device = port_name(&i.device).to_owned();
    }
    let dp_socket = dataplane_socket(&a.socket);
    let link = ControlLink::bind(&dp_socket, ports).map_err(|e| format!("{}: {e}", dp_socket.display()))?;
    shutdown::install().map_err(|e| e.to_string())?;
    let prefix = format!("ipsecgw_{}", std::process::id());
    let mut eal_args: Vec<String> =
        // `-l 0,1` names CPUs; `--lcores 0@0,1@1,2@1` maps more lcores than CPUs.
        ["--no-huge", "-m", "512", "--no-pci", "--no-telemetry", "--file-prefix", &prefix, lcore_flag(&a.lcores), &a.lcores]
            .iter()
            .map(|s| s.to_string())
            .collect();
    eal_args.extend(vdevs);
    let eal = match Eal::init(eal_args) {
        Ok(eal) => eal,
        Err(e) => {
            link.close();
            return Err(e.to_string());
        }
    };
    let mut ctl = Control { link, sup: None };
    let result = serve(&eal, a, &setup, &mut ctl);
    if let Some(sup) = &mut ctl.sup {
        sup.stop();
    }
    ctl.link.close();
    let _ = std::fs::remove_file(&a.socket);
    drop(eal);
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    result
}

/// The control plane as the dataplane sees it: its socket and its process.
struct Control {
    link: ControlLink,
    sup: Option<Supervisor>,
}

impl Control {
    /// Starts the control process.
    fn start(&mut self, a: &Args, dp_socket: &std::path::Path) {
        let mut args = vec![
            "--config".into(),
            a.config.clone(),
            "--socket".into(),
            a.socket.display().to_string(),
            "--dataplane".into(),
            dp_socket.display().to_string(),
        ];
        if a.force_nat_t {
            args.push("--force-nat-t".into());
        }
        self.sup = Some(Supervisor::start(args));
    }

    /// Serves the dataplane socket and restarts the control process if it died.
    fn poll(&mut self, gw: &mut Gateway) {
        if let Some(sup) = &mut self.sup {
            sup.poll();
            self.link.poll(gw, sup);
        }
    }
}

fn serve(eal: &Eal, a: &Args, setup: &Setup, ctl: &mut Control) -> Result<(), String> {
    let pool = Mempool::create(eal, &PoolConfig::default()).map_err(|e| e.to_string())?;
    // One worker per worker lcore, each polling its own queue of every port.
    let lcores: Vec<u32> = lcore::workers().collect();
    let mut gw = Gateway::open_workers(eal, &pool, setup, lcores.len().max(1) as u16)?;
    let tsc_hz = lcore::tsc_hz();
    let now_ms = move || lcore::tsc() / (tsc_hz / 1000).max(1);
    let mut jobs = Vec::new();
    for &l in &lcores {
        let mut worker = gw.take_worker().ok_or("no worker")?;
        worker.set_clock(lcore::tsc);
        jobs.push(
            lcore::launch(eal, l, move || {
                worker.run(shutdown::requested, now_ms, 64);
                worker
            })
            .map_err(|e| e.to_string())?,
        );
    }
    let job = match lcores.first() {
        Some(_) => Some(()),
        None => {
            let worker = gw.take_worker().ok_or("no worker")?;
            // One lcore: the worker and the slow path share it.
            println!(
                "ipsecgw: {} running ({} interfaces); stop with SIGINT or SIGTERM",
                setup.name,
                setup.ifaces.len()
            );
            ctl.start(a, &dataplane_socket(&a.socket));
            gw_inline(&mut gw, worker, a, now_ms, ctl);
            None
        }
    };
    if job.is_some() {
        println!("ipsecgw: {} running ({} interfaces); stop with SIGINT or SIGTERM", setup.name, setup.ifaces.len());
        ctl.start(a, &dataplane_socket(&a.socket));
        let start = Instant::now();
        let mut next = start + Duration::from_secs(a.stats_every.max(1));
        while !shutdown::requested() {
            gw.poll_slow(now_ms());
            ctl.poll(&mut gw);
            if a.seconds.is_some_and(|s| start.elapsed() >= Duration::from_secs(s)) {
                shutdown::request();
            }
            if a.stats_every > 0 && Instant::now() >= next {
                next += Duration::from_secs(a.stats_every);
                print_stats(&gw);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    for job in jobs {
        let _worker = job.join();
    }
    gw.poll_slow(now_ms());
    print_stats(&gw);
    gw.stop();
    Ok(())
}

fn gw_inline(
    gw: &mut Gateway,
    mut worker: ipsecgw::gateway::GwWorker,
    a: &Args,
    now_ms: impl Fn() -> u64,
    ctl: &mut Control,
) {
    let start = Instant::now();
    // The control plane's turn comes every 64 rounds, or sooner when rounds are slow.
    let mut turn = Cadence::new(64, now_ms());
    while !shutdown::requested() {
        let now = now_ms();
        worker.poll_once(now);
        if turn.due(now) {
            worker.publish();
            gw.poll_slow(now_ms());
            ctl.poll(gw);
            if a.seconds.is_some_and(|s| start.elapsed() >= Duration::from_secs(s)) {
                shutdown::request();
            }
        }
    }
    worker.publish();
}

fn print_stats(gw: &Gateway) {
    let s = gw.stats();
    println!(
        "counters: rx {} tx {} forwarded {} punted {} icmp-out {} arp-replies {}",
        s.rx_packets, s.tx_packets, s.forwarded, s.punted, s.icmp_out, s.arp_replies
    );
    for (reason, n) in s.drops.nonzero() {
        println!("drop {}={n}", reason.label());
    }
    let sl = &gw.slow.stats;
    println!(
        "slow-path: arp-requests {} arp-learned {} held {} released {} hold-dropped {} ike-in {}",
        sl.arp_requests, sl.arp_learned, sl.held, sl.released, sl.hold_dropped, sl.ike_in
    );
    for (name, st) in gw.port_stats() {
        if let Some(st) = st {
            println!(
                "port {name}: ipackets {} opackets {} imissed {} ierrors {}",
                st.ipackets, st.opackets, st.imissed, st.ierrors
            );
        }
    }
}
