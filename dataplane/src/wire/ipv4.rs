//! Wire layer: the IPv4 header (RFC 791 3.1), its options, and the protocol numbers we route on.

use core::fmt;
use std::net::Ipv4Addr;

use super::{Error, Result, checksum, read_ipv4, read_u16, write_ipv4, write_u16};

/// Is the length of an IPv4 header without options, IHL = 5 (RFC 791 3.1).
pub const HEADER_LEN: usize = 20;

/// Is the longest IPv4 header, IHL = 15 (RFC 791 3.1).
pub const MAX_HEADER_LEN: usize = 60;

/// Names the protocol carried by an IPv4 packet (RFC 791 3.1; IANA "Assigned Internet Protocol
/// Numbers"): the number itself, so reading and writing it costs nothing on the per-packet path
/// (an enum with an `Unknown(u8)` variant cost a chain of compares both ways). The protocols we
/// route on are named constants, usable in patterns.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Protocol(pub u8);

#[allow(non_upper_case_globals)]
impl Protocol {
    /// Means ICMP, 1 (RFC 792).
    pub const Icmp: Protocol = Protocol(1);
    /// Means IPv4-in-IPv4 encapsulation, 4 (RFC 2003): the inner packet of tunnel mode.
    pub const IpIp: Protocol = Protocol(4);
    /// Means TCP, 6 (RFC 793).
    pub const Tcp: Protocol = Protocol(6);
    /// Means UDP, 17 (RFC 768).
    pub const Udp: Protocol = Protocol(17);
    /// Means the Encapsulating Security Payload, 50 (RFC 4303).
    pub const Esp: Protocol = Protocol(50);
    /// Means the Authentication Header, 51 (RFC 4302).
    pub const Ah: Protocol = Protocol(51);

    /// Returns the name of a protocol we route on.
    fn name(self) -> Option<&'static str> {
        Some(match self {
            Protocol::Icmp => "icmp",
            Protocol::IpIp => "ipip",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Esp => "ipsec-esp",
            Protocol::Ah => "ipsec-ah",
            _ => return None,
        })
    }
}

impl From<u8> for Protocol {
    #[inline(always)]
    fn from(value: u8) -> Self {
        Protocol(value)
    }
}

impl From<Protocol> for u8 {
    #[inline(always)]
    fn from(value: Protocol) -> Self {
        value.0
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Protocol({})", self.0),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Is the End of Option List option type (RFC 791 3.1).
pub const OPT_END: u8 = 0;
/// Is the No Operation option type (RFC 791 3.1).
pub const OPT_NOP: u8 = 1;
/// Is the (basic) Security option type (RFC 1108 2).
pub const OPT_SECURITY: u8 = 130;
/// Is the Extended Security option type (RFC 1108 3).
pub const OPT_EXTENDED_SECURITY: u8 = 133;
/// Is the Commercial Security option type (RFC 4302 A.1, after FIPS 188 / CIPSO).
pub const OPT_COMMERCIAL_SECURITY: u8 = 134;
/// Is the Router Alert option type (RFC 2113 2.1).
pub const OPT_ROUTER_ALERT: u8 = 148;
/// Is the Sender Directed Multi-Destination Delivery option type (RFC 1770).
pub const OPT_SDMD: u8 = 149;
/// Is the Record Route option type, mutable for AH (RFC 791 3.1, RFC 4302 A.1).
pub const OPT_RECORD_ROUTE: u8 = 7;
/// Is the Internet Timestamp option type, mutable for AH (RFC 791 3.1, RFC 4302 A.1).
pub const OPT_TIMESTAMP: u8 = 68;

/// Tells whether option type `kind` is immutable in transit, so included as is in the AH ICV
/// (RFC 4302 A.1); every option not listed there is mutable.
pub const fn option_is_immutable(kind: u8) -> bool {
    matches!(
        kind,
        OPT_END
            | OPT_NOP
            | OPT_SECURITY
            | OPT_EXTENDED_SECURITY
            | OPT_COMMERCIAL_SECURITY
            | OPT_ROUTER_ALERT
            | OPT_SDMD
    )
}

/// Tells whether `options` (the bytes between the fixed header and the header length) is a
/// well-formed option list (RFC 791 3.1): EOL ends it, NOP is one byte, every other option has a
/// length byte >= 2 that fits. Bytes after an EOL are padding and are not checked.
pub fn options_are_valid(options: &[u8]) -> bool {
    let mut at = 0;
    while at < options.len() {
        match options[at] {
            OPT_END => return true,
            OPT_NOP => at += 1,
            _ => {
                let Some(&len) = options.get(at + 1) else { return false };
                let len = usize::from(len);
                if len < 2 || len > options.len() - at {
                    return false;
                }
                at += len;
            }
        }
    }
    true
}

/// Zeroes every mutable option whole, type, length and data, for the AH ICV computation
/// (RFC 4302 3.3.3.1.1.1 and A.1): all options except EOL, NOP, Security, Extended Security,
/// Commercial Security, Router Alert and Sender Directed Multi-Destination Delivery.
/// Returns false, leaving `options` untouched, if the list is malformed (see [`options_are_valid`]).
pub fn zero_mutable_options(options: &mut [u8]) -> bool {
    if !options_are_valid(options) {
        return false;
    }
    // The list is valid, so every index below is in bounds. Each option's length is read
    // before it is zeroed, and the walk never looks back at zeroed bytes.
    let mut at = 0;
    while at < options.len() {
        let kind = options[at];
        let len = match kind {
            OPT_END => return true,
            OPT_NOP => 1,
            _ => usize::from(options[at + 1]),
        };
        if !option_is_immutable(kind) {
            options[at..at + len].fill(0);
        }
        at += len;
    }
    true
}

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
    pub const OPTIONS_START: usize = 20;

    /// Is the Don't Fragment flag (RFC 791 3.1).
    pub const FLAG_DF: u16 = 0x4000;
    /// Is the More Fragments flag (RFC 791 3.1).
    pub const FLAG_MF: u16 = 0x2000;
    /// Masks the fragment offset, counted in units of 8 bytes (RFC 791 3.1).
    pub const OFFSET_MASK: u16 = 0x1fff;
}

/// Reads the header length and total length of the IPv4 header at the start of `bytes` and
/// checks 20 <= header length <= total length <= buffer length ([`Packet::check_len`] is this
/// and the version); returns the fixed header with them. One bounds check for every field of
/// the fixed header: input runs it on every packet.
#[inline(always)]
pub fn lengths(bytes: &[u8]) -> Option<(&[u8; HEADER_LEN], usize, usize)> {
    let h: &[u8; HEADER_LEN] = bytes.first_chunk()?;
    let hlen = usize::from(h[field::VER_IHL] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    (hlen >= HEADER_LEN && hlen <= total && total <= bytes.len()).then_some((h, hlen, total))
}

/// Views an IPv4 packet over a byte buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a malformed buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` and checks its version and length fields (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds an IPv4 header and the whole packet: at least 20 bytes,
    /// version 4, IHL >= 5, header length <= total length <= buffer length. A buffer longer than
    /// the total length is accepted (Ethernet pads short frames). Then no accessor panics.
    /// The checksum and the option list are not checked here.
    pub fn check_len(&self) -> Result<()> {
        match lengths(self.buffer.as_ref()) {
            Some((h, _, _)) if h[field::VER_IHL] >> 4 == 4 => Ok(()),
            _ => Err(Error),
        }
    }

    /// Returns the wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Returns the version field.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Returns the header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Returns the whole type-of-service byte: DSCP and ECN (RFC 2474 3, RFC 3168 5).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Returns the total length field: header and payload, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Returns the identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    fn flags_and_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF)
    }

    /// Tells whether the Don't Fragment flag is set.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_and_offset() & field::FLAG_DF != 0
    }

    /// Tells whether the More Fragments flag is set.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_and_offset() & field::FLAG_MF != 0
    }

    /// Returns the fragment offset in bytes (the field times 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_and_offset() & field::OFFSET_MASK) * 8
    }

    /// Tells whether this packet is a fragment: More Fragments set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_and_offset() & (field::FLAG_MF | field::OFFSET_MASK) != 0
    }

    /// Returns the time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Returns the protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Returns the header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Returns the source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC_ADDR)
    }

    /// Returns the destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST_ADDR)
    }

    /// Returns the option bytes, from 20 up to the header length (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS_START..usize::from(self.header_len())]
    }

    /// Tells whether the header checksum is correct: the header sums to 0xffff (RFC 791 3.1).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.buffer.as_ref()[..usize::from(self.header_len())]) == 0xffff
    }

    /// Returns the payload: the bytes from the header length to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field (the high nibble of the first byte).
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes, a multiple of 4 (stored as IHL = bytes / 4).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets the whole type-of-service byte (DSCP and ECN).
    #[inline]
    pub fn set_tos(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length field.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the identification field.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    fn set_flags_and_offset(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF, value);
    }

    /// Sets or clears the Don't Fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let old = self.flags_and_offset() & !field::FLAG_DF;
        self.set_flags_and_offset(if value { old | field::FLAG_DF } else { old });
    }

    /// Sets or clears the More Fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let old = self.flags_and_offset() & !field::FLAG_MF;
        self.set_flags_and_offset(if value { old | field::FLAG_MF } else { old });
    }

    /// Sets the fragment offset, given in bytes (a multiple of 8; stored as bytes / 8).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let flags = self.flags_and_offset() & !field::OFFSET_MASK;
        self.set_flags_and_offset(flags | ((value / 8) & field::OFFSET_MASK));
    }

    /// Clears the reserved flag, Don't Fragment, More Fragments and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.set_flags_and_offset(0);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol of the payload.
    #[inline]
    pub fn set_protocol(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SRC_ADDR, value);
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::DST_ADDR, value);
    }

    /// Sets the TTL and updates the header checksum incrementally (RFC 1624 equation 3): the
    /// TTL shares a 16-bit word with the protocol, the only word that changes.
    #[inline]
    pub fn set_ttl_update_checksum(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        let old_word = u16::from_be_bytes([b[field::TTL], b[field::PROTOCOL]]);
        let new_word = u16::from_be_bytes([ttl, b[field::PROTOCOL]]);
        let mut sum = u32::from(!read_u16(b, field::CHECKSUM.start)) + u32::from(!old_word) + u32::from(new_word);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        b[field::TTL] = ttl;
        write_u16(b, field::CHECKSUM.start, !(sum as u16));
    }

    /// Decrements a TTL of at least 1 and updates the header checksum: RFC 1624 equation 3
    /// with the changed word's `~m + m'` folded to the constant it always is, `0xfeff` (the
    /// TTL is its high byte, so `m' = m - 0x100`). The same result as
    /// [`set_ttl_update_checksum`](Self::set_ttl_update_checksum), without reading the protocol.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let mut sum = u32::from(!read_u16(b, field::CHECKSUM.start)) + 0xfeff;
        sum = (sum & 0xffff) + (sum >> 16);
        b[field::TTL] -= 1;
        write_u16(b, field::CHECKSUM.start, !(sum as u16));
    }

    /// Computes the header checksum over the header length and stores it (RFC 791 3.1).
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(&self.buffer.as_ref()[..usize::from(self.header_len())]);
        self.set_checksum(!sum);
    }

    /// Returns the option bytes, mutably.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[field::OPTIONS_START..end]
    }

    /// Returns the payload, mutably: the bytes from the header length to the total length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A 20-byte header whose addresses, protocol and TTL are fixed (a tunnel's outer header), built
/// once with the partial sum of its checksum: each packet's header is a copy with its TOS,
/// length, identification and DF written in, and four words added to the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    bytes: [u8; HEADER_LEN],
    sum: u32,
}

impl Template {
    /// Builds the template of headers from `src` to `dst` carrying `protocol`.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: Protocol, ttl: u8) -> Self {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0] = 0x45;
        bytes[8] = ttl;
        bytes[9] = protocol.into();
        bytes[12..16].copy_from_slice(&src.octets());
        bytes[16..20].copy_from_slice(&dst.octets());
        let sum = bytes.chunks_exact(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
        Template { bytes, sum }
    }

    /// Returns the source address.
    pub fn src(&self) -> Ipv4Addr {
        Packet::new_unchecked(&self.bytes[..]).src_addr()
    }

    /// Returns the destination address.
    pub fn dst(&self) -> Ipv4Addr {
        Packet::new_unchecked(&self.bytes[..]).dst_addr()
    }

    /// Returns the protocol the headers carry.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.bytes[field::PROTOCOL])
    }

    /// Writes a header with these fields and its checksum into `out[..20]`. Panics if `out` is
    /// shorter than 20 bytes.
    #[inline]
    pub fn write(&self, out: &mut [u8], tos: u8, total_len: u16, ident: u16, dont_frag: bool) {
        let flags = if dont_frag { field::FLAG_DF } else { 0 };
        let sum = self.sum + u32::from(tos) + u32::from(total_len) + u32::from(ident) + u32::from(flags);
        let sum = (sum & 0xffff) + (sum >> 16);
        let csum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        let h = &mut out[..HEADER_LEN];
        h.copy_from_slice(&self.bytes);
        h[1] = tos;
        h[2..4].copy_from_slice(&total_len.to_be_bytes());
        h[4..6].copy_from_slice(&ident.to_be_bytes());
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[10..12].copy_from_slice(&csum.to_be_bytes());
    }
}

/// Collects the fields of an IPv4 header that the gateway reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Holds the source address.
    pub src_addr: Ipv4Addr,
    /// Holds the destination address.
    pub dst_addr: Ipv4Addr,
    /// Holds the protocol of the payload.
    pub protocol: Protocol,
    /// Holds the payload length in bytes (total length minus header length).
    pub payload_len: usize,
    /// Holds the time to live.
    pub ttl: u8,
    /// Holds the type-of-service byte (DSCP and ECN).
    pub tos: u8,
    /// Holds the identification field.
    pub ident: u16,
    /// Holds the Don't Fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// Reads the header of `packet` after checking its length. It only reads: fragments are
    /// not refused (ask [`Packet::is_fragment`]), the checksum is not verified (ask
    /// [`Packet::verify_checksum`]) and options are skipped (`payload_len` excludes them).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Returns the length of the header this emits: 20 bytes, no options.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Returns the 20 bytes [`emit`](Self::emit) writes, built in registers with the checksum
    /// summed word by word: the fast path of tunnel-mode encapsulation, one header per packet.
    #[inline]
    pub fn header_bytes(&self) -> [u8; HEADER_LEN] {
        let total = (HEADER_LEN + self.payload_len) as u16;
        let flags = if self.dont_frag { field::FLAG_DF } else { 0 };
        let (s, d) = (u32::from(self.src_addr), u32::from(self.dst_addr));
        let w0 = 0x4500 | u16::from(self.tos);
        let w4 = u16::from(self.ttl) << 8 | u16::from(u8::from(self.protocol));
        let sum = u32::from(w0)
            + u32::from(total)
            + u32::from(self.ident)
            + u32::from(flags)
            + u32::from(w4)
            + (s >> 16)
            + (s & 0xffff)
            + (d >> 16)
            + (d & 0xffff);
        let sum = (sum & 0xffff) + (sum >> 16);
        let csum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        let mut h = [0u8; HEADER_LEN];
        h[0..2].copy_from_slice(&w0.to_be_bytes());
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8..10].copy_from_slice(&w4.to_be_bytes());
        h[10..12].copy_from_slice(&csum.to_be_bytes());
        h[12..16].copy_from_slice(&s.to_be_bytes());
        h[16..20].copy_from_slice(&d.to_be_bytes());
        h
    }

    /// Writes a 20-byte header without options, not a fragment, and fills its checksum.
    /// Panics if the buffer is shorter than 20 bytes; `payload_len` must be at most 65515.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - HEADER_LEN);
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_tos(self.tos);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.set_flags_and_offset(if self.dont_frag { field::FLAG_DF } else { 0 });
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An IPv4/UDP DNS query 192.168.1.2 -> 8.8.8.8, DF set (built with scapy, checked with tshark).
    const UDP_PACKET: [u8; 57] = [
        0x45, 0x00, 0x00, 0x39, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x4c, 0xb4, 0xc0, 0xa8, 0x01, 0x02, 0x08, 0x08,
        0x08, 0x08, 0xd4, 0x31, 0x00, 0x35, 0x00, 0x25, 0xde, 0x47, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x03, 0x63, 0x6f, 0x6d, 0x00, 0x00,
        0x01, 0x00, 0x01,
    ];

    /// An IGMPv3 report with a Router Alert option, TOS 0xc0, TTL 1 (IHL 6).
    const ROUTER_ALERT: [u8; 32] = [
        0x46, 0xc0, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x3a, 0x01, 0x0a, 0x00, 0x00, 0x01, 0xe0, 0x00,
        0x00, 0x16, 0x94, 0x04, 0x00, 0x00, 0x22, 0x00, 0xfa, 0x02, 0x00, 0x00, 0x00, 0x01,
    ];

    proptest! {
        #[test]
        fn incremental_ttl_update_matches_a_full_checksum(header in any::<[u8; 20]>(), ttl in any::<u8>()) {
            let mut h = header;
            h[0] = 0x45;
            let mut p = Packet::new_unchecked(&mut h[..]);
            p.fill_checksum();
            p.set_ttl_update_checksum(ttl);
            prop_assert_eq!(p.ttl(), ttl);
            prop_assert!(p.verify_checksum());
        }

        #[test]
        fn decrementing_the_ttl_is_the_general_update(header in any::<[u8; 20]>(), ttl in 1..=u8::MAX, sum in any::<u16>()) {
            // Any checksum, right or wrong: both updates must write the same one.
            let mut h = header;
            h[0] = 0x45;
            h[8] = ttl;
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            let mut general = h;
            Packet::new_unchecked(&mut general[..]).set_ttl_update_checksum(ttl - 1);
            Packet::new_unchecked(&mut h[..]).decrement_ttl();
            prop_assert_eq!(h, general);
            // And from a correct checksum, a correct one.
            let mut p = Packet::new_unchecked(&mut h[..]);
            p.fill_checksum();
            if p.ttl() > 0 {
                p.decrement_ttl();
                prop_assert!(p.verify_checksum());
            }
        }
    }

    #[test]
    fn header_bytes_and_templates_equal_what_emit_writes() {
        let known = Repr::parse(&Packet::new_checked(&UDP_PACKET[..]).unwrap()).unwrap();
        assert_eq!(known.header_bytes()[..], UDP_PACKET[..20]);
        let mut rng = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = Repr {
                src_addr: Ipv4Addr::from((rng >> 32) as u32),
                dst_addr: Ipv4Addr::from(rng as u32 ^ 0xffff_0000),
                protocol: Protocol::from((rng >> 8) as u8),
                payload_len: (rng >> 40) as usize % 65516,
                ttl: (rng >> 16) as u8,
                tos: (rng >> 24) as u8,
                ident: (rng >> 48) as u16,
                dont_frag: rng & 1 == 0,
            };
            let mut buf = [0u8; HEADER_LEN];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            assert_eq!(r.header_bytes(), buf, "{r:?}");
            let t = Template::new(r.src_addr, r.dst_addr, r.protocol, r.ttl);
            let mut out = [0xeeu8; HEADER_LEN + 1];
            t.write(&mut out, r.tos, (HEADER_LEN + r.payload_len) as u16, r.ident, r.dont_frag);
            assert_eq!(out[..HEADER_LEN], buf, "template of {r:?}");
            assert_eq!(out[HEADER_LEN], 0xee, "wrote past the header");
            assert_eq!((t.src(), t.dst(), t.protocol()), (r.src_addr, r.dst_addr, r.protocol));
        }
    }

    #[test]
    fn parses_udp_packet() {
        let p = Packet::new_checked(&UDP_PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.tos(), 0);
        assert_eq!(p.total_len(), 57);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), Protocol::Udp);
        assert_eq!(p.checksum(), 0x4cb4);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(8, 8, 8, 8));
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &UDP_PACKET[20..]);
    }

    #[test]
    fn parses_options() {
        let p = Packet::new_checked(&ROUTER_ALERT[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.tos(), 0xc0);
        assert_eq!(p.protocol(), Protocol(2));
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert!(options_are_valid(p.options()));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &ROUTER_ALERT[24..]);
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr.payload_len, 8);
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr::parse(&Packet::new_checked(&UDP_PACKET[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr {
                src_addr: Ipv4Addr::new(192, 168, 1, 2),
                dst_addr: Ipv4Addr::new(8, 8, 8, 8),
                protocol: Protocol::Udp,
                payload_len: 37,
                ttl: 64,
                tos: 0,
                ident: 0x1c46,
                dont_frag: true,
            }
        );
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut bytes = UDP_PACKET;
        bytes[..HEADER_LEN].fill(0xa5);
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, UDP_PACKET);
    }

    #[test]
    fn setters_rebuild_the_header() {
        let mut bytes = [0u8; 57];
        bytes[20..].copy_from_slice(&UDP_PACKET[20..]);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_tos(0);
        p.set_total_len(57);
        p.set_ident(0x1c46);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        p.set_dont_frag(true);
        assert!(p.more_frags() && p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_ttl(64);
        p.set_protocol(Protocol::Udp);
        p.set_src_addr(Ipv4Addr::new(192, 168, 1, 2));
        p.set_dst_addr(Ipv4Addr::new(8, 8, 8, 8));
        p.fill_checksum();
        assert_eq!(p.checksum(), 0x4cb4);
        assert_eq!(bytes, UDP_PACKET);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.clear_flags();
        assert!(!p.dont_frag());
        p.payload_mut()[0] = 0xff;
        assert_eq!(p.payload()[0], 0xff);
    }

    #[test]
    fn checksum_detects_corruption() {
        let mut bytes = UDP_PACKET;
        bytes[8] = 63;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        // Decrementing the TTL adds 0x0100 to the checksum (RFC 1624 example arithmetic).
        assert_eq!(p.checksum(), 0x4db4);
    }

    #[test]
    fn protocol_numbers() {
        let pairs = [
            (1, Protocol::Icmp),
            (4, Protocol::IpIp),
            (6, Protocol::Tcp),
            (17, Protocol::Udp),
            (50, Protocol::Esp),
            (51, Protocol::Ah),
            (2, Protocol(2)),
        ];
        for (n, p) in pairs {
            assert_eq!(Protocol::from(n), p);
            assert_eq!(u8::from(p), n);
        }
        for n in 0..=255u8 {
            assert_eq!(u8::from(Protocol::from(n)), n);
        }
        assert_eq!(Protocol::Esp.to_string(), "ipsec-esp");
        assert_eq!(Protocol(47).to_string(), "47");
    }

    #[test]
    fn every_truncation_fails() {
        for len in 0..UDP_PACKET.len() {
            assert_eq!(Packet::new_checked(&UDP_PACKET[..len]), Err(Error), "len {len}");
            assert_eq!(Repr::parse(&Packet::new_unchecked(&UDP_PACKET[..len])), Err(Error), "len {len}");
        }
        for len in 0..ROUTER_ALERT.len() {
            assert_eq!(Packet::new_checked(&ROUTER_ALERT[..len]), Err(Error), "len {len}");
        }
    }

    #[test]
    fn accepts_ethernet_padding() {
        let mut padded = [0u8; 64];
        padded[..57].copy_from_slice(&UDP_PACKET);
        let p = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &UDP_PACKET[20..]);
    }

    #[test]
    fn refuses_bad_version() {
        for version in [0u8, 1, 5, 6, 15] {
            let mut bytes = UDP_PACKET;
            bytes[0] = (version << 4) | 5;
            assert_eq!(Packet::new_checked(&bytes[..]), Err(Error), "version {version}");
        }
    }

    #[test]
    fn refuses_short_ihl() {
        for ihl in 0..5u8 {
            let mut bytes = UDP_PACKET;
            bytes[0] = 0x40 | ihl;
            assert_eq!(Packet::new_checked(&bytes[..]), Err(Error), "ihl {ihl}");
        }
    }

    #[test]
    fn refuses_header_longer_than_buffer() {
        let mut bytes = [0u8; 40];
        bytes[..20].copy_from_slice(&UDP_PACKET[..20]);
        bytes[0] = 0x4f;
        bytes[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error));
    }

    #[test]
    fn refuses_total_len_shorter_than_header() {
        let mut bytes = ROUTER_ALERT;
        for total in [0u16, 19, 20, 23] {
            bytes[2..4].copy_from_slice(&total.to_be_bytes());
            assert_eq!(Packet::new_checked(&bytes[..]), Err(Error), "total {total}");
        }
        bytes[2..4].copy_from_slice(&24u16.to_be_bytes());
        assert!(Packet::new_checked(&bytes[..]).unwrap().payload().is_empty());
    }

    #[test]
    fn refuses_total_len_longer_than_buffer() {
        let mut bytes = UDP_PACKET;
        bytes[2..4].copy_from_slice(&58u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error));
        bytes[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error));
    }

    #[test]
    fn options_walk() {
        assert!(options_are_valid(&[]));
        assert!(options_are_valid(&[OPT_NOP, OPT_NOP, OPT_NOP, OPT_NOP]));
        assert!(options_are_valid(&[OPT_ROUTER_ALERT, 4, 0, 0]));
        assert!(options_are_valid(&[OPT_RECORD_ROUTE, 7, 4, 0, 0, 0, 0, OPT_END]));
        assert!(options_are_valid(&[OPT_END, 0xff, 0xff, 0xff]), "bytes after EOL are padding");
        assert!(options_are_valid(&[OPT_NOP, 99, 2, OPT_END]), "an unknown option with an empty body");
        assert!(!options_are_valid(&[OPT_ROUTER_ALERT]), "no length byte");
        assert!(!options_are_valid(&[OPT_ROUTER_ALERT, 5, 0, 0]), "length past the end");
        assert!(!options_are_valid(&[OPT_ROUTER_ALERT, 1, 0, 0]), "length below 2");
        assert!(!options_are_valid(&[OPT_NOP, OPT_TIMESTAMP, 0]), "length 0");
    }

    #[test]
    fn zero_mutable_options_per_rfc4302() {
        #[rustfmt::skip]
        let mut options = [
            OPT_ROUTER_ALERT, 4, 0, 0,
            OPT_RECORD_ROUTE, 7, 8, 10, 0, 0, 1,
            OPT_NOP,
            OPT_TIMESTAMP, 12, 13, 0x01, 0, 0, 0, 1, 0, 0, 0, 2,
            OPT_SECURITY, 3, 0xab,
            OPT_END, 0,
        ];
        let original = options;
        assert!(zero_mutable_options(&mut options));
        assert_eq!(&options[..4], &original[..4], "router alert kept");
        assert_eq!(&options[4..11], &[0; 7], "record route zeroed whole");
        assert_eq!(options[11], OPT_NOP);
        assert_eq!(&options[12..24], &[0; 12], "timestamp zeroed whole");
        assert_eq!(&options[24..], &original[24..], "security and EOL kept");
        for kind in [0, 1, 130, 133, 134, 148, 149] {
            assert!(option_is_immutable(kind), "{kind}");
        }
        for kind in [7, 68, 131, 137, 136, 82, 2] {
            assert!(!option_is_immutable(kind), "{kind}");
        }
    }

    #[test]
    fn zero_mutable_options_refuses_malformed_untouched() {
        let mut options = [OPT_RECORD_ROUTE, 7, 8, 0, 0, 0, 0, OPT_TIMESTAMP, 9, 0];
        let original = options;
        assert!(!zero_mutable_options(&mut options));
        assert_eq!(options, original);
    }

    #[test]
    fn zero_mutable_options_handles_long_lists() {
        // More two-byte options than fit in a real header: all of them are still zeroed.
        let mut options = [0u8; 100];
        for pair in options.chunks_exact_mut(2) {
            pair.copy_from_slice(&[99, 2]);
        }
        assert!(zero_mutable_options(&mut options));
        assert_eq!(options, [0u8; 100]);
    }

    #[test]
    fn zero_mutable_options_in_a_packet() {
        let mut bytes = [0u8; 32];
        bytes[..20].copy_from_slice(&UDP_PACKET[..20]);
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_header_len(32);
        p.set_total_len(32);
        p.options_mut().copy_from_slice(&[OPT_RECORD_ROUTE, 7, 4, 0, 0, 0, 0, OPT_END, 0, 0, 0, 0]);
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        assert!(zero_mutable_options(p.options_mut()));
        assert_eq!(p.options(), &[0; 12]);
    }

    proptest! {
        #[test]
        fn checked_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.version(), p.header_len(), p.tos(), p.total_len(), p.ident());
                let _ = (p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment(), p.ttl(), p.protocol());
                let _ = (p.checksum(), p.src_addr(), p.dst_addr(), p.verify_checksum());
                let _ = (p.options().len(), p.payload().len(), options_are_valid(p.options()));
                let repr = Repr::parse(&p).unwrap();
                prop_assert_eq!(repr.payload_len, p.payload().len());
            }
        }

        #[test]
        fn checked_with_valid_prefix_never_panics(
            ihl in 0u8..16, total in 0u16..80, rest in proptest::collection::vec(any::<u8>(), 0..80)
        ) {
            let mut bytes = rest;
            bytes.resize(bytes.len().max(4), 0);
            bytes[0] = 0x40 | ihl;
            bytes[2..4].copy_from_slice(&total.to_be_bytes());
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                prop_assert!(usize::from(p.header_len()) <= usize::from(p.total_len()));
                let _ = (p.options().len(), p.payload().len(), p.verify_checksum());
                let _ = zero_mutable_options(p.options_mut());
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
            }
        }

        #[test]
        fn emit_then_parse_round_trips(
            src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(), payload_len in 0usize..64,
            ttl in any::<u8>(), tos in any::<u8>(), ident in any::<u16>(), dont_frag in any::<bool>()
        ) {
            let repr = Repr {
                src_addr: Ipv4Addr::from(src),
                dst_addr: Ipv4Addr::from(dst),
                protocol: Protocol::from(proto),
                payload_len,
                ttl,
                tos,
                ident,
                dont_frag,
            };
            let mut bytes = vec![0u8; HEADER_LEN + payload_len];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
            let p = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Repr::parse(&p).unwrap(), repr);
        }

        #[test]
        fn zeroing_keeps_a_valid_list_valid(options in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut zeroed = options.clone();
            let ok = zero_mutable_options(&mut zeroed);
            prop_assert_eq!(ok, options_are_valid(&options));
            if ok {
                prop_assert!(options_are_valid(&zeroed));
            } else {
                prop_assert_eq!(zeroed, options);
            }
        }
    }
}
