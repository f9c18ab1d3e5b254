//! ICMP the worker originates, built in place in the buffer of the packet that caused it, so
//! nothing is allocated: echo replies for our addresses, and the errors of RFC 792 / RFC 1812
//! (time exceeded, destination unreachable, fragmentation needed with the next-hop MTU).

use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::stats::DropReason;
use crate::wire::{Protocol, icmp, ipv4};

/// TTL of packets the router originates.
pub(crate) const LOCAL_TTL: u8 = 64;

/// Turns an echo request addressed to us into the echo reply, in place.
pub(crate) fn echo_reply<B: PacketBuf>(buf: &mut B) -> Result<(), DropReason> {
    let d = buf.data_mut();
    let mut ip = ipv4::Packet::new_checked(&mut d[..]).map_err(|_| DropReason::BadIpHeader)?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    {
        let mut m = icmp::Packet::new_checked(ip.payload_mut()).map_err(|_| DropReason::Truncated)?;
        if !m.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        m.set_msg_type(icmp::Message::EchoReply);
        m.set_code(0);
        m.fill_checksum();
    }
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(LOCAL_TTL);
    ip.clear_flags();
    ip.fill_checksum();
    Ok(())
}

/// An ICMP error to send about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpError {
    /// Time exceeded in transit (type 11 code 0).
    TtlExceeded,
    /// Network unreachable (type 3 code 0).
    NetUnreachable,
    /// Fragmentation needed and DF set (type 3 code 4), with the next-hop MTU (RFC 1191).
    FragNeeded(u16),
}

/// Returns true when RFC 1812 section 4.3.2.7 allows an ICMP error about this packet: not about
/// an ICMP error, not about a non-first fragment, not to a broadcast, multicast or zero source.
fn error_allowed(d: &[u8]) -> bool {
    let Ok(ip) = ipv4::Packet::new_checked(d) else { return false };
    let src = ip.src_addr();
    if src.is_unspecified() || src.is_broadcast() || src.is_multicast() || src.is_loopback() {
        return false;
    }
    if ip.frag_offset() != 0 {
        return false;
    }
    if ip.protocol() == Protocol::Icmp {
        let Ok(m) = icmp::Packet::new_checked(ip.payload()) else { return false };
        return matches!(m.msg_type(), icmp::Message::EchoRequest | icmp::Message::EchoReply);
    }
    true
}

/// Rewrites the packet into the ICMP error about it, from `our_addr`, in place: the new header
/// and the original IP header plus 8 bytes of its payload (RFC 792). Returns false (packet left
/// to be dropped) where no error may be sent.
pub(crate) fn error_in_place<B: PacketBuf>(buf: &mut B, err: IcmpError, our_addr: Ipv4Addr) -> bool {
    if !error_allowed(buf.data()) {
        return false;
    }
    let (orig_src, keep) = {
        let ip = ipv4::Packet::new_unchecked(buf.data());
        (ip.src_addr(), (usize::from(ip.header_len()) + 8).min(usize::from(ip.total_len())))
    };
    let extra = buf.len() - keep;
    let grow = ipv4::HEADER_LEN + icmp::HEADER_LEN;
    if !buf.trim(extra) || !buf.prepend(grow) {
        return false;
    }
    let total = buf.len();
    let d = buf.data_mut();
    let (ty, code, mtu) = match err {
        IcmpError::TtlExceeded => (icmp::Message::TimeExceeded, 0, 0),
        IcmpError::NetUnreachable => (icmp::Message::DstUnreachable, 0, 0),
        IcmpError::FragNeeded(mtu) => (icmp::Message::DstUnreachable, icmp::CODE_FRAG_NEEDED, mtu),
    };
    {
        let mut m = icmp::Packet::new_unchecked(&mut d[ipv4::HEADER_LEN..]);
        m.set_msg_type(ty);
        m.set_code(code);
        m.set_echo_ident(0);
        m.set_next_hop_mtu(mtu);
        m.fill_checksum();
    }
    ipv4::Repr {
        src_addr: our_addr,
        dst_addr: orig_src,
        protocol: Protocol::Icmp,
        payload_len: total - ipv4::HEADER_LEN,
        ttl: LOCAL_TTL,
        tos: 0xc0, // RFC 1812 4.3.2.5: internetwork control
        ident: 0,
        dont_frag: false,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut d[..ipv4::HEADER_LEN]));
    true
}

/// A token bucket that limits ICMP errors per worker (RFC 1812 4.3.2.8).
#[derive(Clone, Debug)]
pub(crate) struct RateLimit {
    per_sec: u32,
    tokens: u32,
    second: u64,
}

impl RateLimit {
    pub(crate) fn new(per_sec: u32) -> Self {
        RateLimit { per_sec, tokens: per_sec, second: 0 }
    }

    /// Takes one token at `now_ms`; false when the budget of this second is spent.
    pub(crate) fn take(&mut self, now_ms: u64) -> bool {
        let s = now_ms / 1000;
        if s != self.second {
            self.second = s;
            self.tokens = self.per_sec;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}
