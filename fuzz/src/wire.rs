//! Target `wire`: every `dataplane::wire` view over untrusted bytes.
//!
//! The input is tried as each header at once (Ethernet, ARP, IPv4, ICMP, UDP, TCP, ESP, AH), and
//! again at the payload of the Ethernet and IPv4 headers: `new_checked`, then every getter, then
//! `Repr::parse` and an emit/parse round trip where a `Repr` exists, and checksums filled then
//! verified on a copy.

use std::net::Ipv4Addr;

use dataplane::wire::{ah, arp, esp, ethernet, icmp, ipv4, tcp, udp};

/// Runs every view over `data`.
pub fn wire(data: &[u8]) {
    let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 7));
    views(data, src, dst);
    if let Ok(eth) = ethernet::Packet::new_checked(data) {
        views(eth.payload(), src, dst);
    }
    if let Ok(ip) = ipv4::Packet::new_checked(data) {
        views(ip.payload(), ip.src_addr(), ip.dst_addr());
    }
}

fn views(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    ethernet_view(data);
    arp_view(data);
    ipv4_view(data);
    icmp_view(data);
    udp_view(data, src, dst);
    tcp_view(data, src, dst);
    esp_view(data);
    ah_view(data);
}

fn ethernet_view(data: &[u8]) {
    let Ok(p) = ethernet::Packet::new_checked(data) else {
        assert!(data.len() < ethernet::HEADER_LEN);
        return;
    };
    let _ = (p.dst_addr().to_string(), p.src_addr().is_broadcast(), p.src_addr().is_multicast());
    let _ = (p.ethertype(), p.payload().len());
    let repr = ethernet::Repr::parse(&p).expect("a checked header parses");
    assert_eq!(u16::from(repr.ethertype), u16::from_be_bytes([data[12], data[13]]));
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ethernet::Packet::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..ethernet::HEADER_LEN], "Ethernet emit gives the header back");
}

fn arp_view(data: &[u8]) {
    let Ok(p) = arp::Packet::new_checked(data) else { return };
    let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len(), p.operation());
    let _ = (p.source_hardware_addr(), p.source_protocol_addr(), p.target_hardware_addr(), p.target_protocol_addr());
    let Ok(repr) = arp::Repr::parse(&p) else { return };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut arp::Packet::new_unchecked(&mut out[..]));
    let back = arp::Repr::parse(&arp::Packet::new_checked(&out[..]).expect("emitted ARP checks")).expect("parses");
    assert_eq!(back, repr);
    assert_eq!(&out[..], &data[..arp::PACKET_LEN], "an accepted ARP packet is emitted byte for byte");
}

fn ipv4_view(data: &[u8]) {
    let Ok(p) = ipv4::Packet::new_checked(data) else { return };
    let _ = (p.version(), p.tos(), p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment());
    let _ = (p.ttl(), p.protocol(), p.protocol().to_string(), p.checksum(), p.src_addr(), p.dst_addr());
    let hl = usize::from(p.header_len());
    assert!(hl >= ipv4::HEADER_LEN && hl <= usize::from(p.total_len()) && usize::from(p.total_len()) <= data.len());
    assert_eq!(p.options().len(), hl - ipv4::HEADER_LEN);
    assert_eq!(p.payload().len(), usize::from(p.total_len()) - hl);
    let valid = ipv4::options_are_valid(p.options());
    let mut opts = p.options().to_vec();
    assert_eq!(ipv4::zero_mutable_options(&mut opts), valid);
    if !valid {
        assert_eq!(opts, p.options(), "a malformed option list is left untouched");
    }
    for &k in p.options() {
        let _ = ipv4::option_is_immutable(k);
    }
    // Filling the checksum makes it verify.
    let mut copy = data[..usize::from(p.total_len())].to_vec();
    let mut c = ipv4::Packet::new_checked(&mut copy[..]).expect("the same bytes check");
    c.fill_checksum();
    assert!(c.verify_checksum(), "a filled IPv4 checksum verifies");
    let repr = ipv4::Repr::parse(&p).expect("a checked header parses");
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut out[..]));
    let q = ipv4::Packet::new_checked(&out[..]).expect("an emitted header checks");
    assert!(q.verify_checksum());
    assert_eq!(ipv4::Repr::parse(&q).expect("parses"), repr, "IPv4 emit/parse round trip");
}

fn icmp_view(data: &[u8]) {
    let Ok(p) = icmp::Packet::new_checked(data) else { return };
    let _ = (p.msg_type(), p.code(), p.checksum(), p.echo_ident(), p.echo_seq_no(), p.next_hop_mtu());
    let _ = (p.data().len(), p.verify_checksum());
    let mut copy = data.to_vec();
    let mut c = icmp::Packet::new_checked(&mut copy[..]).expect("the same bytes check");
    c.fill_checksum();
    assert!(c.verify_checksum(), "a filled ICMP checksum verifies");
}

fn udp_view(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(p) = udp::Packet::new_checked(data) else { return };
    let _ = (p.src_port(), p.dst_port(), p.is_empty(), p.checksum(), p.verify_checksum(&src, &dst));
    assert_eq!(p.payload().len(), usize::from(p.len()) - udp::HEADER_LEN);
    let mut copy = data.to_vec();
    let mut c = udp::Packet::new_checked(&mut copy[..]).expect("the same bytes check");
    c.fill_checksum(&src, &dst);
    assert!(c.verify_checksum(&src, &dst), "a filled UDP checksum verifies");
    let repr = udp::Repr::parse(&p).expect("a checked header parses");
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    repr.emit(&mut udp::Packet::new_unchecked(&mut out[..]));
    let q = udp::Packet::new_checked(&out[..]).expect("an emitted header checks");
    assert_eq!(udp::Repr::parse(&q).expect("parses"), repr, "UDP emit/parse round trip");
}

fn tcp_view(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(p) = tcp::Packet::new_checked(data) else { return };
    let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.header_len(), p.flags());
    let _ = (p.syn(), p.ack(), p.fin(), p.rst(), p.window(), p.checksum(), p.urgent());
    let _ = (p.flags().contains(tcp::Flags::SYN | tcp::Flags::ACK), p.verify_checksum(&src, &dst));
    assert_eq!(p.options().len() + p.payload().len() + tcp::HEADER_LEN, data.len());
    let mut copy = data.to_vec();
    let mut c = tcp::Packet::new_checked(&mut copy[..]).expect("the same bytes check");
    c.fill_checksum(&src, &dst);
    assert!(c.verify_checksum(&src, &dst), "a filled TCP checksum verifies");
}

fn esp_view(data: &[u8]) {
    let Ok(p) = esp::Packet::new_checked(data) else { return };
    assert_eq!(p.payload().len(), data.len() - esp::HEADER_LEN);
    let repr = esp::Repr::parse(&p).expect("a checked header parses");
    assert_eq!((repr.spi, repr.seq_number), (p.spi(), p.seq_number()));
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut esp::Packet::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..esp::HEADER_LEN]);
}

fn ah_view(data: &[u8]) {
    let Ok(p) = ah::Packet::new_checked(data) else { return };
    let _ = (p.next_header(), p.payload_len(), p.reserved(), p.spi(), p.seq_number());
    assert_eq!(p.header_len(), (usize::from(p.payload_len()) + 2) * 4);
    assert_eq!(p.icv().len() + ah::FIXED_LEN, p.header_len());
    assert_eq!(p.payload().len() + p.header_len(), data.len());
    let repr = ah::Repr::parse(&p).expect("a checked header parses");
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ah::Packet::new_unchecked(&mut out[..]));
    let q = ah::Packet::new_checked(&out[..]).expect("an emitted header checks");
    assert_eq!(ah::Repr::parse(&q).expect("parses"), repr, "AH emit/parse round trip");
    assert!(q.icv().iter().all(|&b| b == 0));
}

/// Returns valid headers to start from: the frames the pipeline target seeds with cover the
/// rest (IPv4 with options, ESP, AH, UDP and TCP inside).
pub fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    let arp_req = [
        &[0xffu8; 6][..],
        &[2, 0, 0, 1, 0, 1],
        &[8, 6],
        &[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 1, 0, 1, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2],
    ]
    .concat();
    v.push(arp_req);
    // IPv4 with a Router Alert and a Record Route option, carrying ICMP echo.
    let mut ip =
        vec![0x48, 0, 0, 0, 0, 1, 0, 0, 64, 1, 0, 0, 10, 1, 0, 10, 10, 2, 0, 20, 148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0];
    ip.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g']);
    let len = ip.len() as u16;
    ip[2..4].copy_from_slice(&len.to_be_bytes());
    ipv4::Packet::new_unchecked(&mut ip[..]).fill_checksum();
    icmp::Packet::new_unchecked(&mut ip[32..]).fill_checksum();
    v.push(ip.clone());
    v.push([&[2u8, 0, 0, 1, 0, 1, 2, 0, 0, 1, 9, 9, 8, 0][..], &ip].concat());
    // TCP SYN with an MSS option.
    let mut t = vec![0u8; 24];
    t[0..2].copy_from_slice(&1234u16.to_be_bytes());
    t[2..4].copy_from_slice(&80u16.to_be_bytes());
    t[12] = 6 << 4;
    t[13] = 0x02;
    t[20..24].copy_from_slice(&[2, 4, 5, 0xb4]);
    v.push(t);
    v
}
