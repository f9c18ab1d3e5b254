//! Ethernet and ARP on the worker: the address filter, answers to ARP requests for our
//! addresses (built in place in the request's buffer), and the Ethernet header of output.

use std::net::Ipv4Addr;

use crate::buf::PacketBuf;
use crate::route::Iface;
use crate::stats::DropReason;
use crate::wire::{arp, ethernet};

/// What the link layer made of a received frame.
pub(crate) enum Frame {
    /// An IPv4 packet; the Ethernet header is stripped.
    Ipv4,
    /// An ARP request for one of our addresses, turned into the reply: send it back.
    ArpReplied,
    /// Another ARP packet, for the control plane.
    ArpOther,
}

/// Classifies a received frame on `iface`, and answers ARP requests for our addresses.
pub(crate) fn receive<B: PacketBuf>(buf: &mut B, iface: &Iface) -> Result<Frame, DropReason> {
    let (dst, ethertype) = {
        let eth = ethernet::Packet::new_checked(buf.data()).map_err(|_| DropReason::Truncated)?;
        (eth.dst_addr(), eth.ethertype())
    };
    if dst.is_unicast() && dst.0 != iface.mac {
        return Err(DropReason::OtherHost);
    }
    match ethertype {
        ethernet::EtherType::Ipv4 => {
            buf.adj(ethernet::HEADER_LEN);
            Ok(Frame::Ipv4)
        }
        ethernet::EtherType::Arp => arp_in_place(buf.data_mut(), iface),
        _ => Err(DropReason::UnsupportedEthertype),
    }
}

fn arp_in_place(frame: &mut [u8], iface: &Iface) -> Result<Frame, DropReason> {
    let (op, sender_mac, sender_ip, target_ip) = {
        let a = arp::Packet::new_checked(&frame[ethernet::HEADER_LEN..]).map_err(|_| DropReason::BadArp)?;
        let r = arp::Repr::parse(&a).map_err(|_| DropReason::BadArp)?;
        (r.operation, r.source_hardware_addr, r.source_protocol_addr, r.target_protocol_addr)
    };
    let ours = iface.addrs.iter().any(|&(addr, _)| addr == target_ip);
    if op != arp::Operation::Request || !ours {
        return Ok(Frame::ArpOther);
    }
    let me = ethernet::Address(iface.mac);
    {
        let mut a = arp::Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]);
        a.set_operation(arp::Operation::Reply);
        a.set_target_hardware_addr(sender_mac);
        a.set_target_protocol_addr(sender_ip);
        a.set_source_hardware_addr(me);
        a.set_source_protocol_addr(target_ip);
    }
    let mut eth = ethernet::Packet::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(sender_mac);
    eth.set_src_addr(me);
    Ok(Frame::ArpReplied)
}

/// Puts an Ethernet header for IPv4 in front of the packet.
pub fn encap<B: PacketBuf>(buf: &mut B, src: [u8; 6], dst: [u8; 6]) -> Result<(), DropReason> {
    if !buf.prepend(ethernet::HEADER_LEN) {
        return Err(DropReason::NoHeadroom);
    }
    let mut eth = ethernet::Packet::new_unchecked(buf.data_mut());
    eth.set_dst_addr(ethernet::Address(dst));
    eth.set_src_addr(ethernet::Address(src));
    eth.set_ethertype(ethernet::EtherType::Ipv4);
    Ok(())
}

/// Writes a complete ARP request frame for `target` into `frame` (at least 42 bytes).
pub fn write_arp_request(frame: &mut [u8], src_mac: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) {
    let mut eth = ethernet::Packet::new_unchecked(&mut frame[..]);
    eth.set_dst_addr(ethernet::Address::BROADCAST);
    eth.set_src_addr(ethernet::Address(src_mac));
    eth.set_ethertype(ethernet::EtherType::Arp);
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: ethernet::Address(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: ethernet::Address([0; 6]),
        target_protocol_addr: target,
    }
    .emit(&mut arp::Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]));
}

/// Length of an Ethernet ARP frame (without padding).
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;
