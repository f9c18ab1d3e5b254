//! Tests of compilation: the manual's R1/R2 manual keying compiled into mirrored SAs, the
//! algorithm choice from keys, modes, tables, stable policy ids and every error.

use dataplane::crypto::rust::RustEngine;
use dataplane::sa::Sa;
use dataplane::spd::Level;

use super::*;
use crate::cli::Console;
use crate::cli::tests::R1;
use crate::config::Menu;

fn console(lines: &[&str]) -> Console {
    let mut c = Console::new(Config::new());
    for l in lines {
        c.execute(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    c
}

/// R2 of the manual's example: LAN 10.2.0.0/24, WAN 10.0.0.2, the same keys, the manual-sa and
/// policy mirrored.
const R2: &[&str] = &[
    "/interface add name=lan device=net_ring1",
    "/interface add name=wan device=net_ring2",
    "/ip address add address=10.2.0.1/24 interface=lan",
    "/ip address add address=10.0.0.2/24 interface=wan",
    "/ip route add dst-address=10.1.0.0/24 gateway=10.0.0.1",
    "/ip ipsec key",
    "add name=auth-key1 algorithm=md5 key=00112233445566778899aabbccddeeff",
    "add name=enc-key1 algorithm=des length=64 key=0x0123456789abcdef",
    "add name=enc-key2 algorithm=des key=fedcba9876543210",
    "/ip ipsec manual-sa",
    "add name=\"sa1\" ah-key=auth-key1 esp-enc-key=enc-key2/enc-key1 esp-auth-key=none ah-spi=257/256 esp-spi=259/258",
    "/ip ipsec policy",
    "add src-address=10.2.0.0/24 dst-address=10.1.0.0/24 action=encrypt tunnel=yes sa-src-address=10.0.0.2 \
     sa-dst-address=10.0.0.1 ipsec-protocols=ah,esp manual-sa=sa1",
];

#[test]
fn the_manuals_r1_and_r2_compile_to_mirrored_sas() {
    let r1 = compile(console(R1).config()).unwrap();
    let r2 = compile(console(R2).config()).unwrap();
    let (a, b) = (&r1.sas[0], &r2.sas[0]);
    // esp-spi=258/259 on R1: 258 comes in, 259 goes out.
    let r1_out = a.outbound.esp.as_ref().unwrap();
    let r1_in = a.inbound.esp.as_ref().unwrap();
    assert_eq!(
        r1_out.key,
        SaKey { src: [10, 0, 0, 1].into(), dst: [10, 0, 0, 2].into(), proto: IpsecProto::Esp, spi: 259 }
    );
    assert_eq!(
        r1_in.key,
        SaKey { src: [10, 0, 0, 2].into(), dst: [10, 0, 0, 1].into(), proto: IpsecProto::Esp, spi: 258 }
    );
    assert_eq!(&r1_out.enc_key[..], &[0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10]);
    assert_eq!(&r1_in.enc_key[..], &[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
    assert_eq!(r1_out.xf, Transform::new(Cipher::DesCbc, Auth::Null).unwrap());
    // What R1 sends, R2 receives, and the other way round: same SA key, keys and transforms.
    assert_eq!(a.outbound, b.inbound);
    assert_eq!(a.inbound, b.outbound);
    // In tunnel mode ESP tunnels and AH runs in transport mode over it.
    assert_eq!(r1_out.mode, Mode::Tunnel);
    let ah = a.outbound.ah.as_ref().unwrap();
    assert_eq!((ah.mode, ah.key.spi, ah.xf), (Mode::Transport, 257, Transform::auth_only(Auth::HmacMd5_96).unwrap()));
    assert_eq!(a.inbound.ah.as_ref().unwrap().key.spi, 256);
    assert_eq!(ah.replay_window, MANUAL_REPLAY_WINDOW);
    // The policy.
    let p = &r1.policies[0];
    assert_eq!((p.id, a.policy_id), (a.policy_id, p.id));
    assert_eq!((p.selector.src, p.selector.dst), (Prefix::new(0x0a01_0000, 24), Prefix::new(0x0a02_0000, 24)));
    assert_eq!(
        (p.action, p.level, p.mode, p.protocols),
        (Action::Encrypt, Level::Require, Mode::Tunnel, IpsecProtocols::AhEsp)
    );
    // What installed-sa print would show for R1's outgoing ESP SA.
    let shown = crate::cli::installed::render(&[r1_out.snapshot(crate::cli::Direction::Out, p.id, 1_026_490_401)]);
    assert!(shown.contains("enc-algorithm=descbc flags=\"\" src-address=10.0.0.1 dst-address=10.0.0.2 \n"), "{shown}");
    assert!(shown.contains("enc-key=\"fedcba9876543210\" sa-type=esp direction=out \n"), "{shown}");
    assert!(shown.contains("add-lifetime=0s/0s use-lifetime=0s/0s lifebytes=0/0 \n"), "{shown}");
    // Every compiled SA installs in the dataplane.
    for sa in [&a.outbound, &a.inbound, &b.outbound, &b.inbound].into_iter().flat_map(|b| [&b.esp, &b.ah]).flatten() {
        Sa::new(&mut RustEngine, &sa.config(), 0).unwrap_or_else(|e| panic!("{:?}: {e}", sa.key));
    }
}

#[test]
fn tables_come_from_interfaces_addresses_and_routes() {
    let mut c = console(R1);
    c.execute("/ip route add dst-address=192.168.0.0/16 gateway=172.16.0.1").unwrap();
    c.execute("/ip route add dst-address=10.3.0.0/16 gateway=10.1.0.254 disabled=yes").unwrap();
    let out = compile(c.config()).unwrap();
    assert_eq!(out.ifaces.len(), 2);
    assert_eq!((out.ifaces[0].port, out.ifaces[0].name.as_str(), out.ifaces[0].mac), (0, "lan", [2, 0, 0, 0, 1, 1]));
    assert_eq!((out.ifaces[1].port, out.ifaces[1].mac, out.ifaces[1].mtu), (1, [0; 6], 1500));
    assert_eq!(out.ifaces[1].addrs, [(Ipv4Addr::new(10, 0, 0, 1), 24)]);
    assert_eq!(out.routes.len(), 1);
    assert_eq!(out.warnings, ["route #1 to 192.168.0.0/16: gateway 172.16.0.1 is unreachable"]);
    let tables = out.tables();
    let hop = tables.fib.lookup(Ipv4Addr::new(10, 2, 0, 9)).unwrap();
    assert_eq!((hop.port, hop.gateway), (1, Some(Ipv4Addr::new(10, 0, 0, 2))));
    assert_eq!(tables.fib.lookup(Ipv4Addr::new(10, 1, 0, 9)).unwrap().gateway, None);
    assert!(tables.ifaces.is_local(Ipv4Addr::new(10, 1, 0, 1)));
}

#[test]
fn policy_ids_survive_moves_and_disabled_policies_are_left_out() {
    let mut c = console(R1);
    c.execute("/ip ipsec policy add dst-address=10.9.0.0/16 action=drop").unwrap();
    c.execute("/ip ipsec policy add protocol=udp dst-address=10.0.0.2:500").unwrap();
    let before = compile(c.config()).unwrap();
    c.execute("/ip ipsec policy move 2 0").unwrap();
    c.execute("/ip ipsec policy disable 2").unwrap();
    let after = compile(c.config()).unwrap();
    let ids = |o: &Compiled| o.policies.iter().map(|p| p.id).collect::<Vec<_>>();
    let b = ids(&before);
    assert_eq!(ids(&after), [b[2], b[0]]);
    assert_eq!(after.policies[0].selector.dst_port, 500);
    assert_eq!(after.policies[0].selector.protocol, Some(17));
    assert_eq!(after.sas[0].policy_id, b[0]);
}

#[test]
fn algorithms_follow_the_keys_and_modes_the_protocols() {
    let mut c = Console::new(Config::new());
    for l in [
        "/ip ipsec key add name=a256 algorithm=aes length=256 key=".to_owned() + &"01".repeat(32),
        "/ip ipsec key add name=gcm algorithm=aes-gcm length=160 key=".to_owned() + &"02".repeat(20),
        "/ip ipsec key add name=s1 algorithm=sha1 key=".to_owned() + &"03".repeat(20),
        "/ip ipsec key add name=s256 algorithm=sha256 key=".to_owned() + &"04".repeat(32),
        "/ip ipsec key add name=t algorithm=3des key=0123456789abcdef23456789abcdef01456789abcdef0123".to_owned(),
        "/ip ipsec manual-sa add name=cbc esp-enc-key=a256 esp-auth-key=s1 ah-key=s256 esp-spi=1000/1001 ah-spi=1002/1003"
            .to_owned(),
        "/ip ipsec manual-sa add name=aead esp-enc-key=gcm esp-spi=2000/2001".to_owned(),
        "/ip ipsec manual-sa add name=tdes esp-enc-key=t esp-auth-key=s1 esp-spi=3000/3001".to_owned(),
        "/ip ipsec policy add action=encrypt sa-src=10.0.0.1 sa-dst=10.0.0.2 manual-sa=cbc".to_owned(),
        "/ip ipsec policy add action=encrypt sa-src=10.0.0.1 sa-dst=10.0.0.3 manual-sa=aead tunnel=yes".to_owned(),
        "/ip ipsec policy add action=encrypt sa-src=10.0.0.1 sa-dst=10.0.0.4 manual-sa=cbc ipsec-protocols=ah tunnel=yes"
            .to_owned(),
        "/ip ipsec policy add action=encrypt sa-src=10.0.0.1 sa-dst=10.0.0.5 manual-sa=tdes dont-fragment=inherit"
            .to_owned(),
        // Not encrypt: no SAs even with a manual-sa.
        "/ip ipsec policy add action=accept sa-src=10.0.0.1 sa-dst=10.0.0.2 manual-sa=cbc".to_owned(),
    ] {
        c.execute(&l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    let out = compile(c.config()).unwrap();
    assert_eq!(out.sas.len(), 4);
    let esp = |i: usize| out.sas[i].outbound.esp.clone().unwrap();
    assert_eq!(esp(0).xf, Transform::new(Cipher::AesCbc256, Auth::HmacSha1_96).unwrap());
    assert_eq!((esp(0).mode, esp(0).enc_key.len(), esp(0).auth_key.len()), (Mode::Transport, 32, 20));
    assert!(out.sas[0].outbound.ah.is_none());
    assert_eq!(esp(1).xf, Transform::new(Cipher::AesGcm128, Auth::Null).unwrap());
    assert_eq!((esp(1).mode, esp(1).enc_key.len()), (Mode::Tunnel, 20));
    let ah = out.sas[2].outbound.ah.clone().unwrap();
    assert!(out.sas[2].outbound.esp.is_none());
    assert_eq!(
        (ah.mode, ah.xf, ah.auth_key.len()),
        (Mode::Tunnel, Transform::auth_only(Auth::HmacSha256_128).unwrap(), 32)
    );
    assert_eq!((esp(3).xf.cipher(), esp(3).dont_fragment), (Cipher::TdesCbc, DontFragment::Inherit));
    for sa in out.sas.iter().flat_map(|s| [&s.outbound, &s.inbound]).flat_map(|b| [&b.esp, &b.ah]).flatten() {
        Sa::new(&mut RustEngine, &sa.config(), 0).unwrap_or_else(|e| panic!("{:?}: {e}", sa.key));
    }
}

/// Compiles R1 after `lines` and returns the error message.
fn error_after(lines: &[&str]) -> String {
    let mut c = console(R1);
    for l in lines {
        c.execute(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    compile(c.config()).expect_err("must not compile").to_string()
}

#[test]
fn missing_or_misused_keys_are_clear_errors() {
    assert_eq!(
        error_after(&["/ip ipsec manual-sa set sa1 ah-key=none/auth-key1"]),
        "policy #0: manual-sa sa1 has no incoming ah-key, which ipsec-protocols=ah,esp needs"
    );
    assert_eq!(
        error_after(&["/ip ipsec manual-sa set sa1 esp-enc-key=none"]),
        "policy #0: manual-sa sa1 has no outgoing esp-enc-key or esp-auth-key, which ipsec-protocols=ah,esp needs"
    );
    assert_eq!(
        error_after(&["/ip ipsec manual-sa set sa1 esp-enc-key=auth-key1"]),
        "key auth-key1 (md5, 128 bits) cannot be used as esp-enc-key"
    );
    assert_eq!(
        error_after(&["/ip ipsec manual-sa set sa1 esp-auth-key=enc-key1"]),
        "key enc-key1 (des, 64 bits) cannot be used as esp-auth-key"
    );
    assert_eq!(
        error_after(&["/ip ipsec manual-sa set sa1 ah-key=enc-key1"]),
        "key enc-key1 (des, 64 bits) cannot be used as ah-key"
    );
    assert_eq!(
        error_after(&["/ip ipsec manual-sa set sa1 esp-spi=258/255"]),
        "manual-sa sa1: esp-spi 255 is reserved, use 256 or more"
    );
    assert_eq!(
        error_after(&[
            "/ip ipsec key add name=z algorithm=null key=\"\"",
            "/ip ipsec manual-sa set sa1 esp-enc-key=z esp-auth-key=z",
        ]),
        "manual-sa sa1: ESP needs encryption or authentication, not both null"
    );
    assert_eq!(
        error_after(&["/ip ipsec policy set 0 sa-src-address=0.0.0.0"]),
        "policy #0: sa-src-address and sa-dst-address must be set for manual SAs"
    );
    assert_eq!(
        error_after(&["/ip ipsec policy add action=encrypt tunnel=yes sa-src=10.0.0.1 sa-dst=10.0.0.2 manual-sa=sa1 \
                       ipsec-protocols=ah,esp dst-address=10.7.0.0/16"]),
        "policies #0 and #1 both install inbound esp SA spi 258 from 10.0.0.2 to 10.0.0.1"
    );
    // A disabled duplicate is no duplicate.
    let mut c = console(R1);
    c.execute("/ip ipsec policy add action=encrypt sa-src=10.0.0.1 sa-dst=10.0.0.2 manual-sa=sa1 disabled=yes")
        .unwrap();
    assert_eq!(compile(c.config()).unwrap().sas.len(), 1);
    assert_eq!(c.config().len(Menu::Policy), 2);
}
