//! Targets `ike_wire` and `ike_engine`: ISAKMP message parsing, and two IKE engines driven on
//! virtual time with the input delivered at any point of their exchanges.
//!
//! `ike_engine` input: byte 0 picks the setup (bit 0 aggressive mode, bit 1 NAT traversal forced
//! on both sides, bit 2 PFS, bit 3 which engine gets the input, bit 4 a spoofed source); byte 1
//! how many genuine datagrams are delivered before it (the script is: the first engine acquires
//! SAs for its policy, then deletes them, then acquires again, so every phase 1, quick mode and
//! informational message goes by, encrypted ones included); byte 2 how the rest is delivered:
//! - 0: as a datagram from the peer's port 500;
//! - 1: behind the non-ESP marker, from port 4500;
//! - 2: XORed over a copy of the next genuine datagram, delivered before it. For encrypted
//!   messages this edits the plaintext the receiver decrypts (a CBC flip garbles one block and
//!   XORs the next one), so the decrypted payload chains are fuzzed under the established keys;
//! - 3: as the payloads after the next genuine datagram's header (cookies, message id, flags).
//!
//! Bit 7 of byte 2 fixes the ISAKMP length field after the change. Then both engines run to
//! quiescence and through their timers for ten minutes of virtual time.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use control::cli::Console;
use control::config::{Config, Policy};
use control::ike::wire::{self, DeleteRepr, IdRepr, Message, NotifyRepr, PayloadType, SaRepr};
use control::ike::{Endpoint, EndpointConfig, Transmit};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SPOOF: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
/// The most datagrams one run may deliver: an exchange that keeps talking is a finding.
const MAX_DELIVERIES: usize = 400;

/// Parses the input as an ISAKMP message (with or without the non-ESP marker) and each payload
/// by its type; whatever parses is emitted and parses back equal.
pub fn ike_wire(data: &[u8]) {
    message(data);
    if let Some(rest) = data.strip_prefix(&wire::NON_ESP_MARKER) {
        message(rest);
    }
    // The input as a payload body of each kind.
    body(PayloadType::Sa, data);
    body(PayloadType::Id, data);
    body(PayloadType::Notify, data);
    body(PayloadType::Delete, data);
}

fn message(data: &[u8]) {
    let Ok(m) = Message::new_checked(data) else { return };
    let _ = (m.icookie(), m.rcookie(), m.next_payload(), m.exchange(), m.flags(), m.encrypted(), m.message_id());
    assert_eq!(m.length() as usize, data.len());
    assert_eq!(m.header().len() + m.body().len(), data.len());
    for padding_ok in [false, true] {
        let Ok(list) = wire::payloads(m.next_payload(), m.body(), padding_ok) else { continue };
        assert!(list.len() <= wire::MAX_PAYLOADS);
        for p in &list {
            assert_eq!(p.whole.len(), p.body.len() + wire::PAYLOAD_HEADER_LEN);
            body(p.kind, p.body);
        }
    }
}

fn body(kind: PayloadType, b: &[u8]) {
    match kind {
        PayloadType::Sa => {
            if let Ok(sa) = SaRepr::parse(b) {
                let again = SaRepr::parse(&sa.emit()).expect("an emitted SA payload parses");
                assert_eq!(again, sa, "SA payload emit/parse round trip");
            }
        }
        PayloadType::Id => {
            if let Ok(id) = IdRepr::parse(b) {
                let _ = id.ipv4_net();
                assert_eq!(id.emit(), b, "an ID payload is emitted byte for byte");
            }
        }
        PayloadType::Notify => {
            if let Ok(n) = NotifyRepr::parse(b) {
                let _ = n.attrs();
                assert_eq!(NotifyRepr::parse(&n.emit()).expect("an emitted notify parses"), n);
            }
        }
        PayloadType::Delete => {
            if let Ok(d) = DeleteRepr::parse(b) {
                assert_eq!(DeleteRepr::parse(&d.emit()).expect("an emitted delete parses"), d);
            }
        }
        _ => {}
    }
}

/// The configuration of one side, as console lines.
fn gw_config(local: Ipv4Addr, remote: Ipv4Addr, aggressive: bool, pfs: bool) -> Config {
    let (lan, remote_lan) = if local == A { ("10.1.0.0/24", "10.2.0.0/24") } else { ("10.2.0.0/24", "10.1.0.0/24") };
    let mode = if aggressive { "aggressive" } else { "main" };
    let pfs = if pfs { "modp768" } else { "none" };
    let lines = [
        format!("/ip ipsec proposal add name=p pfs-group={pfs}"),
        format!("/ip ipsec peer add address={remote} exchange-mode={mode} dh-group=modp768"),
        format!("/ip ipsec pre-shared-secret add address={remote} secret=\"gwejimezyfopmekun\""),
        format!(
            "/ip ipsec policy add src-address={lan} dst-address={remote_lan} action=encrypt tunnel=yes \
             sa-src-address={local} sa-dst-address={remote} proposal=p"
        ),
    ];
    let mut c = Console::new(Config::new());
    for l in &lines {
        c.execute(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    c.into_config()
}

/// Returns the configurations of both sides for each (aggressive, pfs), built once.
fn configs() -> &'static [[Config; 2]; 4] {
    static C: OnceLock<[[Config; 2]; 4]> = OnceLock::new();
    C.get_or_init(|| {
        std::array::from_fn(|i| {
            let (aggr, pfs) = (i & 1 != 0, i & 2 != 0);
            [gw_config(A, B, aggr, pfs), gw_config(B, A, aggr, pfs)]
        })
    })
}

/// Two engines and the datagrams between them.
struct Duo {
    ep: [Endpoint; 2],
    now: Instant,
    queue: VecDeque<(usize, Transmit)>,
    delivered: usize,
    /// Every genuine datagram delivered, with the side that sent it.
    log: Vec<(usize, Vec<u8>)>,
}

fn addr(side: usize) -> Ipv4Addr {
    if side == 0 { A } else { B }
}

impl Duo {
    fn new(setup: u8) -> Duo {
        let [ca, cb] = &configs()[usize::from(setup & 1) | usize::from(setup >> 2 & 1) << 1];
        let nat = setup & 0b10 != 0;
        let ep = |side: usize, c: &Config| {
            let mut ec = EndpointConfig::new(addr(side));
            ec.force_nat_t = nat;
            Endpoint::new(ec, c.clone(), Box::new(ChaCha20Rng::seed_from_u64(side as u64 + 1)))
        };
        Duo { ep: [ep(0, ca), ep(1, cb)], now: Instant::now(), queue: VecDeque::new(), delivered: 0, log: Vec::new() }
    }

    fn collect(&mut self) {
        for side in 0..2 {
            while let Some(t) = self.ep[side].poll_transmit() {
                self.queue.push_back((side, t));
            }
            while self.ep[side].poll_event().is_some() {}
        }
    }

    /// Delivers a datagram from `from` to the other engine, if it is addressed to it.
    fn deliver(&mut self, from: usize, t: &Transmit) {
        let SocketAddr::V4(dst) = t.remote else { return };
        if *dst.ip() == addr(1 - from) {
            let src = SocketAddr::V4(SocketAddrV4::new(addr(from), t.local_port));
            self.ep[1 - from].handle(self.now, src, &t.bytes);
        }
    }

    /// Runs the script (acquire, delete, acquire again) until `stop` datagrams were delivered or
    /// everything is quiet; returns the next genuine datagram, still in the queue, if any.
    fn run_until(&mut self, stop: usize) -> Option<(usize, Transmit)> {
        let id = self.ep[0].config().entries::<Policy>()[0].id;
        let mut script = 0;
        loop {
            self.collect();
            if self.delivered == stop {
                return self.queue.front().cloned();
            }
            if let Some((from, t)) = self.queue.pop_front() {
                self.log.push((from, t.bytes.clone()));
                self.deliver(from, &t);
                self.delivered += 1;
                continue;
            }
            let now = self.now;
            match script {
                0 => {
                    let _ = self.ep[0].acquire(now, id);
                }
                1 => self.ep[0].delete_sas(now, id),
                2 => {
                    let _ = self.ep[0].acquire(now, id);
                }
                _ => return None,
            }
            script += 1;
        }
    }

    /// Delivers everything in flight, then runs the timers for `horizon` of virtual time.
    fn finish(&mut self, horizon: Duration) {
        let end = self.now + horizon;
        loop {
            self.collect();
            if let Some((from, t)) = self.queue.pop_front() {
                self.deliver(from, &t);
                self.delivered += 1;
                assert!(self.delivered < MAX_DELIVERIES, "the engines keep sending: a datagram loop");
                continue;
            }
            let next = [self.ep[0].poll_timeout(), self.ep[1].poll_timeout()].into_iter().flatten().min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for e in &mut self.ep {
                        e.handle_timeout(self.now);
                    }
                }
                _ => break,
            }
        }
    }
}

/// Drives two engines to the chosen point, delivers the input there, and runs them on.
pub fn ike_engine(data: &[u8]) {
    let [setup, stage, how, rest @ ..] = data else { return };
    let mut duo = Duo::new(*setup);
    let to = usize::from(setup >> 3 & 1);
    let from = 1 - to;
    let next = duo.run_until(usize::from(stage % 24));
    let fix_len = how & 0x80 != 0;
    let src_ip = if setup & 0x10 != 0 { SPOOF } else { addr(from) };
    let (port, bytes) = match how & 0x7f {
        0 | 4.. => (500, rest.to_vec()),
        1 => (4500, [&wire::NON_ESP_MARKER[..], rest].concat()),
        2 => {
            let Some((_, t)) = &next else { return };
            let mut b = t.bytes.clone();
            let off = if b.starts_with(&wire::NON_ESP_MARKER) { 4 } else { 0 };
            for (i, x) in rest.iter().enumerate() {
                if let Some(v) = b.get_mut(off + i) {
                    *v ^= x;
                }
            }
            fix_length(&mut b[off..], fix_len);
            (t.local_port, b)
        }
        3 => {
            let Some((_, t)) = &next else { return };
            let off = if t.bytes.starts_with(&wire::NON_ESP_MARKER) { 4 } else { 0 };
            let Some(header) = t.bytes.get(..off + wire::HEADER_LEN) else { return };
            let mut b = [header, rest].concat();
            fix_length(&mut b[off..], fix_len);
            (t.local_port, b)
        }
    };
    let to = if how & 0x7f == 2 || how & 0x7f == 3 { next.map_or(to, |(f, _)| 1 - f) } else { to };
    let now = duo.now;
    duo.ep[to].handle(now, SocketAddr::V4(SocketAddrV4::new(src_ip, port)), &bytes);
    duo.finish(Duration::from_secs(600));
    for e in &duo.ep {
        assert!(e.phase1_count() <= 4, "ISAKMP SAs pile up: {}", e.phase1_count());
    }
}

fn fix_length(b: &mut [u8], fix: bool) {
    if fix && b.len() >= wire::HEADER_LEN {
        let len = b.len() as u32;
        b[24..28].copy_from_slice(&len.to_be_bytes());
    }
}

/// Returns seeds: every genuine datagram of each setup's script for `ike_wire`, and for
/// `ike_engine` each stage of each setup with an unchanged copy of the next datagram, the
/// genuine datagram itself from port 500, and its payloads behind its header.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    for setup in 0u8..8 {
        let mut duo = Duo::new(setup);
        duo.run_until(usize::MAX);
        let log = std::mem::take(&mut duo.log);
        for (k, (from, d)) in log.iter().enumerate() {
            if setup < 4 {
                v.push(("ike_wire", d.clone()));
            }
            let (k, to) = (k as u8, 8 * (1 - *from as u8));
            v.push(("ike_engine", vec![setup, k, 2]));
            let (port_kind, body) = match d.strip_prefix(&wire::NON_ESP_MARKER) {
                Some(b) => (1, b),
                None => (0, &d[..]),
            };
            if setup & 1 == 0 {
                v.push(("ike_engine", [&[setup | to, k, port_kind][..], body].concat()));
                if let Some(p) = body.get(wire::HEADER_LEN..) {
                    v.push(("ike_engine", [&[setup | to, k, 0x83][..], p].concat()));
                }
            }
        }
    }
    v
}
