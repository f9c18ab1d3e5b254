//! AH (RFC 4302) for one SA and one burst: [`seal`] inserts the header and its ICV, [`open`]
//! verifies and removes it, in tunnel or transport mode.
//!
//! The ICV covers the whole IP packet with the fields that change in transit zeroed
//! (RFC 4302 section 3.3.3.1.1.1: TOS, flags and fragment offset, TTL, header checksum, and
//! the mutable options) and the ICV field itself zeroed. The header is saved before zeroing
//! and restored after the crypto batch, so the packet leaves with its real values.

use crate::buf::{Burst, PacketBuf};
use crate::crypto::{Engine, Job, JobStatus, Region, icv_eq};
use crate::sa::{Mode, Sa};
use crate::stats::{DropReason, Stats};
use crate::wire::{Protocol, ah, ipv4};
use crate::xform::{self, MAX_IP_LEN, Xform};

/// Largest IPv4 header: IHL 15.
const MAX_IP_HEADER: usize = 60;

/// Authenticates every packet of `burst` (each starting at its IPv4 header) with `sa`.
pub fn seal<E: Engine, B: PacketBuf>(sa: &mut Sa<E::Session>, engine: &mut E, burst: &mut Burst<B>, stats: &mut Stats) {
    xform::run::<E, B, Seal>(sa, engine, burst, stats, &mut xform::CryptoTime::default());
}

/// Verifies and removes AH from every packet of `burst` received on `sa`.
pub fn open<E: Engine, B: PacketBuf>(sa: &mut Sa<E::Session>, engine: &mut E, burst: &mut Burst<B>, stats: &mut Stats) {
    xform::run::<E, B, Open>(sa, engine, burst, stats, &mut xform::CryptoTime::default());
}

/// Returns the AH length for an ICV: RFC 4302 section 2.2 pads it to 32 bits for IPv4.
fn ah_len(icv_len: usize) -> usize {
    (ah::FIXED_LEN + icv_len).next_multiple_of(4)
}

/// One packet's AH layout, and its IP header as it must leave.
pub(crate) struct Layout {
    hlen: usize,
    ah_len: usize,
    header: [u8; MAX_IP_HEADER],
    icv: [u8; 16],
    icv_len: usize,
    seq: u32,
    bytes: usize,
}

/// Saves the IP header of `d` into `layout` and zeroes its mutable fields for the ICV.
fn save_and_zero_mutable(d: &mut [u8], layout: &mut Layout) -> Result<(), DropReason> {
    let hlen = layout.hlen;
    layout.header[..hlen].copy_from_slice(&d[..hlen]);
    let mut ip = ipv4::Packet::new_unchecked(&mut d[..hlen]);
    ip.set_tos(0);
    ip.set_dont_frag(false);
    ip.set_more_frags(false);
    ip.set_frag_offset(0);
    ip.set_ttl(0);
    ip.set_checksum(0);
    if !ipv4::zero_mutable_options(ip.options_mut()) {
        return Err(DropReason::BadIpHeader);
    }
    Ok(())
}

fn restore_header(d: &mut [u8], layout: &Layout) {
    d[..layout.hlen].copy_from_slice(&layout.header[..layout.hlen]);
}

/// The job of a packet: no cipher, the ICV over the whole packet, written into the ICV field.
fn whole_packet_job<'a>(data: &'a mut [u8], layout: &Layout) -> Job<'a> {
    let len = data.len();
    Job::new(data, Region::new(0, 0), Region::new(0, len), 0, layout.hlen + ah::FIXED_LEN)
}

pub(crate) struct Seal;

impl<S> Xform<S> for Seal {
    type Prep = Layout;
    type Plan = ();
    const SEAL: bool = true;

    fn plan(_: &Sa<S>) {}

    fn prepare<'b, B: PacketBuf>(_: &(), sa: &mut Sa<S>, buf: &'b mut B) -> Result<(Layout, Job<'b>), DropReason> {
        let ip = xform::ip_info(buf)?;
        let icv_len = sa.xf.icv_len();
        let ah_len = ah_len(icv_len);
        let (hlen, next_header, grow) = match sa.mode {
            Mode::Tunnel => (ipv4::HEADER_LEN, Protocol::IpIp, ipv4::HEADER_LEN + ah_len),
            Mode::Transport => {
                if ip.src != sa.src() || ip.dst != sa.dst() {
                    return Err(DropReason::TransportAddrMismatch);
                }
                (ip.hlen, ip.protocol, ah_len)
            }
        };
        let total = ip.total + grow;
        if total > MAX_IP_LEN {
            return Err(DropReason::TooBig);
        }
        if buf.headroom() < grow {
            return Err(DropReason::NoHeadroom);
        }
        let seq = sa.next_seq().ok_or(DropReason::SeqExhausted)?;
        buf.prepend(grow);
        let d = buf.data_mut();
        match sa.mode {
            Mode::Tunnel => xform::write_outer_header(sa, d, total, &ip),
            Mode::Transport => {
                d.copy_within(grow..grow + hlen, 0);
                xform::set_proto_len(&mut d[..hlen], Protocol::Ah, total);
            }
        }
        let mut h = ah::Packet::new_unchecked(&mut d[hlen..hlen + ah_len]);
        h.set_next_header(next_header);
        h.set_payload_len((ah_len / 4 - 2) as u8);
        h.set_reserved(0);
        h.set_spi(sa.spi);
        h.set_seq_number(seq);
        h.icv_mut().fill(0);
        let mut layout =
            Layout { hlen, ah_len, header: [0; MAX_IP_HEADER], icv: [0; 16], icv_len, seq, bytes: ip.total };
        save_and_zero_mutable(d, &mut layout)?;
        let job = whole_packet_job(buf.data_mut(), &layout);
        Ok((layout, job))
    }

    fn after_crypto(prep: &mut Layout, job: &mut Job<'_>) {
        restore_header(job.data, prep);
    }

    fn finish<B: PacketBuf>(_: &mut Sa<S>, _buf: &mut B, prep: &Layout) -> Result<u32, DropReason> {
        Ok(prep.bytes as u32)
    }
}

pub(crate) struct Open;

impl<S> Xform<S> for Open {
    type Prep = Layout;
    type Plan = ();
    const SEAL: bool = false;
    const ENGINE_SEALS: bool = true;

    fn plan(_: &Sa<S>) {}

    fn prepare<'b, B: PacketBuf>(_: &(), sa: &mut Sa<S>, buf: &'b mut B) -> Result<(Layout, Job<'b>), DropReason> {
        let ip = xform::ip_info(buf)?;
        if ip.protocol != Protocol::Ah {
            return Err(DropReason::BadNextHeader);
        }
        let icv_len = sa.xf.icv_len();
        let ah_len = ah_len(icv_len);
        let d = buf.data_mut();
        let h = ah::Packet::new_checked(&d[ip.hlen..]).map_err(|_| DropReason::Truncated)?;
        if h.header_len() != ah_len {
            return Err(DropReason::BadAhLength);
        }
        if h.spi() != sa.spi {
            return Err(DropReason::SpiMismatch);
        }
        let seq = h.seq_number();
        sa.replay.check(seq)?;
        let mut layout =
            Layout { hlen: ip.hlen, ah_len, header: [0; MAX_IP_HEADER], icv: [0; 16], icv_len, seq, bytes: 0 };
        let icv_off = ip.hlen + ah::FIXED_LEN;
        layout.icv[..icv_len].copy_from_slice(&d[icv_off..icv_off + icv_len]);
        d[icv_off..icv_off + ah_len - ah::FIXED_LEN].fill(0);
        save_and_zero_mutable(d, &mut layout)?;
        let job = whole_packet_job(buf.data_mut(), &layout);
        Ok((layout, job))
    }

    /// Checks the ICV the engine wrote into the field against the one received, in constant
    /// time.
    fn after_crypto(prep: &mut Layout, job: &mut Job<'_>) {
        restore_header(job.data, prep);
        let icv_off = prep.hlen + ah::FIXED_LEN;
        let computed = &job.data[icv_off..icv_off + prep.icv_len];
        if job.status == JobStatus::Done && !icv_eq(computed, &prep.icv[..prep.icv_len]) {
            job.status = JobStatus::AuthFailed;
        }
    }

    fn finish<B: PacketBuf>(sa: &mut Sa<S>, buf: &mut B, prep: &Layout) -> Result<u32, DropReason> {
        sa.replay.accept(prep.seq)?;
        let next_header = buf.data()[prep.hlen];
        match sa.mode {
            Mode::Tunnel => {
                if next_header != u8::from(Protocol::IpIp) {
                    return Err(DropReason::BadNextHeader);
                }
                buf.adj(prep.hlen + prep.ah_len);
                xform::check_inner(buf)?;
            }
            Mode::Transport => {
                buf.data_mut().copy_within(0..prep.hlen, prep.ah_len);
                buf.adj(prep.ah_len);
                let total = buf.len();
                xform::set_proto_len(&mut buf.data_mut()[..prep.hlen], Protocol::from(next_header), total);
            }
        }
        Ok(buf.len() as u32)
    }
}
