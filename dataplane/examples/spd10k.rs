//! Times the SPD with 10,000 host policies that share one source prefix (each LAN2 host its own
//! tunnel, as `ipsecgw bench --policies 10000` installs them): build time, memory, and the
//! outbound and incoming lookups per packet. `cargo run --release -p dataplane --example spd10k`

use dataplane::spd::*;
use std::net::Ipv4Addr;
fn main() {
    let n = 10000u32;
    let lan1 = Prefix::new(u32::from(Ipv4Addr::new(10, 1, 0, 0)), 24);
    let pols: Vec<Policy> = (0..n)
        .map(|i| Policy {
            id: i + 1,
            selector: Selector {
                src: lan1,
                dst: Prefix::host(u32::from(Ipv4Addr::new(10, 2, 0, 0)) + 1 + i),
                ..Selector::ANY
            },
            action: Action::Encrypt,
            level: Level::Require,
            mode: Mode::Tunnel,
            sa_src: Ipv4Addr::new(192, 0, 2, 1),
            sa_dst: Ipv4Addr::new(192, 0, 2, 2),
            protocols: IpsecProtocols::Esp,
            dont_fragment: DontFragment::Clear,
        })
        .collect();
    let t = std::time::Instant::now();
    let spd = Spd::new(pols);
    println!("build {:?} mem {}", t.elapsed(), spd.memory_bytes());
    let mut c = spd.counters();
    let keys: Vec<Key> = (0..32)
        .map(|i| {
            Key::new(
                Ipv4Addr::new(10, 1, 0, 10),
                Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 2, 0, 0)) + 1 + (i * 311 % n)),
                17,
                1000,
                5001,
            )
        })
        .collect();
    let pk = vec![Outgoing { len: 64, local: false, prev: None }; 32];
    let inc = vec![Incoming { len: 64, to_us: false }; 32];
    let mut out = vec![Decision { verdict: Verdict::Clear, acquire: None }; 32];
    // One bucket for 32 flows: every lookup misses the flow cache and walks the classifier.
    let mut cache = dataplane::classify::FlowCache::new(1);
    let iters = 2000;
    let t = std::time::Instant::now();
    for _ in 0..iters {
        spd.outbound(&keys, &pk, |_| true, &mut c, &mut cache, &mut out);
    }
    println!("outbound {:?} per packet", t.elapsed() / (iters * 32));
    let t = std::time::Instant::now();
    for _ in 0..iters {
        spd.incoming(&keys, &inc, |_| true, &mut c, &mut cache, &mut out);
    }
    println!("incoming {:?} per packet", t.elapsed() / (iters * 32));
}
