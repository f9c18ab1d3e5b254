//! Tests of the configuration model: the manual's defaults, key semantics, references, export
//! round trips (also of random configurations), and atomic persistence.

use std::net::Ipv4Addr;

use dataplane::crypto::KeyAlgorithm;
use dataplane::sa::DontFragment;
use dataplane::spd::{Action, IpsecProtocols, Level};
use proptest::prelude::*;

use super::value::{AddrPort, Duration, Pair};
use super::*;
use crate::cli::Console;

fn add(cfg: &mut Config, menu: Menu, args: &[(&str, &str)]) -> usize {
    cfg.add(menu, args).unwrap_or_else(|e| panic!("{menu} add {args:?}: {e}"))
}

#[test]
fn defaults_follow_the_manual() {
    let mut cfg = Config::new();
    assert_eq!(cfg.entries::<Proposal>().len(), 1);
    let d = cfg.get::<Proposal>(DEFAULT_PROPOSAL).unwrap();
    assert_eq!(d.lifetime, Duration(30 * 60));
    assert_eq!(d.lifebyte, 0);
    assert_eq!(d.pfs_group, PfsGroup::Modp1024);
    assert_eq!(
        (d.auth_algorithms.as_slice(), d.enc_algorithms.as_slice()),
        (&[AuthAlgorithm::Sha1][..], &[EncAlgorithm::Tdes][..])
    );

    add(&mut cfg, Menu::Policy, &[]);
    let p = &cfg.entries::<Policy>()[0].item;
    assert_eq!((p.src_address, p.dst_address, p.protocol), (AddrPort::ANY, AddrPort::ANY, None));
    assert_eq!((p.action, p.level, p.tunnel), (Action::Accept, Level::Require, false));
    assert_eq!((p.ipsec_protocols, p.dont_fragment), (IpsecProtocols::Esp, DontFragment::Clear));
    assert_eq!((p.manual_sa.as_deref(), p.proposal.as_str()), (None, "default"));

    add(&mut cfg, Menu::Peer, &[("address", "10.0.0.2")]);
    let peer = &cfg.entries::<Peer>()[0].item;
    assert_eq!((peer.port, peer.auth_method, peer.exchange_mode), (500, AuthMethod::PreSharedKey, ExchangeMode::Main));
    assert!(peer.send_initial_contact);
    assert_eq!((peer.proposal_check, peer.hash_algorithm), (ProposalCheck::Strict, HashAlgorithm::Md5));
    assert_eq!((peer.enc_algorithm, peer.dh_group), (PeerEncAlgorithm::Tdes, DhGroup::Modp1024));
    assert_eq!((peer.lifetime, peer.nonce_size), (Duration(86_400), 16));

    add(&mut cfg, Menu::Interface, &[("name", "e0"), ("device", "net_null0")]);
    assert_eq!(cfg.entries::<Interface>()[0].item.mtu, 1500);
    // Ids are never reused and start after the default proposal's.
    let ids: Vec<u32> =
        [cfg.id(Menu::Proposal, 0), cfg.id(Menu::Policy, 0), cfg.id(Menu::Peer, 0)].into_iter().flatten().collect();
    assert_eq!(ids, [1, 2, 3]);
}

#[test]
fn keys_take_the_manuals_semantics() {
    let mut cfg = Config::new();
    add(&mut cfg, Menu::Key, &[("name", "a"), ("algorithm", "aes"), ("key", "0x000102030405060708090a0b0c0d0e0f1011")]);
    add(&mut cfg, Menu::Key, &[("name", "n"), ("algorithm", "null"), ("key", "abcdef")]);
    add(&mut cfg, Menu::Key, &[("name", "g"), ("algorithm", "aes-gcm"), ("length", "288"), ("key", &"ab".repeat(40))]);
    let a = cfg.get::<Key>("a").unwrap();
    assert_eq!((a.algorithm, a.length), (KeyAlgorithm::Aes, 128));
    assert_eq!(a.bytes().unwrap().len(), 16, "truncated to length");
    assert_eq!(cfg.get::<Key>("n").unwrap().length, 24, "null takes the key's length");
    assert_eq!(cfg.get::<Key>("g").unwrap().bytes().unwrap().len(), 36);
    assert_eq!(cfg.find(Menu::Key, "g"), Some(2));
}

#[test]
fn references_are_checked_and_protect_their_targets() {
    let mut cfg = Config::new();
    add(&mut cfg, Menu::Key, &[("name", "k"), ("algorithm", "sha1"), ("key", &"11".repeat(20))]);
    add(&mut cfg, Menu::ManualSa, &[("name", "m"), ("ah-key", "k"), ("ah-spi", "300/301")]);
    add(&mut cfg, Menu::Proposal, &[("name", "p")]);
    add(&mut cfg, Menu::Policy, &[("manual-sa", "m"), ("proposal", "p")]);
    let before = cfg.clone();
    assert_eq!(cfg.remove(Menu::Proposal, &[1]), Err(ConfigError::failure("proposal p is in use by policy #0")));
    assert_eq!(cfg.remove(Menu::Key, &[0]), Err(ConfigError::failure("key k is in use by manual-sa m")));
    assert_eq!(
        cfg.set(Menu::ManualSa, &[0], &[("name", "m2")]),
        Err(ConfigError::failure("manual-sa m is in use by policy #0"))
    );
    assert_eq!(cfg, before);
    // Once nothing refers to them, they go.
    cfg.set(Menu::Policy, &[0], &[("manual-sa", "none"), ("proposal", "default")]).unwrap();
    cfg.remove(Menu::ManualSa, &[0]).unwrap();
    cfg.remove(Menu::Key, &[0]).unwrap();
    cfg.remove(Menu::Proposal, &[1]).unwrap();
    assert!(cfg.is_empty(Menu::Key) && cfg.is_empty(Menu::ManualSa));
    let sa = ManualSa {
        name: "x".into(),
        ah_key: Pair { incoming: None, outgoing: Some("k".into()) },
        ..ManualSa::default()
    };
    assert_eq!(sa.refs().len(), 1);
}

#[test]
fn the_default_proposal_round_trips_wherever_it_is() {
    for place in 0..3 {
        let mut cfg = Config::new();
        add(&mut cfg, Menu::Proposal, &[("name", "a"), ("lifetime", "1h30m")]);
        add(&mut cfg, Menu::Proposal, &[("name", "b"), ("comment", "two words")]);
        cfg.set(Menu::Proposal, &[0], &[("pfs-group", "none")]).unwrap();
        cfg.move_items(Menu::Proposal, &[0], if place == 2 { None } else { Some(place + 1) }).unwrap();
        let at = cfg.find(Menu::Proposal, DEFAULT_PROPOSAL).unwrap();
        assert_eq!(at, place);
        assert_eq!(Config::parse(&cfg.export()).unwrap(), cfg, "default at {place}:\n{}", cfg.export());
    }
}

#[test]
fn scripts_report_the_line_that_fails() {
    let script = "# comment\n/ip ipsec policy\nadd action=encrypt \\\n  level=use\nadd action=sometimes\n";
    match Config::parse(script) {
        Err(LoadError::Command { line, command, error }) => {
            assert_eq!((line, command.as_str()), (5, "add action=sometimes"));
            assert_eq!(error.to_string(), "input does not match any value of action");
        }
        other => panic!("{other:?}"),
    }
    let ok = Config::parse("/ip ipsec policy\nadd action=encrypt \\\n  level=use\n").unwrap();
    assert_eq!(ok.entries::<Policy>()[0].item.level, Level::Use);
}

#[test]
fn save_is_atomic_and_load_restores() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("ipsecgw-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ipsecgw.rsc");
    let mut console = Console::new(Config::new());
    for line in crate::cli::tests::R1 {
        console.execute(line).unwrap();
    }
    let cfg = console.into_config();
    std::fs::write(&path, "old contents").unwrap();
    cfg.save(&path).unwrap();
    assert_eq!(Config::load(&path).unwrap(), cfg);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("ipsecgw.rsc")], "no temporary file left");
    assert!(matches!(Config::load(&dir.join("missing")), Err(LoadError::Io { .. })));
    assert!(cfg.save(&dir.join("no-such-dir").join("x")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pairs_keep_incoming_first_through_export() {
    let mut cfg = Config::new();
    add(&mut cfg, Menu::ManualSa, &[("name", "s"), ("esp-spi", "258/259"), ("ah-spi", "0x100")]);
    let s = cfg.get::<ManualSa>("s").unwrap();
    assert_eq!((s.esp_spi.incoming, s.esp_spi.outgoing, s.ah_spi.outgoing), (258, 259, 256));
    assert!(cfg.export().contains("add name=s ah-spi=256 esp-spi=258/259\n"), "{}", cfg.export());
}

/// Builds a random console command for one menu, from small name pools so references resolve.
fn command() -> impl Strategy<Value = String> {
    let name = |p: &'static str| (0..3u8).prop_map(move |i| format!("{p}{i}"));
    let text = "[ -~]{0,10}".prop_map(|s| quote(&s));
    let ip = any::<[u8; 4]>().prop_map(|a| Ipv4Addr::from(a).to_string());
    let net = (any::<[u8; 4]>(), 0..=32u8).prop_map(|(a, l)| format!("{}/{l}", Ipv4Addr::from(a)));
    let keyref = prop_oneof![Just("none".to_string()), name("k")];
    let keypair = (keyref.clone(), keyref).prop_map(|(a, b)| format!("{a}/{b}"));
    let spis = (256..100_000u32, 256..100_000u32).prop_map(|(a, b)| format!("{a}/{b}"));
    let pick = |v: &'static [&'static str]| proptest::sample::select(v).prop_map(str::to_owned);
    let sub = |v: &'static [&'static str]| proptest::sample::subsequence(v, 1..=v.len()).prop_map(|s| s.join(","));
    prop_oneof![
        (name("i"), pick(&["net_null0", "net_af_packet0,iface=veth0", "0000:03:00.0"]), 68..9216u16, any::<[u8; 6]>())
            .prop_map(|(n, d, m, mac)| format!(
                "/interface add name={n} device={} mtu={m} mac-address={}",
                quote(&d),
                value::mac_name(&mac)
            )),
        (net.clone(), name("i"), any::<bool>(), text.clone()).prop_map(|(a, i, d, c)| format!(
            "/ip address add address={a} interface={i} disabled={} comment={c}",
            if d { "yes" } else { "no" }
        )),
        (net.clone(), ip.clone()).prop_map(|(n, g)| format!("/ip route add dst-address={n} gateway={g}")),
        (name("k"), proptest::sample::select(&KeyAlgorithm::ALL[..]), any::<[u8; 40]>(), any::<bool>()).prop_map(
            |(n, a, k, explicit)| {
                let len = match (explicit, a.lengths().last()) {
                    (true, Some(l)) => format!(" length={l}"),
                    _ => String::new(),
                };
                let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
                format!("/ip ipsec key add name={n} algorithm={}{len} key=0x{hex}", a.name())
            }
        ),
        (name("m"), keypair.clone(), keypair.clone(), keypair, spis.clone(), spis).prop_map(|(n, a, e, u, s1, s2)| {
            format!(
                "/ip ipsec manual-sa add name={n} ah-key={a} esp-enc-key={e} esp-auth-key={u} ah-spi={s1} esp-spi={s2}"
            )
        }),
        (
            name("p"),
            sub(&["md5", "sha1", "sha256", "null"]),
            sub(&["null", "des", "3des", "aes-128", "aes-192", "aes-256", "aes-128-gcm", "aes-256-gcm"]),
            0..200_000u64,
            any::<u32>(),
            pick(&["none", "modp768", "modp1024", "modp1536", "modp2048"]),
        )
            .prop_map(|(n, a, e, l, b, g)| format!(
                "/ip ipsec proposal add name={n} auth-algorithms={a} enc-algorithms={e} lifetime={l} lifebyte={b} \
                 pfs-group={g}"
            )),
        (0..200_000u64, text.clone())
            .prop_map(|(l, c)| format!("/ip ipsec proposal set default lifetime={l} comment={c}")),
        (
            ip.clone(),
            any::<u16>(),
            text.clone(),
            pick(&["main", "aggressive", "base"]),
            pick(&["claim", "exact", "obey", "strict"]),
            pick(&["md5", "sha", "sha256"]),
            pick(&["des", "3des", "aes-128", "aes-192", "aes-256"]),
            pick(&["modp768", "modp1024", "modp1536", "modp2048"]),
            (0..1_000_000u64, 8..=256u16, any::<bool>()),
        )
            .prop_map(|(a, port, s, x, pc, h, e, g, (l, nonce, ic))| format!(
                "/ip ipsec peer add address={a} port={port} secret={s} exchange-mode={x} proposal-check={pc} \
                 hash-algorithm={h} enc-algorithm={e} dh-group={g} lifetime={l} nonce-size={nonce} \
                 send-initial-contact={}",
                if ic { "yes" } else { "no" }
            )),
        (ip.clone(), text.clone(), "[a-z0-9_]{1,12}")
            .prop_map(|(a, i, s)| format!("/ip ipsec pre-shared-secret add address={a} ident-string={i} secret={s}")),
        (
            (net.clone(), 0..3u16, net, 0..3u16),
            pick(&["all", "tcp", "udp", "icmp", "47", "200"]),
            pick(&["accept", "drop", "encrypt"]),
            pick(&["use", "acquire", "require"]),
            pick(&["esp", "ah", "ah,esp"]),
            (any::<bool>(), ip.clone(), ip, prop_oneof![Just("none".to_string()), name("m")]),
            (prop_oneof![Just("default".to_string()), name("p")], pick(&["clear", "set", "inherit"]), text),
        )
            .prop_map(|((s, sp, d, dp), proto, act, lvl, prot, (t, ss, sd, m), (p, df, c))| format!(
                "/ip ipsec policy add src-address={s}:{sp} dst-address={d}:{dp} protocol={proto} action={act} \
                 level={lvl} ipsec-protocols={prot} tunnel={} sa-src={ss} sa-dst={sd} manual-sa={m} proposal={p} \
                 dont-fragment={df} comment={c}",
                if t { "yes" } else { "no" }
            )),
        (pick(&["/ip ipsec policy", "/ip ipsec proposal", "/interface", "/ip address"]), 0..4usize, 0..5usize)
            .prop_map(|(m, a, b)| format!("{m} move {a} {b}")),
        (pick(&["/ip ipsec policy", "/ip ipsec peer", "/ip route"]), 0..4usize, any::<bool>())
            .prop_map(|(m, a, d)| format!("{m} {} {a}", if d { "disable" } else { "enable" })),
        (pick(&["/ip ipsec policy", "/ip ipsec key", "/ip ipsec manual-sa", "/interface"]), 0..4usize)
            .prop_map(|(m, a)| format!("{m} remove {a}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Replays random commands (refused ones change nothing) and checks that the export
    /// recreates exactly the configuration they built.
    #[test]
    fn export_round_trips_random_configurations(cmds in proptest::collection::vec(command(), 0..40)) {
        let mut console = Console::new(Config::new());
        for c in &cmds {
            let before = console.config().clone();
            if console.execute(c).is_err() {
                prop_assert_eq!(console.config(), &before);
            }
        }
        let cfg = console.config();
        let script = cfg.export();
        let back = Config::parse(&script).map_err(|e| TestCaseError::fail(format!("{e}\n{script}")))?;
        prop_assert_eq!(&back, cfg, "{}", script);
        prop_assert_eq!(back.export(), script);
    }
}
