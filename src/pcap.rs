//! Classic libpcap capture files, read and written whole: the file layer of `ipsecgw sa`, never
//! on the packet path.
//!
//! Reads both byte orders and both timestamp precisions (micro- and nanosecond magic) and the
//! link types that carry IPv4: Ethernet (whose 14-byte header is set aside per packet and put
//! back on output; non-IPv4 frames are skipped and counted), raw IP and raw IPv4. A malformed
//! file gives a [`PcapError`], never a panic: every length is checked before it is used.

use std::fmt;
use std::path::Path;

/// The magic number of a file with microsecond timestamps (pcap-savefile(5)).
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// The magic number of a file with nanosecond timestamps.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// The major version of every classic pcap file.
const VERSION_MAJOR: u16 = 2;
/// The minor version writers have used since libpcap 0.4.
const VERSION_MINOR: u16 = 4;
/// Bytes of the file header.
pub const FILE_HEADER_LEN: usize = 24;
/// Bytes of each record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// Bytes of an Ethernet II header (destination, source, EtherType).
pub const ETH_HEADER_LEN: usize = 14;
/// The EtherType of IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// libpcap's largest snapshot length (`MAXIMUM_SNAPLEN`): what we write, so no record we
/// produce is ever longer than the file says it may be.
pub const MAX_SNAPLEN: u32 = 262_144;

/// The link layer of every packet in a file (the header's `network` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1): each packet starts with a 14-byte Ethernet header.
    Ethernet,
    /// LINKTYPE_RAW (101): each packet starts at its IP header.
    Raw,
    /// LINKTYPE_IPV4 (228): each packet is an IPv4 packet.
    Ipv4,
}

impl LinkType {
    /// Returns the LINKTYPE_ number written in the file header.
    pub fn code(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Ipv4 => 228,
        }
    }

    /// Parses a LINKTYPE_ number; `None` for the link types we do not read.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(LinkType::Ethernet),
            101 => Some(LinkType::Raw),
            228 => Some(LinkType::Ipv4),
            _ => None,
        }
    }
}

/// The byte order of a file's integers, as its magic number reveals it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// Little-endian (written by x86 hosts).
    Little,
    /// Big-endian.
    Big,
}

/// What the fractional part of each timestamp counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsPrecision {
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

/// Why a capture file could not be read or written.
#[derive(Debug)]
pub enum PcapError {
    /// The file could not be opened, read or written.
    Io(std::io::Error),
    /// The file ends inside its header, a record header or a record's data.
    Truncated {
        /// Offset of the structure the file ends in.
        offset: usize,
        /// What was being read there.
        what: &'static str,
    },
    /// The first four bytes are no pcap magic number (pcapng is not read).
    BadMagic(u32),
    /// A major version other than 2.
    BadVersion(u16, u16),
    /// A link type whose packets do not start at (or after an Ethernet header before) IPv4.
    UnsupportedLinkType(u32),
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcapError::Io(e) => write!(f, "{e}"),
            PcapError::Truncated { offset, what } => write!(f, "file ends inside the {what} at byte {offset}"),
            PcapError::BadMagic(m) => {
                write!(f, "not a classic pcap file (magic {m:#010x}; pcapng must be converted with editcap -F pcap)")
            }
            PcapError::BadVersion(major, minor) => write!(f, "unsupported pcap version {major}.{minor}"),
            PcapError::UnsupportedLinkType(t) => {
                write!(f, "unsupported link type {t}: only Ethernet (1), raw IP (101) and IPv4 (228) are read")
            }
        }
    }
}

impl std::error::Error for PcapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PcapError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for PcapError {
    fn from(e: std::io::Error) -> Self {
        PcapError::Io(e)
    }
}

/// One packet of a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Seconds of the timestamp.
    pub ts_sec: u32,
    /// Fraction of the timestamp, in the file's [`TsPrecision`].
    pub ts_frac: u32,
    /// The Ethernet header the packet was captured with (Ethernet files only).
    pub eth: Option<[u8; ETH_HEADER_LEN]>,
    /// The packet from its IP header on, as captured.
    pub packet: Vec<u8>,
}

/// A whole capture: the file header's facts and every packet we could use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Link type of every record.
    pub link: LinkType,
    /// Byte order of the file.
    pub order: ByteOrder,
    /// Timestamp precision of the file.
    pub precision: TsPrecision,
    /// Snapshot length the file header declares.
    pub snaplen: u32,
    /// The packets, in file order.
    pub records: Vec<Record>,
    /// Ethernet frames that carry no IPv4 packet (other EtherTypes, VLAN tags, runts), left out.
    pub skipped: usize,
}

/// Reads fixed-width integers in one byte order from a byte slice. Callers check the length
/// first: an out-of-range offset would be a bug of this module, not a malformed file.
struct Reader<'a> {
    bytes: &'a [u8],
    order: ByteOrder,
}

impl Reader<'_> {
    fn u16(&self, off: usize) -> u16 {
        let b = [self.bytes[off], self.bytes[off + 1]];
        match self.order {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    fn u32(&self, off: usize) -> u32 {
        let b = [self.bytes[off], self.bytes[off + 1], self.bytes[off + 2], self.bytes[off + 3]];
        match self.order {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }
}

impl Capture {
    /// Creates an empty capture to which records can be added.
    pub fn new(link: LinkType, order: ByteOrder, precision: TsPrecision) -> Self {
        Capture { link, order, precision, snaplen: MAX_SNAPLEN, records: Vec::new(), skipped: 0 }
    }

    /// Parses a whole file. A file that ends exactly after a record is complete; one that ends
    /// anywhere else is truncated.
    pub fn parse(bytes: &[u8]) -> Result<Self, PcapError> {
        if bytes.len() < FILE_HEADER_LEN {
            return Err(PcapError::Truncated { offset: 0, what: "file header" });
        }
        let magic_le = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let (order, precision) = match magic_le {
            MAGIC_MICROS => (ByteOrder::Little, TsPrecision::Micros),
            MAGIC_NANOS => (ByteOrder::Little, TsPrecision::Nanos),
            m if m.swap_bytes() == MAGIC_MICROS => (ByteOrder::Big, TsPrecision::Micros),
            m if m.swap_bytes() == MAGIC_NANOS => (ByteOrder::Big, TsPrecision::Nanos),
            m => return Err(PcapError::BadMagic(m)),
        };
        let r = Reader { bytes, order };
        let (major, minor) = (r.u16(4), r.u16(6));
        if major != VERSION_MAJOR {
            return Err(PcapError::BadVersion(major, minor));
        }
        let snaplen = r.u32(16);
        let network = r.u32(20);
        let link = LinkType::from_code(network).ok_or(PcapError::UnsupportedLinkType(network))?;
        let mut cap = Capture { link, order, precision, snaplen, records: Vec::new(), skipped: 0 };
        let mut off = FILE_HEADER_LEN;
        while off < bytes.len() {
            if bytes.len() - off < RECORD_HEADER_LEN {
                return Err(PcapError::Truncated { offset: off, what: "record header" });
            }
            let (ts_sec, ts_frac, incl_len) = (r.u32(off), r.u32(off + 4), r.u32(off + 8) as usize);
            let data_off = off + RECORD_HEADER_LEN;
            if bytes.len() - data_off < incl_len {
                return Err(PcapError::Truncated { offset: off, what: "record data" });
            }
            let data = &bytes[data_off..data_off + incl_len];
            off = data_off + incl_len;
            let (eth, packet) = match link {
                LinkType::Raw | LinkType::Ipv4 => (None, data),
                LinkType::Ethernet => match split_ethernet(data) {
                    Some((eth, packet)) => (Some(eth), packet),
                    None => {
                        cap.skipped += 1;
                        continue;
                    }
                },
            };
            cap.records.push(Record { ts_sec, ts_frac, eth, packet: packet.to_vec() });
        }
        Ok(cap)
    }

    /// Returns the file bytes of the capture, in its byte order and precision. Ethernet records
    /// without a saved header get a zero one carrying the IPv4 EtherType.
    pub fn emit(&self) -> Vec<u8> {
        let len: usize = self.records.iter().map(|r| RECORD_HEADER_LEN + self.link_len() + r.packet.len()).sum();
        let mut out = Vec::with_capacity(FILE_HEADER_LEN + len);
        let put16 = |out: &mut Vec<u8>, v: u16| match self.order {
            ByteOrder::Little => out.extend_from_slice(&v.to_le_bytes()),
            ByteOrder::Big => out.extend_from_slice(&v.to_be_bytes()),
        };
        let put32 = |out: &mut Vec<u8>, v: u32| match self.order {
            ByteOrder::Little => out.extend_from_slice(&v.to_le_bytes()),
            ByteOrder::Big => out.extend_from_slice(&v.to_be_bytes()),
        };
        put32(&mut out, if self.precision == TsPrecision::Nanos { MAGIC_NANOS } else { MAGIC_MICROS });
        put16(&mut out, VERSION_MAJOR);
        put16(&mut out, VERSION_MINOR);
        put32(&mut out, 0); // thiszone: timestamps are UTC
        put32(&mut out, 0); // sigfigs: always 0 in practice
        put32(&mut out, self.snaplen);
        put32(&mut out, self.link.code());
        for r in &self.records {
            // A record is at most an IPv4 packet plus an Ethernet header, far below u32::MAX.
            let n = (self.link_len() + r.packet.len()) as u32;
            put32(&mut out, r.ts_sec);
            put32(&mut out, r.ts_frac);
            put32(&mut out, n);
            put32(&mut out, n);
            if self.link == LinkType::Ethernet {
                out.extend_from_slice(&r.eth.unwrap_or_else(ipv4_ethernet_header));
            }
            out.extend_from_slice(&r.packet);
        }
        out
    }

    /// Reads and parses the file at `path`.
    pub fn read_file(path: &Path) -> Result<Self, PcapError> {
        Self::parse(&std::fs::read(path)?)
    }

    /// Writes the capture to the file at `path`.
    pub fn write_file(&self, path: &Path) -> Result<(), PcapError> {
        Ok(std::fs::write(path, self.emit())?)
    }

    fn link_len(&self) -> usize {
        if self.link == LinkType::Ethernet { ETH_HEADER_LEN } else { 0 }
    }
}

/// Splits an Ethernet frame into its header and IPv4 packet; `None` for anything else.
fn split_ethernet(frame: &[u8]) -> Option<([u8; ETH_HEADER_LEN], &[u8])> {
    let (header, packet) = frame.split_first_chunk::<ETH_HEADER_LEN>()?;
    (u16::from_be_bytes([header[12], header[13]]) == ETHERTYPE_IPV4).then_some((*header, packet))
}

/// Returns an Ethernet header with zero addresses and the IPv4 EtherType.
fn ipv4_ethernet_header() -> [u8; ETH_HEADER_LEN] {
    let mut h = [0u8; ETH_HEADER_LEN];
    h[12..].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINKS: [LinkType; 3] = [LinkType::Ethernet, LinkType::Raw, LinkType::Ipv4];
    const ORDERS: [ByteOrder; 2] = [ByteOrder::Little, ByteOrder::Big];
    const PRECISIONS: [TsPrecision; 2] = [TsPrecision::Micros, TsPrecision::Nanos];

    fn sample(link: LinkType, order: ByteOrder, precision: TsPrecision) -> Capture {
        let mut cap = Capture::new(link, order, precision);
        for (i, len) in [20usize, 0, 1, 61, 1500].into_iter().enumerate() {
            let eth = (link == LinkType::Ethernet).then(|| {
                let mut h = ipv4_ethernet_header();
                h[..12].copy_from_slice(&[i as u8; 12]);
                h
            });
            let packet = (0..len).map(|b| (b * 7 + i) as u8).collect();
            cap.records.push(Record { ts_sec: 1_700_000_000 + i as u32, ts_frac: 999_999 - i as u32, eth, packet });
        }
        cap
    }

    #[test]
    fn round_trips_every_link_type_order_and_precision() {
        for link in LINKS {
            for order in ORDERS {
                for precision in PRECISIONS {
                    let cap = sample(link, order, precision);
                    let bytes = cap.emit();
                    let back = Capture::parse(&bytes).unwrap();
                    assert_eq!(back, cap, "{link:?} {order:?} {precision:?}");
                    assert_eq!(back.emit(), bytes);
                }
            }
        }
    }

    #[test]
    fn header_fields_are_in_the_files_byte_order() {
        let le = sample(LinkType::Raw, ByteOrder::Little, TsPrecision::Micros).emit();
        assert_eq!(&le[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&le[20..24], &[101, 0, 0, 0]);
        let be = sample(LinkType::Ipv4, ByteOrder::Big, TsPrecision::Nanos).emit();
        assert_eq!(&be[..4], &[0xa1, 0xb2, 0x3c, 0x4d]);
        assert_eq!(&be[20..24], &[0, 0, 0, 228]);
        // The first record: ts_sec, ts_frac, incl_len, orig_len.
        assert_eq!(&be[24..40], &[0x65, 0x53, 0xf1, 0, 0, 0x0f, 0x42, 0x3f, 0, 0, 0, 20, 0, 0, 0, 20]);
    }

    #[test]
    fn truncation_at_every_offset_is_an_error_unless_at_a_record_boundary() {
        for link in LINKS {
            for order in ORDERS {
                let cap = sample(link, order, TsPrecision::Micros);
                let bytes = cap.emit();
                let mut boundaries = vec![FILE_HEADER_LEN];
                for r in &cap.records {
                    let last = *boundaries.last().unwrap();
                    boundaries.push(last + RECORD_HEADER_LEN + cap.link_len() + r.packet.len());
                }
                for cut in 0..bytes.len() {
                    match (Capture::parse(&bytes[..cut]), boundaries.iter().position(|&b| b == cut)) {
                        (Ok(c), Some(n)) => assert_eq!(c.records, cap.records[..n], "cut {cut}"),
                        (Err(PcapError::Truncated { .. }), None) => {}
                        (other, at) => panic!("{link:?} {order:?} cut {cut} (boundary {at:?}): {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_other_files() {
        let mut bytes = sample(LinkType::Raw, ByteOrder::Little, TsPrecision::Micros).emit();
        bytes[20] = 113; // LINKTYPE_LINUX_SLL
        assert!(matches!(Capture::parse(&bytes), Err(PcapError::UnsupportedLinkType(113))));
        bytes[4] = 3;
        assert!(matches!(Capture::parse(&bytes), Err(PcapError::BadVersion(3, 4))));
        let pcapng = [0x0a, 0x0d, 0x0d, 0x0a].iter().chain(&[0u8; 24]).copied().collect::<Vec<_>>();
        assert!(matches!(Capture::parse(&pcapng), Err(PcapError::BadMagic(0x0a0d_0d0a))));
    }

    #[test]
    fn a_huge_record_length_is_truncation_not_an_allocation() {
        let mut bytes = sample(LinkType::Raw, ByteOrder::Big, TsPrecision::Micros).emit();
        bytes[FILE_HEADER_LEN + 8..FILE_HEADER_LEN + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(Capture::parse(&bytes), Err(PcapError::Truncated { offset: FILE_HEADER_LEN, .. })));
    }

    #[test]
    fn ethernet_frames_without_ipv4_are_skipped_and_counted() {
        let mut cap = sample(LinkType::Ethernet, ByteOrder::Little, TsPrecision::Micros);
        let mut bytes = cap.emit();
        // Turn the second record (an empty packet) into an ARP frame, and append a 10-byte runt.
        let second = FILE_HEADER_LEN + RECORD_HEADER_LEN + ETH_HEADER_LEN + 20 + RECORD_HEADER_LEN;
        bytes[second + 12..second + 14].copy_from_slice(&0x0806u16.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 10, 0, 0, 0]);
        bytes.extend_from_slice(&[0xff; 10]);
        let back = Capture::parse(&bytes).unwrap();
        assert_eq!(back.skipped, 2);
        cap.records.remove(1);
        assert_eq!(back.records, cap.records);
    }

    #[test]
    fn ethernet_records_without_a_header_get_an_ipv4_one() {
        let mut cap = Capture::new(LinkType::Ethernet, ByteOrder::Little, TsPrecision::Micros);
        cap.records.push(Record { ts_sec: 1, ts_frac: 2, eth: None, packet: vec![0x45; 20] });
        let back = Capture::parse(&cap.emit()).unwrap();
        assert_eq!(back.records[0].eth, Some(ipv4_ethernet_header()));
        assert_eq!(back.records[0].packet, vec![0x45; 20]);
    }
}
