//! Wire layer: the Ethernet II frame header (IEEE 802.3 3.2, RFC 894).

use core::fmt;

use super::{Error, Result, read_u16, write_u16};

/// Is the length of the Ethernet II header: two addresses and the EtherType (IEEE 802.3 3.2).
pub const HEADER_LEN: usize = 14;

/// Holds a 48-bit Ethernet MAC address (IEEE 802 8.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// Is the broadcast address ff:ff:ff:ff:ff:ff (IEEE 802 8.2).
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// Builds an address from the first six bytes of `bytes`; panics if there are fewer.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Address {
        let mut a = [0u8; 6];
        a.copy_from_slice(&bytes[..6]);
        Address(a)
    }

    /// Returns the six address bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Tells whether this is the broadcast address.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Tells whether the group bit (I/G, the low bit of the first byte) is set (IEEE 802 8.2).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Tells whether this is an individual (unicast) address.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// Names the protocol of the payload: the EtherType (IEEE 802.3 3.2.6; IANA "IEEE 802
/// Numbers"), the number itself, as [`super::ipv4::Protocol`]: reading it on every frame costs
/// no compare chain. The types we handle are named constants, usable in patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherType(pub u16);

#[allow(non_upper_case_globals)]
impl EtherType {
    /// Means IPv4, 0x0800 (RFC 894).
    pub const Ipv4: EtherType = EtherType(0x0800);
    /// Means ARP, 0x0806 (RFC 826).
    pub const Arp: EtherType = EtherType(0x0806);
    /// Means IPv6, 0x86dd (RFC 2464 3).
    pub const Ipv6: EtherType = EtherType(0x86dd);
}

impl From<u16> for EtherType {
    #[inline(always)]
    fn from(value: u16) -> Self {
        EtherType(value)
    }
}

impl From<EtherType> for u16 {
    #[inline(always)]
    fn from(value: EtherType) -> Self {
        value.0
    }
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Views an Ethernet II frame over a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking its length; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks that it holds a whole header (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds at least the 14-byte header; then no accessor panics.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN { Err(Error) } else { Ok(()) }
    }

    /// Returns the wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Returns the destination address.
    #[inline]
    pub fn dst_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Returns the source address.
    #[inline]
    pub fn src_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// Returns the EtherType of the payload.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// Returns the bytes after the header (including any trailing padding of a short frame).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, value.into());
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

/// Collects the fields of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Holds the source address.
    pub src_addr: Address,
    /// Holds the destination address.
    pub dst_addr: Address,
    /// Holds the EtherType of the payload.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parses the header of `packet`, checking its length first.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr { src_addr: packet.src_addr(), dst_addr: packet.dst_addr(), ethertype: packet.ethertype() })
    }

    /// Returns the length of the header this emits: 14 bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `packet`; panics if its buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_dst_addr(self.dst_addr);
        packet.set_src_addr(self.src_addr);
        packet.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet frame carrying an IPv4/UDP DNS query (built with scapy, checked with tshark).
    const FRAME: [u8; 71] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00, 0x45, 0x00, 0x00, 0x39,
        0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x4c, 0xb4, 0xc0, 0xa8, 0x01, 0x02, 0x08, 0x08, 0x08, 0x08, 0xd4, 0x31,
        0x00, 0x35, 0x00, 0x25, 0xde, 0x47, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];

    #[test]
    fn parses_frame() {
        let p = Packet::new_checked(&FRAME[..]).unwrap();
        assert_eq!(p.dst_addr(), Address([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(p.src_addr(), Address([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]));
        assert_eq!(p.ethertype(), EtherType::Ipv4);
        assert_eq!(p.payload(), &FRAME[14..]);
        assert_eq!(p.src_addr().to_string(), "66:77:88:99:aa:bb");
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr::parse(&Packet::new_unchecked(&FRAME[..])).unwrap();
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut bytes = FRAME;
        bytes[..HEADER_LEN].fill(0);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut p);
        assert_eq!(bytes, FRAME);
    }

    #[test]
    fn setters_write_fields() {
        let mut bytes = [0u8; 20];
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_dst_addr(Address::BROADCAST);
        p.set_src_addr(Address([2, 0, 0, 0, 0, 1]));
        p.set_ethertype(EtherType(0x88b5));
        p.payload_mut().fill(0xee);
        assert_eq!(p.ethertype(), EtherType(0x88b5));
        assert!(p.dst_addr().is_broadcast() && p.dst_addr().is_multicast());
        assert!(p.src_addr().is_unicast());
        assert_eq!(&bytes[12..16], &[0x88, 0xb5, 0xee, 0xee]);
    }

    #[test]
    fn ethertype_numbers() {
        for (n, t) in [(0x0800, EtherType::Ipv4), (0x0806, EtherType::Arp), (0x86dd, EtherType::Ipv6)] {
            assert_eq!(EtherType::from(n), t);
            assert_eq!(u16::from(t), n);
        }
        assert_eq!(EtherType::from(0x1234), EtherType(0x1234));
        assert_eq!(u16::from(EtherType(0x1234)), 0x1234);
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&FRAME[..len]), Err(Error), "len {len}");
        }
        let p = Packet::new_checked(&FRAME[..HEADER_LEN]).unwrap();
        assert!(p.payload().is_empty());
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.dst_addr(), p.src_addr(), p.ethertype(), p.payload().len());
            }
        }
    }
}
