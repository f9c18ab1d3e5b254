//! `/ip ipsec installed-sa print`: snapshots of the SAs in the dataplane, laid out exactly as
//! the manual's example prints them (fixed groups of fields per line, dates like
//! `jul/12/2002 16:13:21`, lifetimes as `soft/hard`).

use std::fmt::Write;
use std::net::Ipv4Addr;

use dataplane::crypto::{Auth, Cipher};
use dataplane::sa::{IpsecProto, SaState};
use zeroize::Zeroizing;

use crate::config::value::Duration;

/// Which way an SA carries packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Decrypts arriving packets.
    In,
    /// Encrypts leaving packets.
    Out,
}

/// A snapshot of one installed SA, as `installed-sa print` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledSa {
    /// `spi`.
    pub spi: u32,
    /// `replay`: the anti-replay window (0 when off).
    pub replay: u32,
    /// `state`: mature, dying or dead.
    pub state: SaState,
    /// `auth-algorithm`.
    pub auth_algorithm: Auth,
    /// `enc-algorithm` (`null` for AH).
    pub enc_algorithm: Cipher,
    /// `src-address`: the SA source.
    pub src_address: Ipv4Addr,
    /// `dst-address`: the SA destination.
    pub dst_address: Ipv4Addr,
    /// `policy-id`: the id of the policy the SA serves.
    pub policy_id: u32,
    /// `xform-index`: the SA's place in its policy's bundle (0 for ESP, 1 for AH after ESP).
    pub xform_index: u32,
    /// `auth-key` (its length in bits is printed too).
    pub auth_key: Zeroizing<Vec<u8>>,
    /// `enc-key` (its length in bits is printed too).
    pub enc_key: Zeroizing<Vec<u8>>,
    /// `sa-type`: esp or ah.
    pub sa_type: IpsecProto,
    /// `direction`.
    pub direction: Direction,
    /// `current-addtime`: when the SA was installed, in seconds since the Unix epoch (UTC).
    pub current_addtime: u64,
    /// `current-usetime`: when the SA first processed a packet, in seconds since the epoch.
    pub current_usetime: u64,
    /// `current-bytes`: bytes processed.
    pub current_bytes: u64,
    /// `add-lifetime`: soft and hard lifetime since installation.
    pub add_lifetime: (Duration, Duration),
    /// `use-lifetime`: soft and hard lifetime since first use.
    pub use_lifetime: (Duration, Duration),
    /// `lifebytes`: soft and hard byte limits (0 for none).
    pub lifebytes: (u64, u64),
}

/// Supplies the installed SAs for `installed-sa print`.
pub trait InstalledSas {
    /// Returns a snapshot of every installed SA.
    fn installed_sas(&self) -> Vec<InstalledSa>;
}

impl InstalledSas for Vec<InstalledSa> {
    fn installed_sas(&self) -> Vec<InstalledSa> {
        self.clone()
    }
}

impl<F: Fn() -> Vec<InstalledSa>> InstalledSas for F {
    fn installed_sas(&self) -> Vec<InstalledSa> {
        self()
    }
}

/// Returns the console's name of a cipher (`descbc`, as the manual prints KAME's names).
fn cipher_name(c: Cipher) -> &'static str {
    match c {
        Cipher::Null => "null",
        Cipher::DesCbc => "descbc",
        Cipher::TdesCbc => "3descbc",
        Cipher::AesCbc128 | Cipher::AesCbc192 | Cipher::AesCbc256 => "aescbc",
        Cipher::AesGcm128 | Cipher::AesGcm256 => "aesgcm",
    }
}

/// Formats seconds since the epoch (UTC) as RouterOS does: `jul/12/2002 16:13:21`.
pub fn format_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from a day count (H. Hinnant's days_from_civil, inverted), era of 400 years.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{}/{day:02}/{year:04} {h:02}:{m:02}:{s:02}", MONTHS[(month - 1) as usize])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Renders the SAs numbered from 0, each followed by a blank line.
pub fn render(sas: &[InstalledSa]) -> String {
    let mut out = String::new();
    for (i, sa) in sas.iter().enumerate() {
        let state = match sa.state {
            SaState::Mature => "mature",
            SaState::Dying => "dying",
            SaState::Dead => "dead",
        };
        let sa_type = match sa.sa_type {
            IpsecProto::Esp => "esp",
            IpsecProto::Ah => "ah",
        };
        let direction = match sa.direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        let lines = [
            format!("spi={} replay={} state={state} auth-algorithm={}", sa.spi, sa.replay, sa.auth_algorithm.name()),
            format!(
                "enc-algorithm={} flags=\"\" src-address={} dst-address={}",
                cipher_name(sa.enc_algorithm),
                sa.src_address,
                sa.dst_address
            ),
            format!(
                "policy-id={} xform-index={} auth-key-length={}",
                sa.policy_id,
                sa.xform_index,
                sa.auth_key.len() * 8
            ),
            format!("auth-key=\"{}\" enc-key-length={}", hex(&sa.auth_key), sa.enc_key.len() * 8),
            format!("enc-key=\"{}\" sa-type={sa_type} direction={direction}", hex(&sa.enc_key)),
            format!(
                "current-addtime={} current-usetime={}",
                format_time(sa.current_addtime),
                format_time(sa.current_usetime)
            ),
            format!(
                "current-bytes={} add-lifetime={}/{} use-lifetime={}/{} lifebytes={}/{}",
                sa.current_bytes,
                sa.add_lifetime.0,
                sa.add_lifetime.1,
                sa.use_lifetime.0,
                sa.use_lifetime.1,
                sa.lifebytes.0,
                sa.lifebytes.1
            ),
        ];
        for (k, l) in lines.iter().enumerate() {
            if k == 0 {
                let _ = writeln!(out, "{i:>3} {l} ");
            } else {
                let _ = writeln!(out, "    {l} ");
            }
        }
        out.push('\n');
    }
    out
}
