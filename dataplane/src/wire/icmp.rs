//! Wire layer: the ICMPv4 message (RFC 792), with echo fields and the RFC 1191 next-hop MTU.

use super::{Error, Result, checksum, read_u16, write_u16};

/// Is the length of the ICMP header: type, code, checksum and the 4-byte rest of header (RFC 792).
pub const HEADER_LEN: usize = 8;

/// Is the Destination Unreachable code "fragmentation needed and DF set" (RFC 792, RFC 1191 4).
pub const CODE_FRAG_NEEDED: u8 = 4;

/// Names the ICMP message type (RFC 792; IANA "ICMP Type Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// Means Echo Reply, 0.
    EchoReply,
    /// Means Destination Unreachable, 3.
    DstUnreachable,
    /// Means Echo Request, 8.
    EchoRequest,
    /// Means Time Exceeded, 11.
    TimeExceeded,
    /// Keeps any other type as it was on the wire.
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            8 => Message::EchoRequest,
            11 => Message::TimeExceeded,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::EchoRequest => 8,
            Message::TimeExceeded => 11,
            Message::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::RangeFrom;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const UNUSED: usize = 4;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const DATA: RangeFrom<usize> = 8..;
}

/// Views an ICMPv4 message over a byte buffer: the whole buffer is the message.
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

    /// Returns the message type.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Returns the message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Returns the checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Returns the identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Returns the sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Returns the next-hop MTU of a "fragmentation needed" message (RFC 1191 4).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Returns the data after the 8-byte header: echo data, or the start of the offending packet.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// Tells whether the checksum over the whole message is correct (RFC 792).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the identifier of an echo request or reply.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the sequence number of an echo request or reply.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the next-hop MTU of a "fragmentation needed" message; clears the unused half before it.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::UNUSED, 0);
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, value);
    }

    /// Returns the data after the 8-byte header, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// Computes the checksum over the whole message and stores it (RFC 792).
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
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

    /// An ICMP echo request, id 0x1234 seq 1, with the 32-byte Windows ping pattern
    /// (the payload of a captured 10.0.0.1 -> 10.0.0.2 ping; built with scapy, checked with tshark).
    const ECHO_REQUEST: [u8; 40] = [
        0x08, 0x00, 0x3b, 0x27, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a,
        0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x61, 0x62, 0x63, 0x64, 0x65,
        0x66, 0x67, 0x68, 0x69,
    ];

    #[test]
    fn parses_echo_request() {
        let p = Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x3b27);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcdefghijklmnopqrstuvwabcdefghi");
        assert!(p.verify_checksum());
    }

    #[test]
    fn rebuilds_echo_request() {
        let mut bytes = [0u8; 40];
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_msg_type(Message::EchoRequest);
        p.set_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"abcdefghijklmnopqrstuvwabcdefghi");
        p.fill_checksum();
        assert_eq!(bytes, ECHO_REQUEST);
    }

    #[test]
    fn turns_request_into_reply() {
        let mut bytes = ECHO_REQUEST;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_msg_type(Message::EchoReply);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        // Type 8 -> 0 lowers the sum by 0x0800, so the checksum rises by 0x0800.
        assert_eq!(p.checksum(), 0x4327);
    }

    #[test]
    fn frag_needed_carries_mtu() {
        let mut bytes = [0u8; HEADER_LEN + 28];
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_msg_type(Message::DstUnreachable);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_next_hop_mtu(1400);
        p.fill_checksum();
        // The sum is 0x0304 + 0x0578 = 0x087c, so the checksum is !0x087c = 0xf783.
        assert_eq!(&bytes[..8], &[3, 4, 0xf7, 0x83, 0, 0, 0x05, 0x78]);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1400);
        assert!(p.verify_checksum());
    }

    #[test]
    fn message_numbers() {
        for (n, m) in [
            (0, Message::EchoReply),
            (3, Message::DstUnreachable),
            (8, Message::EchoRequest),
            (11, Message::TimeExceeded),
            (5, Message::Unknown(5)),
        ] {
            assert_eq!(Message::from(n), m);
            assert_eq!(u8::from(m), n);
        }
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&ECHO_REQUEST[..len]), Err(Error), "len {len}");
        }
        let p = Packet::new_checked(&ECHO_REQUEST[..HEADER_LEN]).unwrap();
        assert!(p.data().is_empty());
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.echo_ident(), p.echo_seq_no(), p.next_hop_mtu());
                let _ = (p.data().len(), p.verify_checksum());
            }
        }
    }
}
