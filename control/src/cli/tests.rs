//! Tests of the console: the manual's examples typed as a user types them, paths, every command,
//! print layouts, and errors that change nothing.

use std::net::Ipv4Addr;

use dataplane::crypto::{Auth, Cipher};
use dataplane::sa::{IpsecProto, SaState};
use zeroize::Zeroizing;

use super::*;
use crate::config::value::Duration;
use crate::config::{Config, Policy};

/// Runs lines that must all succeed and returns the last output.
fn run(c: &mut Console, lines: &[&str]) -> String {
    let mut out = String::new();
    for l in lines {
        out = c.execute(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    out
}

/// The manual's R1 of the manual-keying example: LAN 10.1.0.0/24, WAN 10.0.0.1, R2 at 10.0.0.2.
pub(crate) const R1: &[&str] = &[
    "/interface add name=lan device=net_ring0 mac-address=02:00:00:00:01:01",
    "/interface add name=wan device=\"net_af_packet0,iface=veth-r1\" mtu=1500",
    "/ip address add address=10.1.0.1/24 interface=lan",
    "/ip address add address=10.0.0.1/24 interface=wan",
    "/ip route add dst-address=10.2.0.0/24 gateway=10.0.0.2",
    "/ip ipsec key",
    "add name=auth-key1 algorithm=md5 key=00112233445566778899aabbccddeeff",
    "add name=enc-key1 algorithm=des length=64 key=0x0123456789abcdef",
    "add name=enc-key2 algorithm=des key=fedcba9876543210",
    "/ip ipsec manual-sa",
    "add name=\"sa1\" ah-key=auth-key1 esp-enc-key=enc-key1/enc-key2 esp-auth-key=none ah-spi=256/257 esp-spi=258/259",
    "/ip ipsec policy",
    "add src-address=10.1.0.0/24 dst-address=10.2.0.0/24 action=encrypt tunnel=yes sa-src-address=10.0.0.1 \
     sa-dst-address=10.0.0.2 ipsec-protocols=ah,esp manual-sa=sa1",
    "/",
];

#[test]
fn the_manuals_cisco_example_is_accepted_as_typed() {
    let mut c = Console::new(Config::new());
    // RouterOS: 10.0.1.1 on eth, 10.0.0.1 on sync; Cisco: 10.0.0.2 on sync, 10.0.2.1 on eth.
    c.execute("/ip ipsec proposal").unwrap();
    assert_eq!(c.prompt(), "[admin@ipsecgw] ip ipsec proposal> ");
    run(&mut c, &["add name=to_cisco pfs-group=none"]);
    c.execute("/ip ipsec peer").unwrap();
    run(
        &mut c,
        &["add address=10.0.0.2 enc-algorithm=des auth-method=pre-shared-key hash-algorithm=sha dh-group=modp1024"],
    );
    c.execute("/ip ipsec pre-shared-secret").unwrap();
    run(&mut c, &["add address=10.0.0.2 secret=test_key"]);
    c.execute("/ip ipsec policy").unwrap();
    run(
        &mut c,
        &["add src-address=10.0.1.0/24 dst-address=10.0.2.0/24 protocol=all action=encrypt ipsec-protocols=esp \
           level=require tunnel=yes sa-src=10.0.0.1 sa-dst=10.0.0.2 proposal=to_cisco"],
    );
    c.execute("/").unwrap();
    assert_eq!(c.execute("ip ipsec installed-sa print").unwrap(), "");

    let cfg = c.config();
    let p = &cfg.entries::<Policy>()[0].item;
    assert_eq!(p.proposal, "to_cisco");
    assert!(p.tunnel);
    assert_eq!((p.sa_src_address, p.sa_dst_address), (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)));
    let to_cisco = cfg.get::<crate::config::Proposal>("to_cisco").unwrap();
    assert_eq!(to_cisco.pfs_group, crate::config::PfsGroup::None);
    let peer = &cfg.entries::<crate::config::Peer>()[0].item;
    assert_eq!(peer.enc_algorithm, crate::config::PeerEncAlgorithm::Des);
    assert_eq!(peer.hash_algorithm, crate::config::HashAlgorithm::Sha);
}

#[test]
fn the_manuals_other_examples_are_accepted_as_typed() {
    let mut c = Console::new(Config::new());
    run(&mut c, R1);
    // "If you want to encrypt all UDP packets that are sent from R1 to R2 you add to R1 policy".
    run(&mut c, &["/ip ipsec policy add src-address=10.0.0.1 dst-address=10.0.0.2 protocol=udp"]);
    // The pre-shared-secret of R1, and the proposal's `algorithms` list.
    run(&mut c, &["/ip ipsec pre-shared-secret add address=10.0.0.2 secret=gwejimezyfopmekun"]);
    run(&mut c, &["/ip ipsec proposal add name=p2 algorithms=enc-des,auth-sha1 lifetime=30m lifebyte=0"]);
    assert_eq!(
        c.execute("/ip ipsec pre-shared-secret print").unwrap(),
        "  #   ADDRESS         SECRET\n  0   10.0.0.2        gwejimezyfopmekun\n"
    );
    // The manual's manual-sa listing, field for field (it numbers the item 1).
    assert_eq!(
        c.execute("/ip ipsec manual-sa print").unwrap(),
        "  0   name=\"sa1\" ah-key=auth-key1 esp-enc-key=enc-key1/enc-key2\n      \
         esp-auth-key=none ah-spi=256/257 esp-spi=258/259\n"
    );
    // And R2's, which mirrors it.
    run(
        &mut c,
        &["/ip ipsec manual-sa add name=\"sa2\" ah-key=auth-key1 esp-enc-key=enc-key2/enc-key1 esp-auth-key=none \
           ah-spi=257/256 esp-spi=259/258"],
    );
    let out = c.execute("/ip ipsec manual-sa print detail").unwrap();
    assert!(out.contains("  1   name=\"sa2\" ah-key=auth-key1 esp-enc-key=enc-key2/enc-key1\n"), "{out}");
}

fn manual_sa(direction: Direction) -> InstalledSa {
    let out = direction == Direction::Out;
    InstalledSa {
        spi: if out { 9_437_482 } else { 319_317_260 },
        replay: 4,
        state: SaState::Mature,
        auth_algorithm: Auth::HmacSha1_96,
        enc_algorithm: Cipher::DesCbc,
        src_address: Ipv4Addr::new(10, 0, 0, if out { 1 } else { 2 }),
        dst_address: Ipv4Addr::new(10, 0, 0, if out { 2 } else { 1 }),
        policy_id: 1,
        xform_index: 0,
        auth_key: Zeroizing::new(
            if out { "9cf2123b8b5add950e3e67b9eac79421d406aa09" } else { "7575f5624914dd312839694db2622a318030bc3b" }
                .as_bytes()
                .chunks(2)
                .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
                .collect(),
        ),
        enc_key: Zeroizing::new(if out {
            vec![0xff, 0xe7, 0xec, 0x65, 0xb7, 0xa3, 0x85, 0xc3]
        } else {
            vec![0x63, 0x35, 0x93, 0xf8, 0x09, 0xc9, 0xd6, 0xaf]
        }),
        sa_type: IpsecProto::Esp,
        direction,
        current_addtime: 1_026_490_401,
        current_usetime: 1_026_490_401,
        current_bytes: if out { 71_896 } else { 0 },
        add_lifetime: (Duration(24 * 60), Duration(30 * 60)),
        use_lifetime: (Duration(0), Duration(0)),
        lifebytes: (0, 0),
    }
}

#[test]
fn installed_sa_print_has_the_manuals_layout() {
    let mut c = Console::new(Config::new());
    c.set_installed_sas(Box::new(vec![manual_sa(Direction::Out), manual_sa(Direction::In)]));
    let expected = r#"  0 spi=9437482 replay=4 state=mature auth-algorithm=sha1hmac 
    enc-algorithm=descbc flags="" src-address=10.0.0.1 dst-address=10.0.0.2 
    policy-id=1 xform-index=0 auth-key-length=160 
    auth-key="9cf2123b8b5add950e3e67b9eac79421d406aa09" enc-key-length=64 
    enc-key="ffe7ec65b7a385c3" sa-type=esp direction=out 
    current-addtime=jul/12/2002 16:13:21 current-usetime=jul/12/2002 16:13:21 
    current-bytes=71896 add-lifetime=24m/30m use-lifetime=0s/0s lifebytes=0/0 

  1 spi=319317260 replay=4 state=mature auth-algorithm=sha1hmac 
    enc-algorithm=descbc flags="" src-address=10.0.0.2 dst-address=10.0.0.1 
    policy-id=1 xform-index=0 auth-key-length=160 
    auth-key="7575f5624914dd312839694db2622a318030bc3b" enc-key-length=64 
    enc-key="633593f809c9d6af" sa-type=esp direction=in 
    current-addtime=jul/12/2002 16:13:21 current-usetime=jul/12/2002 16:13:21 
    current-bytes=0 add-lifetime=24m/30m use-lifetime=0s/0s lifebytes=0/0 

"#;
    assert_eq!(c.execute("/ip ipsec installed-sa print").unwrap(), expected);
    c.execute("/ip ipsec installed-sa").unwrap();
    assert_eq!(c.execute("print detail").unwrap(), expected);
    // A closure works as the source too.
    c.set_installed_sas(Box::new(|| vec![manual_sa(Direction::In)]));
    assert!(c.execute("print").unwrap().starts_with("  0 spi=319317260 "));
}

#[test]
fn dates_print_like_routeros() {
    assert_eq!(installed::format_time(0), "jan/01/1970 00:00:00");
    assert_eq!(installed::format_time(951_782_400), "feb/29/2000 00:00:00");
    assert_eq!(installed::format_time(4_102_444_799), "dec/31/2099 23:59:59");
}

#[test]
fn paths_are_absolute_relative_and_dotted() {
    let mut c = Console::new(Config::new());
    assert_eq!(c.prompt(), "[admin@ipsecgw] > ");
    c.execute("ip ipsec").unwrap();
    assert_eq!(c.prompt(), "[admin@ipsecgw] ip ipsec> ");
    c.execute("policy").unwrap();
    assert_eq!(c.prompt(), "[admin@ipsecgw] ip ipsec policy> ");
    c.execute("..").unwrap();
    c.execute(".. address").unwrap();
    assert_eq!(c.prompt(), "[admin@ipsecgw] ip address> ");
    c.execute("/ interface").unwrap();
    assert_eq!(c.prompt(), "[admin@ipsecgw] interface> ");
    c.execute("/ip ipsec key").unwrap();
    // A command with a path runs there and leaves the current menu alone.
    run(&mut c, &["/ip ipsec proposal add name=p"]);
    assert_eq!(c.prompt(), "[admin@ipsecgw] ip ipsec key> ");
    run(&mut c, &[".. proposal set p lifetime=1h"]);
    assert_eq!(c.config().get::<crate::config::Proposal>("p").unwrap().lifetime, Duration(3600));
    c.execute("/").unwrap();
    assert_eq!(c.prompt(), "[admin@ipsecgw] > ");
    assert!(matches!(c.execute("ip bogus"), Err(CliError::BadCommand(w)) if w == "bogus"));
    assert!(matches!(c.execute("ip print"), Err(CliError::BadCommand(_))));
}

#[test]
fn numbers_lists_ranges_move_enable_disable() {
    let mut c = Console::new(Config::new());
    c.execute("/ip ipsec policy").unwrap();
    for i in 0..6 {
        run(&mut c, &[&format!("add dst-address=10.9.{i}.0/24 comment=p{i}")]);
    }
    let ids: Vec<u32> = c.config().entries::<Policy>().iter().map(|e| e.id).collect();
    run(&mut c, &["remove 0,2-3"]);
    let comments = |c: &Console| c.config().entries::<Policy>().iter().map(|e| e.comment.clone()).collect::<Vec<_>>();
    assert_eq!(comments(&c), ["p1", "p4", "p5"]);
    run(&mut c, &["move 2 0"]);
    assert_eq!(comments(&c), ["p5", "p1", "p4"]);
    run(&mut c, &["move numbers=0 destination=3"]);
    assert_eq!(comments(&c), ["p1", "p4", "p5"]);
    run(&mut c, &["move 0"]);
    assert_eq!(comments(&c), ["p4", "p5", "p1"]);
    run(&mut c, &["move 1,2 0"]);
    assert_eq!(comments(&c), ["p5", "p1", "p4"]);
    // Ids follow the entries, not the positions.
    let now: Vec<u32> = c.config().entries::<Policy>().iter().map(|e| e.id).collect();
    assert_eq!(now, [ids[5], ids[1], ids[4]]);
    run(&mut c, &["disable 1", "set 0 action=drop"]);
    let out = c.execute("print").unwrap();
    assert!(
        out.starts_with("Flags: X - disabled\n  0   ;;; p5\n      src-address=0.0.0.0/0 dst-address=10.9.5.0/24 "),
        "{out}"
    );
    assert!(out.contains("  1 X ;;; p1\n"), "{out}");
    run(&mut c, &["enable 1"]);
    assert!(!c.execute("print").unwrap().contains("Flags"));
    run(&mut c, &["set numbers=0,2 level=use"]);
    assert!(
        c.config()
            .entries::<Policy>()
            .iter()
            .enumerate()
            .all(|(i, e)| (e.item.level == dataplane::spd::Level::Use) == (i != 1))
    );
}

#[test]
fn tables_print_with_headers_and_computed_columns() {
    let mut c = Console::new(Config::new());
    run(&mut c, R1);
    assert_eq!(
        c.execute("/ip address print").unwrap(),
        "  #   ADDRESS            NETWORK         BROADCAST       INTERFACE\n\
         \x20 0   10.1.0.1/24        10.1.0.0        10.1.0.255      lan\n\
         \x20 1   10.0.0.1/24        10.0.0.0        10.0.0.255      wan\n"
    );
    assert_eq!(
        c.execute("/ip route print").unwrap(),
        "  #   DST-ADDRESS        GATEWAY         INTERFACE\n  0   10.2.0.0/24        10.0.0.2        wan\n"
    );
    let keys = c.execute("/ip ipsec key print").unwrap();
    assert!(keys.starts_with("  #   NAME             ALGORITHM LENGTH KEY\n  0   auth-key1        md5       128    "));
    let ifs = c.execute("/interface print detail").unwrap();
    assert!(
        ifs.contains("name=\"wan\" device=\"net_af_packet0,iface=veth-r1\" mac-address=none\n      mtu=1500\n"),
        "{ifs}"
    );
    let peer = c.execute("/ip ipsec proposal print").unwrap();
    assert_eq!(
        peer,
        "  0   name=\"default\" auth-algorithms=sha1 enc-algorithms=3des lifetime=30m\n      \
         lifebyte=0 pfs-group=modp1024\n"
    );
}

#[test]
fn export_recreates_what_the_console_built() {
    let mut c = Console::new(Config::new());
    run(&mut c, R1);
    run(
        &mut c,
        &[
            "/ip ipsec proposal add name=to_cisco pfs-group=none comment=\"for the \\\"cisco\\\" box\"",
            "/ip ipsec proposal set default lifetime=1h",
            "/ip ipsec proposal move default",
            "/ip ipsec peer add address=10.0.0.2 secret=\"a b=c\" exchange-mode=aggressive disabled=yes",
        ],
    );
    let script = c.execute("/export").unwrap();
    assert!(script.contains("/ip ipsec proposal\nset default lifetime=1h\nadd name=to_cisco"), "{script}");
    let back = Config::parse(&script).unwrap();
    assert_eq!(&back, c.config());
    // A menu's export, and a subtree's.
    let keys = c.execute("/ip ipsec key export").unwrap();
    assert!(keys.starts_with("/ip ipsec key\nadd name=auth-key1 algorithm=md5 length=128 key="), "{keys}");
    let ipsec = c.execute("/ip ipsec export").unwrap();
    assert!(ipsec.starts_with("/ip ipsec key\n") && !ipsec.contains("/interface"));
}

/// Runs a command that must fail, checks its message, and that nothing changed.
fn refused(c: &mut Console, line: &str, message: &str) {
    let before = (c.config().clone(), c.config().export(), c.generation());
    let err = c.execute(line).expect_err(line);
    assert_eq!(err.to_string(), message, "{line}");
    assert_eq!((c.config().clone(), c.config().export(), c.generation()), before, "{line} changed something");
}

#[test]
fn every_refused_command_changes_nothing() {
    let mut c = Console::new(Config::new());
    run(&mut c, R1);
    run(&mut c, &["/ip ipsec policy add action=drop comment=second"]);
    let cases = [
        ("/ip ipsec policy add action=bogus", "input does not match any value of action"),
        ("/ip ipsec policy add src-address=10.0.0.300/24", "invalid value for argument src-address"),
        ("/ip ipsec policy add protocol=nonsense", "input does not match any value of protocol"),
        ("/ip ipsec policy add tunnel=maybe", "input does not match any value of tunnel"),
        ("/ip ipsec policy add foo=bar", "expected end of command (unknown argument foo)"),
        ("/ip ipsec policy add manual-sa=nosuch", "input does not match any value of manual-sa"),
        ("/ip ipsec policy add proposal=nosuch", "input does not match any value of proposal"),
        ("/ip ipsec policy set 5 action=drop", "no such item"),
        ("/ip ipsec policy set 0 action=drop level=bogus", "input does not match any value of level"),
        ("/ip ipsec policy set 0,1 sa-src=1.2.3", "invalid value for argument sa-src"),
        ("/ip ipsec policy remove 0-7", "no such item"),
        ("/ip ipsec policy remove", "no such item"),
        ("/ip ipsec policy move 0 9", "no such item"),
        ("/ip ipsec policy print extra", "expected end of command (unexpected extra)"),
        ("/ip ipsec policy add 3", "expected end of command (unexpected 3)"),
        ("/ip ipsec key remove enc-key1", "failure: key enc-key1 is in use by manual-sa sa1"),
        ("/ip ipsec key set enc-key1 name=renamed", "failure: key enc-key1 is in use by manual-sa sa1"),
        (
            "/ip ipsec key set enc-key1 algorithm=aes",
            "failure: invalid key length 64 for aes: takes 128, 192 or 256 bits",
        ),
        (
            "/ip ipsec key add name=k algorithm=aes length=100 key=00",
            "failure: invalid key length 100 for aes: takes 128, 192 or 256 bits",
        ),
        (
            "/ip ipsec key add name=k algorithm=sha1 key=0011",
            "failure: key too short for sha1: length is 160 bits but the key has 16",
        ),
        ("/ip ipsec key add name=k algorithm=des key=xyz", "invalid value for argument key"),
        ("/ip ipsec key add name=k algorithm=rot13 key=00", "input does not match any value of algorithm"),
        (
            "/ip ipsec key add name=enc-key1 algorithm=des key=0011223344556677",
            "failure: item with such name already exists",
        ),
        ("/ip ipsec key add name=k algorithm=des", "failure: key must be specified"),
        ("/ip ipsec key enable 0", "bad command name enable"),
        ("/ip ipsec manual-sa remove sa1", "failure: manual-sa sa1 is in use by policy #0"),
        ("/ip ipsec manual-sa add name=x esp-spi=1/x", "invalid value for argument esp-spi"),
        ("/ip ipsec manual-sa add name=x esp-enc-key=nosuch/enc-key1", "input does not match any value of esp-enc-key"),
        ("/ip ipsec proposal remove default", "failure: can not remove default proposal"),
        ("/ip ipsec proposal set default name=other", "failure: can not rename default proposal"),
        ("/ip ipsec proposal add name=x enc-algorithms=des,rot13", "input does not match any value of enc-algorithms"),
        ("/ip ipsec proposal add name=x algorithms=des", "input does not match any value of algorithms"),
        ("/ip ipsec proposal add name=x lifetime=30x", "invalid value for argument lifetime"),
        ("/ip ipsec proposal add name=x pfs-group=modp9", "input does not match any value of pfs-group"),
        ("/ip ipsec peer add address=10.0.0.2 nonce-size=4", "invalid value for argument nonce-size"),
        (
            "/ip ipsec peer add address=10.0.0.2 proposal-check=lenient",
            "input does not match any value of proposal-check",
        ),
        ("/ip ipsec peer add address=10.0.0.2 exchange-mode=quick", "input does not match any value of exchange-mode"),
        ("/ip ipsec peer add secret=x", "failure: address must be specified"),
        ("/ip ipsec pre-shared-secret add secret=0xabc", "invalid value for argument secret"),
        ("/ip ipsec installed-sa add", "bad command name add"),
        ("/ip address add address=10.3.0.1/24 interface=nosuch", "input does not match any value of interface"),
        ("/ip address add address=10.3.0.1/40 interface=lan", "invalid value for argument address"),
        ("/interface remove wan", "failure: interface wan is in use by address #1"),
        ("/interface add name=x device=\"\"", "invalid value for argument device"),
        ("/interface add name=x device=net_null0 mtu=20", "invalid value for argument mtu"),
        ("/interface add name=lan device=net_null0", "failure: item with such name already exists"),
        ("/interface set lan mac-address=02:00", "invalid value for argument mac-address"),
        ("/ip route add dst-address=10.4.0.0/24", "failure: gateway must be specified"),
        ("/ip ipsec policy add comment=\"unterminated", "syntax error (unterminated string)"),
        ("/ip ipsec bogus", "bad command name bogus"),
        ("/ip ipsec policy frobnicate", "bad command name frobnicate"),
        ("/ip ipsec policy action=drop", "bad command name action"),
        ("/export file=x", "expected end of command (unknown argument file)"),
    ];
    for (line, message) in cases {
        refused(&mut c, line, message);
    }
}

#[test]
fn a_validator_can_refuse_a_change() {
    let mut c = Console::new(Config::new());
    run(&mut c, R1);
    c.set_validator(Box::new(|cfg| crate::compile::compile(cfg).map(drop).map_err(|e| e.to_string())));
    refused(
        &mut c,
        "/ip ipsec manual-sa set sa1 ah-key=none",
        "failure: policy #0: manual-sa sa1 has no outgoing ah-key, which ipsec-protocols=ah,esp needs",
    );
    let before = c.generation();
    run(&mut c, &["/ip ipsec manual-sa set sa1 esp-spi=300/301"]);
    assert_eq!(c.generation(), before + 1);
}

#[test]
fn tokens_take_quotes_and_escapes() {
    let t = tokenize(r#"add name="a b" comment="x=\"y\"\\" k=v"w"z bare"#).unwrap();
    let kv: Vec<(Option<&str>, &str)> = t.iter().map(|t| (t.key.as_deref(), t.value.as_str())).collect();
    assert_eq!(
        kv,
        [(None, "add"), (Some("name"), "a b"), (Some("comment"), "x=\"y\"\\"), (Some("k"), "vwz"), (None, "bare")]
    );
    assert!(tokenize("  ").unwrap().is_empty());
}
