//! The control process's IKE driver, two of them against each other in memory on virtual time:
//! an acquire installs a mirrored SA pair; the soft lifetime rekeys (the new pair sends, the old
//! one's inbound SA lingers, then goes, and the peer is told); the dataplane's byte lifetime
//! events rekey and remove; a changed policy drops its SAs.

mod ike_support;

use std::time::{Duration, Instant};

use control::compile::PolicySas;
use control::config::Config;
use control::daemon::ike::{IkeDriver, LINGER};
use control::daemon::wire::{ControlEvent, Datagram, InstalledSpec};
use dataplane::pipeline::Direction;
use dataplane::sa::SaEvent;
use ike_support::*;

/// Moves datagrams between the two drivers until both are quiet.
fn exchange(d: &mut [IkeDriver; 2], now: Instant) {
    for _ in 0..100 {
        let mut moved = false;
        for from in 0..2 {
            for t in d[from].transmits() {
                moved = true;
                // What one sends from (local, remote) the other receives as (remote, local).
                let rx = Datagram { local: t.remote, remote: t.local, payload: t.payload };
                d[1 - from].datagram(now, &rx);
            }
        }
        if !moved {
            return;
        }
    }
    panic!("the drivers never went quiet");
}

fn spis(v: &[PolicySas]) -> (Vec<u32>, Vec<u32>) {
    let keys =
        |b: &control::compile::BundleSpec| b.esp.iter().chain(b.ah.iter()).map(|s| s.key.spi).collect::<Vec<_>>();
    let inbound = v.iter().flat_map(|p| keys(&p.inbound)).collect();
    let outbound = v.iter().flat_map(|p| keys(&p.outbound)).collect();
    (inbound, outbound)
}

fn pair(lifetime: &str) -> ([IkeDriver; 2], Config, u32) {
    let (mut a, mut b) = Gw::pair();
    a.proposal = format!("lifetime={lifetime}");
    b.proposal = a.proposal.clone();
    let (ca, cb) = (a.config(), b.config());
    let id = policy_id(&ca);
    ([IkeDriver::new(&ca, false), IkeDriver::new(&cb, false)], ca, id)
}

fn establish(d: &mut [IkeDriver; 2], now: Instant, id: u32) {
    d[0].event(now, ControlEvent::Acquire { policy_id: id });
    exchange(d, now);
    assert!(d[0].take_changed() && d[1].take_changed(), "both sides have SAs to install");
}

#[test]
fn an_acquire_installs_mirrored_sas_from_the_policy_addresses() {
    let (mut d, _, id) = pair("30m");
    let now = Instant::now();
    establish(&mut d, now, id);
    let (a, b) = (d[0].sas(), d[1].sas());
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a[0].policy_id, id);
    let (a_in, a_out) = spis(&a);
    let (b_in, b_out) = spis(&b);
    assert_eq!((a_out.clone(), a_in.clone()), (b_in, b_out), "A's outbound SA is B's inbound SA");
    let out = a[0].outbound.esp.as_ref().unwrap();
    assert_eq!((out.key.src, out.key.dst), (A, B));
    assert_eq!(out.lifetimes.hard_secs, 1800);
    assert!(out.encap.is_none(), "no NAT, no ESP in UDP");
    assert!(!d[0].take_changed(), "nothing new");
    // An acquire raised before the SAs reached the worker changes nothing.
    d[0].event(now, ControlEvent::Acquire { policy_id: id });
    assert!(d[0].transmits().is_empty());
    assert_eq!((d[0].sas().len(), d[1].sas().len()), (1, 1));
}

#[test]
fn the_soft_lifetime_rekeys_and_the_old_inbound_sa_lingers_then_goes() {
    let (mut d, _, id) = pair("2m");
    let t0 = Instant::now();
    establish(&mut d, t0, id);
    let (old_in, old_out) = spis(&d[0].sas());
    // 80 % of 120 s: the initiator's soft lifetime starts a new quick mode.
    let t1 = t0 + Duration::from_secs(97);
    d[0].tick(t1);
    exchange(&mut d, t1);
    assert!(d[0].take_changed());
    let a = d[0].sas();
    assert_eq!(a.len(), 2, "old and new pair: {a:?}");
    let (ins, outs) = spis(&a);
    assert_eq!(ins.len(), 2, "both inbound SAs decrypt");
    assert_eq!(outs.len(), 1, "only the new pair sends");
    assert!(!outs.contains(&old_out[0]) && ins.contains(&old_in[0]));
    // B took the new pair as responder and sends on it too.
    let (_, b_outs) = spis(&d[1].sas());
    assert_eq!(b_outs.len(), 1);
    assert!(ins.contains(&b_outs[0]) && b_outs[0] != old_in[0], "B sends on A's new inbound SA");
    // After the linger the old pair goes, and the peer is told (DELETE): it drops it as well.
    let t2 = t1 + LINGER + Duration::from_secs(1);
    d[0].tick(t2);
    d[1].tick(t2);
    exchange(&mut d, t2);
    let (ins, _) = spis(&d[0].sas());
    assert_eq!(ins.len(), 1);
    assert!(!ins.contains(&old_in[0]));
    assert_eq!(d[1].sas().len(), 1, "B has only the new pair: {:?}", d[1].sas());
}

#[test]
fn dataplane_events_rekey_on_soft_bytes_and_remove_on_hard_bytes() {
    let (mut d, _, id) = pair("30m");
    let now = Instant::now();
    establish(&mut d, now, id);
    let out = d[0].sas()[0].outbound.esp.clone().unwrap();
    let ev = |event| ControlEvent::Sa { spi: out.key.spi, dst: out.key.dst, proto: out.key.proto, event };
    d[0].event(now, ev(SaEvent::SoftExpired));
    exchange(&mut d, now);
    assert_eq!(d[0].sas().len(), 2, "soft bytes: a new pair");
    // The hard lifetime of the (now lingering) old pair removes it at once and tells the peer.
    d[0].event(now, ev(SaEvent::HardExpired));
    exchange(&mut d, now);
    assert_eq!(d[0].sas().len(), 1);
    assert!(!spis(&d[0].sas()).1.contains(&out.key.spi));
    assert_eq!(d[1].sas().len(), 1, "the peer deleted its side");
    // An event about an SA nobody knows changes nothing.
    d[0].take_changed();
    d[0].event(now, ControlEvent::Sa { spi: 1, dst: out.key.dst, proto: out.key.proto, event: SaEvent::HardExpired });
    assert!(!d[0].take_changed());
}

#[test]
fn a_changed_or_removed_policy_drops_its_sas() {
    let (mut d, conf, id) = pair("30m");
    let now = Instant::now();
    establish(&mut d, now, id);
    // The same configuration again: the SAs stay.
    d[0].set_config(now, &conf);
    assert!(!d[0].take_changed());
    assert_eq!(d[0].sas().len(), 1);
    // The policy changes (its outer DF): its SAs go, and the peer is told.
    let mut c = control::cli::Console::new(conf);
    c.execute("/ip ipsec policy set 0 dont-fragment=set").unwrap();
    let changed = c.into_config();
    d[0].set_config(now, &changed);
    exchange(&mut d, now);
    assert!(d[0].take_changed());
    assert!(d[0].sas().is_empty());
    assert!(d[1].sas().is_empty(), "the peer got the DELETE");
    // An acquire for the changed policy negotiates again.
    d[0].event(now, ControlEvent::Acquire { policy_id: id });
    exchange(&mut d, now);
    assert_eq!(d[0].sas().len(), 1);
}

#[test]
fn an_acquire_for_a_policy_without_a_peer_is_refused_quietly() {
    let (mut d, _, _) = pair("30m");
    let now = Instant::now();
    d[0].event(now, ControlEvent::Acquire { policy_id: 999 });
    assert!(d[0].transmits().is_empty());
    assert!(!d[0].take_changed());
}

#[test]
fn a_restarted_control_process_adopts_the_installed_sas_and_renegotiates() {
    let (mut d, conf, id) = pair("30m");
    let now = Instant::now();
    establish(&mut d, now, id);
    // What the dataplane reports after the control process died: the SAs, installed 60 s ago.
    let installed: Vec<InstalledSpec> = d[0]
        .sas()
        .iter()
        .flat_map(|p| [(Direction::Out, p.outbound.clone()), (Direction::In, p.inbound.clone())])
        .flat_map(|(direction, b)| {
            b.esp.into_iter().chain(b.ah).map(move |spec| InstalledSpec {
                policy_id: id,
                direction,
                spec,
                added: 1_000,
            })
        })
        .collect();
    let before = spis(&d[0].sas());
    let mut fresh = IkeDriver::new(&conf, false);
    fresh.adopt(now, 1_060, &installed);
    assert_eq!(spis(&fresh.sas()), before, "the running SAs are kept as they are");
    // It negotiates new SAs at once (it has no ISAKMP SA to rekey the old ones with).
    d[0] = fresh;
    exchange(&mut d, now);
    let (ins, outs) = spis(&d[0].sas());
    assert_eq!(ins.len(), 2, "old and new inbound SAs");
    assert_eq!(outs.len(), 1);
    assert!(!before.1.contains(&outs[0]), "it sends on the new pair");
    // An SA past its hard lifetime is not adopted; nor are SAs of policies IKE does not key.
    let mut late = IkeDriver::new(&conf, false);
    late.adopt(now, 1_000 + 1800, &installed);
    assert!(late.sas().is_empty());
    let other: Vec<InstalledSpec> = installed.iter().map(|s| InstalledSpec { policy_id: 999, ..s.clone() }).collect();
    let mut unknown = IkeDriver::new(&conf, false);
    unknown.adopt(now, 1_060, &other);
    assert!(unknown.sas().is_empty() && unknown.transmits().is_empty());
}
