//! Wire layer: the TCP header (RFC 9293 3.1) and its checksum over the IPv4 pseudo-header.
//!
//! TCP has no length field of its own: the segment is the whole buffer, so callers wrap exactly
//! the IP payload (never a buffer with Ethernet padding) before computing checksums.

use core::ops::BitOr;
use std::net::Ipv4Addr;

use super::{Error, Result, checksum, read_u16, read_u32, write_u16, write_u32};

/// Is the length of a TCP header without options, data offset 5 (RFC 9293 3.1).
pub const HEADER_LEN: usize = 20;

/// Is the IPv4 protocol number of TCP, used in the pseudo-header (RFC 9293 3.1).
const PROTOCOL: u8 = super::Protocol::Tcp.0;

/// Holds the eight control bits of byte 13 (RFC 9293 3.1, RFC 3168 23.2 for ECE and CWR).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// Marks no more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Marks synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Marks reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Marks push function.
    pub const PSH: Flags = Flags(0x08);
    /// Marks the acknowledgment field significant.
    pub const ACK: Flags = Flags(0x10);
    /// Marks the urgent pointer field significant.
    pub const URG: Flags = Flags(0x20);
    /// Marks ECN-Echo (RFC 3168 6.1).
    pub const ECE: Flags = Flags(0x40);
    /// Marks congestion window reduced (RFC 3168 6.1).
    pub const CWR: Flags = Flags(0x80);

    /// Tells whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;

    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS_START: usize = 20;
}

/// Views a TCP segment over a byte buffer: the whole buffer is the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a malformed buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks its length and data offset (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds 20 bytes and that 20 <= header length <= buffer length.
    /// Then no accessor panics. Options are not checked.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len { Err(Error) } else { Ok(()) }
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

    /// Returns the sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Returns the acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Returns the header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// Returns the control bits.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Tells whether SYN is set.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(Flags::SYN)
    }

    /// Tells whether ACK is set.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(Flags::ACK)
    }

    /// Tells whether FIN is set.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(Flags::FIN)
    }

    /// Tells whether RST is set.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(Flags::RST)
    }

    /// Returns the window.
    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Returns the checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Returns the urgent pointer.
    #[inline]
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Returns the option bytes, from 20 up to the header length.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS_START..usize::from(self.header_len())]
    }

    /// Returns the payload: the bytes after the header, to the end of the buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Tells whether the checksum over the pseudo-header and the whole buffer is correct.
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        self.sum(src, dst) == 0xffff
    }

    fn sum(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> u16 {
        let segment = self.buffer.as_ref();
        let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
        checksum::combine(&[checksum::pseudo_header_v4(src, dst, PROTOCOL, len), checksum::data(segment)])
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    /// Sets the header length in bytes, a multiple of 4 (stored as data offset = bytes / 4);
    /// the reserved bits are cleared.
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((value / 4) & 0x0f) << 4;
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, value: Flags) {
        self.buffer.as_mut()[field::FLAGS] = value.0;
    }

    /// Sets the window.
    #[inline]
    pub fn set_window(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, value);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Returns the option bytes, mutably (to clamp the MSS, for instance).
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[field::OPTIONS_START..end]
    }

    /// Returns the payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes the checksum over the pseudo-header and the whole buffer and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst);
        self.set_checksum(!sum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// A Linux-style SYN 10.0.0.1:40000 -> 10.0.0.2:80 with MSS 1460, SACK permitted,
    /// timestamps, NOP and window scale 7 (built with scapy, checked with tshark).
    const SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x2f, 0xe8,
        0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parses_syn() {
        let p = Packet::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.src_port(), 40000);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x1234_5678);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), Flags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst());
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0x2fe8);
        assert_eq!(p.urgent(), 0);
        assert_eq!(&p.options()[..4], &[0x02, 0x04, 0x05, 0xb4]);
        assert_eq!(p.options().len(), 20);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(&SRC, &DST));
        assert!(!p.verify_checksum(&DST, &Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn setters_rebuild_syn() {
        let mut bytes = [0u8; 40];
        bytes[20..].copy_from_slice(&SYN[20..]);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_src_port(40000);
        p.set_dst_port(80);
        p.set_seq_number(0x1234_5678);
        p.set_ack_number(0);
        p.set_header_len(40);
        p.set_flags(Flags::SYN);
        p.set_window(64240);
        p.set_urgent(0);
        p.fill_checksum(&SRC, &DST);
        assert_eq!(bytes, SYN);
    }

    #[test]
    fn clamps_mss_and_refills_checksum() {
        let mut bytes = SYN;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.options_mut()[2..4].copy_from_slice(&1360u16.to_be_bytes());
        assert!(!p.verify_checksum(&SRC, &DST));
        p.fill_checksum(&SRC, &DST);
        assert!(p.verify_checksum(&SRC, &DST));
        // 1460 -> 1360 lowers the sum by 100, so the checksum rises by 100.
        assert_eq!(p.checksum(), 0x2fe8 + 100);
    }

    #[test]
    fn payload_follows_header() {
        let mut bytes = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_header_len(20);
        p.set_flags(Flags::PSH | Flags::ACK);
        p.payload_mut().copy_from_slice(b"data");
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload(), b"data");
        assert!(p.flags().contains(Flags::ACK) && p.flags().contains(Flags::PSH));
        assert!(!p.flags().contains(Flags::SYN | Flags::ACK));
        assert!(p.options().is_empty());
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..SYN.len() {
            assert_eq!(Packet::new_checked(&SYN[..len]), Err(Error), "len {len}");
        }
        for offset in 0..5u8 {
            let mut bytes = SYN;
            bytes[12] = offset << 4;
            assert_eq!(Packet::new_checked(&bytes[..]), Err(Error), "data offset {offset}");
        }
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(mut p) = Packet::new_checked(bytes) {
                let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.header_len(), p.flags());
                let _ = (p.window(), p.checksum(), p.urgent(), p.options().len(), p.payload().len());
                let _ = p.verify_checksum(&SRC, &DST);
                p.fill_checksum(&SRC, &DST);
                prop_assert!(p.verify_checksum(&SRC, &DST));
            }
        }
    }
}
