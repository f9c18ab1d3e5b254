//! ESP (RFC 4303) for one SA and one burst: [`seal`] encapsulates and encrypts, [`open`]
//! authenticates, decrypts and decapsulates, in tunnel or transport mode.
//!
//! Layout after sealing: `IPv4 | SPI | seq | IV | payload | pad | pad-len | next-hdr | ICV`,
//! where the payload is the whole inner packet (tunnel) or the original payload (transport).

use crate::buf::{Burst, PacketBuf};
use crate::crypto::{Engine, Job, Region};
use crate::sa::{Mode, Sa};
use crate::stats::{DropReason, Stats};
use crate::wire::{Protocol, esp, ipv4, udp};
use crate::xform::{self, IpInfo, MAX_IP_LEN, Xform};

/// RFC 4303 section 2.6: next header 59 marks a dummy (traffic flow confidentiality) packet.
const NO_NEXT_HEADER: u8 = 59;

/// Encrypts every packet of `burst` (each starting at its IPv4 header) with `sa`; packets that
/// cannot be sealed are dropped and counted.
pub fn seal<E: Engine, B: PacketBuf>(sa: &mut Sa<E::Session>, engine: &mut E, burst: &mut Burst<B>, stats: &mut Stats) {
    xform::run::<E, B, Seal>(sa, engine, burst, stats, &mut xform::CryptoTime::default());
}

/// Decrypts every ESP packet of `burst` (each starting at its outer IPv4 header) received on
/// `sa`; survivors start at the inner IPv4 header (tunnel) or the restored header (transport).
pub fn open<E: Engine, B: PacketBuf>(sa: &mut Sa<E::Session>, engine: &mut E, burst: &mut Burst<B>, stats: &mut Stats) {
    xform::run::<E, B, Open>(sa, engine, burst, stats, &mut xform::CryptoTime::default());
}

/// The explicit IV of every AEAD ESP uses (RFC 4106 section 3.1 for AES-GCM): known when
/// compiling the AEAD sealing, its copy is one store rather than a call to `memcpy`.
const AEAD_IV_LEN: usize = 8;

/// The default padding (RFC 4303 section 2.4), as long as any cipher's block.
const PAD: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// Offsets of one packet's ESP fields: its job is made of them, nothing is copied.
pub(crate) struct Layout {
    /// The IPv4 header's length.
    ip_hlen: u32,
    /// Where the ESP header starts: after the IPv4 header, or after its UDP header (RFC 3948).
    esp_off: u32,
    cipher: Region,
    /// The HMAC's input (ESP header, IV, ciphertext), or GCM's AAD (SPI and sequence number,
    /// RFC 4106 section 5).
    auth: Region,
    icv_off: u32,
    seq: u32,
}

impl Layout {
    fn new(aead: bool, ip_hlen: usize, esp_off: usize, cipher: Region, seq: u32) -> Self {
        let cipher_end = cipher.off as usize + cipher.len as usize;
        let auth_len = if aead { esp::HEADER_LEN } else { cipher_end - esp_off };
        Layout {
            ip_hlen: ip_hlen as u32,
            esp_off: esp_off as u32,
            cipher,
            auth: Region::new(esp_off, auth_len),
            icv_off: cipher_end as u32,
            seq,
        }
    }

    fn job<'a>(&self, data: &'a mut [u8]) -> Job<'a> {
        let iv = self.esp_off as usize + esp::HEADER_LEN;
        Job::new(data, self.cipher, self.auth, iv, self.icv_off as usize)
    }
}

pub(crate) struct Seal;

/// What ESP reads of an SA's transform, mode and encapsulation, decoded when the SA is made
/// (and when its encapsulation changes) and kept in its per-packet fields: the per-packet work
/// then has no lookup of the transform's sizes and no decoding of the mode, and a group of
/// one packet (thousands of SAs) does not decode them either. Bytes, not `usize`s: it sits in
/// the SA's hot lines, which the transform and protocol themselves have left.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EspPlan {
    tunnel: bool,
    aead: bool,
    /// The UDP header's length with NAT traversal (RFC 3948), else 0.
    encap_len: u8,
    iv_len: u8,
    icv_len: u8,
    /// The cipher's padding alignment (a power of two) minus one.
    align_mask: u8,
}

impl EspPlan {
    /// Returns the plan of an SA with these algorithms, mode and encapsulation.
    pub(crate) fn new(xf: crate::crypto::Transform, mode: Mode, encap: bool) -> Self {
        let cipher = xf.cipher();
        debug_assert!(!cipher.is_aead() || cipher.iv_len() == AEAD_IV_LEN);
        // Every size is at most 16 bytes (UDP's header 8): they fit in a byte.
        EspPlan {
            tunnel: mode == Mode::Tunnel,
            aead: cipher.is_aead(),
            encap_len: if encap { udp::HEADER_LEN as u8 } else { 0 },
            iv_len: cipher.iv_len() as u8,
            icv_len: xf.icv_len() as u8,
            align_mask: (cipher.pad_align() - 1) as u8,
        }
    }

    /// True for a CBC cipher: the only ones with an IV that are not AEADs.
    fn cbc(self) -> bool {
        !self.aead && self.iv_len != 0
    }
}

impl<S> Xform<S> for Seal {
    /// The bytes accounted to the SA.
    type Prep = u32;
    type Plan = EspPlan;
    const SEAL: bool = true;

    #[inline(always)]
    fn plan(sa: &Sa<S>) -> EspPlan {
        sa.esp_plan
    }

    #[inline(always)]
    fn prepare<'b, B: PacketBuf>(plan: &EspPlan, sa: &mut Sa<S>, buf: &'b mut B) -> Result<(u32, Job<'b>), DropReason> {
        // One copy of the work per mode and kind of cipher, each without the others' branches.
        match (plan.tunnel, plan.aead) {
            (true, true) => seal_as::<S, B, true, true>(plan, sa, buf),
            (true, false) => seal_as::<S, B, true, false>(plan, sa, buf),
            (false, true) => seal_as::<S, B, false, true>(plan, sa, buf),
            (false, false) => seal_as::<S, B, false, false>(plan, sa, buf),
        }
    }

    fn finish<B: PacketBuf>(_: &mut Sa<S>, _buf: &mut B, bytes: &u32) -> Result<u32, DropReason> {
        Ok(*bytes)
    }
}

/// [`Seal::prepare`] for an SA in tunnel mode or not, with an AEAD or not.
#[inline(always)]
fn seal_as<'b, S, B: PacketBuf, const TUNNEL: bool, const AEAD: bool>(
    plan: &EspPlan,
    sa: &mut Sa<S>,
    buf: &'b mut B,
) -> Result<(u32, Job<'b>), DropReason> {
    let ip = xform::ip_info(buf)?;
    let iv_len = if AEAD { AEAD_IV_LEN } else { usize::from(plan.iv_len) };
    let (icv_len, align_mask) = (usize::from(plan.icv_len), usize::from(plan.align_mask));
    // Tunnel: a new header in front and the whole packet as payload.
    // Transport: the packet's own header in front and its payload as payload.
    let (hlen, payload_len, next_header) = if TUNNEL {
        (ipv4::HEADER_LEN, ip.total, Protocol::IpIp)
    } else {
        if ip.src != sa.src() || ip.dst != sa.dst() {
            return Err(DropReason::TransportAddrMismatch);
        }
        (ip.hlen, ip.total - ip.hlen, ip.protocol)
    };
    let ct_len = (payload_len + 2 + align_mask) & !align_mask;
    let pad_len = ct_len - payload_len - 2;
    let esp_off = hlen + usize::from(plan.encap_len);
    let grow_front = esp_off + esp::HEADER_LEN + iv_len - (ip.total - payload_len);
    let grow_back = pad_len + 2 + icv_len;
    let total = ip.total + grow_front + grow_back;
    if total > MAX_IP_LEN {
        return Err(DropReason::TooBig);
    }
    buf.grow(grow_front, grow_back)?;
    let seq = sa.next_seq().ok_or(DropReason::SeqExhausted)?;
    let bytes = ip.total;
    let iv_off = esp_off + esp::HEADER_LEN;
    let d = buf.data_mut();
    if TUNNEL {
        xform::write_outer_header(sa, d, total, &ip);
    } else {
        d.copy_within(grow_front..grow_front + hlen, 0);
        xform::set_proto_len(&mut d[..hlen], sa.outer.protocol(), total);
    }
    if let Some(e) = sa.encap {
        // RFC 3948 section 2.1: the UDP checksum is sent as zero.
        let mut u = udp::Packet::new_unchecked(&mut d[hlen..esp_off]);
        u.set_src_port(e.src_port);
        u.set_dst_port(e.dst_port);
        u.set_len((total - hlen) as u16);
        u.set_checksum(0);
    }
    let mut h = esp::Packet::new_unchecked(&mut d[esp_off..]);
    h.set_spi(sa.spi);
    h.set_seq_number(seq);
    let iv = &mut d[iv_off..iv_off + iv_len];
    if AEAD {
        // RFC 4106 section 3.1: the explicit IV must be unique per key; a per-SA random
        // base plus the never-repeating sequence number is.
        iv.copy_from_slice(&sa.gcm_iv(seq).to_be_bytes());
    } else {
        crate::sa::fill_iv(iv);
    }
    let ct_off = iv_off + iv_len;
    let trailer = ct_off + payload_len;
    // RFC 4303 section 2.4: the default padding is 1, 2, 3... At most 15 bytes (CBC
    // blocks are 16 bytes at most); when 16 fit, one fixed copy writes them, and the pad
    // length, next header and ICV overwrite what lies past the padding.
    match d.get_mut(trailer..trailer + PAD.len()) {
        Some(t) => t.copy_from_slice(&PAD),
        None => d[trailer..trailer + pad_len].copy_from_slice(&PAD[..pad_len]),
    }
    d[trailer + pad_len] = pad_len as u8;
    d[trailer + pad_len + 1] = next_header.into();
    let job = Layout::new(AEAD, hlen, esp_off, Region::new(ct_off, ct_len), seq).job(d);
    Ok((bytes as u32, job))
}

pub(crate) struct Open;

impl<S> Xform<S> for Open {
    type Prep = Layout;
    type Plan = ();
    const SEAL: bool = false;

    fn plan(_: &Sa<S>) {}

    fn prepare<'b, B: PacketBuf>(_: &(), sa: &mut Sa<S>, buf: &'b mut B) -> Result<(Layout, Job<'b>), DropReason> {
        let ip: IpInfo = xform::ip_info(buf)?;
        let d = buf.data();
        // An SA set up for NAT traversal takes ESP in UDP (RFC 3948), any other plain ESP.
        let esp_off = match (sa.encap.is_some(), ip.protocol) {
            (false, Protocol::Esp) => ip.hlen,
            (true, Protocol::Udp) => {
                let u = udp::Packet::new_checked(&d[ip.hlen..ip.total]).map_err(|_| DropReason::Truncated)?;
                if usize::from(u.len()) != ip.total - ip.hlen {
                    return Err(DropReason::Truncated);
                }
                ip.hlen + udp::HEADER_LEN
            }
            _ => return Err(DropReason::BadNextHeader),
        };
        let plan = sa.esp_plan;
        let (iv_len, icv_len) = (usize::from(plan.iv_len), usize::from(plan.icv_len));
        let fixed = esp_off + esp::HEADER_LEN + iv_len + icv_len;
        if ip.total < fixed + 2 {
            return Err(DropReason::Truncated);
        }
        let h = esp::Packet::new_unchecked(&d[esp_off..]);
        if h.spi() != sa.spi {
            return Err(DropReason::SpiMismatch);
        }
        let seq = h.seq_number();
        // RFC 4303 3.4.3: the replay check comes before the ICV is computed.
        sa.replay.check(seq)?;
        let ct_len = ip.total - fixed;
        if plan.cbc() && !ct_len.is_multiple_of(usize::from(plan.align_mask) + 1) {
            return Err(DropReason::BadCipherLen);
        }
        let ct_off = esp_off + esp::HEADER_LEN + iv_len;
        let layout = Layout::new(plan.aead, ip.hlen, esp_off, Region::new(ct_off, ct_len), seq);
        let job = layout.job(buf.data_mut());
        Ok((layout, job))
    }

    fn finish<B: PacketBuf>(sa: &mut Sa<S>, buf: &mut B, prep: &Layout) -> Result<u32, DropReason> {
        // RFC 4303 3.4.3: the window moves only once the ICV verified.
        sa.replay.accept(prep.seq)?;
        let ct_off = prep.cipher.off as usize;
        let ct_end = ct_off + prep.cipher.len as usize;
        let d = buf.data_mut();
        let (pad_len, next_header) = (usize::from(d[ct_end - 2]), d[ct_end - 1]);
        if pad_len + 2 > prep.cipher.len as usize {
            return Err(DropReason::BadPadding);
        }
        let pad = &d[ct_end - 2 - pad_len..ct_end - 2];
        if pad.iter().enumerate().any(|(i, &b)| b != i as u8 + 1) {
            return Err(DropReason::BadPadding);
        }
        let ip_hlen = prep.ip_hlen as usize;
        let front = ct_off - ip_hlen;
        let back = d.len() - (ct_end - 2 - pad_len);
        match sa.mode {
            Mode::Tunnel => {
                if next_header != u8::from(Protocol::IpIp) {
                    return Err(DropReason::BadNextHeader);
                }
                buf.trim(back);
                buf.adj(ct_off);
                xform::check_inner(buf)?;
            }
            Mode::Transport => {
                if next_header == NO_NEXT_HEADER {
                    return Err(DropReason::BadNextHeader);
                }
                d.copy_within(0..ip_hlen, front);
                buf.trim(back);
                buf.adj(front);
                let total = buf.len();
                xform::set_proto_len(&mut buf.data_mut()[..ip_hlen], Protocol::from(next_header), total);
            }
        }
        Ok(buf.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Cipher;

    /// Sealing writes an AEAD's explicit IV with a length fixed when compiling: every AEAD
    /// cipher must have that length.
    #[test]
    fn every_aead_cipher_has_the_fixed_explicit_iv_length() {
        let aead: Vec<Cipher> = Cipher::ALL.into_iter().filter(|c| c.is_aead()).collect();
        assert!(!aead.is_empty());
        for c in aead {
            assert_eq!(c.iv_len(), AEAD_IV_LEN, "{c:?}");
        }
    }

    /// A plan says what its transform, mode and encapsulation say, for every one of them.
    #[test]
    fn an_esp_plan_keeps_every_size_and_kind() {
        use crate::crypto::{Auth, Transform};
        for cipher in Cipher::ALL {
            for auth in Auth::ALL {
                let Ok(xf) = Transform::new(cipher, auth) else { continue };
                for mode in [Mode::Tunnel, Mode::Transport] {
                    for encap in [false, true] {
                        let p = EspPlan::new(xf, mode, encap);
                        assert_eq!(p.tunnel, mode == Mode::Tunnel);
                        assert_eq!(p.aead, cipher.is_aead());
                        assert_eq!(usize::from(p.encap_len), if encap { udp::HEADER_LEN } else { 0 });
                        assert_eq!(usize::from(p.iv_len), cipher.iv_len(), "{xf:?}");
                        assert_eq!(usize::from(p.icv_len), xf.icv_len());
                        assert_eq!(usize::from(p.align_mask) + 1, cipher.pad_align());
                        assert_eq!(p.cbc(), cipher.is_cbc());
                    }
                }
            }
        }
    }
}
