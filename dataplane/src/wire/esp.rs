//! Wire layer: the ESP header, SPI and sequence number (RFC 4303 2.1).
//!
//! Only the cleartext header is viewed here: the IV, padding, trailer and ICV depend on the
//! SA's algorithms, and the ESP processing module handles them.

use super::{Error, Result, read_u32, write_u32};

/// Is the length of the ESP header: SPI and sequence number (RFC 4303 2.1).
pub const HEADER_LEN: usize = 8;

mod field {
    use core::ops::RangeFrom;

    pub const SPI: usize = 0;
    pub const SEQ_NUM: usize = 4;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Views an ESP packet over a byte buffer: header, then the protected payload to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking its length; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks its length (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the 8-byte header; then no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error) } else { Ok(()) }
    }

    /// Returns the wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Returns the Security Parameters Index (RFC 4303 2.1).
    #[inline]
    pub fn spi(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SPI)
    }

    /// Returns the low 32 bits of the sequence number (RFC 4303 2.2).
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Returns the bytes after the header: IV, ciphertext, trailer and ICV.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the Security Parameters Index.
    #[inline]
    pub fn set_spi(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SPI, value);
    }

    /// Sets the sequence number field.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Returns the bytes after the header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Collects the fields of an ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Holds the Security Parameters Index.
    pub spi: u32,
    /// Holds the sequence number field.
    pub seq_number: u32,
}

impl Repr {
    /// Reads the header of `packet` after checking its length.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr { spi: packet.spi(), seq_number: packet.seq_number() })
    }

    /// Returns the length of the header this emits: 8 bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `packet`; panics if its buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_spi(self.spi);
        packet.set_seq_number(self.seq_number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ESP packet, SPI 0x1000, sequence number 1, eight payload bytes (the IP payload of a
    /// 192.0.2.1 -> 198.51.100.1 packet built with scapy, checked with tshark).
    const ESP: [u8; 16] =
        [0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];

    #[test]
    fn parses_header() {
        let p = Packet::new_checked(&ESP[..]).unwrap();
        assert_eq!(p.spi(), 0x1000);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr::parse(&Packet::new_checked(&ESP[..]).unwrap()).unwrap();
        assert_eq!(repr, Repr { spi: 0x1000, seq_number: 1 });
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut bytes = ESP;
        bytes[..HEADER_LEN].fill(0xff);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ESP);
    }

    #[test]
    fn setters_write_fields() {
        let mut bytes = [0u8; 10];
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_spi(0xdead_beef);
        p.set_seq_number(0xffff_fffe);
        p.payload_mut().copy_from_slice(&[9, 9]);
        assert_eq!(bytes, [0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xfe, 9, 9]);
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&ESP[..len]), Err(Error), "len {len}");
            assert_eq!(Repr::parse(&Packet::new_unchecked(&ESP[..len])), Err(Error), "len {len}");
        }
        assert!(Packet::new_checked(&ESP[..HEADER_LEN]).unwrap().payload().is_empty());
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.spi(), p.seq_number(), p.payload().len());
            }
        }
    }
}
