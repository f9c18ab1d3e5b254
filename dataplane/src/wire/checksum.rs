//! Wire layer: the Internet checksum (RFC 1071) and the IPv4 pseudo-header (RFC 768, RFC 793 3.1).
//!
//! Every function returns the folded one's-complement sum, not inverted: a header carrying a
//! correct checksum sums to `0xffff`, and the value to store in a checksum field is `!sum`.

use std::net::Ipv4Addr;

/// Folds a wide one's-complement accumulator into 16 bits (RFC 1071 4.1, the end-around carry).
#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Sums `bytes` as big-endian 16-bit words, an odd last byte padded with zero (RFC 1071 4.1).
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// Adds partial sums computed by [`data`] or [`pseudo_header_v4`] (RFC 1071 2(B), associativity).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sums the IPv4 pseudo-header of a TCP or UDP checksum: addresses, zero, protocol, length
/// (RFC 768, RFC 793 3.1). `length` is the transport header plus payload, in bytes.
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, length: u32) -> u16 {
    let s = src.octets();
    let d = dst.octets();
    let acc =
        u64::from(u32::from_be_bytes(s)) + u64::from(u32::from_be_bytes(d)) + u64::from(protocol) + u64::from(length);
    fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sums 16-bit words one at a time, as RFC 1071 4.1 describes it.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for chunk in bytes.chunks(2) {
            let word = u32::from(chunk[0]) << 8 | u32::from(*chunk.get(1).unwrap_or(&0));
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 3, "Numerical Examples": the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(!data(&bytes), 0x220d);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12]), 0x1200);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn captured_ipv4_header_sums_to_ffff() {
        // The header of a UDP/DNS query (192.168.1.2 -> 8.8.8.8) whose checksum field is 0x4cb4.
        let header = [
            0x45, 0x00, 0x00, 0x39, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x4c, 0xb4, 0xc0, 0xa8, 0x01, 0x02, 0x08, 0x08,
            0x08, 0x08,
        ];
        assert_eq!(data(&header), 0xffff);
        let mut zeroed = header;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(!data(&zeroed), 0x4cb4);
    }

    #[test]
    fn combine_folds_carries() {
        assert_eq!(combine(&[]), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
        assert_eq!(combine(&[0xffff, 0xffff, 0xffff]), 0xffff);
    }

    #[test]
    fn pseudo_header_matches_byte_layout() {
        let src = Ipv4Addr::new(192, 168, 1, 2);
        let dst = Ipv4Addr::new(8, 8, 8, 8);
        let bytes = [192, 168, 1, 2, 8, 8, 8, 8, 0, 17, 0, 37];
        assert_eq!(pseudo_header_v4(&src, &dst, 17, 37), data(&bytes));
        let big = [192, 168, 1, 2, 8, 8, 8, 8, 0, 6, 0, 1, 0, 2];
        assert_eq!(pseudo_header_v4(&src, &dst, 6, 0x0001_0002), data(&big));
    }

    proptest! {
        #[test]
        fn data_matches_reference(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(data(&bytes), reference(&bytes));
        }

        #[test]
        fn combine_of_even_split_matches_whole(
            bytes in proptest::collection::vec(any::<u8>(), 0..300), at in 0usize..150
        ) {
            let at = (at * 2).min(bytes.len() & !1);
            prop_assert_eq!(combine(&[data(&bytes[..at]), data(&bytes[at..])]), data(&bytes));
        }
    }
}
