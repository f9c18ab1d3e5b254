//! Two IKE engines against each other in memory on virtual time: every phase 1 suite in main
//! and aggressive mode, phase 2 algorithms, modes and PFS, proposal-check, wrong secrets,
//! proposal mismatches, loss, duplicates, reordering, DELETE, a restarting peer, NAT traversal.

mod ike_support;

use std::time::Duration;

use control::ike::wire::NotifyType;
use control::ike::{DropReason, Event, FailReason, Role};
use dataplane::crypto::{Auth, Cipher};
use dataplane::sa::{IpsecProto, Mode};
use ike_support::*;

fn up(net: &Net) -> (&control::ike::ChildSa, &control::ike::ChildSa) {
    let (i, r) = (net.sas(0), net.sas(1));
    assert_eq!(i.len(), 1, "initiator SAs; events: {:?}", net.events[0]);
    assert_eq!(r.len(), 1, "responder SAs; events: {:?}", net.events[1]);
    assert_eq!(i[0].role, Role::Initiator);
    assert_eq!(r[0].role, Role::Responder);
    assert_mirrored(i[0], r[0]);
    assert_eq!(i[0].outbound, r[0].inbound, "without a NAT the addresses agree too");
    assert_eq!(i[0].inbound, r[0].outbound);
    (i[0], r[0])
}

#[test]
fn every_phase1_suite_in_main_and_aggressive_mode() {
    let mut n = 0;
    for mode in ["main", "aggressive"] {
        for enc in ["des", "3des", "aes-128", "aes-192", "aes-256"] {
            for hash in ["md5", "sha", "sha256"] {
                for group in ["modp768", "modp1024", "modp1536", "modp2048"] {
                    let (mut a, mut b) = Gw::pair();
                    let peer =
                        format!("exchange-mode={mode} enc-algorithm={enc} hash-algorithm={hash} dh-group={group}");
                    a.peer = peer.clone();
                    b.peer = peer;
                    a.proposal = "pfs-group=none".into();
                    b.proposal = "pfs-group=none".into();
                    let net = establish(a, b);
                    assert_eq!(net.phase1_ups(0), 1, "{mode} {enc} {hash} {group}: {:?}", net.events[0]);
                    assert_eq!(net.phase1_ups(1), 1, "{mode} {enc} {hash} {group}: {:?}", net.events[1]);
                    up(&net);
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 120);
}

#[test]
fn phase2_algorithms_protocols_and_modes() {
    let esp = [
        ("des", "md5", Cipher::DesCbc, Auth::HmacMd5_96),
        ("3des", "sha1", Cipher::TdesCbc, Auth::HmacSha1_96),
        ("aes-128", "sha256", Cipher::AesCbc128, Auth::HmacSha256_128),
        ("aes-192", "sha1", Cipher::AesCbc192, Auth::HmacSha1_96),
        ("aes-256", "sha256", Cipher::AesCbc256, Auth::HmacSha256_128),
        ("null", "sha1", Cipher::Null, Auth::HmacSha1_96),
        ("aes-128-gcm", "null", Cipher::AesGcm128, Auth::Null),
        ("aes-256-gcm", "null", Cipher::AesGcm256, Auth::Null),
        ("aes-128", "null", Cipher::AesCbc128, Auth::Null),
    ];
    for (enc, auth, c, au) in esp {
        for tunnel in ["yes", "no"] {
            let (mut a, mut b) = Gw::pair();
            a.proposal = format!("enc-algorithms={enc} auth-algorithms={auth}");
            b.proposal = a.proposal.clone();
            a.policy = format!("tunnel={tunnel}");
            b.policy = a.policy.clone();
            let net = establish(a, b);
            let (i, _) = up(&net);
            let s = i.outbound.esp.as_ref().expect("ESP");
            assert_eq!((s.xf.cipher(), s.xf.auth()), (c, au), "{enc} {auth}");
            assert_eq!(s.mode, if tunnel == "yes" { Mode::Tunnel } else { Mode::Transport });
            assert_eq!(s.key.src, A);
            assert_eq!(s.key.dst, B);
            assert_eq!(s.key.proto, IpsecProto::Esp);
            assert!(i.outbound.ah.is_none());
        }
    }
    for (auth, au) in [("md5", Auth::HmacMd5_96), ("sha1", Auth::HmacSha1_96), ("sha256", Auth::HmacSha256_128)] {
        for protocols in ["ah", "ah,esp"] {
            let (mut a, mut b) = Gw::pair();
            a.proposal = format!("auth-algorithms={auth}");
            b.proposal = a.proposal.clone();
            a.policy = format!("tunnel=yes ipsec-protocols={protocols}");
            b.policy = a.policy.clone();
            let net = establish(a, b);
            let (i, _) = up(&net);
            let ah = i.outbound.ah.as_ref().expect("AH");
            assert_eq!(ah.xf.auth(), au);
            assert_eq!(ah.key.proto, IpsecProto::Ah);
            if protocols == "ah" {
                assert!(i.outbound.esp.is_none());
                assert_eq!(ah.mode, Mode::Tunnel);
            } else {
                assert_eq!(i.outbound.esp.as_ref().unwrap().mode, Mode::Tunnel);
                assert_eq!(ah.mode, Mode::Transport);
            }
        }
    }
}

#[test]
fn responder_picks_the_first_acceptable_transform() {
    let (mut a, mut b) = Gw::pair();
    a.proposal = "enc-algorithms=aes-256,3des,des auth-algorithms=sha256,sha1".into();
    b.proposal = "enc-algorithms=3des,aes-128 auth-algorithms=sha1".into();
    let net = establish(a, b);
    let (i, _) = up(&net);
    let s = i.outbound.esp.as_ref().unwrap();
    assert_eq!((s.xf.cipher(), s.xf.auth()), (Cipher::TdesCbc, Auth::HmacSha1_96));
}

#[test]
fn pfs_on_and_off() {
    for (pfs, want) in [
        ("none", None),
        ("modp768", Some(control::ike::crypto::Group::Modp768)),
        ("modp1024", Some(control::ike::crypto::Group::Modp1024)),
        ("modp1536", Some(control::ike::crypto::Group::Modp1536)),
        ("modp2048", Some(control::ike::crypto::Group::Modp2048)),
    ] {
        let (mut a, mut b) = Gw::pair();
        a.proposal = format!("pfs-group={pfs}");
        b.proposal = a.proposal.clone();
        let net = establish(a, b);
        let (i, _) = up(&net);
        assert_eq!(i.pfs, want);
    }
    // The same nonces and SPIs give different keys with and without PFS: the seeds are equal,
    // so only g(qm)^xy differs.
    let keys = |pfs: &str| {
        let (mut a, mut b) = Gw::pair();
        a.proposal = format!("pfs-group={pfs}");
        b.proposal = a.proposal.clone();
        let net = establish(a, b);
        let i = net.sas(0)[0].clone();
        i.outbound.esp.unwrap().enc_key.to_vec()
    };
    assert_ne!(keys("none"), keys("modp1024"));
}

#[test]
fn proposal_mismatch_is_no_proposal_chosen() {
    let (mut a, mut b) = Gw::pair();
    a.proposal = "enc-algorithms=aes-256".into();
    b.proposal = "enc-algorithms=des".into();
    let net = establish(a, b);
    assert_eq!(net.phase1_ups(0), 1);
    assert!(net.sas(0).is_empty() && net.sas(1).is_empty());
    assert!(
        net.failures(0).iter().any(|e| matches!(
            e,
            Event::Failed { reason: FailReason::PeerNotify(NotifyType::NoProposalChosen), policy_id: Some(_), .. }
        )),
        "{:?}",
        net.events[0]
    );
    assert!(net.failures(1).iter().any(|e| matches!(e, Event::Failed { reason: FailReason::NoProposalChosen, .. })));

    // Phase 1: different ciphers.
    let (mut a, mut b) = Gw::pair();
    a.peer = "enc-algorithm=aes-128".into();
    b.peer = "enc-algorithm=3des".into();
    let net = establish(a, b);
    assert_eq!(net.phase1_ups(0), 0);
    assert!(net.failures(0).iter().any(|e| matches!(
        e,
        Event::Failed { reason: FailReason::PeerNotify(NotifyType::NoProposalChosen), policy_id: Some(_), .. }
    )));
    assert!(net.failures(1).iter().any(|e| matches!(e, Event::Failed { reason: FailReason::NoProposalChosen, .. })));

    // PFS on one side only.
    let (mut a, mut b) = Gw::pair();
    a.proposal = "pfs-group=none".into();
    b.proposal = "pfs-group=modp1024".into();
    let net = establish(a, b);
    assert!(net.sas(0).is_empty());
}

#[test]
fn wrong_secret_fails_with_authentication_failed() {
    for mode in ["main", "aggressive"] {
        let (mut a, mut b) = Gw::pair();
        a.peer = format!("exchange-mode={mode}");
        b.peer = a.peer.clone();
        b.secret = "something else".into();
        let net = establish(a, b);
        assert_eq!(net.phase1_ups(0) + net.phase1_ups(1), 0, "{mode}");
        let auth = |e: &&Event| {
            matches!(
                e,
                Event::Failed {
                    reason: FailReason::AuthenticationFailed | FailReason::PeerNotify(NotifyType::AuthenticationFailed),
                    ..
                }
            )
        };
        assert!(net.failures(0).iter().any(auth), "{mode}: {:?}", net.events[0]);
        assert!(net.failures(1).iter().any(auth), "{mode}: {:?}", net.events[1]);
        // Both sides are clean afterwards.
        assert_eq!(net.ep[0].phase1_count() + net.ep[1].phase1_count(), 0);
    }
}

#[test]
fn hex_secrets() {
    let (mut a, mut b) = Gw::pair();
    a.secret = "0x00112233445566778899".into();
    b.secret = a.secret.clone();
    up(&establish(a, b));
    let (mut a, mut b) = Gw::pair();
    a.secret = "0x41424344".into();
    b.secret = "ABCD".into();
    up(&establish(a, b));
}

/// Runs proposal-check with the initiator proposing `init` seconds and the responder
/// configured with `resp`; returns the negotiated lifetime (None: refused).
fn lifetimes(check: &str, init: u64, resp: u64, init_kb: u64, resp_kb: u64) -> Option<(u64, u64)> {
    let (mut a, mut b) = Gw::pair();
    a.proposal = format!("lifetime={init}s lifebyte={}", init_kb * 1024);
    b.proposal = format!("lifetime={resp}s lifebyte={}", resp_kb * 1024);
    b.peer = format!("proposal-check={check}");
    let net = establish(a, b);
    match (net.sas(0).first(), net.sas(1).first()) {
        (Some(i), Some(r)) => {
            assert_mirrored(i, r);
            let s = i.outbound.esp.as_ref().unwrap();
            assert_eq!(s.lifetimes.hard_secs, i.life_secs);
            assert_eq!(s.lifetimes.hard_bytes, i.life_kb * 1024);
            assert_eq!(r.inbound.esp.as_ref().unwrap().lifetimes, s.lifetimes);
            Some((i.life_secs, i.life_kb))
        }
        (None, None) => {
            assert!(
                net.failures(1).iter().any(|e| matches!(e, Event::Failed { reason: FailReason::NoProposalChosen, .. }))
            );
            None
        }
        _ => panic!("one side up: {:?} / {:?}", net.events[0], net.events[1]),
    }
}

#[test]
fn proposal_check_claim_exact_obey_strict() {
    // Initiator shorter, equal, longer than the responder's 1800 s.
    let (short, eq, long) = (900, 1800, 3600);
    assert_eq!(lifetimes("claim", short, 1800, 0, 0), Some((900, 0)));
    assert_eq!(lifetimes("claim", eq, 1800, 0, 0), Some((1800, 0)));
    assert_eq!(lifetimes("claim", long, 1800, 0, 0), Some((1800, 0)), "RESPONDER-LIFETIME shortens it");
    assert_eq!(lifetimes("exact", short, 1800, 0, 0), None);
    assert_eq!(lifetimes("exact", eq, 1800, 0, 0), Some((1800, 0)));
    assert_eq!(lifetimes("exact", long, 1800, 0, 0), None);
    assert_eq!(lifetimes("obey", short, 1800, 0, 0), Some((900, 0)));
    assert_eq!(lifetimes("obey", eq, 1800, 0, 0), Some((1800, 0)));
    assert_eq!(lifetimes("obey", long, 1800, 0, 0), Some((3600, 0)));
    assert_eq!(lifetimes("strict", short, 1800, 0, 0), Some((900, 0)));
    assert_eq!(lifetimes("strict", eq, 1800, 0, 0), Some((1800, 0)));
    assert_eq!(lifetimes("strict", long, 1800, 0, 0), None);
    // Kilobytes: claim takes the smaller and tells the initiator; strict refuses more.
    assert_eq!(lifetimes("claim", 1800, 1800, 4000, 1000), Some((1800, 1000)));
    assert_eq!(lifetimes("claim", 1800, 1800, 0, 1000), Some((1800, 1000)));
    assert_eq!(lifetimes("strict", 1800, 1800, 4000, 1000), None);
    assert_eq!(lifetimes("strict", 1800, 1800, 500, 1000), Some((1800, 500)));
    assert_eq!(lifetimes("exact", 1800, 1800, 1000, 1000), Some((1800, 1000)));
    assert_eq!(lifetimes("obey", 1800, 1800, 0, 1000), Some((1800, 0)));
}

#[test]
fn lost_messages_are_retransmitted() {
    for mode in ["main", "aggressive"] {
        // Five retransmissions: losing the first message and all five copies gives up.
        for lose in 1..=5usize {
            let (mut a, mut b) = Gw::pair();
            a.peer = format!("exchange-mode={mode}");
            b.peer = a.peer.clone();
            let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
            let id = policy_id(ea.config());
            let mut net = Net::new(ea, eb);
            // Lose the first `lose` datagrams of the run.
            net.fate = Box::new(move |p| if p.seq <= lose { Fate::Lose } else { Fate::Deliver });
            let now = net.now;
            net.ep[0].acquire(now, id).unwrap();
            net.run();
            up(&net);
            assert!(net.ep[0].stats().retransmits + net.ep[1].stats().retransmits > 0);
        }
    }
    // Losing the n-th datagram alone, whichever it is.
    for nth in 1..=10usize {
        let (a, b) = Gw::pair();
        let (ea, eb) = (endpoint(&a, 3), endpoint(&b, 4));
        let id = policy_id(ea.config());
        let mut net = Net::new(ea, eb);
        net.fate = Box::new(move |p| if p.seq == nth { Fate::Lose } else { Fate::Deliver });
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        up(&net);
    }
}

#[test]
fn a_quick_mode_lost_right_after_aggressive_mode_is_sent_again_early() {
    // Aggressive mode's last message gets no answer; a busy peer can drop the first quick mode
    // message while it still processes it. Lose that one.
    let is_quick = |p: &Packet| {
        let b: &[u8] = if p.t.bytes.starts_with(&[0, 0, 0, 0]) { &p.t.bytes[4..] } else { &p.t.bytes };
        p.from == 0 && b.get(18) == Some(&32)
    };
    let (mut a, mut b) = Gw::pair();
    a.peer = "exchange-mode=aggressive".into();
    b.peer = a.peer.clone();
    let (ea, eb) = (endpoint(&a, 5), endpoint(&b, 6));
    let id = policy_id(ea.config());
    let mut net = Net::new(ea, eb);
    let mut lost = false;
    net.fate = Box::new(move |p| {
        if is_quick(p) && !lost {
            lost = true;
            return Fate::Lose;
        }
        Fate::Deliver
    });
    let start = net.now;
    net.ep[0].acquire(start, id).unwrap();
    net.run();
    up(&net);
    let quick: Vec<_> = net.log.iter().filter(|p| is_quick(p)).map(|p| p.at).collect();
    assert!(quick.len() >= 2, "the quick mode was sent again");
    let gap = quick[1] - quick[0];
    assert!(gap < Duration::from_millis(500), "resent after {gap:?}, not after the usual 2 s");
}

/// Returns the first messages of initiators configured like `gw`, one per seed (ever new
/// cookies): a spoofer's flood.
fn first_messages(gw: &Gw, seeds: std::ops::Range<u64>) -> Vec<Vec<u8>> {
    seeds
        .map(|seed| {
            let mut ep = endpoint(gw, seed);
            let id = policy_id(ep.config());
            ep.acquire(std::time::Instant::now(), id).unwrap();
            ep.poll_transmit().unwrap().bytes
        })
        .collect()
}

/// Returns two peers on their network, the second configured by `f`, after it received a
/// spoofer's flood of first messages (one per seed) from the first one's address; and the
/// first one's policy id.
fn flooded(seeds: std::ops::Range<u64>, f: impl FnOnce(&mut control::ike::EndpointConfig)) -> (Net, u32) {
    let (a, b) = Gw::pair();
    let flood = first_messages(&a, seeds);
    let (ea, eb) = (endpoint(&a, 1), endpoint_with(&b, 2, f));
    let id = policy_id(ea.config());
    let mut net = Net::new(ea, eb);
    let (now, from) = (net.now, std::net::SocketAddr::from((a.local, 500)));
    for m in &flood {
        net.ep[1].handle(now, from, m);
    }
    (net, id)
}

#[test]
fn a_flood_of_first_messages_does_not_lock_the_real_peer_out() {
    // First messages from the peer's address with ever new cookies (a spoofer's flood): the
    // half-open exchanges stay bounded, the oldest give way, and the real peer still gets in.
    for max_phase1 in [256, 8] {
        let (mut net, id) = flooded(1000..1300, |c| c.max_phase1 = max_phase1);
        while net.ep[1].poll_transmit().is_some() {}
        let bound = max_phase1.min(control::ike::HALF_OPEN_PER_PEER);
        assert_eq!(net.ep[1].phase1_count(), bound, "half-open exchanges bounded");
        assert_eq!(net.ep[1].stats().evicted, 300 - bound as u64);
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        up(&net);
    }
    // The CPU a flood costs is bounded too: new exchanges beyond the rate are dropped before
    // anything is computed or sent; the real peer's retransmission gets in a moment later.
    let (mut net, id) = flooded(2000..2300, |c| c.new_exchanges_per_sec = 50);
    let answered = std::iter::from_fn(|| net.ep[1].poll_transmit()).count();
    assert_eq!(answered, 100, "a burst of twice the rate answered");
    assert_eq!(net.ep[1].stats().dropped(DropReason::Overload), 200);
    let now = net.now;
    net.ep[0].acquire(now, id).unwrap();
    net.run();
    up(&net);
}

#[test]
fn a_silent_peer_times_out() {
    let (a, b) = Gw::pair();
    let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
    let id = policy_id(ea.config());
    let mut net = Net::new(ea, eb);
    net.fate = Box::new(|_| Fate::Lose);
    let now = net.now;
    net.ep[0].acquire(now, id).unwrap();
    net.run();
    assert!(
        net.failures(0)
            .iter()
            .any(|e| matches!(e, Event::Failed { reason: FailReason::Timeout, policy_id: Some(p), .. } if *p == id))
    );
    // 2 + 4 + 8 + 16 + 32 s of retransmissions, then the last interval.
    assert!(net.now - net.start >= Duration::from_secs(62));
    assert_eq!(net.ep[0].stats().retransmits, 5);
    assert_eq!(net.ep[0].phase1_count(), 0);
    assert!(net.ep[0].poll_timeout().is_none());
}

#[test]
fn duplicates_are_answered_and_establish_once() {
    for mode in ["main", "aggressive"] {
        let (mut a, mut b) = Gw::pair();
        a.peer = format!("exchange-mode={mode}");
        b.peer = a.peer.clone();
        let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
        let id = policy_id(ea.config());
        let mut net = Net::new(ea, eb);
        net.fate = Box::new(|_| Fate::Duplicate);
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        up(&net);
        assert_eq!(net.phase1_ups(0), 1);
        assert_eq!(net.phase1_ups(1), 1);
        let dups = net.ep[0].stats().dropped(DropReason::Duplicate) + net.ep[1].stats().dropped(DropReason::Duplicate);
        assert!(dups > 0);
    }
}

#[test]
fn reordered_and_late_duplicates() {
    // Every datagram is delivered late (after the next one), and every third one twice.
    let (a, b) = Gw::pair();
    let (ea, eb) = (endpoint(&a, 5), endpoint(&b, 6));
    let id = policy_id(ea.config());
    let mut net = Net::new(ea, eb);
    net.fate = Box::new(|p| match p.seq % 3 {
        0 => Fate::Delay,
        1 => Fate::Duplicate,
        _ => Fate::Deliver,
    });
    let now = net.now;
    net.ep[0].acquire(now, id).unwrap();
    net.run();
    up(&net);

    // Two acquires for two policies at once: their quick modes interleave on one ISAKMP SA.
    let (mut a, mut b) = Gw::pair();
    a.policy = "tunnel=yes".into();
    b.policy = a.policy.clone();
    let mut ca = a.config();
    let mut cb = b.config();
    let add =
        |c: &mut control::config::Config, src: &str, dst: &str, me: std::net::Ipv4Addr, them: std::net::Ipv4Addr| {
            let mut con = control::cli::Console::new(c.clone());
            con.execute(&format!(
                "/ip ipsec policy add src-address={src} dst-address={dst} action=encrypt tunnel=yes \
             sa-src-address={me} sa-dst-address={them} proposal=p"
            ))
            .unwrap();
            *c = con.into_config();
        };
    add(&mut ca, "10.3.0.0/24", "10.4.0.0/24", A, B);
    add(&mut cb, "10.4.0.0/24", "10.3.0.0/24", B, A);
    let mut ea = endpoint(&a, 7);
    let mut eb = endpoint(&b, 8);
    ea.set_config(ca);
    eb.set_config(cb);
    let ids: Vec<u32> = ea.config().entries::<control::config::Policy>().iter().map(|e| e.id).collect();
    let mut net = Net::new(ea, eb);
    net.fate = Box::new(|p| if p.seq % 2 == 0 { Fate::Delay } else { Fate::Deliver });
    let now = net.now;
    for id in &ids {
        net.ep[0].acquire(now, *id).unwrap();
    }
    net.run();
    assert_eq!(net.phase1_ups(0), 1);
    let (i, r) = (net.sas(0), net.sas(1));
    assert_eq!((i.len(), r.len()), (2, 2), "{:?}", net.events);
    for s in &i {
        let m = r.iter().find(|x| x.local_id == s.remote_id).unwrap();
        assert_mirrored(s, m);
    }
}

#[test]
fn repeated_acquires_start_one_negotiation() {
    let (a, b) = Gw::pair();
    let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
    let id = policy_id(ea.config());
    let mut net = Net::new(ea, eb);
    let now = net.now;
    for _ in 0..5 {
        net.ep[0].acquire(now, id).unwrap();
    }
    net.run();
    up(&net);
    // A later acquire reuses the ISAKMP SA: quick mode only.
    let before = net.log.len();
    let now = net.now;
    net.ep[0].acquire(now, id).unwrap();
    net.run();
    assert_eq!(net.sas(0).len(), 2);
    assert_eq!(net.log.len() - before, 3, "quick mode is three messages");
    assert_eq!(net.phase1_ups(0), 1);
    assert!(net.ep[0].acquire(now, 999).is_err());
}

#[test]
fn delete_reaches_the_peer() {
    let mut net = establish(Gw::pair().0, Gw::pair().1);
    let (i, _) = up(&net);
    let (policy, in_spi, out_spi) =
        (i.policy_id, i.inbound.esp.as_ref().unwrap().key.spi, i.outbound.esp.as_ref().unwrap().key.spi);
    let now = net.now;
    net.ep[0].delete_sas(now, policy);
    net.run();
    let deleted = |side: usize| {
        net.events[side]
            .iter()
            .filter_map(|e| match e {
                Event::SaDeleted { inbound, outbound, .. } => Some((inbound[0].spi, outbound[0].spi)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(deleted(0), vec![(in_spi, out_spi)]);
    assert_eq!(deleted(1), vec![(out_spi, in_spi)], "{:?}", net.events[1]);
    // Phase 1 delete.
    let now = net.now;
    net.ep[1].delete_phase1(now, A);
    net.run();
    assert!(net.events[0].iter().any(|e| matches!(e, Event::Phase1Deleted { .. })));
    assert!(net.events[1].iter().any(|e| matches!(e, Event::Phase1Deleted { .. })));
    assert_eq!(net.ep[0].phase1_count() + net.ep[1].phase1_count(), 0);
}

#[test]
fn restarted_peer_is_purged_by_initial_contact() {
    for mode in ["main", "aggressive"] {
        let (mut a, mut b) = Gw::pair();
        a.peer = format!("exchange-mode={mode}");
        b.peer = a.peer.clone();
        let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
        let id = policy_id(ea.config());
        let mut net = Net::new(ea, eb);
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        let old = net.sas(1)[0].inbound.esp.as_ref().unwrap().key.spi;
        // The initiator restarts: new cookies, no state, INITIAL-CONTACT.
        net.ep[0] = endpoint(&a, 99);
        net.events[0].clear();
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        assert_eq!(net.sas(0).len(), 1, "{mode}");
        assert!(
            net.events[1].iter().any(|e| matches!(e, Event::SaDeleted { inbound, .. } if inbound[0].spi == old)),
            "{mode}: {:?}",
            net.events[1]
        );
        assert_eq!(net.events[1].iter().filter(|e| matches!(e, Event::Phase1Deleted { .. })).count(), 1);
        assert_eq!(net.ep[1].phase1_count(), 1);
        assert_mirrored(net.sas(0)[0], net.sas(1)[1]);
    }
}

#[test]
fn nat_traversal_floats_to_4500() {
    for mode in ["main", "aggressive"] {
        let (mut a, mut b) = Gw::pair();
        a.peer = format!("exchange-mode={mode}");
        b.peer = a.peer.clone();
        // The responder knows the initiator by its public address.
        b.remote = NAT;
        let (ea, eb) = (endpoint(&a, 1), endpoint(&b, 2));
        let id = policy_id(ea.config());
        let mut net = Net::new(ea, eb);
        net.nat = Some(NAT);
        let now = net.now;
        net.ep[0].acquire(now, id).unwrap();
        net.run();
        let (i, r) = (net.sas(0), net.sas(1));
        assert_eq!((i.len(), r.len()), (1, 1), "{mode}: {:?} {:?}", net.events[0], net.events[1]);
        assert_eq!(i[0].encap.map(|e| (e.local_port, e.remote_port)), Some((4500, 4500)));
        assert_eq!(r[0].encap.map(|e| e.local_port), Some(4500));
        assert_eq!(r[0].outbound.esp.as_ref().unwrap().key.dst, NAT);
        // The dataplane SAs carry the UDP ports: outbound from ours to the peer's, inbound the
        // reverse, as each side sees them.
        let ports =
            |s: &Option<control::compile::SaSpec>| s.as_ref().and_then(|s| s.encap).map(|e| (e.src_port, e.dst_port));
        let (ie, re) = (i[0].encap.unwrap(), r[0].encap.unwrap());
        assert_eq!(ports(&i[0].outbound.esp), Some((ie.local_port, ie.remote_port)));
        assert_eq!(ports(&i[0].inbound.esp), Some((ie.remote_port, ie.local_port)));
        assert_eq!(ports(&r[0].outbound.esp), Some((re.local_port, re.remote_port)));
        assert_eq!(ports(&r[0].inbound.esp), Some((re.remote_port, re.local_port)));
        assert!(net.log.iter().any(|p| p.t.local_port == 4500 && p.t.bytes.starts_with(&[0, 0, 0, 0])));
        assert!(net.events[0].iter().any(|e| matches!(e, Event::Phase1Established { nat: true, .. })));
        // The one behind the NAT sends keepalives.
        let before = net.log.len();
        net.run_for(Duration::from_secs(45));
        assert!(net.log[before..].iter().any(|p| p.from == 0 && p.t.bytes == [0xff]));
    }
    // Forced NAT-T without a NAT.
    let (a, b) = Gw::pair();
    let ea = endpoint_with(&a, 1, |c| c.force_nat_t = true);
    let eb = endpoint(&b, 2);
    let id = policy_id(ea.config());
    let mut net = Net::new(ea, eb);
    let now = net.now;
    net.ep[0].acquire(now, id).unwrap();
    net.run();
    let (i, r) = up(&net);
    assert!(i.encap.is_some() && r.encap.is_some());
}
