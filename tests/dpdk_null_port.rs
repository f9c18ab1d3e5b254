//! `net_null` ports on a real EAL: a transmitted burst is counted by the device and every mbuf
//! comes back to the pool; a receiving null device fills bursts from our pool; two queues get
//! RSS where the device offers it; a queue given the built-in generator receives its frames.

use std::process::ExitCode;

use dataplane::buf::{BURST, Burst, PacketBuf};
use dataplane::port::Port;
use ipsecgw::dpdk::generator::HEAD;
use ipsecgw::dpdk::testing::{Cases, eal_args, unique_prefix};
use ipsecgw::dpdk::{Eal, EthPort, Generator, Mbuf, Mempool, PoolConfig, PortConfig};

fn main() -> ExitCode {
    let prefix = unique_prefix("null_port");
    let mut cases = Cases::new(&prefix);
    let vdevs = ["--vdev", "net_null0,no-rx=1", "--vdev", "net_null1,size=64", "--vdev", "net_null2,no-rx=1"];
    let eal = Eal::init(eal_args(&prefix, "0", &vdevs)).expect("EAL init");
    let pool = Mempool::create(&eal, &PoolConfig { mbufs: 4095, ..PoolConfig::default() }).expect("pool");
    let full = pool.available();

    cases.run("tx_burst_is_counted_by_the_device_and_freed", || {
        let mut port = EthPort::open(&eal, "net_null0", &pool, &PortConfig::default()).expect("open");
        port.start().unwrap();
        assert!(port.is_started());
        let mut q = port.queue(0).unwrap();
        let mut rx: Burst<Mbuf> = Burst::new();
        assert_eq!(q.rx_burst(&mut rx), 0, "no-rx=1");
        for round in 1..=3u64 {
            let mut tx: Burst<Mbuf> = Burst::new();
            for i in 0..BURST {
                tx.push(pool.alloc_from(&[i as u8; 100]).unwrap());
            }
            assert_eq!(q.tx_burst(&mut tx), BURST);
            assert!(tx.is_empty());
            let s = port.stats().unwrap();
            assert_eq!((s.opackets, s.ipackets), (round * BURST as u64, 0), "{s:?}");
            assert_eq!(pool.available(), full, "net_null freed what it sent, we freed nothing twice");
        }
        assert_eq!(q.tx_burst(&mut Burst::new()), 0);
        port.reset_stats().unwrap();
        assert_eq!(port.stats().unwrap().opackets, 0);
        port.stop().unwrap();
        assert!(!port.is_started());
    });

    cases.run("rx_from_a_null_device_fills_the_burst_from_our_pool", || {
        let mut port = EthPort::open(&eal, "net_null1", &pool, &PortConfig { queues: 2, ..PortConfig::default() })
            .expect("open with two queues");
        assert!(port.rss(), "net_null offers RSS hash types");
        port.start().unwrap();
        let mut q0 = port.queue(0).unwrap();
        let q1 = port.queue(1).unwrap();
        assert_eq!((q1.port_id(), q1.queue_id(), q1.port_name()), (port.id(), 1, "net_null1"));
        let mut rx: Burst<Mbuf> = Burst::new();
        assert_eq!(q0.rx_burst(&mut rx), BURST);
        assert!(rx.iter().all(|m| m.len() == 64 && m.port() == port.id()));
        assert_eq!(pool.in_use() as usize, BURST);
        let s = port.stats().unwrap();
        assert_eq!(s.ipackets, BURST as u64, "{s:?}");
        drop(rx);
        assert_eq!(pool.available(), full);
    });

    cases.run("a_queue_given_a_generator_receives_its_frames_round_and_round_from_the_pool", || {
        // Every byte differs between frames and positions, so a wrong frame or offset shows.
        let frames: Vec<Vec<u8>> =
            [64, 100, 1420].iter().enumerate().map(|(i, &n)| (0..n).map(|j| (i * 101 + j) as u8).collect()).collect();
        for (bad, why) in [(vec![], "no frame"), (vec![vec![0; HEAD - 1]], "a runt"), (vec![vec![0; 4000]], "too big")]
        {
            assert!(Generator::new(&pool, &bad).is_err(), "{why}");
        }
        let mut port = EthPort::open(&eal, "net_null2", &pool, &PortConfig::default()).expect("open");
        port.start().unwrap();
        let mut q = port.queue(0).unwrap();
        q.generate(Generator::new(&pool, &frames).unwrap());
        let mut rx: Burst<Mbuf> = Burst::new();
        assert_eq!(q.rx_burst(&mut rx), BURST);
        let check = |m: &Mbuf, k: usize| {
            let f = &frames[k % frames.len()];
            assert_eq!(m.len(), f.len(), "packet {k}");
            assert_eq!(m.data()[..HEAD], f[..HEAD], "packet {k}");
        };
        for (k, m) in rx.iter().enumerate() {
            check(m, k);
        }
        assert_eq!(pool.in_use() as usize, BURST);
        // A partly full burst gets the rest of its room, the cycle going on where it stopped.
        rx.truncate(BURST - 2);
        assert_eq!(q.rx_burst(&mut rx), 2);
        check(&rx[BURST - 2], BURST);
        check(&rx[BURST - 1], BURST + 1);
        assert_eq!(q.rx_burst(&mut rx), 0, "no room");
        assert_eq!(port.stats().unwrap().ipackets, 0, "the device itself was not polled");
        drop(rx);
        assert_eq!(pool.available(), full);

        // Short of mbufs, the generator receives nothing rather than part of a burst.
        let small = Mempool::create(&eal, &PoolConfig { mbufs: BURST as u32 + 8, cache: 0, ..PoolConfig::default() })
            .expect("small pool");
        let mut g = Generator::new(&small, &frames).unwrap();
        let mut held: Burst<Mbuf> = Burst::new();
        assert_eq!(g.fill(&mut held), BURST);
        let mut more: Burst<Mbuf> = Burst::new();
        assert_eq!(g.fill(&mut more), 0, "8 free for a burst");
        drop(held);
        assert_eq!(g.fill(&mut more), BURST);
    });

    drop(pool);
    drop(eal);
    cases.finish()
}
