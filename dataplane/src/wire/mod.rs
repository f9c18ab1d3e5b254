//! Wire layer: typed zero-copy views over packet bytes (Ethernet, ARP, IPv4, ICMP, UDP, TCP, ESP, AH).
//!
//! Every header is a `Packet<T: AsRef<[u8]>>` wrapping any byte buffer: getters need only
//! `AsRef<[u8]>`, setters also `AsMut<[u8]>`. Untrusted bytes always go through `new_checked`;
//! once `check_len` has succeeded no getter panics (setters that change a length field can of
//! course make later getters read past the buffer: check again after such edits). Where a plain
//! struct helps, a `Repr` parses a packet into its meaningful fields and emits them back.
//!
//! Unknown protocol numbers parse into an `Unknown(_)` variant and never fail; the only error is
//! [`Error`], a unit struct, because the caller's only choice is to drop the packet.

use core::fmt;

pub mod ah;
pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use ipv4::Protocol;

/// Reports that the bytes do not hold a well-formed header: too short, or a length or version field is wrong.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("malformed packet")
    }
}

impl std::error::Error for Error {}

/// Carries the outcome of every fallible wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a big-endian `u16` at `at`; panics if `bytes` is too short (callers check lengths first).
#[inline]
fn read_u16(bytes: &[u8], at: usize) -> u16 {
    // One range check instead of one per byte.
    u16::from_be_bytes(bytes[at..at + 2].try_into().expect("two bytes"))
}

/// Reads a big-endian `u32` at `at`; panics if `bytes` is too short (callers check lengths first).
#[inline]
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

/// Writes `value` big-endian at `at`; panics if `bytes` is too short.
#[inline]
fn write_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes `value` big-endian at `at`; panics if `bytes` is too short.
#[inline]
fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Reads an IPv4 address at `at`; panics if `bytes` is too short.
#[inline]
fn read_ipv4(bytes: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(read_u32(bytes, at))
}

/// Writes an IPv4 address at `at`; panics if `bytes` is too short.
#[inline]
fn write_ipv4(bytes: &mut [u8], at: usize, addr: std::net::Ipv4Addr) {
    bytes[at..at + 4].copy_from_slice(&addr.octets());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_displays_and_is_std_error() {
        let e: Box<dyn std::error::Error> = Box::new(Error);
        assert_eq!(e.to_string(), "malformed packet");
    }

    #[test]
    fn big_endian_helpers_round_trip() {
        let mut b = [0u8; 8];
        write_u16(&mut b, 1, 0xabcd);
        write_u32(&mut b, 3, 0x0102_0304);
        assert_eq!(b, [0, 0xab, 0xcd, 1, 2, 3, 4, 0]);
        assert_eq!(read_u16(&b, 1), 0xabcd);
        assert_eq!(read_u32(&b, 3), 0x0102_0304);
        write_ipv4(&mut b, 4, std::net::Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(read_ipv4(&b, 4), std::net::Ipv4Addr::new(10, 0, 0, 1));
    }
}
