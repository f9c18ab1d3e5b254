//! The demo's two routers, built in code (used with `--r1 builtin --r2 builtin`, and until the
//! configuration files are parsed).

use std::net::Ipv4Addr;

use dataplane::crypto::{Auth, Cipher, Transform};
use dataplane::pipeline::Direction;
use dataplane::route::{NextHop, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode};
use dataplane::spd::{Action, IpsecProtocols, Level, Policy, Prefix, Selector};
use ipsecgw::gateway::{IfaceSetup, SaSetup, Setup};

pub fn setup(n: u8) -> Setup {
    let other = 3 - n;
    let lan = |k: u8| Prefix::new(u32::from(Ipv4Addr::new(10, k, 0, 0)), 24);
    let wan = |k: u8| Ipv4Addr::new(192, 0, 2, k);
    let xf = Transform::new(Cipher::AesGcm128, Auth::Null).unwrap();
    let key = |spi: u32| zeroize::Zeroizing::new((0..20).map(|i| (i as u32 * 7 + spi) as u8).collect::<Vec<u8>>());
    let sa = |direction, spi: u32, src, dst| SaSetup {
        policy_id: 1,
        direction,
        proto: IpsecProto::Esp,
        mode: Mode::Tunnel,
        spi,
        src,
        dst,
        xf,
        enc_key: key(spi),
        auth_key: zeroize::Zeroizing::new(Vec::new()),
        dont_fragment: DontFragment::Clear,
        lifetimes: Lifetimes::default(),
        replay_window: 64,
        encap: None,
    };
    // The manual: incoming SPI on one router is the outgoing SPI on the other.
    let (spi_in, spi_out) = if n == 1 { (258, 259) } else { (259, 258) };
    Setup {
        name: format!("R{n}"),
        ifaces: vec![
            IfaceSetup {
                name: "lan".into(),
                device: format!("net_ring_r{n}lan"),
                addrs: vec![(Ipv4Addr::new(10, n, 0, 1), 24)],
                mtu: 1500,
            },
            IfaceSetup {
                name: "wan".into(),
                device: format!("net_ring_r{n}wan"),
                addrs: vec![(wan(n), 24)],
                mtu: 1500,
            },
        ],
        routes: vec![Route {
            prefix: Ipv4Addr::new(10, other, 0, 0),
            len: 24,
            next_hop: NextHop { port: 1, gateway: Some(wan(other)) },
        }],
        policies: vec![Policy {
            id: 1,
            selector: Selector { src: lan(n), dst: lan(other), ..Selector::ANY },
            action: Action::Encrypt,
            level: Level::Require,
            mode: Mode::Tunnel,
            sa_src: wan(n),
            sa_dst: wan(other),
            protocols: IpsecProtocols::Esp,
            dont_fragment: DontFragment::Clear,
        }],
        sas: vec![sa(Direction::Out, spi_out, wan(n), wan(other)), sa(Direction::In, spi_in, wan(other), wan(n))],
    }
}
