//! The inbound anti-replay window of RFC 4303 section 3.4.3 (and RFC 4302 3.4.3): a bitmap of
//! the last `size` sequence numbers below the highest one received.
//!
//! Checking is split from updating: a burst is checked before its ICVs are computed, and the
//! window moves only for packets whose ICV verified, so a forged packet can never advance it.
//! `accept` checks again, which also catches a duplicate within one burst.

use crate::stats::DropReason;

/// Largest configurable window, in packets.
pub const MAX_WINDOW: u32 = 1024;
/// The default window (RFC 4303 section 3.4.3: a default of 64 MUST be supported).
pub const DEFAULT_WINDOW: u32 = 64;

const WORDS: usize = (MAX_WINDOW / 64) as usize;

/// A sliding window that tolerates reordering of up to `size - 1` packets behind the newest.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    size: u32,
    /// Highest sequence number accepted so far (0: none yet).
    top: u32,
    /// Bit `s % MAX_WINDOW` is set when sequence number `s` (within the window) was accepted.
    bits: [u64; WORDS],
}

impl ReplayWindow {
    /// Creates a window of `size` packets, clamped to 1..=`MAX_WINDOW`; 0 disables the check.
    pub fn new(size: u32) -> Self {
        ReplayWindow { size: size.min(MAX_WINDOW), top: 0, bits: [0; WORDS] }
    }

    /// Returns the window size (0 when replay detection is off).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Returns the highest sequence number accepted.
    pub fn top(&self) -> u32 {
        self.top
    }

    fn bit(seq: u32) -> (usize, u64) {
        let i = seq % MAX_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Checks `seq` without changing the window.
    #[inline]
    pub fn check(&self, seq: u32) -> Result<(), DropReason> {
        if self.size == 0 {
            return Ok(());
        }
        if seq == 0 {
            // RFC 4303 3.3.3: the first packet sent has sequence number 1.
            return Err(DropReason::TooOld);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(DropReason::TooOld);
        }
        let (w, m) = Self::bit(seq);
        if self.bits[w] & m != 0 { Err(DropReason::Replayed) } else { Ok(()) }
    }

    /// Checks `seq` again and records it; call only once its ICV verified.
    #[inline]
    pub fn accept(&mut self, seq: u32) -> Result<(), DropReason> {
        self.check(seq)?;
        if self.size == 0 {
            return Ok(());
        }
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= MAX_WINDOW {
                self.bits = [0; WORDS];
            } else {
                for s in self.top + 1..seq {
                    let (w, m) = Self::bit(s);
                    self.bits[w] &= !m;
                }
            }
            self.top = seq;
        }
        let (w, m) = Self::bit(seq);
        self.bits[w] |= m;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replays_and_old_packets_are_refused() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.check(0), Err(DropReason::TooOld));
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.accept(1), Err(DropReason::Replayed));
        assert_eq!(w.accept(100), Ok(()));
        assert_eq!(w.check(37), Ok(()), "inside the window, unseen");
        assert_eq!(w.check(36), Err(DropReason::TooOld), "100 - 36 = 64 is outside");
        assert_eq!(w.accept(37), Ok(()));
        assert_eq!(w.accept(37), Err(DropReason::Replayed));
        assert_eq!(w.accept(99), Ok(()));
        assert_eq!(w.top(), 100);
    }

    #[test]
    fn checking_does_not_move_the_window() {
        let mut w = ReplayWindow::new(64);
        w.accept(10).unwrap();
        assert_eq!(w.check(5000), Ok(()));
        assert_eq!(w.top(), 10);
        assert_eq!(w.check(9), Ok(()));
    }

    #[test]
    fn a_big_jump_clears_the_bitmap() {
        let mut w = ReplayWindow::new(1024);
        for s in 1..=1024 {
            w.accept(s).unwrap();
        }
        w.accept(1024 + 2048).unwrap();
        assert_eq!(w.check(1024 + 2048 - 1), Ok(()));
        assert_eq!(w.check(2048 + 1), Ok(()));
        assert_eq!(w.check(2048), Err(DropReason::TooOld));
    }

    #[test]
    fn zero_size_disables_the_check() {
        let mut w = ReplayWindow::new(0);
        assert_eq!(w.accept(5), Ok(()));
        assert_eq!(w.accept(5), Ok(()));
    }

    proptest! {
        /// The window agrees with a reference that remembers every accepted number.
        #[test]
        fn agrees_with_a_set(size in 1u32..=1024, seqs in proptest::collection::vec(1u32..3000, 0..400)) {
            let mut w = ReplayWindow::new(size);
            let mut seen = std::collections::BTreeSet::new();
            let mut top = 0u32;
            for s in seqs {
                let expect = if s > top {
                    Ok(())
                } else if top - s >= size {
                    Err(DropReason::TooOld)
                } else if seen.contains(&s) {
                    Err(DropReason::Replayed)
                } else {
                    Ok(())
                };
                prop_assert_eq!(w.accept(s), expect);
                if expect.is_ok() {
                    seen.insert(s);
                    top = top.max(s);
                }
            }
        }
    }
}
