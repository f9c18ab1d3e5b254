//! `net_null` ports on a real EAL: a transmitted burst is counted by the device and every mbuf
//! comes back to the pool; a receiving null device fills bursts from our pool; two queues get
//! RSS where the device offers it.

use std::process::ExitCode;

use dataplane::buf::{BURST, Burst, PacketBuf};
use dataplane::port::Port;
use ipsecgw::dpdk::testing::{Cases, eal_args, unique_prefix};
use ipsecgw::dpdk::{Eal, EthPort, Mbuf, Mempool, PoolConfig, PortConfig};

fn main() -> ExitCode {
    let prefix = unique_prefix("null_port");
    let mut cases = Cases::new(&prefix);
    let vdevs = ["--vdev", "net_null0,no-rx=1", "--vdev", "net_null1,size=64"];
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

    drop(pool);
    drop(eal);
    cases.finish()
}
