//! SA payload contents: the phase 1 proposal of a peer and its selection (RFC 2409 Appendix A),
//! the phase 2 proposals of an `/ip ipsec proposal` and their selection (RFC 2407 4.4-4.5) with
//! the manual's `proposal-check` lifetime logic.

use dataplane::crypto::{Auth, Cipher, Transform};
use dataplane::spd::IpsecProtocols;

use super::crypto::{Group, HashAlg, P1Cipher};
use super::wire::{Attr, ProposalRepr, SaRepr, TransformRepr, proto};
use crate::config::{AuthAlgorithm, EncAlgorithm, Peer, ProposalCheck};

/// Phase 1 attribute types (RFC 2409 Appendix A).
pub mod p1attr {
    /// Encryption algorithm.
    pub const ENC: u16 = 1;
    /// Hash algorithm.
    pub const HASH: u16 = 2;
    /// Authentication method.
    pub const AUTH: u16 = 3;
    /// Group description.
    pub const GROUP: u16 = 4;
    /// Life type.
    pub const LIFE_TYPE: u16 = 11;
    /// Life duration.
    pub const LIFE_DURATION: u16 = 12;
    /// Key length.
    pub const KEY_LEN: u16 = 14;
    /// Authentication method: pre-shared key.
    pub const AUTH_PSK: u64 = 1;
    /// Life type: seconds.
    pub const LIFE_SECONDS: u64 = 1;
    /// Life type: kilobytes.
    pub const LIFE_KILOBYTES: u64 = 2;
    /// The transform id KEY_IKE (RFC 2407 4.4.2).
    pub const KEY_IKE: u8 = 1;
}

/// Phase 2 attribute types (RFC 2407 4.5).
pub mod p2attr {
    /// SA life type.
    pub const LIFE_TYPE: u16 = 1;
    /// SA life duration.
    pub const LIFE_DURATION: u16 = 2;
    /// Group description (PFS).
    pub const GROUP: u16 = 3;
    /// Encapsulation mode.
    pub const ENCAP: u16 = 4;
    /// Authentication algorithm.
    pub const AUTH: u16 = 5;
    /// Key length.
    pub const KEY_LEN: u16 = 6;
    /// Encapsulation: tunnel.
    pub const TUNNEL: u64 = 1;
    /// Encapsulation: transport.
    pub const TRANSPORT: u64 = 2;
    /// Encapsulation: UDP-encapsulated tunnel (RFC 3947 5.1).
    pub const UDP_TUNNEL: u64 = 3;
    /// Encapsulation: UDP-encapsulated transport (RFC 3947 5.1).
    pub const UDP_TRANSPORT: u64 = 4;
    /// The drafts' UDP-encapsulated tunnel.
    pub const UDP_TUNNEL_DRAFT: u64 = 61443;
    /// The drafts' UDP-encapsulated transport.
    pub const UDP_TRANSPORT_DRAFT: u64 = 61444;
    /// The lifetime in seconds when none is proposed (RFC 2407 4.5).
    pub const DEFAULT_LIFE_SECONDS: u64 = 28_800;
}

/// The negotiated phase 1 algorithms and lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    /// The cipher.
    pub cipher: P1Cipher,
    /// The hash and PRF.
    pub hash: HashAlg,
    /// The Diffie-Hellman group.
    pub group: Group,
    /// The lifetime in seconds.
    pub lifetime: u64,
}

impl Suite {
    /// Returns the suite a peer is configured with.
    pub fn of_peer(peer: &Peer) -> Self {
        Suite {
            cipher: P1Cipher::from_config(peer.enc_algorithm),
            hash: HashAlg::from_config(peer.hash_algorithm),
            group: Group::from_config(peer.dh_group),
            lifetime: peer.lifetime.0.max(1),
        }
    }

    fn transform(&self) -> TransformRepr {
        let (enc, key_len) = self.cipher.attrs();
        let mut attrs = vec![
            Attr::new(p1attr::ENC, enc),
            Attr::new(p1attr::HASH, self.hash.attr()),
            Attr::new(p1attr::AUTH, p1attr::AUTH_PSK),
            Attr::new(p1attr::GROUP, self.group.number()),
            Attr::new(p1attr::LIFE_TYPE, p1attr::LIFE_SECONDS),
            Attr::new(p1attr::LIFE_DURATION, self.lifetime),
        ];
        if let Some(k) = key_len {
            attrs.push(Attr::new(p1attr::KEY_LEN, k));
        }
        TransformRepr { number: 1, id: p1attr::KEY_IKE, attrs }
    }

    /// Returns the initiator's phase 1 SA: one proposal with one transform.
    pub fn sa(&self) -> SaRepr {
        SaRepr {
            proposals: vec![ProposalRepr {
                number: 1,
                protocol: proto::ISAKMP,
                spi: Vec::new(),
                transforms: vec![self.transform()],
            }],
        }
    }
}

/// Reads a phase 1 transform; `None` if it uses something we do not support.
fn read_p1(t: &TransformRepr) -> Option<Suite> {
    if t.id != p1attr::KEY_IKE || t.attr(p1attr::AUTH) != Some(p1attr::AUTH_PSK) {
        return None;
    }
    let cipher = P1Cipher::from_attrs(t.attr(p1attr::ENC)?, t.attr(p1attr::KEY_LEN))?;
    let hash = match t.attr(p1attr::HASH)? {
        1 => HashAlg::Md5,
        2 => HashAlg::Sha1,
        4 => HashAlg::Sha256,
        _ => return None,
    };
    let group = Group::from_number(t.attr(p1attr::GROUP)?)?;
    let mut lifetime = 0;
    let mut kind = None;
    for a in &t.attrs {
        match a.kind {
            p1attr::LIFE_TYPE => kind = Some(a.value),
            p1attr::LIFE_DURATION if kind == Some(p1attr::LIFE_SECONDS) => lifetime = a.value,
            _ => {}
        }
    }
    Some(Suite { cipher, hash, group, lifetime })
}

/// Chooses the first transform of the initiator's phase 1 SA that matches the peer's
/// configuration. Returns the suite (lifetime: the shorter of proposed and configured) and the
/// SA to answer with (the chosen proposal with only the chosen transform).
pub fn choose_phase1(offer: &SaRepr, peer: &Peer) -> Option<(Suite, SaRepr)> {
    let want = Suite::of_peer(peer);
    for p in offer.proposals.iter().filter(|p| p.protocol == proto::ISAKMP) {
        for t in &p.transforms {
            let Some(s) = read_p1(t) else { continue };
            if (s.cipher, s.hash, s.group) == (want.cipher, want.hash, want.group) {
                let lifetime = if s.lifetime == 0 { want.lifetime } else { s.lifetime.min(want.lifetime) };
                let reply = SaRepr { proposals: vec![ProposalRepr { transforms: vec![t.clone()], ..p.clone() }] };
                return Some((Suite { lifetime, ..s }, reply));
            }
        }
    }
    None
}

/// Checks the responder's phase 1 answer against what we offered.
pub fn accept_phase1(offered: &Suite, answer: &SaRepr) -> Option<Suite> {
    let [p] = &answer.proposals[..] else { return None };
    let [t] = &p.transforms[..] else { return None };
    let s = read_p1(t)?;
    if (s.cipher, s.hash, s.group) != (offered.cipher, offered.hash, offered.group) {
        return None;
    }
    let lifetime = if s.lifetime == 0 { offered.lifetime } else { s.lifetime.min(offered.lifetime) };
    Some(Suite { lifetime, ..s })
}

/// The ESP transform id, key length attribute and dataplane cipher of an `enc-algorithm`.
fn esp_cipher(e: EncAlgorithm) -> (u8, Option<u64>, Cipher) {
    match e {
        EncAlgorithm::Null => (11, None, Cipher::Null),
        EncAlgorithm::Des => (2, None, Cipher::DesCbc),
        EncAlgorithm::Tdes => (3, None, Cipher::TdesCbc),
        EncAlgorithm::Aes128 => (12, Some(128), Cipher::AesCbc128),
        EncAlgorithm::Aes192 => (12, Some(192), Cipher::AesCbc192),
        EncAlgorithm::Aes256 => (12, Some(256), Cipher::AesCbc256),
        EncAlgorithm::Aes128Gcm => (20, Some(128), Cipher::AesGcm128),
        EncAlgorithm::Aes256Gcm => (20, Some(256), Cipher::AesGcm256),
    }
}

/// The authentication algorithm attribute, AH transform id and dataplane transform of an
/// `auth-algorithm` (RFC 2407 4.4.3, 4.5; SHA2-256 per RFC 4868).
fn auth_alg(a: AuthAlgorithm) -> Option<(u64, u8, Auth)> {
    match a {
        AuthAlgorithm::Md5 => Some((1, 2, Auth::HmacMd5_96)),
        AuthAlgorithm::Sha1 => Some((2, 3, Auth::HmacSha1_96)),
        AuthAlgorithm::Sha256 => Some((5, 5, Auth::HmacSha256_128)),
        AuthAlgorithm::Null => None,
    }
}

/// What a phase 2 negotiation proposes or chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildParams {
    /// The protocols (`ipsec-protocols` of the policy).
    pub protocols: IpsecProtocols,
    /// Tunnel (true) or transport.
    pub tunnel: bool,
    /// UDP encapsulation (NAT traversal).
    pub udp: bool,
    /// Lifetime in seconds.
    pub life_secs: u64,
    /// Lifetime in kilobytes, 0 for none.
    pub life_kb: u64,
    /// The PFS group.
    pub pfs: Option<Group>,
}

impl ChildParams {
    fn encap(&self) -> u64 {
        match (self.tunnel, self.udp) {
            (true, false) => p2attr::TUNNEL,
            (false, false) => p2attr::TRANSPORT,
            (true, true) => p2attr::UDP_TUNNEL,
            (false, true) => p2attr::UDP_TRANSPORT,
        }
    }

    fn common_attrs(&self) -> Vec<Attr> {
        let mut a =
            vec![Attr::new(p2attr::LIFE_TYPE, p1attr::LIFE_SECONDS), Attr::new(p2attr::LIFE_DURATION, self.life_secs)];
        if self.life_kb > 0 {
            a.push(Attr::new(p2attr::LIFE_TYPE, p1attr::LIFE_KILOBYTES));
            a.push(Attr::new(p2attr::LIFE_DURATION, self.life_kb));
        }
        if let Some(g) = self.pfs {
            a.push(Attr::new(p2attr::GROUP, g.number()));
        }
        a.push(Attr::new(p2attr::ENCAP, self.encap()));
        a
    }
}

/// The SPIs we offer, per protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spis {
    /// ESP.
    pub esp: Option<u32>,
    /// AH.
    pub ah: Option<u32>,
}

/// Builds the initiator's phase 2 SA: one proposal (number 1), AH and/or ESP payloads with the
/// product of the proposal's algorithms as transforms.
pub fn child_offer(params: &ChildParams, enc: &[EncAlgorithm], auth: &[AuthAlgorithm], spis: Spis) -> SaRepr {
    let common = params.common_attrs();
    let mut proposals = Vec::new();
    if let Some(spi) = spis.ah {
        let transforms = auth
            .iter()
            .filter_map(|&a| auth_alg(a))
            .enumerate()
            .map(|(i, (attr, id, _))| {
                let mut attrs = common.clone();
                attrs.push(Attr::new(p2attr::AUTH, attr));
                TransformRepr { number: i as u8 + 1, id, attrs }
            })
            .collect();
        proposals.push(ProposalRepr { number: 1, protocol: proto::AH, spi: spi.to_be_bytes().to_vec(), transforms });
    }
    if let Some(spi) = spis.esp {
        let mut transforms = Vec::new();
        for &e in enc {
            let (id, key_len, cipher) = esp_cipher(e);
            for &a in auth {
                let auth = auth_alg(a);
                if Transform::new(cipher, auth.map_or(Auth::Null, |x| x.2)).is_err() {
                    continue;
                }
                let mut attrs = common.clone();
                if let Some((attr, _, _)) = auth {
                    attrs.push(Attr::new(p2attr::AUTH, attr));
                }
                if let Some(k) = key_len {
                    attrs.push(Attr::new(p2attr::KEY_LEN, k));
                }
                transforms.push(TransformRepr { number: transforms.len() as u8 + 1, id, attrs });
            }
            // An AEAD cipher pairs with no integrity even when the proposal lists none as null.
            if cipher.is_aead() && !auth.contains(&AuthAlgorithm::Null) {
                let mut attrs = common.clone();
                attrs.extend(key_len.map(|k| Attr::new(p2attr::KEY_LEN, k)));
                transforms.push(TransformRepr { number: transforms.len() as u8 + 1, id, attrs });
            }
        }
        proposals.push(ProposalRepr { number: 1, protocol: proto::ESP, spi: spi.to_be_bytes().to_vec(), transforms });
    }
    SaRepr { proposals }
}

/// A phase 2 transform as read from the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ReadTransform {
    xf: Transform,
    encap: u64,
    life_secs: u64,
    life_kb: u64,
    group: Option<u64>,
}

fn read_p2(protocol: u8, t: &TransformRepr) -> Option<ReadTransform> {
    let auth = match t.attr(p2attr::AUTH) {
        None => Auth::Null,
        Some(1) => Auth::HmacMd5_96,
        Some(2) => Auth::HmacSha1_96,
        Some(5) => Auth::HmacSha256_128,
        Some(_) => return None,
    };
    let key_len = t.attr(p2attr::KEY_LEN);
    let xf = match protocol {
        proto::ESP => {
            let cipher = match (t.id, key_len) {
                (11, None) => Cipher::Null,
                (2, None) => Cipher::DesCbc,
                (3, None) => Cipher::TdesCbc,
                (12, None | Some(128)) => Cipher::AesCbc128,
                (12, Some(192)) => Cipher::AesCbc192,
                (12, Some(256)) => Cipher::AesCbc256,
                (20, Some(128)) => Cipher::AesGcm128,
                (20, Some(256)) => Cipher::AesGcm256,
                _ => return None,
            };
            Transform::new(cipher, auth).ok()?
        }
        proto::AH => {
            let by_id = match t.id {
                2 => Auth::HmacMd5_96,
                3 => Auth::HmacSha1_96,
                5 => Auth::HmacSha256_128,
                _ => return None,
            };
            if auth != by_id {
                return None;
            }
            Transform::auth_only(auth).ok()?
        }
        _ => return None,
    };
    let (mut life_secs, mut life_kb, mut kind) = (None, 0, None);
    for a in &t.attrs {
        match a.kind {
            p2attr::LIFE_TYPE => kind = Some(a.value),
            p2attr::LIFE_DURATION => match kind {
                Some(p1attr::LIFE_SECONDS) => life_secs = Some(a.value),
                Some(p1attr::LIFE_KILOBYTES) => life_kb = a.value,
                _ => return None,
            },
            _ => {}
        }
    }
    let encap = t.attr(p2attr::ENCAP)?;
    Some(ReadTransform {
        xf,
        encap,
        life_secs: life_secs.unwrap_or(p2attr::DEFAULT_LIFE_SECONDS),
        life_kb,
        group: t.attr(p2attr::GROUP),
    })
}

fn encap_matches(encap: u64, tunnel: bool) -> bool {
    match encap {
        p2attr::TUNNEL | p2attr::UDP_TUNNEL | p2attr::UDP_TUNNEL_DRAFT => tunnel,
        p2attr::TRANSPORT | p2attr::UDP_TRANSPORT | p2attr::UDP_TRANSPORT_DRAFT => !tunnel,
        _ => false,
    }
}

fn is_udp(encap: u64) -> bool {
    matches!(encap, p2attr::UDP_TUNNEL | p2attr::UDP_TRANSPORT | p2attr::UDP_TUNNEL_DRAFT | p2attr::UDP_TRANSPORT_DRAFT)
}

/// One chosen protocol of a phase 2 negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The algorithms.
    pub xf: Transform,
    /// The peer's SPI for this protocol (our outbound SPI).
    pub peer_spi: u32,
}

/// The outcome of a phase 2 negotiation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildChoice {
    /// ESP, if negotiated.
    pub esp: Option<Chosen>,
    /// AH, if negotiated.
    pub ah: Option<Chosen>,
    /// Lifetime in seconds.
    pub life_secs: u64,
    /// Lifetime in kilobytes, 0 for none.
    pub life_kb: u64,
    /// The PFS group.
    pub pfs: Option<Group>,
    /// UDP encapsulation was negotiated.
    pub udp: bool,
    /// The responder shortened the lifetimes (claim): RESPONDER-LIFETIME is due.
    pub shortened: bool,
}

/// Why the responder refused every proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No proposal had acceptable algorithms, mode and group.
    NoProposal,
    /// The algorithms matched but the lifetimes failed `proposal-check`.
    Lifetime,
}

/// Applies `proposal-check` to one lifetime (0 = unlimited). Returns the lifetime to use and
/// whether it was shortened, or `None` to refuse.
pub fn check_lifetime(check: ProposalCheck, proposed: u64, configured: u64) -> Option<(u64, bool)> {
    let inf = |v: u64| if v == 0 { u64::MAX } else { v };
    let (p, c) = (inf(proposed), inf(configured));
    match check {
        ProposalCheck::Obey => Some((proposed, false)),
        ProposalCheck::Strict => (p <= c).then_some((proposed, false)),
        ProposalCheck::Exact => (p == c).then_some((proposed, false)),
        ProposalCheck::Claim => Some(if c < p { (configured, true) } else { (proposed, false) }),
    }
}

/// What the responder's configuration accepts.
#[derive(Clone, Debug)]
pub struct Acceptable<'a> {
    /// The policy's protocols.
    pub protocols: IpsecProtocols,
    /// The policy's mode.
    pub tunnel: bool,
    /// The proposal's ciphers.
    pub enc: &'a [EncAlgorithm],
    /// The proposal's integrity algorithms.
    pub auth: &'a [AuthAlgorithm],
    /// The proposal's PFS group.
    pub pfs: Option<Group>,
    /// The proposal's lifetime in seconds.
    pub life_secs: u64,
    /// The proposal's lifetime in kilobytes, 0 for none.
    pub life_kb: u64,
    /// The peer's `proposal-check`.
    pub check: ProposalCheck,
}

impl Acceptable<'_> {
    fn allows(&self, protocol: u8, xf: Transform) -> bool {
        let auth_ok = |a: Auth| {
            self.auth.iter().any(|&x| auth_alg(x).map_or(Auth::Null, |v| v.2) == a)
                || (a == Auth::Null && xf.cipher().is_aead())
        };
        match protocol {
            proto::AH => auth_ok(xf.auth()),
            proto::ESP => self.enc.iter().any(|&e| esp_cipher(e).2 == xf.cipher()) && auth_ok(xf.auth()),
            _ => false,
        }
    }
}

/// Chooses from the initiator's phase 2 SA. Returns the choice and the SA payload to answer
/// with (our SPIs, the chosen transforms unchanged).
pub fn choose_child(offer: &SaRepr, ok: &Acceptable<'_>, ours: Spis) -> Result<(ChildChoice, SaRepr), Refusal> {
    let want_ah = matches!(ok.protocols, IpsecProtocols::Ah | IpsecProtocols::AhEsp);
    let want_esp = matches!(ok.protocols, IpsecProtocols::Esp | IpsecProtocols::AhEsp);
    let mut refusal = Refusal::NoProposal;
    let mut start = 0;
    while start < offer.proposals.len() {
        let number = offer.proposals[start].number;
        let end = start + offer.proposals[start..].iter().take_while(|p| p.number == number).count();
        let group = &offer.proposals[start..end];
        start = end;
        let has = |proto: u8| group.iter().filter(|p| p.protocol == proto).count();
        if has(proto::AH) != usize::from(want_ah) || has(proto::ESP) != usize::from(want_esp) || group.len() > 2 {
            continue;
        }
        let mut choice =
            ChildChoice { esp: None, ah: None, life_secs: 0, life_kb: 0, pfs: None, udp: false, shortened: false };
        let mut answer = Vec::new();
        let mut all = true;
        let mut first: Option<ReadTransform> = None;
        for p in group {
            let Ok(spi) = <[u8; 4]>::try_from(&p.spi[..]) else {
                all = false;
                break;
            };
            let pick = p.transforms.iter().find_map(|t| {
                let r = read_p2(p.protocol, t)?;
                let group_ok = match (ok.pfs, r.group) {
                    (Some(g), Some(n)) => g.number() == n,
                    (Some(_), None) => false,
                    (None, Some(n)) => Group::from_number(n).is_some(),
                    (None, None) => true,
                };
                let same = first.as_ref().is_none_or(|f| f.group == r.group && f.encap == r.encap);
                (ok.allows(p.protocol, r.xf) && encap_matches(r.encap, ok.tunnel) && group_ok && same)
                    .then(|| (t.clone(), r))
            });
            let Some((t, r)) = pick else {
                all = false;
                break;
            };
            let chosen = Chosen { xf: r.xf, peer_spi: u32::from_be_bytes(spi) };
            let my_spi = if p.protocol == proto::AH {
                choice.ah = Some(chosen);
                ours.ah
            } else {
                choice.esp = Some(chosen);
                ours.esp
            };
            answer.push(ProposalRepr {
                number,
                protocol: p.protocol,
                spi: my_spi.unwrap_or(0).to_be_bytes().to_vec(),
                transforms: vec![t],
            });
            first.get_or_insert(r);
        }
        let Some(f) = first.filter(|_| all) else { continue };
        let secs = check_lifetime(ok.check, f.life_secs, ok.life_secs);
        let kb = check_lifetime(ok.check, f.life_kb, ok.life_kb);
        let (Some((life_secs, s1)), Some((life_kb, s2))) = (secs, kb) else {
            refusal = Refusal::Lifetime;
            continue;
        };
        choice.life_secs = life_secs;
        choice.life_kb = life_kb;
        choice.shortened = s1 || s2;
        choice.pfs = f.group.and_then(Group::from_number);
        choice.udp = is_udp(f.encap);
        return Ok((choice, SaRepr { proposals: answer }));
    }
    Err(refusal)
}

/// Checks the responder's phase 2 answer against our offer: one proposal per protocol we
/// offered, each with one of our transforms. Lifetimes are ours until RESPONDER-LIFETIME says
/// otherwise.
pub fn accept_child(offer: &SaRepr, params: &ChildParams, answer: &SaRepr) -> Option<ChildChoice> {
    if answer.proposals.len() != offer.proposals.len() {
        return None;
    }
    let mut choice = ChildChoice {
        esp: None,
        ah: None,
        life_secs: params.life_secs,
        life_kb: params.life_kb,
        pfs: params.pfs,
        udp: params.udp,
        shortened: false,
    };
    for p in &answer.proposals {
        let mine = offer.proposals.iter().find(|o| o.protocol == p.protocol)?;
        let [t] = &p.transforms[..] else { return None };
        let offered = mine.transforms.iter().find(|o| o.id == t.id && same_attrs(&o.attrs, &t.attrs))?;
        let r = read_p2(p.protocol, offered)?;
        let spi = u32::from_be_bytes(<[u8; 4]>::try_from(&p.spi[..]).ok()?);
        let chosen = Some(Chosen { xf: r.xf, peer_spi: spi });
        match p.protocol {
            proto::AH => choice.ah = chosen,
            proto::ESP => choice.esp = chosen,
            _ => return None,
        }
    }
    Some(choice)
}

fn same_attrs(a: &[Attr], b: &[Attr]) -> bool {
    let mut x = a.to_vec();
    let mut y = b.to_vec();
    let key = |v: &Attr| (v.kind, v.value);
    x.sort_by_key(key);
    y.sort_by_key(key);
    // Life type/duration pairs keep their order within each list, so compare as sets of pairs.
    x == y
}

/// Reads the lifetimes of a RESPONDER-LIFETIME notification (RFC 2407 4.6.3.1).
pub fn responder_lifetime(attrs: &[Attr]) -> (Option<u64>, Option<u64>) {
    let (mut secs, mut kb, mut kind) = (None, None, None);
    for a in attrs {
        match a.kind {
            p2attr::LIFE_TYPE => kind = Some(a.value),
            p2attr::LIFE_DURATION => match kind {
                Some(p1attr::LIFE_SECONDS) => secs = Some(a.value),
                Some(p1attr::LIFE_KILOBYTES) => kb = Some(a.value),
                _ => {}
            },
            _ => {}
        }
    }
    (secs, kb)
}

/// Returns the RESPONDER-LIFETIME attributes for the chosen lifetimes.
pub fn lifetime_attrs(secs: u64, kb: u64) -> Vec<Attr> {
    let mut a = vec![Attr::new(p2attr::LIFE_TYPE, p1attr::LIFE_SECONDS), Attr::new(p2attr::LIFE_DURATION, secs)];
    if kb > 0 {
        a.push(Attr::new(p2attr::LIFE_TYPE, p1attr::LIFE_KILOBYTES));
        a.push(Attr::new(p2attr::LIFE_DURATION, kb));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_check_follows_the_manual() {
        use ProposalCheck::*;
        // claim: the shorter, notify when ours is shorter.
        assert_eq!(check_lifetime(Claim, 3600, 1800), Some((1800, true)));
        assert_eq!(check_lifetime(Claim, 900, 1800), Some((900, false)));
        // exact: must match.
        assert_eq!(check_lifetime(Exact, 1800, 1800), Some((1800, false)));
        assert_eq!(check_lifetime(Exact, 900, 1800), None);
        // obey: whatever the initiator sends.
        assert_eq!(check_lifetime(Obey, 7200, 1800), Some((7200, false)));
        // strict: longer refused, shorter or equal accepted as proposed.
        assert_eq!(check_lifetime(Strict, 7200, 1800), None);
        assert_eq!(check_lifetime(Strict, 900, 1800), Some((900, false)));
        // Kilobytes: 0 is unlimited.
        assert_eq!(check_lifetime(Strict, 0, 1000), None);
        assert_eq!(check_lifetime(Strict, 1000, 0), Some((1000, false)));
        assert_eq!(check_lifetime(Claim, 0, 1000), Some((1000, true)));
    }
}
