//! IPv4 fragmentation (RFC 791 section 3.2, RFC 1812 section 4.2.2.7) of a packet larger than
//! the output MTU whose DF bit is clear — encrypted packets above all, which the manual advises
//! to send with DF cleared so that they can be fragmented. The first fragment keeps the original
//! buffer; the others come from the worker's buffer pool.

use arrayvec::ArrayVec;

use crate::buf::PacketBuf;
use crate::stats::DropReason;
use crate::wire::ipv4;

/// Fragments one packet may become, at most (a single-segment buffer holds about 2 KiB, and
/// every link carries at least 576 bytes).
pub(crate) const MAX_FRAGMENTS: usize = 8;

/// Returns true for an option that every fragment carries (RFC 791: the copied flag).
fn copied(option_type: u8) -> bool {
    option_type & 0x80 != 0
}

/// Returns the options of `opts` that non-first fragments carry, padded to 32 bits, in `out`;
/// their length, or `None` for a malformed option list.
fn copied_options(opts: &[u8], out: &mut [u8; 40]) -> Option<usize> {
    let (mut i, mut n) = (0, 0);
    while i < opts.len() {
        let t = opts[i];
        let len = match t {
            0 => break,
            1 => 1,
            _ => usize::from(*opts.get(i + 1)?),
        };
        if len < 1 || i + len > opts.len() || (t > 1 && len < 2) {
            return None;
        }
        if copied(t) {
            out[n..n + len].copy_from_slice(&opts[i..i + len]);
            n += len;
        }
        i += len;
    }
    let padded = n.next_multiple_of(4);
    out[n..padded].fill(0);
    Some(padded)
}

/// Splits `buf` (an IPv4 packet, DF clear) into fragments of at most `mtu` bytes. The first
/// fragment is `buf` itself, shortened; `alloc` provides the others.
pub(crate) fn fragment<B: PacketBuf>(
    mut buf: B,
    mtu: usize,
    alloc: &mut dyn FnMut() -> Option<B>,
) -> Result<ArrayVec<B, MAX_FRAGMENTS>, DropReason> {
    let (hlen, total, base_off, last_mf) = {
        let ip = ipv4::Packet::new_checked(buf.data()).map_err(|_| DropReason::BadIpHeader)?;
        (usize::from(ip.header_len()), usize::from(ip.total_len()), usize::from(ip.frag_offset()), ip.more_frags())
    };
    let mut opts = [0u8; 40];
    let opts_len = copied_options(&buf.data()[ipv4::HEADER_LEN..hlen], &mut opts).ok_or(DropReason::BadIpHeader)?;
    let rest_hlen = ipv4::HEADER_LEN + opts_len;
    // Every fragment but the last carries a multiple of 8 bytes of payload.
    let first_chunk = (mtu.saturating_sub(hlen)) & !7;
    let rest_chunk = (mtu.saturating_sub(rest_hlen)) & !7;
    if first_chunk == 0 || rest_chunk == 0 {
        return Err(DropReason::FragNeeded);
    }
    let payload = total - hlen;
    let others = (payload.saturating_sub(first_chunk)).div_ceil(rest_chunk);
    if 1 + others > MAX_FRAGMENTS {
        return Err(DropReason::FragNeeded);
    }
    let mut frags: ArrayVec<B, MAX_FRAGMENTS> = ArrayVec::new();
    let mut done = first_chunk;
    let mut tail: ArrayVec<B, MAX_FRAGMENTS> = ArrayVec::new();
    while done < payload {
        let chunk = rest_chunk.min(payload - done);
        let mut f = alloc().ok_or(DropReason::NoBuffer)?;
        if !f.append(rest_hlen + chunk) {
            return Err(DropReason::NoTailroom);
        }
        let d = f.data_mut();
        d[..ipv4::HEADER_LEN].copy_from_slice(&buf.data()[..ipv4::HEADER_LEN]);
        d[ipv4::HEADER_LEN..rest_hlen].copy_from_slice(&opts[..opts_len]);
        d[rest_hlen..].copy_from_slice(&buf.data()[hlen + done..hlen + done + chunk]);
        let mut ip = ipv4::Packet::new_unchecked(&mut d[..]);
        ip.set_header_len(rest_hlen as u8);
        ip.set_total_len((rest_hlen + chunk) as u16);
        ip.set_frag_offset((base_off + done) as u16);
        ip.set_more_frags(done + chunk < payload || last_mf);
        ip.fill_checksum();
        tail.push(f);
        done += chunk;
    }
    buf.trim(buf.len() - (hlen + first_chunk));
    {
        let mut ip = ipv4::Packet::new_unchecked(buf.data_mut());
        ip.set_total_len((hlen + first_chunk) as u16);
        ip.set_more_frags(true);
        ip.fill_checksum();
    }
    frags.push(buf);
    frags.extend(tail);
    Ok(frags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use crate::wire::Protocol;
    use std::net::Ipv4Addr;

    fn packet(payload: usize, options: &[u8]) -> Vec<u8> {
        let hlen = 20 + options.len();
        let mut p = vec![0u8; hlen + payload];
        ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: Protocol::Udp,
            payload_len: payload,
            ttl: 64,
            tos: 0,
            ident: 0x4242,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut p[..20]));
        p[20..hlen].copy_from_slice(options);
        for (i, b) in p[hlen..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_header_len(hlen as u8);
        ip.set_total_len((hlen + payload) as u16);
        ip.fill_checksum();
        p
    }

    /// Reassembles fragments by offset, checking each header.
    fn reassemble(frags: &[HeapBuf], mtu: usize) -> Vec<u8> {
        let mut payload = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let ip = ipv4::Packet::new_checked(f.data()).unwrap();
            assert!(ip.verify_checksum());
            assert!(f.len() <= mtu);
            assert_eq!(ip.ident(), 0x4242);
            assert_eq!(usize::from(ip.frag_offset()), payload.len());
            assert_eq!(ip.more_frags(), i + 1 < frags.len());
            payload.extend_from_slice(ip.payload());
        }
        payload
    }

    #[test]
    fn fragments_carry_the_payload_in_order_within_the_mtu() {
        for (len, mtu) in [(1480, 576), (1400, 1000), (2000, 1500), (1001, 68)] {
            let p = packet(len, &[]);
            let mut alloc = || Some(HeapBuf::from_slice(&[]));
            let frags = fragment(HeapBuf::from_slice(&p), mtu, &mut alloc);
            match frags {
                Ok(f) => assert_eq!(reassemble(&f, mtu), p[20..].to_vec(), "{len} at {mtu}"),
                Err(r) => assert_eq!((len, mtu, r), (1001, 68, DropReason::FragNeeded), "too many fragments"),
            }
        }
    }

    #[test]
    fn only_copied_options_go_into_later_fragments() {
        // Router alert (148, copied) and record route (7, not copied), then padding.
        let opts = [148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0];
        let p = packet(1000, &opts);
        let mut alloc = || Some(HeapBuf::from_slice(&[]));
        let frags = fragment(HeapBuf::from_slice(&p), 600, &mut alloc).unwrap();
        assert_eq!(ipv4::Packet::new_checked(frags[0].data()).unwrap().options(), &opts);
        assert_eq!(ipv4::Packet::new_checked(frags[1].data()).unwrap().options(), &[148, 4, 0, 0]);
        let payload: Vec<u8> =
            frags.iter().flat_map(|f| ipv4::Packet::new_checked(f.data()).unwrap().payload().to_vec()).collect();
        assert_eq!(payload, p[32..].to_vec());
    }

    #[test]
    fn no_buffers_means_a_counted_drop() {
        let p = packet(1400, &[]);
        let mut alloc = || None;
        assert_eq!(fragment(HeapBuf::from_slice(&p), 576, &mut alloc).err(), Some(DropReason::NoBuffer));
    }
}
