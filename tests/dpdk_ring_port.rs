//! A `net_ring` loopback port (what it transmits it receives) on a real EAL: bytes survive a
//! burst round trip, the `PacketBuf` operations on real mbufs, every mbuf freed exactly once
//! (after a round trip and after a transmit the full ring refuses), queue hand-out, worker
//! lcore launch with a queue moved onto it, the stop flag, and a second EAL init refused.

use std::process::ExitCode;

use dataplane::buf::{BURST, Burst, PacketBuf};
use dataplane::port::Port;
use dataplane::stats::DropReason;
use ipsecgw::dpdk::testing::{Cases, eal_args, unique_prefix};
use ipsecgw::dpdk::{Eal, EthPort, EthQueue, Mbuf, Mempool, PoolConfig, PortConfig, errno, lcore, shutdown};

/// Slots of the ring net_ring creates per queue: 1024, of which 1023 usable.
const RING_SLOTS: usize = 1023;

/// Returns a frame of `len` bytes that encodes `seq`.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(7).wrapping_add(seq) as u8).collect()
}

/// Returns the length of the `seq`th frame of a burst: 60 to 1,300 bytes, one mbuf each.
fn varied_len(seq: usize) -> usize {
    60 + seq % 32 * 40
}

fn main() -> ExitCode {
    let prefix = unique_prefix("ring_port");
    let mut cases = Cases::new(&prefix);
    let eal = Eal::init(eal_args(&prefix, "0,1", &["--vdev", "net_ring0"])).expect("EAL init");
    let pool = Mempool::create(&eal, &PoolConfig { mbufs: 2047, cache: 0, ..PoolConfig::default() }).expect("pool");
    let full = pool.available();
    let mut port = EthPort::open(&eal, "net_ring0", &pool, &PortConfig::default()).expect("open net_ring0");
    port.start().expect("start");
    let mut q = port.queue(0).expect("queue 0");

    cases.run("second_eal_init_is_refused", || {
        let err = Eal::init(eal_args(&prefix, "0", &[])).unwrap_err();
        assert_eq!(err.errno(), errno::EALREADY, "{err}");
    });

    cases.run("pool_and_port_basics", || {
        assert_eq!(pool.capacity(), 2047);
        assert_eq!(full, 2047);
        assert!(pool.name().starts_with("gw_pool_"));
        assert_eq!((port.name(), port.queues(), port.rss()), ("net_ring0", 1, false));
        let link = port.link().expect("link");
        assert!(link.up, "{link:?}");
        port.mac().expect("mac");
        let err = EthPort::open(&eal, "net_ring9", &pool, &PortConfig::default()).unwrap_err();
        assert_eq!(err.errno(), errno::ENODEV, "{err}");
        assert_eq!(port.queue(0).unwrap_err().errno(), errno::EBUSY);
        assert_eq!(port.queue(1).unwrap_err().errno(), errno::EINVAL);
    });

    cases.run("mbufs_are_packed_across_pages_exactly_when_iovas_are_virtual", || {
        let held: Vec<Mbuf> = (0..64).map(|_| pool.alloc().expect("alloc")).collect();
        // Where each mbuf's data starts within its 4 KiB page: the same for all of them in a
        // pool that keeps every mbuf inside one page (one per page), spread in a packed pool.
        let mut offsets: Vec<usize> = held.iter().map(|m| m.data().as_ptr() as usize % 4096).collect();
        offsets.sort_unstable();
        offsets.dedup();
        assert_eq!(pool.packed(), eal.iova_is_va());
        if pool.packed() {
            assert!(offsets.len() >= 32, "64 mbufs start at only {} offsets within their pages", offsets.len());
        } else {
            assert_eq!(offsets.len(), 1, "{offsets:?}");
        }
    });

    cases.run("round_trip_bytes_identical_and_every_mbuf_back", || {
        port.reset_stats().unwrap();
        let mut tx: Burst<Mbuf> = Burst::new();
        for seq in 0..BURST as u32 {
            tx.push(pool.alloc_from(&frame(seq, varied_len(seq as usize))).expect("alloc"));
        }
        assert_eq!(pool.available(), full - BURST as u32);
        assert_eq!(q.tx_burst(&mut tx), BURST);
        assert!(tx.is_empty());
        let mut rx: Burst<Mbuf> = Burst::new();
        assert_eq!(q.rx_burst(&mut rx), BURST);
        assert_eq!(q.rx_burst(&mut rx), 0, "burst full");
        for (seq, m) in rx.iter().enumerate() {
            assert_eq!(m.data(), frame(seq as u32, varied_len(seq)).as_slice(), "packet {seq}");
            assert_eq!((m.segments(), m.pkt_len() as usize), (1, m.len()));
        }
        let stats = port.stats().unwrap();
        assert_eq!((stats.ipackets, stats.opackets), (BURST as u64, BURST as u64), "{stats:?}");
        drop(rx);
        assert_eq!(pool.available(), full, "every mbuf back exactly once");
    });

    cases.run("tx_refused_by_a_full_ring_is_freed", || {
        let mut sent = 0;
        let mut refused = 0;
        let bursts = RING_SLOTS / BURST + 2;
        for burst in 0..bursts as u32 {
            let mut tx: Burst<Mbuf> = Burst::new();
            assert!(pool.alloc_bulk(&mut tx, BURST));
            for m in tx.iter_mut() {
                assert!(m.append(64));
                m.data_mut().fill(burst as u8);
            }
            let n = q.tx_burst(&mut tx);
            assert!(tx.is_empty(), "tx_burst leaves the burst empty");
            sent += n;
            refused += BURST - n;
        }
        assert_eq!(sent, RING_SLOTS);
        assert_eq!(refused, bursts * BURST - RING_SLOTS);
        assert_eq!(pool.available(), full - sent as u32, "refused mbufs freed, sent ones not");
        let mut got = 0;
        loop {
            let mut rx: Burst<Mbuf> = Burst::new();
            let n = q.rx_burst(&mut rx);
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, sent);
        assert_eq!(pool.available(), full);
    });

    cases.run("crossed_ring_pair_carries_each_direction_to_the_other_port", || {
        let [na, nb] = EthPort::ring_pair(&eal, "wan_a", "wan_b", 1, BURST as u32 + 8).expect("ring pair");
        assert_eq!((na.as_str(), nb.as_str()), ("net_ring_wan_a", "net_ring_wan_b"));
        let mut a = EthPort::open(&eal, &na, &pool, &PortConfig::default()).expect("open a");
        let mut b = EthPort::open(&eal, &nb, &pool, &PortConfig::default()).expect("open b");
        a.start().unwrap();
        b.start().unwrap();
        let (mut qa, mut qb) = (a.queue(0).unwrap(), b.queue(0).unwrap());
        let one_way = |from: &mut EthQueue, to: &mut EthQueue, seq| {
            let mut tx: Burst<Mbuf> = Burst::new();
            tx.push(pool.alloc_from(&frame(seq, 300)).unwrap());
            assert_eq!(from.tx_burst(&mut tx), 1);
            let mut rx: Burst<Mbuf> = Burst::new();
            assert_eq!(from.rx_burst(&mut rx), 0, "no loopback");
            assert_eq!(to.rx_burst(&mut rx), 1);
            assert_eq!(rx[0].data(), frame(seq, 300).as_slice());
        };
        one_way(&mut qa, &mut qb, 1);
        one_way(&mut qb, &mut qa, 2);
        let mut tx: Burst<Mbuf> = Burst::new();
        assert!(pool.alloc_bulk(&mut tx, BURST));
        assert_eq!(qa.tx_burst(&mut tx), BURST);
        assert!(pool.alloc_bulk(&mut tx, BURST));
        assert_eq!(qa.tx_burst(&mut tx), 8, "exactly `slots` in flight");
        let mut rx: Burst<Mbuf> = Burst::new();
        assert_eq!(qb.rx_burst(&mut rx) + qb.rx_burst(&mut Burst::new()), BURST + 8);
        drop(rx);
        assert_eq!(pool.available(), full);
    });

    cases.run("packet_buf_operations_on_real_mbufs", || {
        let mut m = pool.alloc().expect("alloc");
        assert_eq!((m.len(), m.headroom()), (0, PoolConfig::HEADROOM));
        let room = PoolConfig::DEFAULT_DATA_ROOM as usize - PoolConfig::HEADROOM;
        assert_eq!(m.tailroom(), room);
        assert!(m.append(4));
        m.data_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert!(!m.prepend(PoolConfig::HEADROOM + 1), "beyond the headroom");
        assert!(m.prepend(PoolConfig::HEADROOM - 8));
        assert!(m.prepend(8));
        assert_eq!((m.headroom(), m.len()), (0, PoolConfig::HEADROOM + 4));
        assert!(!m.prepend(1));
        assert_eq!(&m.data()[PoolConfig::HEADROOM..], &[1, 2, 3, 4]);
        assert!(m.adj(PoolConfig::HEADROOM));
        assert_eq!(m.data(), &[1, 2, 3, 4]);
        assert!(!m.append(room - 3), "beyond the tailroom");
        assert!(!m.append(1 << 16), "beyond u16");
        assert!(m.append(room - 4));
        assert_eq!((m.tailroom(), m.len()), (0, room));
        assert!(!m.append(1));
        assert!(!m.adj(room + 1) && !m.trim(room + 1), "longer than the packet");
        assert!(m.trim(room - 4));
        assert_eq!(m.data(), &[1, 2, 3, 4]);
        assert!(m.adj(1) && m.trim(1));
        assert_eq!(m.data(), &[2, 3]);
        assert!(m.trim(2) && m.is_empty());
        assert_eq!(m.pkt_len(), 0, "the packet length follows every change");
        assert!(m.append(10) && m.prepend(6) && m.adj(3) && m.trim(2));
        assert_eq!((m.len(), m.pkt_len(), m.segments()), (11, 11, 1));
        // Both ends at once, as sealing grows a packet: all or nothing, and which room is short.
        let (head, tail) = (m.headroom(), m.tailroom());
        assert_eq!(m.grow(head + 1, 0), Err(DropReason::NoHeadroom));
        assert_eq!(m.grow(head, tail + 1), Err(DropReason::NoTailroom));
        assert_eq!((m.headroom(), m.tailroom(), m.len(), m.pkt_len()), (head, tail, 11, 11), "unchanged");
        assert_eq!(m.grow(head, tail), Ok(()));
        assert_eq!(
            (m.headroom(), m.tailroom(), m.len(), m.pkt_len()),
            (0, 0, 11 + head + tail, (11 + head + tail) as u32)
        );
        assert!(m.adj(head) && m.trim(tail));
        assert_eq!(m.grow(3, 5), Ok(()));
        assert_eq!((m.len(), m.pkt_len(), m.headroom()), (19, 19, head - 3));
        assert_eq!(pool.in_use(), 1);
        drop(m);
        assert_eq!(pool.available(), full);
    });

    cases.run("alloc_bulk_is_all_or_nothing", || {
        let small =
            Mempool::create(&eal, &PoolConfig { mbufs: BURST as u32 + 8, cache: 0, ..PoolConfig::default() }).unwrap();
        assert_ne!(small.name(), pool.name());
        let mut a: Burst<Mbuf> = Burst::new();
        assert!(small.alloc_bulk(&mut a, BURST));
        assert!(!small.alloc_bulk(&mut a, 1), "burst full");
        let mut b: Burst<Mbuf> = Burst::new();
        assert!(!small.alloc_bulk(&mut b, 9), "only 8 left");
        assert!(b.is_empty());
        assert!(small.alloc_bulk(&mut b, 8));
        assert!(small.alloc().is_none(), "pool empty");
        assert_eq!(small.available(), 0);
        drop((a, b));
        assert_eq!(small.available(), BURST as u32 + 8);
    });

    cases.run("lcore_ids_and_tsc", || {
        assert_eq!(lcore::current(), Some(0));
        assert_eq!(lcore::main_lcore(), 0);
        assert_eq!(lcore::workers().collect::<Vec<_>>(), vec![1]);
        assert!(lcore::tsc_hz() > 0);
        let t0 = lcore::tsc();
        assert!(lcore::tsc() >= t0);
        assert!(lcore::launch(&eal, 0, || ()).is_err(), "main lcore is no worker");
    });

    // The queue moves onto the worker lcore and comes back with the result.
    let (eal_ref, pool_ref) = (&eal, &pool);
    cases.run("worker_lcore_forwards_until_a_signal_stops_it", move || {
        let mut tx: Burst<Mbuf> = Burst::new();
        for seq in 0..8 {
            tx.push(pool_ref.alloc_from(&frame(seq, 100)).unwrap());
        }
        assert_eq!(q.tx_burst(&mut tx), 8);
        shutdown::install().expect("signal handlers");
        let job = lcore::launch(eal_ref, 1, move || {
            let on = lcore::current();
            let mut burst: Burst<Mbuf> = Burst::new();
            let mut forwarded = 0;
            while !shutdown::requested() {
                if q.rx_burst(&mut burst) > 0 {
                    forwarded += q.tx_burst(&mut burst);
                }
            }
            (on, forwarded, q)
        })
        .expect("launch");
        assert_eq!(job.lcore(), 1);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!job.is_finished());
        signal_hook::low_level::raise(signal_hook::consts::SIGTERM).unwrap();
        let (on, forwarded, mut q) = job.join();
        assert!(shutdown::requested());
        shutdown::clear();
        assert_eq!(on, Some(1));
        assert!(forwarded > 8, "the worker kept the packets circulating ({forwarded})");
        let mut rx: Burst<Mbuf> = Burst::new();
        assert_eq!(q.rx_burst(&mut rx), 8, "every packet still in flight once");
        drop(rx);
        assert_eq!(pool_ref.available(), full);
    });

    cases.run("a_panicking_lcore_job_panics_its_join", || {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let job = lcore::launch(&eal, 1, || -> u32 { panic!("worker panic") }).unwrap();
        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.join()));
        std::panic::set_hook(hook);
        assert_eq!(joined.unwrap_err().downcast_ref::<&str>(), Some(&"worker panic"));
        let job = lcore::launch(&eal, 1, || 7).unwrap();
        assert_eq!(job.join(), 7, "the lcore is usable again");
    });

    drop(port);
    drop(pool);
    drop(eal);
    cases.finish()
}
