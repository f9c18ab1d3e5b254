//! ISAKMP wire format (RFC 2408 section 3, RFC 2407 section 4.6, RFC 3947): a checked view of
//! the fixed header, an iterator over the generic payload chain, typed parsers for the payload
//! bodies and emitters that build messages. Every length is validated before use; every list is
//! capped, so a hostile message neither panics nor allocates without bound.

use std::net::Ipv4Addr;

/// The fixed ISAKMP header length (RFC 2408 3.1).
pub const HEADER_LEN: usize = 28;
/// The generic payload header length (RFC 2408 3.2).
pub const PAYLOAD_HEADER_LEN: usize = 4;
/// The largest message we accept or build; IKEv1 with PSK never needs more.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;
/// The most payloads one message may chain.
pub const MAX_PAYLOADS: usize = 32;
/// The most proposal payloads in one SA payload.
pub const MAX_PROPOSALS: usize = 16;
/// The most transforms in one proposal.
pub const MAX_TRANSFORMS: usize = 64;
/// The most attributes in one transform.
pub const MAX_ATTRIBUTES: usize = 32;
/// The most SPIs in one delete payload.
pub const MAX_DELETE_SPIS: usize = 64;
/// ISAKMP version 1.0 (RFC 2408 3.1: major 1, minor 0).
pub const VERSION: u8 = 0x10;
/// The IPsec DOI (RFC 2407 4.2).
pub const DOI_IPSEC: u32 = 1;
/// SIT_IDENTITY_ONLY (RFC 2407 4.2.1).
pub const SIT_IDENTITY_ONLY: u32 = 1;
/// The non-ESP marker that precedes IKE on UDP 4500 (RFC 3948 2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// Why a message was refused by the wire layer. The caller only drops the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

type Result<T> = core::result::Result<T, Malformed>;

/// Header flags (RFC 2408 3.1).
pub mod flags {
    /// The payloads after the header are encrypted.
    pub const ENCRYPTION: u8 = 0x01;
    /// Commit.
    pub const COMMIT: u8 = 0x02;
    /// Authentication only.
    pub const AUTH_ONLY: u8 = 0x04;
}

/// An exchange type (RFC 2408 3.1, RFC 2409 5 and 5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// Base (1).
    Base,
    /// Identity protection, i.e. main mode (2).
    Main,
    /// Authentication only (3).
    AuthOnly,
    /// Aggressive (4).
    Aggressive,
    /// Informational (5).
    Informational,
    /// Quick mode (32).
    Quick,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for Exchange {
    fn from(v: u8) -> Self {
        match v {
            1 => Exchange::Base,
            2 => Exchange::Main,
            3 => Exchange::AuthOnly,
            4 => Exchange::Aggressive,
            5 => Exchange::Informational,
            32 => Exchange::Quick,
            v => Exchange::Unknown(v),
        }
    }
}

impl From<Exchange> for u8 {
    fn from(e: Exchange) -> u8 {
        match e {
            Exchange::Base => 1,
            Exchange::Main => 2,
            Exchange::AuthOnly => 3,
            Exchange::Aggressive => 4,
            Exchange::Informational => 5,
            Exchange::Quick => 32,
            Exchange::Unknown(v) => v,
        }
    }
}

/// A payload type (RFC 2408 3.1; NAT-D per RFC 3947 and its draft number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// Security association (1).
    Sa,
    /// Proposal (2), only inside an SA.
    Proposal,
    /// Transform (3), only inside a proposal.
    Transform,
    /// Key exchange (4).
    Ke,
    /// Identification (5).
    Id,
    /// Certificate (6).
    Cert,
    /// Certificate request (7).
    CertReq,
    /// Hash (8).
    Hash,
    /// Signature (9).
    Sig,
    /// Nonce (10).
    Nonce,
    /// Notification (11).
    Notify,
    /// Delete (12).
    Delete,
    /// Vendor ID (13).
    VendorId,
    /// NAT discovery (20, RFC 3947 3.1).
    NatD,
    /// NAT original address (21, RFC 3947 5.2).
    NatOa,
    /// NAT discovery of the drafts (130).
    NatDDraft,
    /// NAT original address of the drafts (131).
    NatOaDraft,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for PayloadType {
    fn from(v: u8) -> Self {
        use PayloadType::*;
        match v {
            1 => Sa,
            2 => Proposal,
            3 => Transform,
            4 => Ke,
            5 => Id,
            6 => Cert,
            7 => CertReq,
            8 => Hash,
            9 => Sig,
            10 => Nonce,
            11 => Notify,
            12 => Delete,
            13 => VendorId,
            20 => NatD,
            21 => NatOa,
            130 => NatDDraft,
            131 => NatOaDraft,
            v => Unknown(v),
        }
    }
}

impl From<PayloadType> for u8 {
    fn from(p: PayloadType) -> u8 {
        use PayloadType::*;
        match p {
            Sa => 1,
            Proposal => 2,
            Transform => 3,
            Ke => 4,
            Id => 5,
            Cert => 6,
            CertReq => 7,
            Hash => 8,
            Sig => 9,
            Nonce => 10,
            Notify => 11,
            Delete => 12,
            VendorId => 13,
            NatD => 20,
            NatOa => 21,
            NatDDraft => 130,
            NatOaDraft => 131,
            Unknown(v) => v,
        }
    }
}

mod field {
    use std::ops::Range;
    pub const ICOOKIE: Range<usize> = 0..8;
    pub const RCOOKIE: Range<usize> = 8..16;
    pub const NEXT: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MSGID: Range<usize> = 20..24;
    pub const LENGTH: Range<usize> = 24..28;
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// A view of an ISAKMP message: the fixed header and the payloads after it.
#[derive(Clone, Copy, Debug)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Wraps a buffer without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Message { buffer }
    }

    /// Wraps untrusted bytes: the header must fit, the version must be 1.x and the length field
    /// must equal the buffer length and stay within [`MAX_MESSAGE_LEN`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let m = Message { buffer };
        m.check_len()?;
        Ok(m)
    }

    /// Checks the header against the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Malformed("shorter than the ISAKMP header"));
        }
        if b.len() > MAX_MESSAGE_LEN {
            return Err(Malformed("message too large"));
        }
        if b[field::VERSION] >> 4 != 1 {
            return Err(Malformed("major version is not 1"));
        }
        if self.length() as usize != b.len() {
            return Err(Malformed("length field disagrees with the datagram"));
        }
        Ok(())
    }

    /// Returns the initiator cookie.
    pub fn icookie(&self) -> [u8; 8] {
        let mut c = [0; 8];
        c.copy_from_slice(&self.buffer.as_ref()[field::ICOOKIE]);
        c
    }

    /// Returns the responder cookie.
    pub fn rcookie(&self) -> [u8; 8] {
        let mut c = [0; 8];
        c.copy_from_slice(&self.buffer.as_ref()[field::RCOOKIE]);
        c
    }

    /// Returns the type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        self.buffer.as_ref()[field::NEXT].into()
    }

    /// Returns the exchange type.
    pub fn exchange(&self) -> Exchange {
        self.buffer.as_ref()[field::EXCHANGE].into()
    }

    /// Returns the flags.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Tells whether the payloads are encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags() & flags::ENCRYPTION != 0
    }

    /// Returns the message id.
    pub fn message_id(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::MSGID])
    }

    /// Returns the length field.
    pub fn length(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Returns the whole message.
    pub fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Returns the header bytes.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    /// Returns the bytes after the header (ciphertext when encrypted).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<'a> Message<&'a [u8]> {
    /// Returns the whole message with the lifetime of the underlying bytes.
    pub fn slice(&self) -> &'a [u8] {
        self.buffer
    }
}

/// The fields of an ISAKMP header, for building messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRepr {
    /// Initiator cookie.
    pub icookie: [u8; 8],
    /// Responder cookie.
    pub rcookie: [u8; 8],
    /// The exchange.
    pub exchange: Exchange,
    /// The flags.
    pub flags: u8,
    /// The message id.
    pub message_id: u32,
}

impl HeaderRepr {
    /// Writes the header for a message whose first payload is `next` and whose total length is
    /// `len`.
    pub fn emit(&self, next: PayloadType, len: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.icookie);
        out.extend_from_slice(&self.rcookie);
        out.push(next.into());
        out.push(VERSION);
        out.push(self.exchange.into());
        out.push(self.flags);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

/// One payload of a chain: its type and body (generic header excluded), and the whole payload's
/// bytes (header included) for the hashes that cover them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// The payload type.
    pub kind: PayloadType,
    /// The body after the generic header.
    pub body: &'a [u8],
    /// The whole payload including its generic header.
    pub whole: &'a [u8],
}

/// Splits a payload chain starting with `first` into payloads. Trailing bytes after the last
/// payload (CBC padding) are allowed only when `padding_ok`.
pub fn payloads(first: PayloadType, mut data: &[u8], padding_ok: bool) -> Result<Vec<RawPayload<'_>>> {
    let mut out = Vec::new();
    let mut kind = first;
    while kind != PayloadType::Unknown(0) {
        if out.len() == MAX_PAYLOADS {
            return Err(Malformed("too many payloads"));
        }
        if data.len() < PAYLOAD_HEADER_LEN {
            return Err(Malformed("truncated payload header"));
        }
        let len = be16(&data[2..4]) as usize;
        if len < PAYLOAD_HEADER_LEN || len > data.len() {
            return Err(Malformed("payload length out of range"));
        }
        let next = PayloadType::from(data[0]);
        out.push(RawPayload { kind, body: &data[PAYLOAD_HEADER_LEN..len], whole: &data[..len] });
        data = &data[len..];
        kind = next;
    }
    if !data.is_empty() && !padding_ok {
        return Err(Malformed("trailing bytes after the last payload"));
    }
    Ok(out)
}

/// Builds a payload chain: each payload is given as type and body; generic headers are added.
#[derive(Debug, Default)]
pub struct Builder {
    items: Vec<(PayloadType, Vec<u8>)>,
}

impl Builder {
    /// Starts an empty chain.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Appends a payload.
    pub fn push(&mut self, kind: PayloadType, body: Vec<u8>) -> &mut Self {
        self.items.push((kind, body));
        self
    }

    /// Returns the type of the first payload (`Unknown(0)`, i.e. none, when empty).
    pub fn first(&self) -> PayloadType {
        self.items.first().map_or(PayloadType::Unknown(0), |i| i.0)
    }

    /// Returns the encoded chain.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (_, body)) in self.items.iter().enumerate() {
            let next = self.items.get(i + 1).map_or(0, |n| u8::from(n.0));
            out.push(next);
            out.push(0);
            out.extend_from_slice(&((body.len() + PAYLOAD_HEADER_LEN) as u16).to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }
}

/// One data attribute (RFC 2408 3.3): basic (16-bit value) or variable (up to 8 bytes here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attr {
    /// The attribute type (AF bit excluded).
    pub kind: u16,
    /// The value.
    pub value: u64,
}

impl Attr {
    /// Returns an attribute.
    pub const fn new(kind: u16, value: u64) -> Self {
        Attr { kind, value }
    }

    fn emit(&self, out: &mut Vec<u8>) {
        if self.value <= u64::from(u16::MAX) {
            out.extend_from_slice(&(self.kind | 0x8000).to_be_bytes());
            out.extend_from_slice(&(self.value as u16).to_be_bytes());
        } else {
            let wide = self.value.to_be_bytes();
            let bytes = if self.value <= u64::from(u32::MAX) { &wide[4..] } else { &wide[..] };
            out.extend_from_slice(&self.kind.to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

fn parse_attrs(mut data: &[u8]) -> Result<Vec<Attr>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if out.len() == MAX_ATTRIBUTES {
            return Err(Malformed("too many attributes"));
        }
        if data.len() < 4 {
            return Err(Malformed("truncated attribute"));
        }
        let t = be16(data);
        if t & 0x8000 != 0 {
            out.push(Attr { kind: t & 0x7fff, value: u64::from(be16(&data[2..])) });
            data = &data[4..];
        } else {
            let len = be16(&data[2..]) as usize;
            if data.len() < 4 + len {
                return Err(Malformed("attribute value overruns the transform"));
            }
            if len > 8 {
                return Err(Malformed("attribute value longer than 8 bytes"));
            }
            let value = data[4..4 + len].iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
            out.push(Attr { kind: t, value });
            data = &data[4 + len..];
        }
    }
    Ok(out)
}

/// A transform payload (RFC 2408 3.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransformRepr {
    /// The transform number.
    pub number: u8,
    /// The transform id (KEY_IKE, ESP_3DES, AH_SHA, ...).
    pub id: u8,
    /// The SA attributes.
    pub attrs: Vec<Attr>,
}

impl TransformRepr {
    /// Returns the value of the first attribute of `kind`.
    pub fn attr(&self, kind: u16) -> Option<u64> {
        self.attrs.iter().find(|a| a.kind == kind).map(|a| a.value)
    }
}

/// A proposal payload (RFC 2408 3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalRepr {
    /// The proposal number; payloads sharing it are a logical AND (RFC 2408 4.2).
    pub number: u8,
    /// The protocol id (PROTO_ISAKMP 1, PROTO_IPSEC_AH 2, PROTO_IPSEC_ESP 3).
    pub protocol: u8,
    /// The SPI (empty for phase 1, 4 bytes for AH and ESP).
    pub spi: Vec<u8>,
    /// The transforms, in order of preference.
    pub transforms: Vec<TransformRepr>,
}

/// An SA payload body (RFC 2408 3.4, RFC 2407 4.6.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaRepr {
    /// The proposals.
    pub proposals: Vec<ProposalRepr>,
}

impl SaRepr {
    /// Parses an SA payload body; the DOI must be IPsec and the situation identity-only.
    pub fn parse(body: &[u8]) -> Result<Self> {
        if body.len() < 8 {
            return Err(Malformed("truncated SA payload"));
        }
        if be32(body) != DOI_IPSEC {
            return Err(Malformed("SA DOI is not IPsec"));
        }
        if be32(&body[4..]) != SIT_IDENTITY_ONLY {
            return Err(Malformed("SA situation is not identity-only"));
        }
        let mut proposals = Vec::new();
        let mut data = &body[8..];
        let mut more = true;
        while more {
            if proposals.len() == MAX_PROPOSALS {
                return Err(Malformed("too many proposals"));
            }
            if data.len() < 8 {
                return Err(Malformed("truncated proposal"));
            }
            let next = data[0];
            let len = be16(&data[2..]) as usize;
            if len < 8 || len > data.len() {
                return Err(Malformed("proposal length out of range"));
            }
            let (p, rest) = data.split_at(len);
            data = rest;
            more = match next {
                0 => false,
                2 => true,
                _ => return Err(Malformed("proposal followed by a non-proposal payload")),
            };
            let spi_len = p[6] as usize;
            let count = p[7] as usize;
            if 8 + spi_len > p.len() {
                return Err(Malformed("proposal SPI overruns the proposal"));
            }
            if count > MAX_TRANSFORMS {
                return Err(Malformed("too many transforms"));
            }
            let mut transforms = Vec::with_capacity(count);
            let mut t = &p[8 + spi_len..];
            for i in 0..count {
                if t.len() < 8 {
                    return Err(Malformed("truncated transform"));
                }
                let tlen = be16(&t[2..]) as usize;
                if tlen < 8 || tlen > t.len() {
                    return Err(Malformed("transform length out of range"));
                }
                let last = i + 1 == count;
                if (t[0] == 0) != last || (t[0] != 0 && t[0] != 3) {
                    return Err(Malformed("transform chain disagrees with the transform count"));
                }
                transforms.push(TransformRepr { number: t[4], id: t[5], attrs: parse_attrs(&t[8..tlen])? });
                t = &t[tlen..];
            }
            if !t.is_empty() {
                return Err(Malformed("bytes after the last transform"));
            }
            proposals.push(ProposalRepr { number: p[4], protocol: p[5], spi: p[8..8 + spi_len].to_vec(), transforms });
        }
        if !data.is_empty() {
            return Err(Malformed("bytes after the last proposal"));
        }
        Ok(SaRepr { proposals })
    }

    /// Returns the SA payload body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&DOI_IPSEC.to_be_bytes());
        out.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
        for (i, p) in self.proposals.iter().enumerate() {
            let mut tf = Vec::new();
            for (j, t) in p.transforms.iter().enumerate() {
                let mut attrs = Vec::new();
                for a in &t.attrs {
                    a.emit(&mut attrs);
                }
                tf.push(if j + 1 == p.transforms.len() { 0 } else { 3 });
                tf.push(0);
                tf.extend_from_slice(&((attrs.len() + 8) as u16).to_be_bytes());
                tf.extend_from_slice(&[t.number, t.id, 0, 0]);
                tf.extend_from_slice(&attrs);
            }
            out.push(if i + 1 == self.proposals.len() { 0 } else { 2 });
            out.push(0);
            out.extend_from_slice(&((8 + p.spi.len() + tf.len()) as u16).to_be_bytes());
            out.extend_from_slice(&[p.number, p.protocol, p.spi.len() as u8, p.transforms.len() as u8]);
            out.extend_from_slice(&p.spi);
            out.extend_from_slice(&tf);
        }
        out
    }
}

/// Identification types (RFC 2407 4.6.2.1).
pub mod id_type {
    /// ID_IPV4_ADDR.
    pub const IPV4_ADDR: u8 = 1;
    /// ID_FQDN.
    pub const FQDN: u8 = 2;
    /// ID_USER_FQDN.
    pub const USER_FQDN: u8 = 3;
    /// ID_IPV4_ADDR_SUBNET.
    pub const IPV4_ADDR_SUBNET: u8 = 4;
    /// ID_IPV4_ADDR_RANGE.
    pub const IPV4_ADDR_RANGE: u8 = 7;
    /// ID_KEY_ID.
    pub const KEY_ID: u8 = 11;
}

/// An identification payload body (RFC 2407 4.6.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdRepr {
    /// The identification type.
    pub id_type: u8,
    /// The IP protocol, 0 for any.
    pub protocol: u8,
    /// The port, 0 for any.
    pub port: u16,
    /// The identification data.
    pub data: Vec<u8>,
}

impl IdRepr {
    /// Parses an ID payload body.
    pub fn parse(body: &[u8]) -> Result<Self> {
        if body.len() < 4 {
            return Err(Malformed("truncated ID payload"));
        }
        Ok(IdRepr { id_type: body[0], protocol: body[1], port: be16(&body[2..]), data: body[4..].to_vec() })
    }

    /// Returns an ID_IPV4_ADDR.
    pub fn ipv4(addr: Ipv4Addr) -> Self {
        IdRepr { id_type: id_type::IPV4_ADDR, protocol: 0, port: 0, data: addr.octets().to_vec() }
    }

    /// Returns an ID_IPV4_ADDR_SUBNET (network address and mask).
    pub fn subnet(addr: Ipv4Addr, len: u8, protocol: u8, port: u16) -> Self {
        let mask = dataplane::route::mask(len);
        let net = u32::from(addr) & mask;
        let mut data = net.to_be_bytes().to_vec();
        data.extend_from_slice(&mask.to_be_bytes());
        IdRepr { id_type: id_type::IPV4_ADDR_SUBNET, protocol, port, data }
    }

    /// Returns the IPv4 network this ID names, as address and prefix length, if it is an
    /// address, a subnet with a contiguous mask, or a range that is exactly a prefix.
    pub fn ipv4_net(&self) -> Option<(Ipv4Addr, u8)> {
        let word = |i: usize| self.data.get(i..i + 4).map(be32);
        match self.id_type {
            id_type::IPV4_ADDR if self.data.len() == 4 => Some((Ipv4Addr::from(word(0)?), 32)),
            id_type::IPV4_ADDR_SUBNET if self.data.len() == 8 => {
                let (a, m) = (word(0)?, word(4)?);
                let len = m.leading_ones();
                (m.checked_shl(len).unwrap_or(0) == 0).then_some((Ipv4Addr::from(a & m), len as u8))
            }
            id_type::IPV4_ADDR_RANGE if self.data.len() == 8 => {
                let (lo, hi) = (word(0)?, word(4)?);
                let span = hi.checked_sub(lo)?;
                let len = 32 - (span.wrapping_add(1)).trailing_zeros().min(32);
                let mask = dataplane::route::mask(len as u8);
                (span.wrapping_add(1).is_power_of_two() || span == u32::MAX)
                    .then_some(())
                    .filter(|_| lo & !mask == 0)
                    .map(|_| (Ipv4Addr::from(lo), len as u8))
            }
            _ => None,
        }
    }

    /// Returns the body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = vec![self.id_type, self.protocol];
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&self.data);
        out
    }
}

/// Notify message types (RFC 2408 3.14.1, RFC 2407 4.6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifyType {
    /// INVALID-PAYLOAD-TYPE (1).
    InvalidPayloadType,
    /// INVALID-COOKIE (4).
    InvalidCookie,
    /// INVALID-EXCHANGE-TYPE (7).
    InvalidExchangeType,
    /// INVALID-MESSAGE-ID (9).
    InvalidMessageId,
    /// INVALID-SPI (11).
    InvalidSpi,
    /// NO-PROPOSAL-CHOSEN (14).
    NoProposalChosen,
    /// BAD-PROPOSAL-SYNTAX (15).
    BadProposalSyntax,
    /// PAYLOAD-MALFORMED (16).
    PayloadMalformed,
    /// INVALID-KEY-INFORMATION (17).
    InvalidKeyInformation,
    /// INVALID-ID-INFORMATION (18).
    InvalidIdInformation,
    /// INVALID-HASH-INFORMATION (23).
    InvalidHashInformation,
    /// AUTHENTICATION-FAILED (24).
    AuthenticationFailed,
    /// RESPONDER-LIFETIME (24576, RFC 2407 4.6.3.1).
    ResponderLifetime,
    /// REPLAY-STATUS (24577).
    ReplayStatus,
    /// INITIAL-CONTACT (24578).
    InitialContact,
    /// Anything else.
    Other(u16),
}

impl From<u16> for NotifyType {
    fn from(v: u16) -> Self {
        use NotifyType::*;
        match v {
            1 => InvalidPayloadType,
            4 => InvalidCookie,
            7 => InvalidExchangeType,
            9 => InvalidMessageId,
            11 => InvalidSpi,
            14 => NoProposalChosen,
            15 => BadProposalSyntax,
            16 => PayloadMalformed,
            17 => InvalidKeyInformation,
            18 => InvalidIdInformation,
            23 => InvalidHashInformation,
            24 => AuthenticationFailed,
            24576 => ResponderLifetime,
            24577 => ReplayStatus,
            24578 => InitialContact,
            v => Other(v),
        }
    }
}

impl From<NotifyType> for u16 {
    fn from(n: NotifyType) -> u16 {
        use NotifyType::*;
        match n {
            InvalidPayloadType => 1,
            InvalidCookie => 4,
            InvalidExchangeType => 7,
            InvalidMessageId => 9,
            InvalidSpi => 11,
            NoProposalChosen => 14,
            BadProposalSyntax => 15,
            PayloadMalformed => 16,
            InvalidKeyInformation => 17,
            InvalidIdInformation => 18,
            InvalidHashInformation => 23,
            AuthenticationFailed => 24,
            ResponderLifetime => 24576,
            ReplayStatus => 24577,
            InitialContact => 24578,
            Other(v) => v,
        }
    }
}

/// A notification payload body (RFC 2408 3.14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifyRepr {
    /// The protocol the SPI belongs to.
    pub protocol: u8,
    /// The message type.
    pub kind: NotifyType,
    /// The SPI (cookies for ISAKMP, 4 bytes for AH/ESP, or none).
    pub spi: Vec<u8>,
    /// The notification data (attributes for RESPONDER-LIFETIME).
    pub data: Vec<u8>,
}

impl NotifyRepr {
    /// Parses a notification body.
    pub fn parse(body: &[u8]) -> Result<Self> {
        if body.len() < 8 {
            return Err(Malformed("truncated notify payload"));
        }
        if be32(body) != DOI_IPSEC && be32(body) != 0 {
            return Err(Malformed("notify DOI is not IPsec"));
        }
        let spi_len = body[5] as usize;
        if 8 + spi_len > body.len() {
            return Err(Malformed("notify SPI overruns the payload"));
        }
        Ok(NotifyRepr {
            protocol: body[4],
            kind: be16(&body[6..]).into(),
            spi: body[8..8 + spi_len].to_vec(),
            data: body[8 + spi_len..].to_vec(),
        })
    }

    /// Returns the attributes carried as data (RESPONDER-LIFETIME).
    pub fn attrs(&self) -> Result<Vec<Attr>> {
        parse_attrs(&self.data)
    }

    /// Builds a notification whose data is a list of attributes.
    pub fn with_attrs(protocol: u8, kind: NotifyType, spi: Vec<u8>, attrs: &[Attr]) -> Self {
        let mut data = Vec::new();
        for a in attrs {
            a.emit(&mut data);
        }
        NotifyRepr { protocol, kind, spi, data }
    }

    /// Returns the body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = DOI_IPSEC.to_be_bytes().to_vec();
        out.push(self.protocol);
        out.push(self.spi.len() as u8);
        out.extend_from_slice(&u16::from(self.kind).to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        out
    }
}

/// A delete payload body (RFC 2408 3.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRepr {
    /// The protocol of the SAs.
    pub protocol: u8,
    /// The SPIs, all of the same size.
    pub spis: Vec<Vec<u8>>,
}

impl DeleteRepr {
    /// Parses a delete body.
    pub fn parse(body: &[u8]) -> Result<Self> {
        if body.len() < 8 {
            return Err(Malformed("truncated delete payload"));
        }
        if be32(body) != DOI_IPSEC {
            return Err(Malformed("delete DOI is not IPsec"));
        }
        let spi_len = body[5] as usize;
        let count = be16(&body[6..]) as usize;
        // A delete of no SPI says nothing, and could not be emitted again (emit takes the SPI
        // size from the first SPI).
        if spi_len == 0 || count == 0 || count > MAX_DELETE_SPIS || body.len() != 8 + spi_len * count {
            return Err(Malformed("delete SPI list does not fit the payload"));
        }
        Ok(DeleteRepr { protocol: body[4], spis: body[8..].chunks(spi_len).map(<[u8]>::to_vec).collect() })
    }

    /// Returns the body.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = DOI_IPSEC.to_be_bytes().to_vec();
        out.push(self.protocol);
        out.push(self.spis.first().map_or(0, Vec::len) as u8);
        out.extend_from_slice(&(self.spis.len() as u16).to_be_bytes());
        for s in &self.spis {
            out.extend_from_slice(s);
        }
        out
    }
}

/// Protocol ids (RFC 2407 4.4.1).
pub mod proto {
    /// PROTO_ISAKMP.
    pub const ISAKMP: u8 = 1;
    /// PROTO_IPSEC_AH.
    pub const AH: u8 = 2;
    /// PROTO_IPSEC_ESP.
    pub const ESP: u8 = 3;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sa_round_trips() {
        let sa = SaRepr {
            proposals: vec![
                ProposalRepr {
                    number: 1,
                    protocol: proto::AH,
                    spi: vec![1, 2, 3, 4],
                    transforms: vec![TransformRepr { number: 1, id: 3, attrs: vec![Attr::new(5, 2)] }],
                },
                ProposalRepr {
                    number: 1,
                    protocol: proto::ESP,
                    spi: vec![5, 6, 7, 8],
                    transforms: vec![
                        TransformRepr { number: 1, id: 12, attrs: vec![Attr::new(6, 128), Attr::new(2, 86_400)] },
                        TransformRepr { number: 2, id: 3, attrs: vec![Attr::new(2, 0x1_0000_0000)] },
                    ],
                },
            ],
        };
        assert_eq!(SaRepr::parse(&sa.emit()).unwrap(), sa);
    }

    #[test]
    fn truncations_never_panic() {
        let sa = SaRepr {
            proposals: vec![ProposalRepr {
                number: 1,
                protocol: proto::ESP,
                spi: vec![5, 6, 7, 8],
                transforms: vec![TransformRepr { number: 1, id: 12, attrs: vec![Attr::new(6, 128)] }],
            }],
        };
        let b = sa.emit();
        for n in 0..b.len() {
            assert!(SaRepr::parse(&b[..n]).is_err());
        }
    }

    #[test]
    fn id_networks() {
        assert_eq!(
            IdRepr::subnet(Ipv4Addr::new(10, 1, 0, 7), 24, 0, 0).ipv4_net(),
            Some((Ipv4Addr::new(10, 1, 0, 0), 24))
        );
        assert_eq!(IdRepr::ipv4(Ipv4Addr::new(1, 2, 3, 4)).ipv4_net(), Some((Ipv4Addr::new(1, 2, 3, 4), 32)));
        let range = |a: [u8; 4], b: [u8; 4]| IdRepr {
            id_type: id_type::IPV4_ADDR_RANGE,
            protocol: 0,
            port: 0,
            data: [a, b].concat(),
        };
        assert_eq!(range([10, 0, 0, 0], [10, 0, 0, 255]).ipv4_net(), Some((Ipv4Addr::new(10, 0, 0, 0), 24)));
        assert_eq!(range([10, 0, 0, 1], [10, 0, 0, 255]).ipv4_net(), None);
        assert_eq!(range([0, 0, 0, 0], [255, 255, 255, 255]).ipv4_net(), Some((Ipv4Addr::UNSPECIFIED, 0)));
        let bad_mask = IdRepr {
            id_type: id_type::IPV4_ADDR_SUBNET,
            protocol: 0,
            port: 0,
            data: vec![10, 0, 0, 0, 255, 0, 255, 0],
        };
        assert_eq!(bad_mask.ipv4_net(), None);
    }

    #[test]
    fn delete_round_trips_and_refuses_an_empty_list() {
        let d = DeleteRepr { protocol: proto::ESP, spis: vec![vec![0, 0, 1, 0], vec![0, 0, 1, 1]] };
        assert_eq!(DeleteRepr::parse(&d.emit()), Ok(d));
        // Found by fuzzing: one-byte SPIs, none of them, parsed, and emitted as SPI size 0.
        assert!(DeleteRepr::parse(&[0, 0, 0, 1, 0, 1, 0, 0]).is_err());
    }
}
