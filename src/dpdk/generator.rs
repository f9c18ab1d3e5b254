//! A built-in traffic source for `ipsecgw bench`: a queue given a [`Generator`] receives, instead
//! of from its device, freshly allocated mbufs carrying the next frames of a cycle, as a
//! generator on the other end of the wire would have sent them.
//!
//! Only the first cache line of each frame (its Ethernet, IPv4 and UDP headers and the start of
//! the payload) is written: the rest of the buffer keeps whatever its last packet left there,
//! as a NIC's DMA would overwrite it without the worker's core paying for it. `net_pcap`
//! instead copies every byte of every frame on the worker's core (117 to 249 cycles per packet
//! at 512 to 1,420 bytes here), a cost a gateway on a NIC does not have and the crypto
//! ceiling (`dpdk-test-crypto-perf`) does not pay either. Outbound traffic only: a frame to
//! decrypt must be whole and intact, and decryption in place destroys it.

use dataplane::buf::{BURST, Burst, PacketBuf};

use super::mbuf::Mbuf;
use super::mempool::Mempool;

/// Bytes of each frame the generator writes: one cache line.
pub const HEAD: usize = 64;

/// One frame of the cycle: its first [`HEAD`] bytes and its length.
#[derive(Clone, Debug)]
struct Frame {
    head: [u8; HEAD],
    len: usize,
}

/// Generates the frames of a cycle into mbufs of a pool, round and round.
#[derive(Debug)]
pub struct Generator {
    pool: Mempool,
    frames: Vec<Frame>,
    next: usize,
}

impl Generator {
    /// A generator of `frames` (whole Ethernet frames, [`HEAD`] bytes at least, that fit in
    /// the pool's buffers), in this order, allocated from `pool`.
    pub fn new(pool: &Mempool, frames: &[Vec<u8>]) -> Result<Generator, String> {
        if frames.is_empty() {
            return Err("a generator needs at least one frame".into());
        }
        let room = {
            let m = pool.alloc().ok_or("the generator's pool is empty")?;
            m.tailroom()
        };
        let mut cycle = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            if f.len() < HEAD || f.len() > room {
                return Err(format!("frame {i}: {} bytes, the generator takes {HEAD} to {room}", f.len()));
            }
            let mut head = [0; HEAD];
            head.copy_from_slice(&f[..HEAD]);
            cycle.push(Frame { head, len: f.len() });
        }
        Ok(Generator { pool: pool.clone(), frames: cycle, next: 0 })
    }

    /// Appends as many frames as `out` has room for; returns how many (none when the pool is
    /// short of mbufs, as a NIC drops when its ring has no buffers).
    pub fn fill(&mut self, out: &mut Burst<Mbuf>) -> usize {
        let start = out.len();
        let n = BURST - start;
        if n == 0 || !self.pool.alloc_bulk(out, n) {
            return 0;
        }
        for m in &mut out[start..] {
            let f = &self.frames[self.next];
            self.next += 1;
            if self.next == self.frames.len() {
                self.next = 0;
            }
            // Fits, as checked against the pool's buffers when the frame was taken; an mbuf
            // that did not would stay empty, a runt the pipeline drops and counts.
            if m.append(f.len) {
                m.data_mut()[..HEAD].copy_from_slice(&f.head);
            }
        }
        n
    }
}
