//! The items of the `/ip ipsec` menus with the manual's fields and defaults: policy, manual-sa,
//! key, peer, pre-shared-secret and proposal.

use std::net::Ipv4Addr;

use dataplane::crypto::KeyAlgorithm;
use dataplane::sa::DontFragment;
use dataplane::spd::{Action, IpsecProtocols, Level};

use super::value::{
    AddrPort, Choice, Duration, Pair, bool_name, choice_enum, list_name, parse_bool, parse_hex, parse_ip, parse_list,
    parse_num, parse_protocol, parse_ref, protocol_name, ref_name,
};
use super::{Config, ConfigError, DEFAULT_PROPOSAL, Entry, Item, Menu, Ref};

/// One `/ip ipsec policy` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `src-address`, matched against outgoing packets.
    pub src_address: AddrPort,
    /// `dst-address`, matched against outgoing packets.
    pub dst_address: AddrPort,
    /// `protocol`, `None` for `all`.
    pub protocol: Option<u8>,
    /// `action`, default `accept`.
    pub action: Action,
    /// `level`, default `require`.
    pub level: Level,
    /// `tunnel`, default `no`.
    pub tunnel: bool,
    /// `ipsec-protocols`, default `esp`.
    pub ipsec_protocols: IpsecProtocols,
    /// `sa-src-address` (also typed `sa-src`).
    pub sa_src_address: Ipv4Addr,
    /// `sa-dst-address` (also typed `sa-dst`).
    pub sa_dst_address: Ipv4Addr,
    /// `manual-sa`: the template of this policy's manual SAs, `None` for `none`.
    pub manual_sa: Option<String>,
    /// `proposal`, default `default`.
    pub proposal: String,
    /// `dont-fragment`, default `clear`.
    pub dont_fragment: DontFragment,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            src_address: AddrPort::ANY,
            dst_address: AddrPort::ANY,
            protocol: None,
            action: Action::Accept,
            level: Level::Require,
            tunnel: false,
            ipsec_protocols: IpsecProtocols::Esp,
            sa_src_address: Ipv4Addr::UNSPECIFIED,
            sa_dst_address: Ipv4Addr::UNSPECIFIED,
            manual_sa: None,
            proposal: DEFAULT_PROPOSAL.into(),
            dont_fragment: DontFragment::Clear,
        }
    }
}

impl Item for Policy {
    const MENU: Menu = Menu::Policy;
    const FIELDS: &'static [&'static str] = &[
        "src-address",
        "dst-address",
        "protocol",
        "action",
        "level",
        "ipsec-protocols",
        "tunnel",
        "sa-src-address",
        "sa-dst-address",
        "proposal",
        "manual-sa",
        "dont-fragment",
    ];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "src-address" => self.src_address = AddrPort::parse(field, v)?,
            "dst-address" => self.dst_address = AddrPort::parse(field, v)?,
            "protocol" => self.protocol = parse_protocol(field, v)?,
            "action" => self.action = Action::parse_choice(field, v)?,
            "level" => self.level = Level::parse_choice(field, v)?,
            "ipsec-protocols" => self.ipsec_protocols = IpsecProtocols::parse_choice(field, v)?,
            "tunnel" => self.tunnel = parse_bool(field, v)?,
            "sa-src-address" | "sa-src" => self.sa_src_address = parse_ip(field, v)?,
            "sa-dst-address" | "sa-dst" => self.sa_dst_address = parse_ip(field, v)?,
            "proposal" => self.proposal = v.into(),
            "manual-sa" => self.manual_sa = parse_ref(v),
            "dont-fragment" => self.dont_fragment = DontFragment::parse_choice(field, v)?,
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "src-address" => self.src_address.to_string(),
            "dst-address" => self.dst_address.to_string(),
            "protocol" => protocol_name(self.protocol),
            "action" => self.action.choice_name().into(),
            "level" => self.level.choice_name().into(),
            "ipsec-protocols" => self.ipsec_protocols.choice_name().into(),
            "tunnel" => bool_name(self.tunnel).into(),
            "sa-src-address" => self.sa_src_address.to_string(),
            "sa-dst-address" => self.sa_dst_address.to_string(),
            "proposal" => self.proposal.clone(),
            "manual-sa" => ref_name(&self.manual_sa),
            "dont-fragment" => self.dont_fragment.choice_name().into(),
            _ => String::new(),
        }
    }

    fn refs(&self) -> Vec<Ref<'_>> {
        let mut r = vec![Ref { field: "proposal", menu: Menu::Proposal, name: &self.proposal }];
        if let Some(m) = &self.manual_sa {
            r.push(Ref { field: "manual-sa", menu: Menu::ManualSa, name: m });
        }
        r
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.policies
    }
}

/// One `/ip ipsec manual-sa` template. Each pair is `incoming/outgoing`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManualSa {
    /// `name`, for reference from policies.
    pub name: String,
    /// `ah-key`: the AH keys by name, `none` allowed.
    pub ah_key: Pair<Option<String>>,
    /// `esp-enc-key`: the ESP encryption keys by name.
    pub esp_enc_key: Pair<Option<String>>,
    /// `esp-auth-key`: the ESP authentication keys by name.
    pub esp_auth_key: Pair<Option<String>>,
    /// `ah-spi`: the AH SPIs.
    pub ah_spi: Pair<u32>,
    /// `esp-spi`: the ESP SPIs.
    pub esp_spi: Pair<u32>,
}

impl Item for ManualSa {
    const MENU: Menu = Menu::ManualSa;
    const FIELDS: &'static [&'static str] = &["name", "ah-key", "esp-enc-key", "esp-auth-key", "ah-spi", "esp-spi"];
    const REQUIRED: &'static [&'static str] = &["name"];
    const QUOTED: &'static [&'static str] = &["name"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        let keys = |s: &str| Pair::parse(s, |k| Ok(parse_ref(k)));
        let spis = |s: &str| Pair::parse(s, |k| parse_num::<u32>(field, k));
        match field {
            "name" => self.name = v.into(),
            "ah-key" => self.ah_key = keys(v)?,
            "esp-enc-key" => self.esp_enc_key = keys(v)?,
            "esp-auth-key" => self.esp_auth_key = keys(v)?,
            "ah-spi" => self.ah_spi = spis(v)?,
            "esp-spi" => self.esp_spi = spis(v)?,
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        let spi = |p: &Pair<u32>| p.show(u32::to_string);
        match field {
            "name" => self.name.clone(),
            "ah-key" => self.ah_key.show(ref_name),
            "esp-enc-key" => self.esp_enc_key.show(ref_name),
            "esp-auth-key" => self.esp_auth_key.show(ref_name),
            "ah-spi" => spi(&self.ah_spi),
            "esp-spi" => spi(&self.esp_spi),
            _ => String::new(),
        }
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn refs(&self) -> Vec<Ref<'_>> {
        let pairs =
            [("ah-key", &self.ah_key), ("esp-enc-key", &self.esp_enc_key), ("esp-auth-key", &self.esp_auth_key)];
        pairs
            .into_iter()
            .flat_map(|(field, p)| [&p.incoming, &p.outgoing].into_iter().flatten().map(move |n| (field, n)))
            .map(|(field, name)| Ref { field, menu: Menu::Key, name })
            .collect()
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.manual_sas
    }
}

/// One `/ip ipsec key`: key material for manual SAs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// `name`, for reference from manual-sa.
    pub name: String,
    /// `algorithm`.
    pub algorithm: KeyAlgorithm,
    /// `length` in bits; when not given, the algorithm's first valid length (null: the key's).
    pub length: u32,
    /// `key`: hexadecimal, `0x` optional, as typed; longer keys are truncated to `length`.
    pub key: String,
}

impl Default for Key {
    fn default() -> Self {
        Key { name: String::new(), algorithm: KeyAlgorithm::Null, length: 0, key: String::new() }
    }
}

impl Key {
    /// Returns the key bytes, truncated to `length` (RouterOS key semantics).
    pub fn bytes(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, dataplane::crypto::KeyError> {
        self.algorithm.key_from_hex(self.length, &self.key)
    }
}

impl Item for Key {
    const MENU: Menu = Menu::Key;
    const FIELDS: &'static [&'static str] = &["name", "algorithm", "length", "key"];
    const REQUIRED: &'static [&'static str] = &["name", "algorithm", "key"];
    const QUOTED: &'static [&'static str] = &["name"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "name" => self.name = v.into(),
            "algorithm" => self.algorithm = KeyAlgorithm::from_name(v).ok_or(ConfigError::NoMatch(field.into()))?,
            "length" => self.length = parse_num(field, v)?,
            "key" => self.key = parse_hex(field, v)?,
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "name" => self.name.clone(),
            "algorithm" => self.algorithm.name().into(),
            "length" => self.length.to_string(),
            "key" => self.key.clone(),
            _ => String::new(),
        }
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn complete(&mut self, given: &[&str]) {
        if !given.contains(&"length") {
            let digits = self.key.strip_prefix("0x").or_else(|| self.key.strip_prefix("0X")).unwrap_or(&self.key);
            self.length = self.algorithm.lengths().first().copied().unwrap_or(digits.len() as u32 * 4);
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.bytes().map(drop).map_err(|e| ConfigError::failure(e.to_string()))
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.keys
    }
}

/// How IKE authenticates a peer (`auth-method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `pre-shared-key` (the manual's text also calls it `pre-shared-secret`).
    PreSharedKey,
}

impl Choice for AuthMethod {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("pre-shared-key", AuthMethod::PreSharedKey), ("pre-shared-secret", AuthMethod::PreSharedKey)];
}

choice_enum! {
    /// The ISAKMP phase 1 exchange (`exchange-mode`, RFC 2408 4.4-4.7).
    pub enum ExchangeMode { Main = "main", Aggressive = "aggressive", Base = "base" }
}

choice_enum! {
    /// How phase 2 lifetimes proposed by the initiator are checked (`proposal-check`).
    pub enum ProposalCheck { Claim = "claim", Exact = "exact", Obey = "obey", Strict = "strict" }
}

choice_enum! {
    /// The phase 1 hash (`hash-algorithm`).
    pub enum HashAlgorithm { Md5 = "md5", Sha = "sha", Sha256 = "sha256" }
}

choice_enum! {
    /// The phase 1 cipher (`enc-algorithm` of a peer).
    pub enum PeerEncAlgorithm {
        Des = "des", Tdes = "3des", Aes128 = "aes-128", Aes192 = "aes-192", Aes256 = "aes-256",
    }
}

choice_enum! {
    /// A Diffie-Hellman group (RFC 2409 6, RFC 3526).
    pub enum DhGroup { Modp768 = "modp768", Modp1024 = "modp1024", Modp1536 = "modp1536", Modp2048 = "modp2048" }
}

choice_enum! {
    /// The PFS group of a proposal (`pfs-group`), or none.
    pub enum PfsGroup {
        None = "none", Modp768 = "modp768", Modp1024 = "modp1024", Modp1536 = "modp1536", Modp2048 = "modp2048",
    }
}

choice_enum! {
    /// A phase 2 integrity algorithm (`auth-algorithms`, or `auth-` in `algorithms`).
    pub enum AuthAlgorithm { Md5 = "md5", Sha1 = "sha1", Sha256 = "sha256", Null = "null" }
}

choice_enum! {
    /// A phase 2 cipher (`enc-algorithms`, or `enc-` in `algorithms`).
    pub enum EncAlgorithm {
        Null = "null", Des = "des", Tdes = "3des", Aes128 = "aes-128", Aes192 = "aes-192", Aes256 = "aes-256",
        Aes128Gcm = "aes-128-gcm", Aes256Gcm = "aes-256-gcm",
    }
}

/// One `/ip ipsec peer`: phase 1 settings for a remote IKE daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// `address` of the remote peer.
    pub address: Ipv4Addr,
    /// `port`, default 500 (RFC 2408 2.5.2).
    pub port: u16,
    /// `auth-method`, default `pre-shared-key`.
    pub auth_method: AuthMethod,
    /// `secret`: the pre-shared key, if given here rather than in pre-shared-secret.
    pub secret: String,
    /// `exchange-mode`, default `main`.
    pub exchange_mode: ExchangeMode,
    /// `send-initial-contact`, default `yes`.
    pub send_initial_contact: bool,
    /// `proposal-check`, default `strict`.
    pub proposal_check: ProposalCheck,
    /// `hash-algorithm`, default `md5`.
    pub hash_algorithm: HashAlgorithm,
    /// `enc-algorithm`, default `3des`.
    pub enc_algorithm: PeerEncAlgorithm,
    /// `dh-group`, default `modp1024`.
    pub dh_group: DhGroup,
    /// `lifetime` of the phase 1 SA, default 1d.
    pub lifetime: Duration,
    /// `nonce-size` in bytes, 8..=256, default 16.
    pub nonce_size: u16,
}

impl Default for Peer {
    fn default() -> Self {
        Peer {
            address: Ipv4Addr::UNSPECIFIED,
            port: 500,
            auth_method: AuthMethod::PreSharedKey,
            secret: String::new(),
            exchange_mode: ExchangeMode::Main,
            send_initial_contact: true,
            proposal_check: ProposalCheck::Strict,
            hash_algorithm: HashAlgorithm::Md5,
            enc_algorithm: PeerEncAlgorithm::Tdes,
            dh_group: DhGroup::Modp1024,
            lifetime: Duration(86_400),
            nonce_size: 16,
        }
    }
}

impl Item for Peer {
    const MENU: Menu = Menu::Peer;
    const FIELDS: &'static [&'static str] = &[
        "address",
        "port",
        "auth-method",
        "secret",
        "exchange-mode",
        "send-initial-contact",
        "proposal-check",
        "hash-algorithm",
        "enc-algorithm",
        "dh-group",
        "lifetime",
        "nonce-size",
    ];
    const REQUIRED: &'static [&'static str] = &["address"];
    const QUOTED: &'static [&'static str] = &["secret"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "address" => self.address = parse_ip(field, v.strip_suffix("/32").unwrap_or(v))?,
            "port" => self.port = parse_num(field, v)?,
            "auth-method" => self.auth_method = AuthMethod::parse_choice(field, v)?,
            "secret" => self.secret = v.into(),
            "exchange-mode" => self.exchange_mode = ExchangeMode::parse_choice(field, v)?,
            "send-initial-contact" => self.send_initial_contact = parse_bool(field, v)?,
            "proposal-check" => self.proposal_check = ProposalCheck::parse_choice(field, v)?,
            "hash-algorithm" => self.hash_algorithm = HashAlgorithm::parse_choice(field, v)?,
            "enc-algorithm" => self.enc_algorithm = PeerEncAlgorithm::parse_choice(field, v)?,
            "dh-group" => self.dh_group = DhGroup::parse_choice(field, v)?,
            "lifetime" => self.lifetime = Duration::parse(field, v)?,
            "nonce-size" => {
                let n: u16 = parse_num(field, v)?;
                if !(8..=256).contains(&n) {
                    return Err(ConfigError::InvalidValue(field.into()));
                }
                self.nonce_size = n;
            }
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "address" => self.address.to_string(),
            "port" => self.port.to_string(),
            "auth-method" => self.auth_method.choice_name().into(),
            "secret" => self.secret.clone(),
            "exchange-mode" => self.exchange_mode.choice_name().into(),
            "send-initial-contact" => bool_name(self.send_initial_contact).into(),
            "proposal-check" => self.proposal_check.choice_name().into(),
            "hash-algorithm" => self.hash_algorithm.choice_name().into(),
            "enc-algorithm" => self.enc_algorithm.choice_name().into(),
            "dh-group" => self.dh_group.choice_name().into(),
            "lifetime" => self.lifetime.to_string(),
            "nonce-size" => self.nonce_size.to_string(),
            _ => String::new(),
        }
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.peers
    }
}

/// One `/ip ipsec pre-shared-secret`: the secret shared with a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreSharedSecret {
    /// `address` of the remote peer; 0.0.0.0 when the secret is matched by identity only.
    pub address: Ipv4Addr,
    /// `ident-string`: identity of the remote peer.
    pub ident_string: String,
    /// `secret`: a string, or hexadecimal if it starts with `0x`.
    pub secret: String,
}

impl Default for PreSharedSecret {
    fn default() -> Self {
        PreSharedSecret { address: Ipv4Addr::UNSPECIFIED, ident_string: String::new(), secret: String::new() }
    }
}

impl PreSharedSecret {
    /// Returns the secret's bytes: hex-decoded after `0x`, the string itself otherwise.
    pub fn secret_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        zeroize::Zeroizing::new(match self.secret.strip_prefix("0x") {
            Some(h) => (0..h.len() / 2).filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()).collect(),
            None => self.secret.as_bytes().to_vec(),
        })
    }
}

impl Item for PreSharedSecret {
    const MENU: Menu = Menu::PreSharedSecret;
    const FIELDS: &'static [&'static str] = &["address", "ident-string", "secret"];
    const REQUIRED: &'static [&'static str] = &["secret"];
    const QUOTED: &'static [&'static str] = &["ident-string", "secret"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "address" => self.address = parse_ip(field, v.strip_suffix("/32").unwrap_or(v))?,
            "ident-string" => self.ident_string = v.into(),
            "secret" => {
                if v.starts_with("0x") {
                    parse_hex(field, v)?;
                }
                self.secret = v.into();
            }
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "address" => self.address.to_string(),
            "ident-string" => self.ident_string.clone(),
            "secret" => self.secret.clone(),
            _ => String::new(),
        }
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.secrets
    }
}

/// One `/ip ipsec proposal`: what IKE proposes in phase 2 for the policies that name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// `name`, for reference from policies.
    pub name: String,
    /// `auth-algorithms`, default `sha1`.
    pub auth_algorithms: Vec<AuthAlgorithm>,
    /// `enc-algorithms`, default `3des`.
    pub enc_algorithms: Vec<EncAlgorithm>,
    /// `lifetime` of the SAs, default 30m.
    pub lifetime: Duration,
    /// `lifebyte`: bytes before the SA is replaced, 0 for no limit (the default).
    pub lifebyte: u64,
    /// `pfs-group`, default `modp1024`.
    pub pfs_group: PfsGroup,
}

impl Default for Proposal {
    fn default() -> Self {
        Proposal {
            name: String::new(),
            auth_algorithms: vec![AuthAlgorithm::Sha1],
            enc_algorithms: vec![EncAlgorithm::Tdes],
            lifetime: Duration(1800),
            lifebyte: 0,
            pfs_group: PfsGroup::Modp1024,
        }
    }
}

impl Proposal {
    /// Sets both lists from the manual's `algorithms=enc-des,auth-sha1` form.
    fn set_algorithms(&mut self, v: &str) -> Result<(), ConfigError> {
        let (mut auth, mut enc) = (Vec::new(), Vec::new());
        for part in v.split(',') {
            if let Some(a) = part.strip_prefix("auth-") {
                auth.push(AuthAlgorithm::parse_choice("algorithms", a)?);
            } else if let Some(e) = part.strip_prefix("enc-") {
                enc.push(EncAlgorithm::parse_choice("algorithms", e)?);
            } else {
                return Err(ConfigError::NoMatch("algorithms".into()));
            }
        }
        if !auth.is_empty() {
            self.auth_algorithms = super::value::canonical(auth);
        }
        if !enc.is_empty() {
            self.enc_algorithms = super::value::canonical(enc);
        }
        Ok(())
    }
}

impl Item for Proposal {
    const MENU: Menu = Menu::Proposal;
    const FIELDS: &'static [&'static str] =
        &["name", "auth-algorithms", "enc-algorithms", "lifetime", "lifebyte", "pfs-group"];
    const REQUIRED: &'static [&'static str] = &["name"];
    const QUOTED: &'static [&'static str] = &["name"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "name" => self.name = v.into(),
            "auth-algorithms" => self.auth_algorithms = parse_list(field, v)?,
            "enc-algorithms" => self.enc_algorithms = parse_list(field, v)?,
            "algorithms" => self.set_algorithms(v)?,
            "lifetime" => self.lifetime = Duration::parse(field, v)?,
            "lifebyte" => self.lifebyte = parse_num(field, v)?,
            "pfs-group" => self.pfs_group = PfsGroup::parse_choice(field, v)?,
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "name" => self.name.clone(),
            "auth-algorithms" => list_name(&self.auth_algorithms),
            "enc-algorithms" => list_name(&self.enc_algorithms),
            "lifetime" => self.lifetime.to_string(),
            "lifebyte" => self.lifebyte.to_string(),
            "pfs-group" => self.pfs_group.choice_name().into(),
            _ => String::new(),
        }
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.proposals
    }
}
