//! `ipsecgw selftest`: the manual-keying example of the RouterOS manual (R1 and R2, a LAN behind
//! each) run through the dataplane on both crypto engines, printing what happens to the packets.
//! It runs on heap buffers, without DPDK: a quick check of the crypto engines on a new machine.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use dataplane::buf::{Burst, HeapBuf, PacketBuf};
use dataplane::bundle::Bundle;
use dataplane::crypto::rust::RustEngine;
use dataplane::crypto::{Auth, Engine, KeyAlgorithm, Transform};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};
use dataplane::stats::{DropReason, Stats};
use dataplane::wire::{Protocol, ah, esp, ipv4, udp};

const LAN1_HOST: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 10);
const LAN2_HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 20);
const R1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const R2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// One policy of the demo: what the manual's `policy`, `manual-sa` and `key` entries say.
struct Case {
    name: &'static str,
    mode: Mode,
    esp: Option<(KeyAlgorithm, u32, &'static str, KeyAlgorithm, &'static str)>,
    ah: Option<(KeyAlgorithm, &'static str)>,
}

const CASES: &[Case] = &[
    Case {
        name: "esp tunnel, aes-gcm-128 (RFC 4106)",
        mode: Mode::Tunnel,
        esp: Some((KeyAlgorithm::AesGcm, 160, "0x00112233445566778899aabbccddeeff01020304", KeyAlgorithm::Null, "")),
        ah: None,
    },
    Case {
        name: "esp tunnel, aes-128 + sha1",
        mode: Mode::Tunnel,
        esp: Some((
            KeyAlgorithm::Aes,
            128,
            "000102030405060708090a0b0c0d0e0f",
            KeyAlgorithm::Sha1,
            "f0e1d2c3b4a5968778695a4b3c2d1e0f10213243",
        )),
        ah: None,
    },
    Case {
        name: "esp transport, des + md5 (the manual's Cisco example uses des)",
        mode: Mode::Transport,
        esp: Some((KeyAlgorithm::Des, 64, "ffe7ec65b7a385c3", KeyAlgorithm::Md5, "9cf2123b8b5add950e3e67b9eac79421")),
        ah: None,
    },
    Case {
        name: "ah,esp tunnel: 3des esp in tunnel mode, sha1 ah over it in transport mode",
        mode: Mode::Tunnel,
        esp: Some((
            KeyAlgorithm::Tdes,
            192,
            "0123456789abcdeffedcba987654321089abcdef01234567",
            KeyAlgorithm::Null,
            "",
        )),
        ah: Some((KeyAlgorithm::Sha1, "7575f5624914dd312839694db2622a318030bc3b")),
    },
];

pub fn run() -> ExitCode {
    println!("ipsecgw demo: R1 {R1} and R2 {R2} protect traffic {LAN1_HOST} -> {LAN2_HOST}");
    println!("(manual keys, as /ip ipsec manual-sa and key would install them)\n");
    let mut ok = true;
    ok &= run_engine("rust (RustCrypto)", &mut RustEngine, &mut RustEngine);
    #[cfg(target_arch = "x86_64")]
    match (dataplane::crypto::ipsec_mb::MbEngine::new(), dataplane::crypto::ipsec_mb::MbEngine::new()) {
        (Ok(mut a), Ok(mut b)) => ok &= run_engine("ipsec-mb (Intel multi-buffer)", &mut a, &mut b),
        (Err(e), _) | (_, Err(e)) => {
            println!("ipsec-mb engine unavailable: {e}");
            ok = false;
        }
    }
    if ok {
        println!("demo: every packet came back identical; every tampered or replayed one was dropped");
        ExitCode::SUCCESS
    } else {
        println!("demo: FAILED");
        ExitCode::FAILURE
    }
}

fn run_engine<E: Engine>(label: &str, r1: &mut E, r2: &mut E) -> bool {
    println!("== engine: {label}");
    let mut ok = true;
    for case in CASES {
        match run_case(case, r1, r2) {
            Ok(()) => {}
            Err(e) => {
                println!("   FAILED: {e}");
                ok = false;
            }
        }
    }
    println!();
    ok
}

/// The two ends of one SA, as R1 and R2 install them.
type SaPair<S> = (Sa<S>, Sa<S>);

#[allow(clippy::too_many_arguments)]
fn sa_pair<E: Engine>(
    e1: &mut E,
    e2: &mut E,
    proto: IpsecProto,
    mode: Mode,
    spi: u32,
    xf: Transform,
    enc: &[u8],
    auth: &[u8],
) -> Result<SaPair<E::Session>, String> {
    let (src, dst) = (R1, R2);
    let cfg = SaConfig {
        spi,
        proto,
        mode,
        src,
        dst,
        xf,
        enc_key: enc,
        auth_key: auth,
        replay_window: 64,
        lifetimes: Lifetimes { soft_secs: 24 * 60, hard_secs: 30 * 60, ..Default::default() },
        dont_fragment: DontFragment::Clear,
    };
    Ok((Sa::new(e1, &cfg, 0).map_err(|e| e.to_string())?, Sa::new(e2, &cfg, 0).map_err(|e| e.to_string())?))
}

fn run_case<E: Engine>(case: &Case, r1: &mut E, r2: &mut E) -> Result<(), String> {
    println!("-- {}", case.name);
    let mut out = Bundle::new(None, None);
    let mut inb = Bundle::new(None, None);
    if let Some((ealg, bits, ekey, aalg, akey)) = case.esp {
        let enc = ealg.key_from_hex(bits, ekey).map_err(|e| e.to_string())?;
        let cipher = ealg.cipher(bits).ok_or("no cipher for key")?;
        let auth_bits = if aalg == KeyAlgorithm::Null { 0 } else { aalg.lengths()[0] };
        let auth = aalg.key_from_hex(auth_bits, akey).map_err(|e| e.to_string())?;
        let xf = Transform::new(cipher, aalg.auth().unwrap_or(Auth::Null)).map_err(|e| e.to_string())?;
        let (o, i) = sa_pair(r1, r2, IpsecProto::Esp, case.mode, 258, xf, &enc, &auth)?;
        (out.esp, inb.esp) = (Some(o), Some(i));
    }
    if let Some((aalg, akey)) = case.ah {
        let auth = aalg.key_from_hex(aalg.lengths()[0], akey).map_err(|e| e.to_string())?;
        let xf = Transform::auth_only(aalg.auth().ok_or("no auth")?).map_err(|e| e.to_string())?;
        // The manual: with ah,esp in tunnel mode, AH runs in transport mode over the new header.
        let mode = if case.esp.is_some() { Mode::Transport } else { case.mode };
        let (o, i) = sa_pair(r1, r2, IpsecProto::Ah, mode, 256, xf, &[], &auth)?;
        (out.ah, inb.ah) = (Some(Box::new(o)), Some(Box::new(i)));
    }
    let (src, dst) = if case.mode == Mode::Tunnel { (LAN1_HOST, LAN2_HOST) } else { (R1, R2) };
    let originals: Vec<Vec<u8>> = (0..32).map(|i| udp_packet(src, dst, i * 45)).collect();
    let mut burst: Burst<HeapBuf> = originals.iter().map(|p| HeapBuf::from_slice(p)).collect();
    let mut st1 = Stats::default();
    out.seal(r1, &mut burst, &mut st1);
    if burst.len() != originals.len() {
        return Err(format!("R1 dropped packets: {:?}", st1.nonzero().collect::<Vec<_>>()));
    }
    let wire_bytes: usize = burst.iter().map(|p| p.len()).sum();
    let plain_bytes: usize = originals.iter().map(Vec::len).sum();
    println!("   R1 sealed {} packets: {} -> {} bytes on the wire", burst.len(), plain_bytes, wire_bytes);
    println!("   first on the wire: {}", describe(burst[0].data()));
    let captured: Vec<Vec<u8>> = burst.iter().map(|p| p.data().to_vec()).collect();
    let mut st2 = Stats::default();
    inb.open(r2, &mut burst, &mut st2);
    let opened: Vec<Vec<u8>> = burst.iter().map(|p| p.data().to_vec()).collect();
    if opened != originals {
        return Err(format!("R2 did not get the packets back: {:?}", st2.nonzero().collect::<Vec<_>>()));
    }
    println!("   R2 opened {} packets, identical to what LAN1 sent", opened.len());
    // An attacker replays part of the capture, and flips a bit in a fresh packet.
    let mut fresh: Burst<HeapBuf> = [HeapBuf::from_slice(&originals[0])].into_iter().collect();
    out.seal(r1, &mut fresh, &mut st1);
    let mut replay: Burst<HeapBuf> = captured.iter().take(4).map(|p| HeapBuf::from_slice(p)).collect();
    let mut forged = fresh[0].data().to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x80;
    replay.push(HeapBuf::from_slice(&forged));
    inb.open(r2, &mut replay, &mut st2);
    let reasons: Vec<String> = st2.nonzero().map(|(r, n)| format!("{}={n}", r.label())).collect();
    println!("   R2 got 4 replayed and 1 forged packet: {} passed, dropped {}", replay.len(), reasons.join(" "));
    if !replay.is_empty() || st2.dropped(DropReason::Replayed) != 4 || st2.dropped(DropReason::AuthFailed) != 1 {
        return Err("replayed or forged packets were not all dropped".into());
    }
    println!("   installed SAs (R1 outbound, then R2 inbound):");
    for sa in out.sas().chain(inb.sas()) {
        println!("   {}", installed_sa_line(sa));
    }
    Ok(())
}

/// Returns one line in the spirit of `/ip ipsec installed-sa print`.
fn installed_sa_line<S>(sa: &Sa<S>) -> String {
    let xf = sa.transform();
    let proto = match sa.proto() {
        IpsecProto::Esp => "esp",
        IpsecProto::Ah => "ah",
    };
    let c = sa.counters();
    format!(
        "spi={} sa-type={proto} state={:?} auth-algorithm={} enc-algorithm={} src-address={} dst-address={} \
         current-bytes={} packets={}",
        sa.spi(),
        sa.state(),
        xf.auth().name(),
        if proto == "ah" { "none" } else { xf.cipher().name() },
        sa.src(),
        sa.dst(),
        c.bytes,
        c.packets,
    )
    .to_lowercase()
}

fn describe(p: &[u8]) -> String {
    let Ok(ip) = ipv4::Packet::new_checked(p) else { return "not IPv4".into() };
    let h = usize::from(ip.header_len());
    let mut s = format!("{} -> {} len {} ", ip.src_addr(), ip.dst_addr(), ip.total_len());
    match ip.protocol() {
        Protocol::Esp => {
            if let Ok(e) = esp::Packet::new_checked(&p[h..]) {
                s += &format!("ESP spi={} seq={}", e.spi(), e.seq_number());
            }
        }
        Protocol::Ah => {
            if let Ok(a) = ah::Packet::new_checked(&p[h..]) {
                s += &format!("AH spi={} seq={} next={}", a.spi(), a.seq_number(), a.next_header());
            }
        }
        other => s += &format!("{other}"),
    }
    s
}

fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: usize) -> Vec<u8> {
    let total = ipv4::HEADER_LEN + udp::HEADER_LEN + payload;
    let mut p = vec![0u8; total];
    let ip = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: Protocol::Udp,
        payload_len: udp::HEADER_LEN + payload,
        ttl: 64,
        tos: 0,
        ident: payload as u16,
        dont_frag: true,
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    let mut u = udp::Packet::new_unchecked(&mut p[ipv4::HEADER_LEN..]);
    udp::Repr { src_port: 5000, dst_port: 5001, payload_len: payload }.emit(&mut u);
    for (i, b) in u.payload_mut().iter_mut().enumerate() {
        *b = i as u8;
    }
    u.fill_checksum(&src, &dst);
    p
}
