//! The wire format of the control sockets: length-prefixed frames holding one tagged message,
//! encoded by hand, big-endian, with every length checked against what is left of the frame.
//!
//! A frame is a 4-byte length (at most [`MAX_FRAME`]) and that many bytes of body; the body is a
//! tag byte and the message's fields in order. Each connection opens with a `Hello` that carries
//! [`MAGIC`] and [`VERSION`]; a peer speaking another version is answered with an error and
//! dropped. Decoding never panics: a truncated, oversized or garbled frame is a [`WireError`].
//!
//! Two conversations use it: the control process and the dataplane ([`DpRequest`],
//! [`DpReply`]: the desired state, with keys, and state queries), and the console clients and
//! the control process ([`CtlRequest`], [`CtlReply`]: command lines and their output). Both
//! sockets are root-only (mode 0600, peer credentials checked).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};

use dataplane::crypto::{Auth, Cipher, Transform};
use dataplane::ctl::{SaKey, SaSnapshot};
use dataplane::pipeline::Direction;
use dataplane::route::{Iface, NextHop, Route};
use dataplane::sa::{DontFragment, IpsecProto, Lifetimes, Mode, SaCounters, SaEvent, SaState, UdpEncap};
pub use dataplane::slowpath::{ControlEvent, Datagram};
use dataplane::spd::{Action, IpsecProtocols, Level, Policy, Prefix, Selector};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::compile::{BundleSpec, Compiled, PolicySas, SaSpec};

/// Opens every `Hello`: "IPGW".
pub const MAGIC: [u8; 4] = *b"IPGW";
/// The protocol version; peers must agree exactly.
pub const VERSION: u16 = 2;
/// The largest frame body accepted (16 MiB): far above any real state, small enough to allocate.
pub const MAX_FRAME: usize = 16 << 20;

/// Why bytes are not a valid message.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum WireError {
    /// The frame ended inside a field.
    #[error("truncated message")]
    Truncated,
    /// Bytes left over after the message.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// A tag or enum value this version does not know.
    #[error("unknown {what} {value}")]
    Unknown {
        /// What was being decoded.
        what: &'static str,
        /// The value found.
        value: u32,
    },
    /// A frame longer than [`MAX_FRAME`].
    #[error("frame of {0} bytes is too long")]
    TooLong(usize),
    /// A string that is not UTF-8.
    #[error("string is not UTF-8")]
    Utf8,
    /// A value outside its range (a prefix length over 32, an invalid transform).
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A `Hello` without the magic bytes.
    #[error("not an ipsecgw control peer")]
    BadMagic,
}

/// Appends fields to a frame body.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Returns the body written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn len(&mut self, n: usize) {
        // Frames are at most MAX_FRAME long, so every count fits.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }

    fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.buf.extend_from_slice(v);
    }
}

/// Takes fields from a frame body.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Fails unless everything was read.
    pub fn finish(self) -> Result<(), WireError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads a count of items each at least `min` bytes long, refusing counts the rest of the
    /// frame cannot hold (so a garbled count never allocates much).
    fn count(&mut self, min: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min.max(1)) > self.buf.len() {
            return Err(WireError::Truncated);
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.count(1)?;
        self.take(n)
    }

    fn tag(&mut self, what: &'static str, max: u8) -> Result<u8, WireError> {
        let v = self.u8()?;
        if v > max {
            return Err(WireError::Unknown { what, value: u32::from(v) });
        }
        Ok(v)
    }
}

/// A value with a wire encoding.
pub trait Wire: Sized {
    /// Appends the value.
    fn put(&self, w: &mut Writer);
    /// Reads a value.
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError>;
    /// Encodes the value alone, as a frame body.
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.put(&mut w);
        w.into_bytes()
    }
    /// Decodes a frame body holding exactly one value.
    fn decode(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let v = Self::get(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

macro_rules! int_wire {
    ($($t:ident),*) => {$(
        impl Wire for $t {
            fn put(&self, w: &mut Writer) {
                w.$t(*self);
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
                r.$t()
            }
        }
    )*};
}
int_wire!(u8, u16, u32, u64);

impl Wire for bool {
    fn put(&self, w: &mut Writer) {
        w.u8(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(r.tag("bool", 1)? == 1)
    }
}

impl Wire for Ipv4Addr {
    fn put(&self, w: &mut Writer) {
        w.buf.extend_from_slice(&self.octets());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Ipv4Addr::from(r.array::<4>()?))
    }
}

impl Wire for String {
    fn put(&self, w: &mut Writer) {
        w.bytes(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let b = r.bytes()?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| WireError::Utf8)
    }
}

impl Wire for Zeroizing<Vec<u8>> {
    fn put(&self, w: &mut Writer) {
        w.bytes(self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Zeroizing::new(r.bytes()?.to_vec()))
    }
}

impl<T: Wire> Wire for Vec<T> {
    fn put(&self, w: &mut Writer) {
        w.len(self.len());
        for v in self {
            v.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let n = r.count(1)?;
        // The count is only known to fit the frame at one byte per item: reserve no more than
        // the frame's bytes' worth of items, or a 16 MiB frame could reserve gigabytes.
        let mut v = Vec::with_capacity(n.min(r.buf.len() / size_of::<T>().max(1) + 1));
        for _ in 0..n {
            v.push(T::get(r)?);
        }
        Ok(v)
    }
}

impl<T: Wire> Wire for Option<T> {
    fn put(&self, w: &mut Writer) {
        match self {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.tag("option", 1)? {
            0 => None,
            _ => Some(T::get(r)?),
        })
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    fn put(&self, w: &mut Writer) {
        self.0.put(w);
        self.1.put(w);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok((A::get(r)?, B::get(r)?))
    }
}

/// Encodes a fieldless enum as its index in a list of all its values.
macro_rules! enum_wire {
    ($t:ty, $what:literal, [$($v:expr),* $(,)?]) => {
        impl Wire for $t {
            fn put(&self, w: &mut Writer) {
                const ALL: &[$t] = &[$($v),*];
                w.u8(ALL.iter().position(|v| v == self).unwrap_or(0) as u8);
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
                const ALL: &[$t] = &[$($v),*];
                let i = r.tag($what, (ALL.len() - 1) as u8)?;
                Ok(ALL[usize::from(i)])
            }
        }
    };
}
enum_wire!(IpsecProto, "ipsec protocol", [IpsecProto::Esp, IpsecProto::Ah]);
enum_wire!(Mode, "mode", [Mode::Transport, Mode::Tunnel]);
enum_wire!(DontFragment, "dont-fragment", [DontFragment::Clear, DontFragment::Set, DontFragment::Inherit]);
enum_wire!(Action, "action", [Action::Accept, Action::Drop, Action::Encrypt]);
enum_wire!(Level, "level", [Level::Use, Level::Acquire, Level::Require]);
enum_wire!(IpsecProtocols, "ipsec-protocols", [IpsecProtocols::Ah, IpsecProtocols::Esp, IpsecProtocols::AhEsp]);
enum_wire!(Direction, "direction", [Direction::In, Direction::Out]);
enum_wire!(SaState, "sa state", [SaState::Mature, SaState::Dying, SaState::Dead]);
enum_wire!(
    Cipher,
    "cipher",
    [
        Cipher::Null,
        Cipher::DesCbc,
        Cipher::TdesCbc,
        Cipher::AesCbc128,
        Cipher::AesCbc192,
        Cipher::AesCbc256,
        Cipher::AesGcm128,
        Cipher::AesGcm256,
    ]
);
enum_wire!(Auth, "auth", [Auth::Null, Auth::HmacMd5_96, Auth::HmacSha1_96, Auth::HmacSha256_128]);

enum_wire!(SaEvent, "sa event", [SaEvent::SoftExpired, SaEvent::HardExpired, SaEvent::SeqExhausted]);

impl Wire for SocketAddrV4 {
    fn put(&self, w: &mut Writer) {
        self.ip().put(w);
        w.u16(self.port());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(SocketAddrV4::new(Ipv4Addr::get(r)?, r.u16()?))
    }
}

impl Wire for Datagram {
    fn put(&self, w: &mut Writer) {
        self.local.put(w);
        self.remote.put(w);
        w.bytes(&self.payload);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Datagram { local: Wire::get(r)?, remote: Wire::get(r)?, payload: r.bytes()?.to_vec() })
    }
}

impl Wire for ControlEvent {
    fn put(&self, w: &mut Writer) {
        match *self {
            ControlEvent::Acquire { policy_id } => {
                w.u8(0);
                w.u32(policy_id);
            }
            ControlEvent::Sa { spi, dst, proto, event } => {
                w.u8(1);
                w.u32(spi);
                dst.put(w);
                proto.put(w);
                event.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.tag("control event", 1)? {
            0 => ControlEvent::Acquire { policy_id: r.u32()? },
            _ => ControlEvent::Sa { spi: r.u32()?, dst: Wire::get(r)?, proto: Wire::get(r)?, event: Wire::get(r)? },
        })
    }
}

impl Wire for Transform {
    fn put(&self, w: &mut Writer) {
        self.cipher().put(w);
        self.auth().put(w);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (c, a) = (Cipher::get(r)?, Auth::get(r)?);
        Transform::new(c, a).map_err(|_| WireError::Invalid("transform"))
    }
}

/// Encodes a struct as its fields in order (every field implements [`Wire`]).
macro_rules! struct_wire {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl Wire for $t {
            fn put(&self, w: &mut Writer) {
                $(self.$f.put(w);)*
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
                Ok($t { $($f: Wire::get(r)?),* })
            }
        }
    };
}

impl Wire for Prefix {
    fn put(&self, w: &mut Writer) {
        w.u32(self.addr);
        w.u8(self.len);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (addr, len) = (r.u32()?, r.u8()?);
        if len > 32 {
            return Err(WireError::Invalid("prefix length"));
        }
        Ok(Prefix::new(addr, len))
    }
}

struct_wire!(Selector { src, src_port, dst, dst_port, protocol });
struct_wire!(Policy { id, selector, action, level, mode, sa_src, sa_dst, protocols, dont_fragment });
struct_wire!(NextHop { port, gateway });
struct_wire!(Lifetimes { soft_bytes, hard_bytes, soft_secs, hard_secs });
struct_wire!(SaKey { src, dst, proto, spi });
struct_wire!(UdpEncap { src_port, dst_port });
struct_wire!(SaSpec { key, mode, xf, enc_key, auth_key, replay_window, lifetimes, dont_fragment, encap });
struct_wire!(BundleSpec { esp, ah });
struct_wire!(PolicySas { policy_id, outbound, inbound });
struct_wire!(SaCounters { packets, bytes });
struct_wire!(SaSnapshot {
    worker,
    direction,
    policy_id,
    spi,
    proto,
    mode,
    src,
    dst,
    xf,
    state,
    seq,
    replay_window,
    counters,
    added_at,
    lifetimes,
});

impl Wire for Route {
    fn put(&self, w: &mut Writer) {
        self.prefix.put(w);
        self.len.put(w);
        self.next_hop.put(w);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (prefix, len, next_hop) = (Wire::get(r)?, u8::get(r)?, Wire::get(r)?);
        if len > 32 {
            return Err(WireError::Invalid("route prefix length"));
        }
        Ok(Route { prefix, len, next_hop })
    }
}

impl Wire for Iface {
    fn put(&self, w: &mut Writer) {
        self.port.put(w);
        self.name.put(w);
        w.buf.extend_from_slice(&self.mac);
        self.mtu.put(w);
        w.len(self.addrs.len());
        for (a, len) in &self.addrs {
            a.put(w);
            len.put(w);
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (port, name, mac, mtu) = (u16::get(r)?, String::get(r)?, r.array::<6>()?, u16::get(r)?);
        let n = r.count(5)?;
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, len) = (Ipv4Addr::get(r)?, r.u8()?);
            if len > 32 {
                return Err(WireError::Invalid("address prefix length"));
            }
            addrs.push((a, len));
        }
        Ok(Iface { port, name, mac, mtu, addrs })
    }
}

/// What the dataplane should run: the compiled configuration without its warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// The interfaces, in port order (the MACs the dataplane's own).
    pub ifaces: Vec<Iface>,
    /// The static routes.
    pub routes: Vec<Route>,
    /// The enabled policies, in order, with their ids.
    pub policies: Vec<Policy>,
    /// The manual SAs of each policy, with keys.
    pub sas: Vec<PolicySas>,
}
struct_wire!(State { ifaces, routes, policies, sas });

impl From<&Compiled> for State {
    fn from(c: &Compiled) -> State {
        State { ifaces: c.ifaces.clone(), routes: c.routes.clone(), policies: c.policies.clone(), sas: c.sas.clone() }
    }
}

/// A port of the running dataplane: the interface it serves and its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// The `/interface` name.
    pub name: String,
    /// The device string it was opened with.
    pub device: String,
}
struct_wire!(PortInfo { name, device });

/// One installed SA: the worker's snapshot, the keys it was installed with, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaEntry {
    /// The worker's view: counters, sequence number, state.
    pub snapshot: SaSnapshot,
    /// Encryption key.
    pub enc_key: Zeroizing<Vec<u8>>,
    /// Integrity key.
    pub auth_key: Zeroizing<Vec<u8>>,
    /// Installation time, seconds since the Unix epoch.
    pub added: u64,
}
struct_wire!(SaEntry { snapshot, enc_key, auth_key, added });

/// One SA as it was installed: what a restarted control process adopts (IKE's SAs, whose keys
/// only the dataplane still holds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledSpec {
    /// The policy it serves.
    pub policy_id: u32,
    /// Which way.
    pub direction: Direction,
    /// The SA, keys included.
    pub spec: SaSpec,
    /// Installation time, seconds since the Unix epoch.
    pub added: u64,
}
struct_wire!(InstalledSpec { policy_id, direction, spec, added });

/// A message from the control process to the dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpRequest {
    /// Opens the conversation.
    Hello {
        /// The sender's protocol version.
        version: u16,
    },
    /// Asks whether a state could be applied, changing nothing.
    Check(State),
    /// Makes a state the running one, changing only what differs.
    Apply(State),
    /// Asks for the installed SAs.
    Sas,
    /// Asks for the counters.
    Stats,
    /// Asks for the IKE datagrams and the events (acquires, SA lifetimes) queued since the last
    /// poll.
    Poll,
    /// Sends IKE datagrams from our addresses.
    Send(Vec<Datagram>),
}

/// A message from the dataplane to the control process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpReply {
    /// Answers `Hello`.
    Hello {
        /// The dataplane's protocol version.
        version: u16,
        /// Its ports.
        ports: Vec<PortInfo>,
        /// The policies it runs, with their ids (a restarted control process adopts them).
        policies: Vec<Policy>,
        /// The SAs it runs.
        sas: Vec<InstalledSpec>,
    },
    /// Done.
    Ok,
    /// Refused, and why; nothing changed.
    Error(String),
    /// The installed SAs.
    Sas(Vec<SaEntry>),
    /// Counters by name.
    Stats(Vec<(String, u64)>),
    /// The answer to `Poll`.
    Events {
        /// IKE datagrams received for us.
        datagrams: Vec<Datagram>,
        /// Acquires and SA events.
        events: Vec<ControlEvent>,
    },
}

/// A message from a console client to the control process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlRequest {
    /// Opens the conversation.
    Hello {
        /// The client's protocol version.
        version: u16,
    },
    /// Runs one command line in the session.
    Command(String),
}

/// A message from the control process to a console client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlReply {
    /// Answers `Hello`.
    Hello {
        /// The control process's protocol version.
        version: u16,
        /// The session's prompt.
        prompt: String,
    },
    /// What a command printed, or why it was refused.
    Output {
        /// False when the command was refused (and changed nothing).
        ok: bool,
        /// The output, or the error message.
        text: String,
        /// The prompt for the next command.
        prompt: String,
    },
}

fn put_hello(w: &mut Writer, version: u16) {
    w.buf.extend_from_slice(&MAGIC);
    w.u16(version);
}

fn get_hello(r: &mut Reader<'_>) -> Result<u16, WireError> {
    if r.array::<4>()? != MAGIC {
        return Err(WireError::BadMagic);
    }
    r.u16()
}

impl Wire for DpRequest {
    fn put(&self, w: &mut Writer) {
        match self {
            DpRequest::Hello { version } => {
                w.u8(0);
                put_hello(w, *version);
            }
            DpRequest::Check(s) => {
                w.u8(1);
                s.put(w);
            }
            DpRequest::Apply(s) => {
                w.u8(2);
                s.put(w);
            }
            DpRequest::Sas => w.u8(3),
            DpRequest::Stats => w.u8(4),
            DpRequest::Poll => w.u8(5),
            DpRequest::Send(v) => {
                w.u8(6);
                v.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.tag("request", 6)? {
            0 => DpRequest::Hello { version: get_hello(r)? },
            1 => DpRequest::Check(State::get(r)?),
            2 => DpRequest::Apply(State::get(r)?),
            3 => DpRequest::Sas,
            4 => DpRequest::Stats,
            5 => DpRequest::Poll,
            _ => DpRequest::Send(Wire::get(r)?),
        })
    }
}

impl Wire for DpReply {
    fn put(&self, w: &mut Writer) {
        match self {
            DpReply::Hello { version, ports, policies, sas } => {
                w.u8(0);
                put_hello(w, *version);
                ports.put(w);
                policies.put(w);
                sas.put(w);
            }
            DpReply::Ok => w.u8(1),
            DpReply::Error(e) => {
                w.u8(2);
                e.put(w);
            }
            DpReply::Sas(v) => {
                w.u8(3);
                v.put(w);
            }
            DpReply::Stats(v) => {
                w.u8(4);
                v.put(w);
            }
            DpReply::Events { datagrams, events } => {
                w.u8(5);
                datagrams.put(w);
                events.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.tag("reply", 5)? {
            0 => DpReply::Hello {
                version: get_hello(r)?,
                ports: Wire::get(r)?,
                policies: Wire::get(r)?,
                sas: Wire::get(r)?,
            },
            1 => DpReply::Ok,
            2 => DpReply::Error(Wire::get(r)?),
            3 => DpReply::Sas(Wire::get(r)?),
            4 => DpReply::Stats(Wire::get(r)?),
            _ => DpReply::Events { datagrams: Wire::get(r)?, events: Wire::get(r)? },
        })
    }
}

impl Wire for CtlRequest {
    fn put(&self, w: &mut Writer) {
        match self {
            CtlRequest::Hello { version } => {
                w.u8(0);
                put_hello(w, *version);
            }
            CtlRequest::Command(line) => {
                w.u8(1);
                line.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.tag("request", 1)? {
            0 => CtlRequest::Hello { version: get_hello(r)? },
            _ => CtlRequest::Command(Wire::get(r)?),
        })
    }
}

impl Wire for CtlReply {
    fn put(&self, w: &mut Writer) {
        match self {
            CtlReply::Hello { version, prompt } => {
                w.u8(0);
                put_hello(w, *version);
                prompt.put(w);
            }
            CtlReply::Output { ok, text, prompt } => {
                w.u8(1);
                ok.put(w);
                text.put(w);
                prompt.put(w);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(match r.tag("reply", 1)? {
            0 => CtlReply::Hello { version: get_hello(r)?, prompt: Wire::get(r)? },
            _ => CtlReply::Output { ok: Wire::get(r)?, text: Wire::get(r)?, prompt: Wire::get(r)? },
        })
    }
}

/// Writes one message as a frame.
pub fn write_msg<T: Wire>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    w.write_all(&frame(msg))
}

/// Returns one message as a frame: its length, then its body.
pub fn frame<T: Wire>(msg: &T) -> Vec<u8> {
    let body = msg.encode();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads one frame and decodes its message; a clean end of stream before the frame is
/// `UnexpectedEof`, a bad frame `InvalidData`.
pub fn read_msg<T: Wire>(r: &mut impl Read) -> io::Result<T> {
    let mut len = [0; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(invalid(WireError::TooLong(len)));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    T::decode(&body).map_err(invalid)
}

fn invalid(e: WireError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Collects frames from a byte stream read in arbitrary pieces (a non-blocking socket).
#[derive(Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// Appends bytes received.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Returns the next complete frame's body, `None` until one is complete, or an error for a
    /// frame too long (the stream cannot be trusted after that).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, WireError> {
        let Some(len) = self.buf.get(..4) else { return Ok(None) };
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_FRAME {
            return Err(WireError::TooLong(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let body = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests;
