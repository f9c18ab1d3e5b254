//! Compilation of the configuration into what the dataplane runs: interfaces and routes, the
//! ordered policy list, and the manually keyed SAs of each policy (manual, "manual-sa": the
//! first value of a pair is incoming, the second outgoing).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use dataplane::crypto::{Auth, Cipher, KeyError, Transform};
use dataplane::ctl::{SaKey, Tables};
use dataplane::route::{Iface, Ifaces, NextHop, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, SaConfig, SaState, UdpEncap};
use dataplane::spd::{self, Action, IpsecProtocols, Prefix, Selector};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::cli::{Direction, InstalledSa};
use crate::config::value::{AddrPort, Pair};
use crate::config::{Config, Interface, IpAddress, IpRoute, Key, ManualSa, Policy};

#[cfg(test)]
mod tests;

/// The anti-replay window of manual SAs: off, since a manually keyed peer restarts its sequence
/// numbers at 1 whenever it restarts and no rekey resets ours (RFC 4303 3.3.3, 3.4.3).
pub const MANUAL_REPLAY_WINDOW: u32 = 0;

/// The lowest SPI an SA may use: 0 is reserved and 1..=255 are kept by IANA (RFC 4303 2.1).
pub const MIN_SPI: u32 = 256;

/// Why a configuration cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CompileError {
    /// A policy needs a key its manual-sa does not give.
    #[error("policy #{policy}: manual-sa {manual_sa} has no {field}, which ipsec-protocols={protocols} needs")]
    MissingKey {
        /// The policy's number.
        policy: usize,
        /// The manual-sa.
        manual_sa: String,
        /// The missing field (and direction).
        field: String,
        /// The policy's protocols.
        protocols: &'static str,
    },
    /// A key used for something its algorithm cannot do.
    #[error("key {key} ({algorithm}, {length} bits) cannot be used as {field}")]
    WrongUse {
        /// The key.
        key: String,
        /// Its algorithm.
        algorithm: &'static str,
        /// Its length.
        length: u32,
        /// Where the manual-sa uses it.
        field: &'static str,
    },
    /// A key whose bytes are invalid.
    #[error("key {key}: {error}")]
    BadKey {
        /// The key.
        key: String,
        /// Why.
        error: KeyError,
    },
    /// A key named by a manual-sa that does not exist (the configuration prevents this).
    #[error("manual-sa {manual_sa}: no such key {key}")]
    NoSuchKey {
        /// The manual-sa.
        manual_sa: String,
        /// The key name.
        key: String,
    },
    /// A pairing of cipher and integrity the dataplane refuses.
    #[error("manual-sa {manual_sa}: {error}")]
    Transform {
        /// The manual-sa.
        manual_sa: String,
        /// Why.
        error: KeyError,
    },
    /// An SPI in the reserved range.
    #[error("manual-sa {manual_sa}: {field} {spi} is reserved, use {MIN_SPI} or more")]
    ReservedSpi {
        /// The manual-sa.
        manual_sa: String,
        /// The field.
        field: &'static str,
        /// The SPI.
        spi: u32,
    },
    /// An encrypt policy with manual SAs but no SA addresses.
    #[error("policy #{policy}: sa-src-address and sa-dst-address must be set for manual SAs")]
    NoSaAddress {
        /// The policy's number.
        policy: usize,
    },
    /// Two policies would install the same inbound SA.
    #[error("policies #{first} and #{second} both install inbound {proto} SA spi {spi} from {src} to {dst}")]
    DuplicateInbound {
        /// The earlier policy's number.
        first: usize,
        /// The later policy's number.
        second: usize,
        /// `esp` or `ah`.
        proto: &'static str,
        /// The SPI.
        spi: u32,
        /// The SA source.
        src: Ipv4Addr,
        /// The SA destination.
        dst: Ipv4Addr,
    },
    /// More interfaces than port numbers.
    #[error("too many interfaces")]
    TooManyPorts,
}

/// One SA ready to install: the data of a [`SaConfig`] with owned key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaSpec {
    /// How inbound packets find the SA (for outbound SAs: the same fields, for reference).
    pub key: SaKey,
    /// Tunnel or transport.
    pub mode: Mode,
    /// The algorithms.
    pub xf: Transform,
    /// Encryption key bytes (GCM: key and salt).
    pub enc_key: Zeroizing<Vec<u8>>,
    /// Integrity key bytes.
    pub auth_key: Zeroizing<Vec<u8>>,
    /// Anti-replay window.
    pub replay_window: u32,
    /// Lifetimes (none for manual SAs).
    pub lifetimes: Lifetimes,
    /// DF of the outer header.
    pub dont_fragment: DontFragment,
    /// ESP in UDP (NAT traversal, RFC 3948): the UDP ports as the packets carry them.
    pub encap: Option<UdpEncap>,
}

impl SaSpec {
    /// Returns the dataplane's SA configuration, borrowing the keys.
    pub fn config(&self) -> SaConfig<'_> {
        SaConfig {
            spi: self.key.spi,
            proto: self.key.proto,
            mode: self.mode,
            src: self.key.src,
            dst: self.key.dst,
            xf: self.xf,
            enc_key: &self.enc_key,
            auth_key: &self.auth_key,
            replay_window: self.replay_window,
            lifetimes: self.lifetimes,
            dont_fragment: self.dont_fragment,
        }
    }

    /// Returns the `installed-sa print` snapshot of this SA, freshly installed at `now` (seconds
    /// since the epoch) for the policy `policy_id`; the daemon updates state and counters.
    pub fn snapshot(&self, direction: Direction, policy_id: u32, now: u64) -> InstalledSa {
        let secs = |s: u64| crate::config::value::Duration(s);
        InstalledSa {
            spi: self.key.spi,
            replay: self.replay_window,
            state: SaState::Mature,
            auth_algorithm: self.xf.auth(),
            enc_algorithm: self.xf.cipher(),
            src_address: self.key.src,
            dst_address: self.key.dst,
            policy_id,
            xform_index: u32::from(self.key.proto == IpsecProto::Ah),
            auth_key: self.auth_key.clone(),
            enc_key: self.enc_key.clone(),
            sa_type: self.key.proto,
            direction,
            current_addtime: now,
            current_usetime: now,
            current_bytes: 0,
            add_lifetime: (secs(self.lifetimes.soft_secs), secs(self.lifetimes.hard_secs)),
            use_lifetime: (secs(0), secs(0)),
            lifebytes: (self.lifetimes.soft_bytes, self.lifetimes.hard_bytes),
        }
    }
}

/// The SAs of one direction of a policy, as a dataplane [`Bundle`](dataplane::bundle::Bundle)
/// holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BundleSpec {
    /// The ESP SA.
    pub esp: Option<SaSpec>,
    /// The AH SA.
    pub ah: Option<SaSpec>,
}

/// The manual SAs of one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySas {
    /// The policy's id (`Policy::id`).
    pub policy_id: u32,
    /// SAs from sa-src to sa-dst, with the outgoing SPIs and keys.
    pub outbound: BundleSpec,
    /// SAs from sa-dst to sa-src, with the incoming SPIs and keys.
    pub inbound: BundleSpec,
}

/// Everything the dataplane needs from a configuration.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The interfaces, port = position in `/interface`; an unset MAC is all zeros, for the
    /// caller to fill in from the device.
    pub ifaces: Vec<Iface>,
    /// The enabled static routes whose gateway is on a connected network.
    pub routes: Vec<Route>,
    /// The enabled policies, in order.
    pub policies: Vec<spd::Policy>,
    /// The manual SAs of enabled `encrypt` policies that name a manual-sa.
    pub sas: Vec<PolicySas>,
    /// Things left out, for the operator: routes whose gateway no interface reaches.
    pub warnings: Vec<String>,
}

impl Compiled {
    /// Builds the routing tables (connected routes added).
    pub fn tables(&self) -> Tables {
        Tables::new(Ifaces::new(self.ifaces.clone()), &self.routes)
    }
}

/// Compiles a configuration.
pub fn compile(cfg: &Config) -> Result<Compiled, CompileError> {
    let mut warnings = Vec::new();
    let ifaces = compile_ifaces(cfg)?;
    let routes = compile_routes(cfg, &ifaces, &mut warnings);
    let mut policies = Vec::new();
    let mut sas = Vec::new();
    let mut inbound_seen: HashMap<SaKey, usize> = HashMap::new();
    for (i, e) in cfg.entries::<Policy>().iter().enumerate().filter(|(_, e)| !e.disabled) {
        let p = &e.item;
        policies.push(policy(e.id, p));
        let Some(msa) = p.manual_sa.as_deref().filter(|_| p.action == Action::Encrypt) else { continue };
        let Some(template) = cfg.get::<ManualSa>(msa) else { continue };
        let ps = policy_sas(cfg, i, e.id, p, template)?;
        for sa in [&ps.inbound.esp, &ps.inbound.ah].into_iter().flatten() {
            if let Some(&first) = inbound_seen.get(&sa.key) {
                return Err(CompileError::DuplicateInbound {
                    first,
                    second: i,
                    proto: proto_name(sa.key.proto),
                    spi: sa.key.spi,
                    src: sa.key.src,
                    dst: sa.key.dst,
                });
            }
            inbound_seen.insert(sa.key, i);
        }
        sas.push(ps);
    }
    Ok(Compiled { ifaces, routes, policies, sas, warnings })
}

fn compile_ifaces(cfg: &Config) -> Result<Vec<Iface>, CompileError> {
    cfg.entries::<Interface>()
        .iter()
        .enumerate()
        .map(|(port, e)| {
            let i = &e.item;
            let addrs = cfg
                .entries::<IpAddress>()
                .iter()
                .filter(|a| !a.disabled && a.item.interface == i.name)
                .map(|a| (a.item.address.addr, a.item.address.len))
                .collect();
            Ok(Iface {
                port: u16::try_from(port).map_err(|_| CompileError::TooManyPorts)?,
                name: i.name.clone(),
                mac: i.mac_address.unwrap_or([0; 6]),
                mtu: i.mtu,
                addrs,
            })
        })
        .collect()
}

fn compile_routes(cfg: &Config, ifaces: &[Iface], warnings: &mut Vec<String>) -> Vec<Route> {
    let mut routes = Vec::new();
    for (n, e) in cfg.entries::<IpRoute>().iter().enumerate().filter(|(_, e)| !e.disabled) {
        let r = &e.item;
        let gw = u32::from(r.gateway);
        let port = ifaces
            .iter()
            .find(|i| i.addrs.iter().any(|&(a, len)| dataplane::route::mask(len) & (u32::from(a) ^ gw) == 0));
        match port {
            Some(i) => routes.push(Route {
                prefix: r.dst_address.network(),
                len: r.dst_address.len,
                next_hop: NextHop { port: i.port, gateway: Some(r.gateway) },
            }),
            None => warnings.push(format!("route #{n} to {}: gateway {} is unreachable", r.dst_address, r.gateway)),
        }
    }
    routes
}

fn prefix(a: &AddrPort) -> Prefix {
    Prefix::new(u32::from(a.net.addr), a.net.len)
}

fn policy(id: u32, p: &Policy) -> spd::Policy {
    spd::Policy {
        id,
        selector: Selector {
            src: prefix(&p.src_address),
            src_port: p.src_address.port,
            dst: prefix(&p.dst_address),
            dst_port: p.dst_address.port,
            protocol: p.protocol,
        },
        action: p.action,
        level: p.level,
        mode: if p.tunnel { Mode::Tunnel } else { Mode::Transport },
        sa_src: p.sa_src_address,
        sa_dst: p.sa_dst_address,
        protocols: p.ipsec_protocols,
        dont_fragment: p.dont_fragment,
    }
}

fn proto_name(p: IpsecProto) -> &'static str {
    match p {
        IpsecProto::Esp => "esp",
        IpsecProto::Ah => "ah",
    }
}

#[derive(Clone, Copy)]
enum Dir {
    In,
    Out,
}

impl Dir {
    fn pick<T>(self, p: &Pair<T>) -> &T {
        match self {
            Dir::In => &p.incoming,
            Dir::Out => &p.outgoing,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Dir::In => "incoming",
            Dir::Out => "outgoing",
        }
    }
}

/// Builds the SAs of one `encrypt` policy from its manual-sa template.
fn policy_sas(cfg: &Config, index: usize, id: u32, p: &Policy, t: &ManualSa) -> Result<PolicySas, CompileError> {
    if p.sa_src_address.is_unspecified() || p.sa_dst_address.is_unspecified() {
        return Err(CompileError::NoSaAddress { policy: index });
    }
    let (esp, ah) = match p.ipsec_protocols {
        IpsecProtocols::Esp => (true, false),
        IpsecProtocols::Ah => (false, true),
        IpsecProtocols::AhEsp => (true, true),
    };
    // In tunnel mode ESP tunnels and AH rides over it in transport mode; AH alone tunnels itself.
    let mode = if p.tunnel { Mode::Tunnel } else { Mode::Transport };
    let ah_mode = if p.tunnel && !esp { Mode::Tunnel } else { Mode::Transport };
    let ctx = SaCtx { cfg, index, p, t };
    let bundle = |dir: Dir| -> Result<BundleSpec, CompileError> {
        Ok(BundleSpec {
            esp: if esp { Some(ctx.esp(dir, mode)?) } else { None },
            ah: if ah { Some(ctx.ah(dir, ah_mode)?) } else { None },
        })
    };
    Ok(PolicySas { policy_id: id, outbound: bundle(Dir::Out)?, inbound: bundle(Dir::In)? })
}

struct SaCtx<'a> {
    cfg: &'a Config,
    index: usize,
    p: &'a Policy,
    t: &'a ManualSa,
}

impl SaCtx<'_> {
    fn missing(&self, field: &str, dir: Dir) -> CompileError {
        CompileError::MissingKey {
            policy: self.index,
            manual_sa: self.t.name.clone(),
            field: format!("{} {field}", dir.word()),
            protocols: crate::config::value::Choice::choice_name(self.p.ipsec_protocols),
        }
    }

    fn key(&self, name: &str) -> Result<&Key, CompileError> {
        self.cfg
            .get::<Key>(name)
            .ok_or_else(|| CompileError::NoSuchKey { manual_sa: self.t.name.clone(), key: name.into() })
    }

    fn bytes(&self, k: &Key) -> Result<Zeroizing<Vec<u8>>, CompileError> {
        k.bytes().map_err(|error| CompileError::BadKey { key: k.name.clone(), error })
    }

    fn wrong_use(k: &Key, field: &'static str) -> CompileError {
        CompileError::WrongUse { key: k.name.clone(), algorithm: k.algorithm.name(), length: k.length, field }
    }

    fn spi(&self, field: &'static str, pair: &Pair<u32>, dir: Dir) -> Result<u32, CompileError> {
        let spi = *dir.pick(pair);
        if spi < MIN_SPI {
            return Err(CompileError::ReservedSpi { manual_sa: self.t.name.clone(), field, spi });
        }
        Ok(spi)
    }

    /// Returns the SA key: outbound from sa-src to sa-dst, inbound the other way.
    fn sa_key(&self, proto: IpsecProto, spi: u32, dir: Dir) -> SaKey {
        let (src, dst) = match dir {
            Dir::Out => (self.p.sa_src_address, self.p.sa_dst_address),
            Dir::In => (self.p.sa_dst_address, self.p.sa_src_address),
        };
        SaKey { src, dst, proto, spi }
    }

    fn spec(&self, key: SaKey, mode: Mode, xf: Transform, enc: Zeroizing<Vec<u8>>, auth: Zeroizing<Vec<u8>>) -> SaSpec {
        SaSpec {
            key,
            mode,
            xf,
            enc_key: enc,
            auth_key: auth,
            replay_window: MANUAL_REPLAY_WINDOW,
            lifetimes: Lifetimes::default(),
            dont_fragment: self.p.dont_fragment,
            encap: None,
        }
    }

    fn esp(&self, dir: Dir, mode: Mode) -> Result<SaSpec, CompileError> {
        let enc_name = dir.pick(&self.t.esp_enc_key).as_deref();
        let auth_name = dir.pick(&self.t.esp_auth_key).as_deref();
        if enc_name.is_none() && auth_name.is_none() {
            return Err(self.missing("esp-enc-key or esp-auth-key", dir));
        }
        let (cipher, enc) = match enc_name {
            None => (Cipher::Null, Zeroizing::new(Vec::new())),
            Some(n) => {
                let k = self.key(n)?;
                let c = k.algorithm.cipher(k.length).ok_or_else(|| Self::wrong_use(k, "esp-enc-key"))?;
                (c, if c == Cipher::Null { Zeroizing::new(Vec::new()) } else { self.bytes(k)? })
            }
        };
        let (auth, auth_key) = match auth_name {
            None => (Auth::Null, Zeroizing::new(Vec::new())),
            Some(n) => {
                let k = self.key(n)?;
                let a = k.algorithm.auth().ok_or_else(|| Self::wrong_use(k, "esp-auth-key"))?;
                (a, if a == Auth::Null { Zeroizing::new(Vec::new()) } else { self.bytes(k)? })
            }
        };
        let xf = Transform::new(cipher, auth)
            .map_err(|error| CompileError::Transform { manual_sa: self.t.name.clone(), error })?;
        let spi = self.spi("esp-spi", &self.t.esp_spi, dir)?;
        Ok(self.spec(self.sa_key(IpsecProto::Esp, spi, dir), mode, xf, enc, auth_key))
    }

    fn ah(&self, dir: Dir, mode: Mode) -> Result<SaSpec, CompileError> {
        let name = dir.pick(&self.t.ah_key).as_deref().ok_or_else(|| self.missing("ah-key", dir))?;
        let k = self.key(name)?;
        let auth = k.algorithm.auth().ok_or_else(|| Self::wrong_use(k, "ah-key"))?;
        let xf = Transform::auth_only(auth)
            .map_err(|error| CompileError::Transform { manual_sa: self.t.name.clone(), error })?;
        let spi = self.spi("ah-spi", &self.t.ah_spi, dir)?;
        Ok(self.spec(self.sa_key(IpsecProto::Ah, spi, dir), mode, xf, Zeroizing::new(Vec::new()), self.bytes(k)?))
    }
}
