//! The classification key: the 5-tuple of an IPv4 packet, read through the `wire` views.

use std::net::Ipv4Addr;

use super::DIMS;
use crate::wire::{Protocol, ipv4};

/// The fields a packet is classified on. Addresses are in host byte order; a packet without
/// ports (neither TCP nor UDP, or a fragment after the first) has both ports 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Key {
    /// The source address.
    pub src: u32,
    /// The destination address.
    pub dst: u32,
    /// The IP protocol number.
    pub proto: u8,
    /// The TCP or UDP source port, else 0.
    pub src_port: u16,
    /// The TCP or UDP destination port, else 0.
    pub dst_port: u16,
}

impl Key {
    /// Creates a key from its fields.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, src_port: u16, dst_port: u16) -> Key {
        Key { src: u32::from(src), dst: u32::from(dst), proto, src_port, dst_port }
    }

    /// Reads the key of the IPv4 packet that starts at `bytes[0]`. Returns `None` if the IPv4
    /// header is malformed, or if an unfragmented or first-fragment TCP or UDP packet is too
    /// short to hold its two ports. Fragments after the first carry no ports: they get port 0.
    #[inline(always)]
    pub fn from_ipv4(bytes: &[u8]) -> Option<Key> {
        let ip = ipv4::Packet::new_checked(bytes).ok()?;
        Key::of_checked(bytes, usize::from(ip.header_len()), usize::from(ip.total_len()))
    }

    /// Reads the key of an IPv4 packet whose header `ipv4::Packet::check_len` accepted, with
    /// that header's length and total length (`20 <= hlen <= total <= bytes.len()`); as
    /// [`Key::from_ipv4`] otherwise. Reads each field once, with one bounds check for the
    /// fixed header: input calls it for every packet.
    #[inline(always)]
    pub fn of_checked(bytes: &[u8], hlen: usize, total: usize) -> Option<Key> {
        let h: &[u8; ipv4::HEADER_LEN] = bytes.first_chunk()?;
        let proto = h[9];
        let mut key = Key {
            src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
            proto,
            src_port: 0,
            dst_port: 0,
        };
        // Fragments after the first carry no ports.
        if u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
            return Some(key);
        }
        // Only the two ports are needed, and they are the first 4 bytes of both TCP and UDP.
        // The full views' length checks would refuse a first fragment, whose UDP length field
        // or TCP options may reach into later fragments, so check the 4 bytes here instead.
        if proto == u8::from(Protocol::Tcp) || proto == u8::from(Protocol::Udp) {
            let ports: &[u8; 4] = bytes.get(hlen..total)?.first_chunk()?;
            key.src_port = u16::from_be_bytes([ports[0], ports[1]]);
            key.dst_port = u16::from_be_bytes([ports[2], ports[3]]);
        }
        Some(key)
    }

    /// Returns the key with source and destination swapped (addresses and ports): how a reply
    /// looks, and how the incoming policy check reads a packet against outbound selectors.
    pub fn reversed(&self) -> Key {
        Key { src: self.dst, dst: self.src, proto: self.proto, src_port: self.dst_port, dst_port: self.src_port }
    }

    /// Returns the fields in the classifier's dimension order.
    #[inline(always)]
    pub(super) fn fields(&self) -> [u32; DIMS] {
        [self.src, self.dst, u32::from(self.src_port), u32::from(self.dst_port), u32::from(self.proto)]
    }
}
