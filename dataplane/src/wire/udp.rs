//! Wire layer: the UDP header (RFC 768) and its checksum over the IPv4 pseudo-header.

use std::net::Ipv4Addr;

use super::{Error, Result, checksum, read_u16, write_u16};

/// Is the length of the UDP header (RFC 768).
pub const HEADER_LEN: usize = 8;

/// Is the IPv4 protocol number of UDP, used in the pseudo-header (RFC 768).
const PROTOCOL: u8 = super::Protocol::Udp.0;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD_START: usize = 8;
}

/// Views a UDP datagram over a byte buffer; the length field bounds it, not the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a malformed buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks its length fields (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the header and that 8 <= length field <= buffer length; a
    /// longer buffer is accepted. Then no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN || field_len > len { Err(Error) } else { Ok(()) }
    }

    /// Returns the wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Returns the source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Returns the destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Returns the length field: header and payload, in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Tells whether the datagram carries no payload (length field <= 8).
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Returns the checksum field; 0 means the sender computed none (RFC 768).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Returns the payload: the bytes from 8 up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD_START..usize::from(self.len())]
    }

    /// Tells whether the checksum is correct for the IPv4 pseudo-header of `src` and `dst`;
    /// a zero checksum field means none was sent and always verifies (RFC 768).
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let datagram = &self.buffer.as_ref()[..usize::from(len)];
        checksum::combine(&[checksum::pseudo_header_v4(src, dst, PROTOCOL, u32::from(len)), checksum::data(datagram)])
            == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Returns the payload, mutably: the bytes from 8 up to the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[field::PAYLOAD_START..end]
    }

    /// Computes the checksum over the pseudo-header and the datagram and stores it; a result
    /// of zero is sent as 0xffff, since zero means "no checksum" (RFC 768).
    pub fn fill_checksum(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = checksum::combine(&[
            checksum::pseudo_header_v4(src, dst, PROTOCOL, u32::from(len)),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        let value = !sum;
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Collects the fields of a UDP header; the checksum is filled after the payload is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Holds the source port.
    pub src_port: u16,
    /// Holds the destination port.
    pub dst_port: u16,
    /// Holds the payload length in bytes (length field minus 8).
    pub payload_len: usize,
}

impl Repr {
    /// Reads the header of `packet` after checking its length; the checksum is not verified
    /// (it needs the IP addresses: ask [`Packet::verify_checksum`]).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - HEADER_LEN,
        })
    }

    /// Returns the length of the header this emits: 8 bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with a zero checksum; call [`Packet::fill_checksum`] once the payload is
    /// in place. Panics if the buffer is shorter than 8 bytes; `payload_len` must be at most 65527.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    /// A DNS query for example.com, 192.168.1.2:54321 -> 8.8.8.8:53 (built with scapy, checked with tshark).
    const DATAGRAM: [u8; 37] = [
        0xd4, 0x31, 0x00, 0x35, 0x00, 0x25, 0xde, 0x47, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00,
        0x01,
    ];

    #[test]
    fn parses_datagram() {
        let p = Packet::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 54321);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 37);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0xde47);
        assert_eq!(p.payload(), &DATAGRAM[8..]);
        assert!(p.verify_checksum(&SRC, &DST));
        assert!(!p.verify_checksum(&DST, &SRC.to_bits().wrapping_add(1).into()));
    }

    #[test]
    fn repr_and_fill_checksum_round_trip() {
        let repr = Repr::parse(&Packet::new_checked(&DATAGRAM[..]).unwrap()).unwrap();
        assert_eq!(repr, Repr { src_port: 54321, dst_port: 53, payload_len: 29 });
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut bytes = [0u8; 37];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&DATAGRAM[8..]);
        p.fill_checksum(&SRC, &DST);
        assert_eq!(bytes, DATAGRAM);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut bytes = DATAGRAM;
        bytes[6] = 0;
        bytes[7] = 0;
        assert!(Packet::new_checked(&bytes[..]).unwrap().verify_checksum(&SRC, &DST));
        bytes[9] ^= 0xff;
        assert!(Packet::new_checked(&bytes[..]).unwrap().verify_checksum(&SRC, &DST));
    }

    #[test]
    fn all_zero_result_is_sent_as_ffff() {
        // Choose payload bytes so that the sum over pseudo-header and datagram is 0xffff.
        let mut bytes = [0u8; 10];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_len(10);
        let src = Ipv4Addr::new(0, 0, 0, 0);
        let partial =
            checksum::combine(&[checksum::pseudo_header_v4(&src, &src, PROTOCOL, 10), checksum::data(p.as_ref())]);
        let filler = 0xffff - partial;
        p.payload_mut().copy_from_slice(&filler.to_be_bytes());
        p.fill_checksum(&src, &src);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(&src, &src));
    }

    #[test]
    fn payload_ends_at_length_field() {
        let mut padded = [0u8; 48];
        padded[..37].copy_from_slice(&DATAGRAM);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &DATAGRAM[8..]);
        assert!(p.verify_checksum(&SRC, &DST));
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..DATAGRAM.len() {
            assert_eq!(Packet::new_checked(&DATAGRAM[..len]), Err(Error), "len {len}");
        }
        for field_len in 0..HEADER_LEN as u16 {
            let mut bytes = DATAGRAM;
            bytes[4..6].copy_from_slice(&field_len.to_be_bytes());
            assert_eq!(Packet::new_checked(&bytes[..]), Err(Error), "length field {field_len}");
        }
        let mut bytes = DATAGRAM;
        bytes[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.is_empty() && p.payload().is_empty());
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), len in 0u16..48) {
            let mut bytes = bytes;
            if bytes.len() >= 6 {
                bytes[4..6].copy_from_slice(&len.to_be_bytes());
            }
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload().len());
                let _ = p.verify_checksum(&SRC, &DST);
                p.fill_checksum(&SRC, &DST);
                prop_assert!(p.checksum() != 0);
                prop_assert!(p.verify_checksum(&SRC, &DST));
                let repr = Repr::parse(&Packet::new_unchecked(p.as_ref())).unwrap();
                prop_assert_eq!(repr.payload_len, p.payload().len());
            }
        }
    }
}
