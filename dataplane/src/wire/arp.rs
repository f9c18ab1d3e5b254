//! Wire layer: the ARP packet for IPv4 over Ethernet (RFC 826).
//!
//! Only the 28-byte Ethernet/IPv4 layout is supported: `check_len` checks the fixed layout (at
//! least 28 bytes) and does NOT look at the hardware and protocol address lengths, so the
//! address getters read fixed offsets whatever `hlen`/`plen` say. [`Repr::parse`] is the place
//! that refuses anything other than hardware type Ethernet, protocol IPv4, hlen 6 and plen 4.

use std::net::Ipv4Addr;

use super::ethernet::{Address, EtherType};
use super::{Error, Result, read_ipv4, read_u16, write_ipv4, write_u16};

/// Is the length of an Ethernet/IPv4 ARP packet: 8 fixed bytes, 2 * (6 + 4) of addresses (RFC 826).
pub const PACKET_LEN: usize = 28;

/// Is the hardware address length of Ethernet (RFC 826, "ar$hln").
pub const ETHERNET_ADDR_LEN: u8 = 6;

/// Is the protocol address length of IPv4 (RFC 826, "ar$pln").
pub const IPV4_ADDR_LEN: u8 = 4;

/// Names the hardware type, "ar$hrd" (RFC 826; IANA "ARP Parameters", Hardware Types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hardware {
    /// Means Ethernet (10Mb), 1.
    Ethernet,
    /// Keeps any other hardware type as it was on the wire.
    Unknown(u16),
}

impl From<u16> for Hardware {
    fn from(value: u16) -> Self {
        match value {
            1 => Hardware::Ethernet,
            other => Hardware::Unknown(other),
        }
    }
}

impl From<Hardware> for u16 {
    fn from(value: Hardware) -> Self {
        match value {
            Hardware::Ethernet => 1,
            Hardware::Unknown(other) => other,
        }
    }
}

/// Names the operation, "ar$op" (RFC 826; IANA "ARP Parameters", Operation Codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Means a request, 1 (ares_op$REQUEST).
    Request,
    /// Means a reply, 2 (ares_op$REPLY).
    Reply,
    /// Keeps any other operation as it was on the wire.
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(value: u16) -> Self {
        match value {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::Range;

    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: usize = 14;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: usize = 24;
}

/// Views an Ethernet/IPv4 ARP packet over a byte buffer.
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

    /// Checks that the buffer holds the fixed 28-byte Ethernet/IPv4 layout; `hlen` and `plen`
    /// are not looked at (see the module documentation). Then no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN { Err(Error) } else { Ok(()) }
    }

    /// Returns the wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Returns the hardware type.
    #[inline]
    pub fn hardware_type(&self) -> Hardware {
        Hardware::from(read_u16(self.buffer.as_ref(), field::HTYPE))
    }

    /// Returns the protocol type (an EtherType).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Returns the hardware address length field, in bytes.
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Returns the protocol address length field, in bytes.
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Returns the operation.
    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(read_u16(self.buffer.as_ref(), field::OPER))
    }

    /// Returns the sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// Returns the sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    /// Returns the target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// Returns the target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, value: Hardware) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value.into());
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value.into());
    }

    /// Sets the hardware address length field.
    #[inline]
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length field.
    #[inline]
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, value: Operation) {
        write_u16(self.buffer.as_mut(), field::OPER, value.into());
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, value: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SPA, value);
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, value: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::TPA, value);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Collects the fields of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Holds the operation.
    pub operation: Operation,
    /// Holds the sender hardware address.
    pub source_hardware_addr: Address,
    /// Holds the sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Holds the target hardware address (zero in a request).
    pub target_hardware_addr: Address,
    /// Holds the target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Parses `packet`, refusing anything but hardware Ethernet, protocol IPv4, hlen 6 and plen 4.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != Hardware::Ethernet
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != ETHERNET_ADDR_LEN
            || packet.protocol_len() != IPV4_ADDR_LEN
        {
            return Err(Error);
        }
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Returns the length of the packet this emits: 28 bytes.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the whole packet into `packet`; panics if its buffer is shorter than [`PACKET_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(Hardware::Ethernet);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(ETHERNET_ADDR_LEN);
        packet.set_protocol_len(IPV4_ADDR_LEN);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ARP request: who has 24.166.173.159? tell 24.166.172.1 (after the Ethernet header).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x00, 0x07, 0x0d, 0xaf, 0xf4, 0x54, 0x18, 0xa6, 0xac, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0xa6, 0xad, 0x9f,
    ];

    #[test]
    fn parses_request() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), Hardware::Ethernet);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.source_hardware_addr(), Address([0x00, 0x07, 0x0d, 0xaf, 0xf4, 0x54]));
        assert_eq!(p.source_protocol_addr(), Ipv4Addr::new(24, 166, 172, 1));
        assert_eq!(p.target_hardware_addr(), Address([0; 6]));
        assert_eq!(p.target_protocol_addr(), Ipv4Addr::new(24, 166, 173, 159));
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr::parse(&Packet::new_unchecked(&REQUEST[..])).unwrap();
        assert_eq!(repr.buffer_len(), PACKET_LEN);
        let mut bytes = [0u8; PACKET_LEN];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, REQUEST);
    }

    #[test]
    fn builds_reply() {
        let request = Repr::parse(&Packet::new_unchecked(&REQUEST[..])).unwrap();
        let ours = Address([0x02, 0, 0, 0, 0, 0x01]);
        let reply = Repr {
            operation: Operation::Reply,
            source_hardware_addr: ours,
            source_protocol_addr: request.target_protocol_addr,
            target_hardware_addr: request.source_hardware_addr,
            target_protocol_addr: request.source_protocol_addr,
        };
        let mut bytes = [0u8; PACKET_LEN];
        reply.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[6..8], &[0x00, 0x02]);
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Ok(reply));
    }

    #[test]
    fn parse_refuses_other_layouts() {
        for (at, value) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut bytes = REQUEST;
            bytes[at] = value;
            assert!(Packet::new_checked(&bytes[..]).is_ok(), "check_len only checks the fixed layout");
            assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error), "byte {at}");
        }
    }

    #[test]
    fn unknown_operation_parses() {
        let mut bytes = REQUEST;
        bytes[7] = 9;
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.operation(), Operation::Unknown(9));
        assert_eq!(u16::from(Operation::Unknown(9)), 9);
        assert_eq!(Hardware::from(6), Hardware::Unknown(6));
        assert_eq!(u16::from(Hardware::Unknown(6)), 6);
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..PACKET_LEN {
            assert_eq!(Packet::new_checked(&REQUEST[..len]), Err(Error), "len {len}");
            assert_eq!(Repr::parse(&Packet::new_unchecked(&REQUEST[..len])), Err(Error), "len {len}");
        }
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len(), p.operation());
                let _ = (p.source_hardware_addr(), p.source_protocol_addr());
                let _ = (p.target_hardware_addr(), p.target_protocol_addr());
                let _ = Repr::parse(&Packet::new_unchecked(&bytes[..]));
            }
        }
    }
}
