//! Wire layer: the Authentication Header (RFC 4302 2).

use super::{Error, Protocol, Result, read_u16, read_u32, write_u16, write_u32};

/// Is the length of the fixed part of the AH: next header, payload length, reserved, SPI and
/// sequence number, before the ICV (RFC 4302 2).
pub const FIXED_LEN: usize = 12;

mod field {
    use core::ops::Range;

    pub const NEXT_HEADER: usize = 0;
    pub const PAYLOAD_LEN: usize = 1;
    pub const RESERVED: usize = 2;
    pub const SPI: usize = 4;
    pub const SEQ_NUM: usize = 8;

    /// Returns the ICV bytes of a header `header_len` bytes long (RFC 4302 2.6).
    pub const fn icv(header_len: usize) -> Range<usize> {
        super::FIXED_LEN..header_len
    }
}

/// Views an AH packet over a byte buffer: header with its ICV, then the protected payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a malformed buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks its length field (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds 12 bytes and that 12 <= header length <= buffer length.
    /// Then no accessor panics. The ICV length is not compared with the SA's here.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN {
            return Err(Error);
        }
        let header_len = self.header_len();
        if header_len < FIXED_LEN || header_len > len { Err(Error) } else { Ok(()) }
    }

    /// Returns the wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Returns the protocol of the payload after the AH (RFC 4302 2.1).
    #[inline]
    pub fn next_header(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// Returns the raw payload length field: the AH length in 32-bit words, minus 2 (RFC 4302 2.2).
    #[inline]
    pub fn payload_len(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_LEN]
    }

    /// Returns the AH length in bytes, ICV included: (payload length + 2) * 4 (RFC 4302 2.2).
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.payload_len()) + 2) * 4
    }

    /// Returns the reserved field, which senders set to zero (RFC 4302 2.3).
    #[inline]
    pub fn reserved(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::RESERVED)
    }

    /// Returns the Security Parameters Index (RFC 4302 2.4).
    #[inline]
    pub fn spi(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SPI)
    }

    /// Returns the low 32 bits of the sequence number (RFC 4302 2.5).
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Returns the Integrity Check Value and any padding: bytes 12 to the header length (RFC 4302 2.6).
    #[inline]
    pub fn icv(&self) -> &[u8] {
        &self.buffer.as_ref()[field::icv(self.header_len())]
    }

    /// Returns the bytes after the header: the protected payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the next header field.
    #[inline]
    pub fn set_next_header(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value.into();
    }

    /// Sets the raw payload length field (the AH length in 32-bit words, minus 2).
    #[inline]
    pub fn set_payload_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PAYLOAD_LEN] = value;
    }

    /// Sets the reserved field; senders write 0 (RFC 4302 2.3).
    #[inline]
    pub fn set_reserved(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::RESERVED, value);
    }

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

    /// Returns the ICV bytes, mutably: zero them to compute the ICV, then write it (RFC 4302 3.3.3).
    #[inline]
    pub fn icv_mut(&mut self) -> &mut [u8] {
        let range = field::icv(self.header_len());
        &mut self.buffer.as_mut()[range]
    }

    /// Returns the bytes after the header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Collects the fields of an AH header; the ICV itself is computed by the AH processing module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Holds the protocol of the payload.
    pub next_header: Protocol,
    /// Holds the Security Parameters Index.
    pub spi: u32,
    /// Holds the sequence number field.
    pub seq_number: u32,
    /// Holds the length of the ICV field in bytes, padding included: a multiple of 4.
    pub icv_len: usize,
}

impl Repr {
    /// Reads the header of `packet` after checking its length.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            next_header: packet.next_header(),
            spi: packet.spi(),
            seq_number: packet.seq_number(),
            icv_len: packet.header_len() - FIXED_LEN,
        })
    }

    /// Returns the length of the header this emits: 12 bytes plus the ICV.
    pub const fn buffer_len(&self) -> usize {
        FIXED_LEN + self.icv_len
    }

    /// Writes the header with a zeroed ICV, ready for the ICV computation (RFC 4302 3.3.3.1).
    /// Panics if the buffer is shorter than [`Repr::buffer_len`]; `icv_len` must be a multiple
    /// of 4 and at most 1012.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.icv_len.is_multiple_of(4) && self.buffer_len() / 4 - 2 <= usize::from(u8::MAX));
        packet.set_next_header(self.next_header);
        packet.set_payload_len((self.buffer_len() / 4 - 2) as u8);
        packet.set_reserved(0);
        packet.set_spi(self.spi);
        packet.set_seq_number(self.seq_number);
        packet.icv_mut().fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An AH header in tunnel mode (next header IPIP), SPI 0x2000, sequence number 3, a 12-byte
    /// ICV as HMAC-SHA1-96 makes, followed by the inner IPv4/ICMP packet (built with scapy,
    /// checked with tshark).
    const AH: [u8; 52] = [
        0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x03, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
        0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0x45, 0x00, 0x00, 0x1c, 0x00, 0x01, 0x00, 0x00, 0x3f, 0x01, 0x67, 0xdc,
        0x0a, 0x01, 0x00, 0x01, 0x0a, 0x02, 0x00, 0x01, 0x08, 0x00, 0xf7, 0xfd, 0x00, 0x01, 0x00, 0x01,
    ];

    #[test]
    fn parses_header() {
        let p = Packet::new_checked(&AH[..]).unwrap();
        assert_eq!(p.next_header(), Protocol::IpIp);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.reserved(), 0);
        assert_eq!(p.spi(), 0x2000);
        assert_eq!(p.seq_number(), 3);
        assert_eq!(p.icv(), &[0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab]);
        assert_eq!(p.payload(), &AH[24..]);
        let inner = super::super::ipv4::Packet::new_checked(p.payload()).unwrap();
        assert!(inner.verify_checksum());
        assert_eq!(inner.protocol(), Protocol::Icmp);
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr::parse(&Packet::new_checked(&AH[..]).unwrap()).unwrap();
        assert_eq!(repr, Repr { next_header: Protocol::IpIp, spi: 0x2000, seq_number: 3, icv_len: 12 });
        assert_eq!(repr.buffer_len(), 24);
        let mut bytes = AH;
        bytes[..24].fill(0x55);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut p);
        assert_eq!(p.icv(), &[0; 12]);
        p.icv_mut().copy_from_slice(&AH[12..24]);
        assert_eq!(bytes, AH);
    }

    #[test]
    fn setters_write_fields() {
        let mut bytes = [0xffu8; 28];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_next_header(Protocol::Tcp);
        p.set_payload_len(5);
        p.set_reserved(0);
        p.set_spi(0x0102_0304);
        p.set_seq_number(0x0506_0708);
        p.icv_mut().fill(0);
        p.payload_mut().fill(0xee);
        assert_eq!(p.header_len(), 28);
        assert_eq!(&bytes[..12], &[6, 5, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[12..], &[0; 16]);
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..24 {
            assert_eq!(Packet::new_checked(&AH[..len]), Err(Error), "len {len}");
            assert_eq!(Repr::parse(&Packet::new_unchecked(&AH[..len])), Err(Error), "len {len}");
        }
        let p = Packet::new_checked(&AH[..24]).unwrap();
        assert!(p.payload().is_empty());
    }

    #[test]
    fn refuses_header_shorter_than_fixed_part() {
        let mut bytes = AH;
        bytes[1] = 0;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error), "an 8-byte header");
        let mut bytes = AH;
        bytes[1] = 1;
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.icv().is_empty());
        bytes[1] = 0xff;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error));
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), payload_len in 0u8..16) {
            let mut bytes = bytes;
            if bytes.len() > 1 {
                bytes[1] = payload_len;
            }
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.next_header(), p.payload_len(), p.header_len(), p.reserved(), p.spi(), p.seq_number());
                let _ = (p.icv().len(), p.payload().len());
                let repr = Repr::parse(&p).unwrap();
                prop_assert_eq!(repr.buffer_len(), p.header_len());
            }
        }
    }
}
