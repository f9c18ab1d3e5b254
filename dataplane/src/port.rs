//! The `Port` trait: one receive/transmit queue pair of a device, owned by one worker. DPDK
//! ethdev queues implement it in the root crate; [`MemPort`] implements it here for tests.

use std::collections::VecDeque;

use crate::buf::{BURST, Burst, HeapBuf, PacketBuf};

/// One rx/tx queue pair, polled by exactly one worker.
pub trait Port {
    /// The packet buffer the device hands out.
    type Buf: PacketBuf;

    /// Receives up to the burst's free capacity of packets, appending them to `out`; returns
    /// how many arrived.
    fn rx_burst(&mut self, out: &mut Burst<Self::Buf>) -> usize;

    /// Transmits every packet of `pkts`, leaving it empty: packets the queue refuses are freed.
    /// Returns how many were sent, so the caller can count the rest as dropped.
    fn tx_burst(&mut self, pkts: &mut Burst<Self::Buf>) -> usize;
}

/// An in-memory port: tests push frames into `rx` and read what was sent from `tx`.
#[derive(Debug, Default)]
pub struct MemPort {
    /// Frames waiting to be received.
    pub rx: VecDeque<Vec<u8>>,
    /// Frames transmitted, oldest first.
    pub tx: Vec<Vec<u8>>,
    /// Transmit capacity per call (`None`: unlimited), to exercise a full tx queue.
    pub tx_limit: Option<usize>,
}

impl Port for MemPort {
    type Buf = HeapBuf;

    fn rx_burst(&mut self, out: &mut Burst<HeapBuf>) -> usize {
        let n = (BURST - out.len()).min(self.rx.len());
        for frame in self.rx.drain(..n) {
            out.push(HeapBuf::from_slice(&frame));
        }
        n
    }

    fn tx_burst(&mut self, pkts: &mut Burst<HeapBuf>) -> usize {
        let n = self.tx_limit.unwrap_or(BURST).min(pkts.len());
        self.tx.extend(pkts.iter().take(n).map(|p| p.data().to_vec()));
        pkts.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_port_moves_frames_and_refuses_beyond_its_limit() {
        let mut p = MemPort::default();
        p.rx.extend((0..BURST + 8).map(|i| vec![i as u8; 3]));
        let mut b = Burst::new();
        assert_eq!(p.rx_burst(&mut b), BURST);
        assert_eq!(p.rx_burst(&mut b), 0, "burst full");
        p.tx_limit = Some(5);
        assert_eq!(p.tx_burst(&mut b), 5);
        assert!(b.is_empty());
        assert_eq!(p.tx.len(), 5);
        assert_eq!(p.rx_burst(&mut b), 8);
    }
}
