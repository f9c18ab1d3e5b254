//! The value forms of the RouterOS console: addresses with prefix and port, `in/out` pairs,
//! durations, protocols, MAC addresses, `yes`/`no` and named choices. Each parses what a user
//! types and prints one canonical form that parses back to the same value.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use dataplane::sa::DontFragment;
use dataplane::spd::{Action, IpsecProtocols, Level};

use super::ConfigError;

/// Lists the console names of an enum's values.
pub trait Choice: Copy + Eq + Sized + 'static {
    /// Pairs every console name with its value; the first name of a value is the one printed.
    const CHOICES: &'static [(&'static str, Self)];

    /// Parses a console name, or fails with `input does not match any value of <arg>`.
    fn parse_choice(arg: &str, s: &str) -> Result<Self, ConfigError> {
        Self::CHOICES.iter().find(|(n, _)| *n == s).map(|&(_, v)| v).ok_or_else(|| ConfigError::NoMatch(arg.into()))
    }

    /// Returns the console name.
    fn choice_name(self) -> &'static str {
        Self::CHOICES.iter().find(|(_, v)| *v == self).map_or("?", |(n, _)| n)
    }
}

/// Declares an enum whose values have console names.
macro_rules! choice_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl Choice for $name {
            const CHOICES: &'static [(&'static str, Self)] = &[$(($s, $name::$var)),+];
        }
    };
}
pub(crate) use choice_enum;

impl Choice for Action {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("accept", Action::Accept), ("drop", Action::Drop), ("encrypt", Action::Encrypt)];
}

impl Choice for Level {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("use", Level::Use), ("acquire", Level::Acquire), ("require", Level::Require)];
}

impl Choice for IpsecProtocols {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("esp", IpsecProtocols::Esp),
        ("ah", IpsecProtocols::Ah),
        ("ah,esp", IpsecProtocols::AhEsp),
        ("esp,ah", IpsecProtocols::AhEsp),
    ];
}

impl Choice for DontFragment {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("clear", DontFragment::Clear), ("set", DontFragment::Set), ("inherit", DontFragment::Inherit)];
}

impl Choice for bool {
    const CHOICES: &'static [(&'static str, Self)] = &[("yes", true), ("no", false)];
}

/// Parses a `yes`/`no` value.
pub fn parse_bool(arg: &str, s: &str) -> Result<bool, ConfigError> {
    bool::parse_choice(arg, s)
}

/// Prints a `yes`/`no` value.
pub fn bool_name(b: bool) -> &'static str {
    b.choice_name()
}

/// Parses a decimal (or `0x` hexadecimal) number of type `T`.
pub fn parse_num<T: TryFrom<u64>>(arg: &str, s: &str) -> Result<T, ConfigError> {
    let bad = || ConfigError::InvalidValue(arg.into());
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).map_err(|_| bad())?,
        None => s.parse::<u64>().map_err(|_| bad())?,
    };
    T::try_from(n).map_err(|_| bad())
}

/// Parses a dotted-quad IPv4 address.
pub fn parse_ip(arg: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    Ipv4Addr::from_str(s).map_err(|_| ConfigError::InvalidValue(arg.into()))
}

/// An address with a prefix length, `A.B.C.D/M`, kept as typed (host bits included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Net {
    /// The address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub len: u8,
}

impl Net {
    /// Matches every address: `0.0.0.0/0`.
    pub const ANY: Net = Net { addr: Ipv4Addr::UNSPECIFIED, len: 0 };

    /// Parses `A.B.C.D/M` or `A.B.C.D` (a host, /32).
    pub fn parse(arg: &str, s: &str) -> Result<Net, ConfigError> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let len: u8 = parse_num(arg, l)?;
        if len > 32 {
            return Err(ConfigError::InvalidValue(arg.into()));
        }
        Ok(Net { addr: parse_ip(arg, a)?, len })
    }

    /// Returns the network address (host bits cleared).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & dataplane::route::mask(self.len))
    }

    /// Returns the broadcast address of the network.
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !dataplane::route::mask(self.len))
    }

    /// Tells whether `ip` lies in the network.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        let m = dataplane::route::mask(self.len);
        u32::from(ip) & m == u32::from(self.addr) & m
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A policy selector address, `A.B.C.D/M:P`; port 0 is any port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrPort {
    /// The address and prefix length.
    pub net: Net,
    /// The port, 0 for any.
    pub port: u16,
}

impl AddrPort {
    /// Matches every address and port.
    pub const ANY: AddrPort = AddrPort { net: Net::ANY, port: 0 };

    /// Parses `A.B.C.D`, `A.B.C.D/M`, `A.B.C.D:P` or `A.B.C.D/M:P` (`P` a number or `any`).
    pub fn parse(arg: &str, s: &str) -> Result<AddrPort, ConfigError> {
        let (a, p) = s.split_once(':').unwrap_or((s, "any"));
        let port = if p == "any" { 0 } else { parse_num(arg, p)? };
        Ok(AddrPort { net: Net::parse(arg, a)?, port })
    }
}

impl fmt::Display for AddrPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.net)?;
        if self.port != 0 {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// An `incoming/outgoing` pair; a single value stands for both directions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pair<T> {
    /// The value for incoming SAs (the first one).
    pub incoming: T,
    /// The value for outgoing SAs (the second one).
    pub outgoing: T,
}

impl<T: Clone + PartialEq> Pair<T> {
    /// Parses `in/out` or a single value, each half with `one`.
    pub fn parse(s: &str, one: impl Fn(&str) -> Result<T, ConfigError>) -> Result<Pair<T>, ConfigError> {
        let (i, o) = s.split_once('/').unwrap_or((s, s));
        Ok(Pair { incoming: one(i)?, outgoing: one(o)? })
    }

    /// Prints `in/out`, or one value when both halves are equal.
    pub fn show(&self, one: impl Fn(&T) -> String) -> String {
        if self.incoming == self.outgoing {
            one(&self.incoming)
        } else {
            format!("{}/{}", one(&self.incoming), one(&self.outgoing))
        }
    }
}

/// A length of time in whole seconds, written like `30m`, `1h30m`, `1d`, `0s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

const UNITS: [(char, u64); 5] = [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl Duration {
    /// Parses a sequence of number-unit groups (`w d h m s`), a plain number of seconds, or `h:m:s`.
    pub fn parse(arg: &str, s: &str) -> Result<Duration, ConfigError> {
        let bad = || ConfigError::InvalidValue(arg.into());
        if s.contains(':') {
            let mut secs = 0u64;
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() > 3 {
                return Err(bad());
            }
            for p in parts {
                let n: u64 = p.parse().map_err(|_| bad())?;
                secs = secs.checked_mul(60).and_then(|v| v.checked_add(n)).ok_or_else(bad)?;
            }
            return Ok(Duration(secs));
        }
        if s.is_empty() {
            return Err(bad());
        }
        let (mut total, mut num, mut digits) = (0u64, 0u64, false);
        for c in s.chars() {
            if let Some(d) = c.to_digit(10) {
                num = num.checked_mul(10).and_then(|n| n.checked_add(u64::from(d))).ok_or_else(bad)?;
                digits = true;
            } else {
                let &(_, mult) = UNITS.iter().find(|(u, _)| *u == c).ok_or_else(bad)?;
                if !digits {
                    return Err(bad());
                }
                total = num.checked_mul(mult).and_then(|v| v.checked_add(total)).ok_or_else(bad)?;
                (num, digits) = (0, false);
            }
        }
        total = total.checked_add(num).ok_or_else(bad)?;
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return write!(f, "0s");
        }
        let mut rest = self.0;
        for (unit, mult) in UNITS {
            if rest >= mult {
                write!(f, "{}{unit}", rest / mult)?;
                rest %= mult;
            }
        }
        Ok(())
    }
}

/// IP protocols by their RouterOS names (IANA numbers).
const PROTOCOLS: [(&str, u8); 27] = [
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ip-encap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("gre", 47),
    ("ipsec-esp", 50),
    ("ipsec-ah", 51),
    ("rspf", 73),
    ("vmtp", 81),
    ("ospf", 89),
    ("ipip", 94),
    ("encap", 98),
    ("pim", 103),
    ("vrrp", 112),
    ("sctp", 132),
];

/// Parses a protocol: `all` (`None`), a name, or a number 0..=255.
pub fn parse_protocol(arg: &str, s: &str) -> Result<Option<u8>, ConfigError> {
    if s == "all" {
        return Ok(None);
    }
    if let Some(&(_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == s) {
        return Ok(Some(n));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return parse_num::<u8>(arg, s).map(Some);
    }
    Err(ConfigError::NoMatch(arg.into()))
}

/// Prints a protocol by name when it has one.
pub fn protocol_name(p: Option<u8>) -> String {
    match p {
        None => "all".into(),
        Some(n) => PROTOCOLS.iter().find(|(_, v)| *v == n).map_or_else(|| n.to_string(), |(name, _)| (*name).into()),
    }
}

/// Parses an Ethernet address `XX:XX:XX:XX:XX:XX` (`-` also separates).
pub fn parse_mac(arg: &str, s: &str) -> Result<[u8; 6], ConfigError> {
    let bad = || ConfigError::InvalidValue(arg.into());
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut mac {
        let p = parts.next().ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Prints an Ethernet address in RouterOS's upper-case form.
pub fn mac_name(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, g] = mac;
    format!("{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
}

/// Checks a hexadecimal key value (`0x` optional) and returns it as typed.
pub fn parse_hex(arg: &str, s: &str) -> Result<String, ConfigError> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::InvalidValue(arg.into()));
    }
    Ok(s.into())
}

/// Parses a name that refers to another item, `none` meaning no reference.
pub fn parse_ref(s: &str) -> Option<String> {
    if s == "none" || s.is_empty() { None } else { Some(s.into()) }
}

/// Prints an optional reference, `none` for no reference.
pub fn ref_name(r: &Option<String>) -> String {
    r.clone().unwrap_or_else(|| "none".into())
}

/// Parses a comma-separated list of choices into their canonical order, without repeats.
pub fn parse_list<T: Choice>(arg: &str, s: &str) -> Result<Vec<T>, ConfigError> {
    let mut got = Vec::new();
    for part in s.split(',') {
        let v = T::parse_choice(arg, part)?;
        if !got.contains(&v) {
            got.push(v);
        }
    }
    Ok(canonical(got))
}

/// Orders a list of choices as their `CHOICES` table does.
pub fn canonical<T: Choice>(got: Vec<T>) -> Vec<T> {
    T::CHOICES.iter().map(|&(_, v)| v).filter(|v| got.contains(v)).fold(Vec::new(), |mut acc, v| {
        if !acc.contains(&v) {
            acc.push(v);
        }
        acc
    })
}

/// Prints a list of choices comma-separated.
pub fn list_name<T: Choice>(list: &[T]) -> String {
    list.iter().map(|v| v.choice_name()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_canonically() {
        for (typed, secs, shown) in [
            ("30m", 1800, "30m"),
            ("24m", 1440, "24m"),
            ("1h30m", 5400, "1h30m"),
            ("90m", 5400, "1h30m"),
            ("0s", 0, "0s"),
            ("1d", 86_400, "1d"),
            ("3600", 3600, "1h"),
            ("00:30:00", 1800, "30m"),
            ("1w2d3h4m5s", 788_645, "1w2d3h4m5s"),
        ] {
            let d = Duration::parse("lifetime", typed).unwrap();
            assert_eq!(d, Duration(secs), "{typed}");
            assert_eq!(d.to_string(), shown);
            assert_eq!(Duration::parse("lifetime", shown).unwrap(), d);
        }
        for bad in ["", "m", "1x", "1:2:3:4", "-1s", "99999999999999999999"] {
            assert_eq!(Duration::parse("lifetime", bad), Err(ConfigError::InvalidValue("lifetime".into())), "{bad}");
        }
    }

    #[test]
    fn addresses_take_the_manual_forms() {
        let a = AddrPort::parse("src-address", "10.1.0.0/24:80").unwrap();
        assert_eq!(a.net, Net { addr: Ipv4Addr::new(10, 1, 0, 0), len: 24 });
        assert_eq!(a.port, 80);
        assert_eq!(a.to_string(), "10.1.0.0/24:80");
        assert_eq!(AddrPort::parse("x", "10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(AddrPort::parse("x", "10.0.0.1:any").unwrap().port, 0);
        assert_eq!(AddrPort::parse("x", "10.0.0.1:23").unwrap().net.len, 32);
        for bad in ["10.0.0/24", "10.0.0.1/33", "10.0.0.1:70000", "host", "10.0.0.1/24:x"] {
            assert_eq!(AddrPort::parse("src-address", bad), Err(ConfigError::InvalidValue("src-address".into())));
        }
        let n = Net::parse("address", "10.1.0.1/24").unwrap();
        assert_eq!(n.network(), Ipv4Addr::new(10, 1, 0, 0));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 1, 0, 255));
        assert!(n.contains(Ipv4Addr::new(10, 1, 0, 77)));
    }

    #[test]
    fn pairs_read_incoming_first() {
        let p = Pair::parse("258/259", |s| parse_num::<u32>("esp-spi", s)).unwrap();
        assert_eq!((p.incoming, p.outgoing), (258, 259));
        assert_eq!(p.show(|v| v.to_string()), "258/259");
        let one = Pair::parse("auth-key1", |s| Ok(parse_ref(s))).unwrap();
        assert_eq!(one.outgoing.as_deref(), Some("auth-key1"));
        assert_eq!(one.show(ref_name), "auth-key1");
        assert_eq!(Pair::parse("none/k", |s| Ok(parse_ref(s))).unwrap().show(ref_name), "none/k");
        assert!(Pair::parse("1/x", |s| parse_num::<u32>("esp-spi", s)).is_err());
        let life = Pair::parse("24m/30m", |s| Duration::parse("add-lifetime", s)).unwrap();
        assert_eq!((life.incoming, life.outgoing), (Duration(1440), Duration(1800)));
        assert_eq!(life.show(Duration::to_string), "24m/30m");
    }

    #[test]
    fn protocols_by_name_or_number() {
        assert_eq!(parse_protocol("protocol", "all"), Ok(None));
        assert_eq!(parse_protocol("protocol", "udp"), Ok(Some(17)));
        assert_eq!(parse_protocol("protocol", "47"), Ok(Some(47)));
        assert_eq!(protocol_name(Some(47)), "gre");
        assert_eq!(protocol_name(Some(200)), "200");
        assert_eq!(parse_protocol("protocol", "256"), Err(ConfigError::InvalidValue("protocol".into())));
        assert_eq!(parse_protocol("protocol", "bogus"), Err(ConfigError::NoMatch("protocol".into())));
    }

    #[test]
    fn small_forms() {
        assert_eq!(parse_mac("mac-address", "02:00:0a:00:00:01"), Ok([2, 0, 10, 0, 0, 1]));
        assert_eq!(mac_name(&[2, 0, 10, 0, 0, 1]), "02:00:0A:00:00:01");
        assert!(parse_mac("mac-address", "02:00:0a:00:00").is_err());
        assert!(parse_mac("mac-address", "02:00:0a:00:00:01:02").is_err());
        assert_eq!(parse_hex("key", "0xABcd").unwrap(), "0xABcd");
        assert!(parse_hex("key", "abc").is_err());
        assert_eq!(parse_num::<u32>("esp-spi", "0x100"), Ok(256));
        assert_eq!(parse_bool("tunnel", "maybe"), Err(ConfigError::NoMatch("tunnel".into())));
        assert_eq!(IpsecProtocols::parse_choice("ipsec-protocols", "esp,ah"), Ok(IpsecProtocols::AhEsp));
        assert_eq!(IpsecProtocols::AhEsp.choice_name(), "ah,esp");
    }
}
