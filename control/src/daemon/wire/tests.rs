use std::io::Cursor;

use super::*;
use crate::compile::compile;
use crate::config::Config;

/// The demo's R1: interfaces, a route, keys, a manual SA and an encrypt policy.
const R1: &str = include_str!("../../../../tests/fixtures/demo/r1.rsc");

fn state() -> State {
    State::from(&compile(&Config::parse(R1).unwrap()).unwrap())
}

fn snapshot() -> SaSnapshot {
    SaSnapshot {
        worker: 0,
        direction: Direction::Out,
        policy_id: 7,
        spi: 259,
        proto: IpsecProto::Esp,
        mode: Mode::Tunnel,
        src: Ipv4Addr::new(192, 0, 2, 1),
        dst: Ipv4Addr::new(192, 0, 2, 2),
        xf: Transform::new(Cipher::AesGcm128, Auth::Null).unwrap(),
        state: SaState::Dying,
        seq: 41,
        replay_window: 0,
        counters: SaCounters { packets: 41, bytes: 4100 },
        added_at: 3,
        lifetimes: Lifetimes { soft_bytes: 1, hard_bytes: 2, soft_secs: 3, hard_secs: 4 },
    }
}

fn datagram() -> Datagram {
    Datagram {
        local: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 4500),
        remote: SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), 61_000),
        payload: vec![0, 0, 0, 0, 1, 2, 3],
    }
}

fn requests() -> Vec<DpRequest> {
    vec![
        DpRequest::Hello { version: VERSION },
        DpRequest::Check(state()),
        DpRequest::Apply(state()),
        DpRequest::Apply(State::default()),
        DpRequest::Sas,
        DpRequest::Stats,
        DpRequest::Poll,
        DpRequest::Send(vec![datagram(), Datagram { payload: Vec::new(), ..datagram() }]),
    ]
}

fn replies() -> Vec<DpReply> {
    vec![
        DpReply::Hello {
            version: VERSION,
            ports: vec![PortInfo { name: "lan".into(), device: "net_null0,no-rx=1".into() }],
            policies: state().policies,
            sas: state()
                .sas
                .iter()
                .flat_map(|p| {
                    [(Direction::Out, &p.outbound), (Direction::In, &p.inbound)].map(move |(d, b)| (p.policy_id, d, b))
                })
                .flat_map(|(policy_id, direction, b)| {
                    b.esp.iter().chain(b.ah.iter()).map(move |s| InstalledSpec {
                        policy_id,
                        direction,
                        spec: s.clone(),
                        added: 1_700_000_000,
                    })
                })
                .collect(),
        },
        DpReply::Ok,
        DpReply::Error("failure: ünïcode".into()),
        DpReply::Sas(vec![SaEntry {
            snapshot: snapshot(),
            enc_key: Zeroizing::new(vec![1, 2, 3]),
            auth_key: Zeroizing::new(vec![]),
            added: 1_700_000_000,
        }]),
        DpReply::Stats(vec![("rx".into(), 5), ("drop ttl-exceeded".into(), u64::MAX)]),
        DpReply::Events { datagrams: Vec::new(), events: Vec::new() },
        DpReply::Events {
            datagrams: vec![datagram()],
            events: vec![
                ControlEvent::Acquire { policy_id: 3 },
                ControlEvent::Sa {
                    spi: 0xdead_beef,
                    dst: Ipv4Addr::new(192, 0, 2, 1),
                    proto: IpsecProto::Ah,
                    event: SaEvent::SeqExhausted,
                },
            ],
        },
    ]
}

fn ctl() -> (Vec<CtlRequest>, Vec<CtlReply>) {
    (
        vec![CtlRequest::Hello { version: VERSION }, CtlRequest::Command("/ip ipsec policy print detail".into())],
        vec![
            CtlReply::Hello { version: VERSION, prompt: "[admin@ipsecgw] > ".into() },
            CtlReply::Output { ok: false, text: "bad command name x".into(), prompt: "p> ".into() },
        ],
    )
}

/// Returns every valid frame body of the examples.
fn bodies() -> Vec<Vec<u8>> {
    let (creq, crep) = ctl();
    let mut v: Vec<Vec<u8>> = requests().iter().map(Wire::encode).collect();
    v.extend(replies().iter().map(Wire::encode));
    v.extend(creq.iter().map(Wire::encode));
    v.extend(crep.iter().map(Wire::encode));
    v
}

#[test]
fn every_message_survives_a_round_trip() {
    let s = state();
    assert!(!s.sas.is_empty() && !s.routes.is_empty(), "the example exercises SAs and routes");
    for m in requests() {
        assert_eq!(DpRequest::decode(&m.encode()).unwrap(), m);
    }
    for m in replies() {
        assert_eq!(DpReply::decode(&m.encode()).unwrap(), m);
    }
    let (creq, crep) = ctl();
    for m in creq {
        assert_eq!(CtlRequest::decode(&m.encode()).unwrap(), m);
    }
    for m in crep {
        assert_eq!(CtlReply::decode(&m.encode()).unwrap(), m);
    }
}

#[test]
fn frames_carry_messages_over_a_stream() {
    let mut stream = Vec::new();
    for m in requests() {
        write_msg(&mut stream, &m).unwrap();
    }
    let mut r = Cursor::new(&stream);
    for m in requests() {
        assert_eq!(read_msg::<DpRequest>(&mut r).unwrap(), m);
    }
    assert_eq!(read_msg::<DpRequest>(&mut r).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    // The same bytes fed one at a time to a frame buffer.
    let mut fb = FrameBuf::default();
    let mut got = Vec::new();
    for b in &stream {
        fb.extend(&[*b]);
        while let Some(body) = fb.next_frame().unwrap() {
            got.push(DpRequest::decode(&body).unwrap());
        }
    }
    assert_eq!(got, requests());
}

/// Checks that every proper prefix of the message's body fails to decode.
fn truncations_fail<T: Wire + std::fmt::Debug>(m: &T) {
    let body = m.encode();
    for cut in 0..body.len() {
        assert!(T::decode(&body[..cut]).is_err(), "{m:?} cut at {cut}");
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    requests().iter().for_each(truncations_fail);
    replies().iter().for_each(truncations_fail);
    let (creq, crep) = ctl();
    creq.iter().for_each(truncations_fail);
    crep.iter().for_each(truncations_fail);
    // A truncated frame on a stream.
    let f = frame(&DpRequest::Apply(state()));
    for cut in 0..f.len() {
        assert!(read_msg::<DpRequest>(&mut Cursor::new(&f[..cut])).is_err());
    }
}

#[test]
fn a_state_truncated_anywhere_is_refused() {
    let body = DpRequest::Apply(state()).encode();
    for cut in 0..body.len() {
        assert!(DpRequest::decode(&body[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = body.clone();
    long.push(0);
    assert_eq!(DpRequest::decode(&long), Err(WireError::Trailing(1)));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    // Deterministic pseudo-random bytes (xorshift), and every valid body with bytes flipped.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..300 {
        let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = DpRequest::decode(&junk);
        let _ = DpReply::decode(&junk);
        let _ = CtlRequest::decode(&junk);
        let _ = CtlReply::decode(&junk);
    }
    for body in bodies() {
        for _ in 0..200 {
            let mut b = body.clone();
            let i = next() as usize % b.len();
            b[i] ^= (next() as u8) | 1;
            let _ = DpRequest::decode(&b);
            let _ = DpReply::decode(&b);
            let _ = CtlRequest::decode(&b);
            let _ = CtlReply::decode(&b);
        }
    }
}

#[test]
fn bad_tags_lengths_and_magic_are_named() {
    assert_eq!(DpRequest::decode(&[9]), Err(WireError::Unknown { what: "request", value: 9 }));
    assert_eq!(DpRequest::decode(&[0, b'X', b'X', b'X', b'X', 0, 1]), Err(WireError::BadMagic));
    // A count far beyond the frame is refused before anything is allocated.
    assert_eq!(DpReply::decode(&[4, 0xff, 0xff, 0xff, 0xff]), Err(WireError::Truncated));
    assert_eq!(DpReply::decode(&[2, 0, 0, 0, 2, 0xff, 0xfe]), Err(WireError::Utf8));
    let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
    let err = read_msg::<DpRequest>(&mut Cursor::new(&huge)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let mut fb = FrameBuf::default();
    fb.extend(&huge);
    assert_eq!(fb.next_frame(), Err(WireError::TooLong(MAX_FRAME + 1)));
    // An invalid transform (AEAD with integrity) and a prefix longer than 32 bits.
    let mut w = Writer::default();
    Cipher::AesGcm128.put(&mut w);
    Auth::HmacSha1_96.put(&mut w);
    assert_eq!(Transform::decode(&w.into_bytes()), Err(WireError::Invalid("transform")));
    assert_eq!(Prefix::decode(&[0, 0, 0, 0, 33]), Err(WireError::Invalid("prefix length")));
}
