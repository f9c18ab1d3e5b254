//! Helpers shared by the dataplane's integration tests: packets, SA pairs, bursts.
#![allow(dead_code)]

use std::net::Ipv4Addr;

use dataplane::buf::{Burst, HeapBuf, PacketBuf};
use dataplane::crypto::{Auth, Cipher, Engine, Transform};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, Sa, SaConfig};
use dataplane::stats::Stats;
use dataplane::wire::ipv4;

pub const LAN1: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
pub const LAN2: Ipv4Addr = Ipv4Addr::new(192, 168, 2, 20);
pub const R1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const R2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Every transform ESP takes.
pub fn esp_transforms() -> Vec<Transform> {
    let mut v = Vec::new();
    for c in Cipher::ALL {
        for a in Auth::ALL {
            if let Ok(t) = Transform::new(c, a) {
                v.push(t);
            }
        }
    }
    v
}

/// Every transform AH takes.
pub fn ah_transforms() -> Vec<Transform> {
    Auth::ALL.into_iter().filter_map(|a| Transform::auth_only(a).ok()).collect()
}

/// Returns deterministic, non-weak key bytes of `len`.
pub fn key(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(37).wrapping_add(salt).wrapping_add(0x5a)).collect()
}

/// Builds an IPv4/UDP packet with `payload_len` bytes of payload.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize, tos: u8, df: bool) -> Vec<u8> {
    let total = 20 + 8 + payload_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[1] = tos;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    if df {
        p[6] = 0x40;
    }
    p[8] = 63;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..22].copy_from_slice(&1234u16.to_be_bytes());
    p[22..24].copy_from_slice(&5678u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = (i * 7 + payload_len) as u8;
    }
    ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
    p
}

/// An outbound and an inbound SA with the same keys and SPI, as two peers hold them.
pub struct Pair<S> {
    pub out: Sa<S>,
    pub inb: Sa<S>,
}

pub struct PairSpec {
    pub proto: IpsecProto,
    pub mode: Mode,
    pub xf: Transform,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub spi: u32,
    pub lifetimes: Lifetimes,
    pub df: DontFragment,
    pub window: u32,
}

impl PairSpec {
    pub fn new(proto: IpsecProto, mode: Mode, xf: Transform) -> Self {
        PairSpec {
            proto,
            mode,
            xf,
            src: R1,
            dst: R2,
            spi: 0x1000,
            lifetimes: Lifetimes::default(),
            df: DontFragment::Clear,
            window: 64,
        }
    }

    pub fn build<E: Engine>(&self, e: &mut E) -> Pair<E::Session> {
        let enc = key(self.xf.cipher().key_len(), 1);
        let auth = key(self.xf.auth().key_len(), 2);
        let cfg = SaConfig {
            spi: self.spi,
            proto: self.proto,
            mode: self.mode,
            src: self.src,
            dst: self.dst,
            xf: self.xf,
            enc_key: &enc,
            auth_key: &auth,
            replay_window: self.window,
            lifetimes: self.lifetimes,
            dont_fragment: self.df,
        };
        Pair { out: Sa::new(e, &cfg, 0).unwrap(), inb: Sa::new(e, &cfg, 0).unwrap() }
    }
}

pub fn burst_of(packets: &[Vec<u8>]) -> Burst<HeapBuf> {
    packets.iter().map(|p| HeapBuf::from_slice(p)).collect()
}

pub fn contents(burst: &Burst<HeapBuf>) -> Vec<Vec<u8>> {
    burst.iter().map(|b| b.data().to_vec()).collect()
}

/// Seals with `proto`'s module.
pub fn seal<E: Engine>(proto: IpsecProto, sa: &mut Sa<E::Session>, e: &mut E, b: &mut Burst<HeapBuf>, st: &mut Stats) {
    match proto {
        IpsecProto::Esp => dataplane::esp::seal(sa, e, b, st),
        IpsecProto::Ah => dataplane::ah::seal(sa, e, b, st),
    }
}

/// Opens with `proto`'s module.
pub fn open<E: Engine>(proto: IpsecProto, sa: &mut Sa<E::Session>, e: &mut E, b: &mut Burst<HeapBuf>, st: &mut Stats) {
    match proto {
        IpsecProto::Esp => dataplane::esp::open(sa, e, b, st),
        IpsecProto::Ah => dataplane::ah::open(sa, e, b, st),
    }
}
