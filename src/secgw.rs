//! The ipsec-secgw contender of `ipsecgw bench --secgw PATH`: DPDK's own example gateway
//! (22.11, built by `scripts/build-secgw.sh`) on the same replayed frames, the same virtual
//! devices and one lcore, in the same rounds as ours, so that the two gateways are compared on
//! one machine at one time rather than through the figures from another machine.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dataplane::crypto::{Auth, Cipher, Transform};

use crate::bench::{GW, LAN1, LAN2, PEER, capture_frames, lan2_host};

/// What ipsec-secgw measured in one round.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    /// Packets per second sent, in millions, over the window.
    pub mpps: f64,
    /// The share of the window its lcore thread was on a CPU.
    pub on_cpu: f64,
}

/// One statistics print of ipsec-secgw: packets sent so far, the TSC and its rate, and its
/// lcore thread's time on a CPU (ns) when the print arrived.
#[derive(Clone, Copy, Debug)]
struct Sample {
    sent: u64,
    tsc: u64,
    hz: u64,
    cpu_ns: u64,
}

/// Runs `bin` outbound over `pcap` with `policies` policies, each with its own SA of `xf` and
/// the `(encryption, integrity)` keys, and returns its rate over `seconds` after `warmup`
/// seconds, on hugepages or not. Writes its configuration in `dir`.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    bin: &Path,
    xf: Transform,
    (enc, auth): (&[u8], &[u8]),
    policies: u32,
    pcap: &Path,
    dir: &Path,
    (warmup, seconds): (u64, u64),
    hugepages: bool,
) -> Result<Round, String> {
    let cfg = dir.join("secgw.cfg");
    std::fs::write(&cfg, config(xf, enc, auth, policies)?).map_err(|e| e.to_string())?;
    let prefix = format!("ipsecgw_sg_{}", std::process::id());
    let mut child = Command::new(bin)
        .args(crate::bench::eal_memory(hugepages))
        .args(["--no-pci", "--no-telemetry", "--file-prefix", &prefix, "-l", "1"])
        .arg("--vdev")
        .arg(format!("net_pcap0,rx_pcap={},infinite_rx=1", pcap.display()))
        .args(["--vdev", "net_null0,no-rx=1", "--vdev", "crypto_aesni_mb0", "--"])
        // Port 0 (the capture, our LAN side) is protected, port 1 (the WAN) unprotected in
        // secgw's words; lcore 1 serves both; statistics every second. Its fastest mode here:
        // librte_ipsec (-l) with synchronous CPU crypto (the SAs' `type cpu-crypto`), which
        // measured faster than its default, lookaside through the crypto device's queues
        // (single runs at 64 bytes: AES-GCM 3.98 against 3.59 Mpps, 3.68 with librte_ipsec
        // alone; AES-CBC + HMAC-SHA1 2.44 to 3.21 against 2.21, 2.21 to 2.56 alone).
        .args(["-p", "0x3", "-P", "-u", "0x2", "-l", "--config", "(0,0,1),(1,0,1)", "-t", "1", "-f"])
        .arg(&cfg)
        // `net_pcap` holds the whole capture (a frame per policy) in the pool's buffers: room
        // for it on top of its default pool (8,512 buffers here).
        .args(if policies > 1 { vec!["-s".to_owned(), (8512 + capture_frames(policies)).to_string()] } else { vec![] })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e} (scripts/build-secgw.sh builds it)", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    // Its main thread is its only lcore.
    let schedstat = std::path::PathBuf::from(format!("/proc/{}/task/{}/schedstat", child.id(), child.id()));
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut sent = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(v) = line.strip_prefix("Total packets sent:") {
                sent = v.trim().parse::<u64>().ok();
            } else if let (Some(rest), Some(n)) = (line.strip_prefix("TSC "), sent) {
                let cpu_ns = crate::bench::on_cpu_ns(&schedstat).unwrap_or(0);
                let mut w = rest.split_whitespace();
                let tsc = w.next().and_then(|v| v.parse().ok());
                let hz = w.nth(1).and_then(|v| v.parse().ok());
                if let (Some(tsc), Some(hz)) = (tsc, hz) {
                    let _ = tx.send(Sample { sent: n, tsc, hz, cpu_ns });
                }
            }
        }
    });
    let window = window(&rx, warmup, seconds);
    let _ = child.kill();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (s0, s1) = window.ok_or_else(|| format!("ipsec-secgw printed no statistics:\n{stderr}"))?;
    let secs = (s1.tsc - s0.tsc) as f64 / s0.hz as f64;
    if s1.sent <= s0.sent {
        return Err(format!("ipsec-secgw sent nothing:\n{stderr}"));
    }
    Ok(Round {
        mpps: (s1.sent - s0.sent) as f64 / secs / 1e6,
        on_cpu: ((s1.cpu_ns.saturating_sub(s0.cpu_ns)) as f64 / 1e9 / secs).min(1.0),
    })
}

/// Waits for the first print `warmup` seconds after the first one, then for the first print
/// `seconds` after that; `None` if the prints stop for 10 seconds.
fn window(rx: &mpsc::Receiver<Sample>, warmup: u64, seconds: u64) -> Option<(Sample, Sample)> {
    let next = || rx.recv_timeout(Duration::from_secs(10)).ok();
    let first = next()?;
    let mut s0 = first;
    while s0.tsc - first.tsc < warmup * first.hz {
        s0 = next()?;
    }
    let mut s1 = next()?;
    while s1.tsc - s0.tsc < seconds * s0.hz {
        s1 = next()?;
    }
    Some((s0, s1))
}

/// Returns ipsec-secgw's configuration, on the bench's addresses: LAN1's /16 to LAN2 through
/// one tunnel SA from the gateway to the peer, routed to port 1 (with several policies, as ours
/// has them: one per LAN2 host, each with its own SA); the inbound SA it insists on when a port
/// is unprotected.
fn config(xf: Transform, enc: &[u8], auth: &[u8], policies: u32) -> Result<String, String> {
    let hex = |k: &[u8]| k.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    let cipher = match xf.cipher() {
        Cipher::AesGcm128 => format!("aead_algo aes-128-gcm aead_key {}", hex(enc)),
        Cipher::AesGcm256 => format!("aead_algo aes-256-gcm aead_key {}", hex(enc)),
        Cipher::AesCbc128 => format!("cipher_algo aes-128-cbc cipher_key {}", hex(enc)),
        Cipher::AesCbc192 => format!("cipher_algo aes-192-cbc cipher_key {}", hex(enc)),
        Cipher::AesCbc256 => format!("cipher_algo aes-256-cbc cipher_key {}", hex(enc)),
        Cipher::TdesCbc => format!("cipher_algo 3des-cbc cipher_key {}", hex(enc)),
        Cipher::DesCbc => format!("cipher_algo des-cbc cipher_key {}", hex(enc)),
        Cipher::Null => "cipher_algo null".to_owned(),
    };
    let integrity = match xf.auth() {
        _ if xf.cipher().is_aead() => String::new(),
        Auth::Null => " auth_algo null".to_owned(),
        Auth::HmacSha1_96 => format!(" auth_algo sha1-hmac auth_key {}", hex(auth)),
        Auth::HmacSha256_128 => format!(" auth_algo sha256-hmac auth_key {}", hex(auth)),
        Auth::HmacMd5_96 => return Err("ipsec-secgw has no hmac-md5".into()),
    };
    let (lan1, gw, peer) = (Ipv4Addr::from(u32::from(LAN1) & 0xffff_0000), GW, PEER);
    let mut c = String::new();
    for i in 0..policies {
        let (spi, dst) =
            if policies == 1 { (5, format!("{LAN2}/16")) } else { (1000 + i, format!("{}/32", lan2_host(i))) };
        c += &format!(
            "sp ipv4 out esp protect {spi} pri 1 dst {dst} sport 0:65535 dport 0:65535\n\
             sa out {spi} {cipher}{integrity} type cpu-crypto mode ipv4-tunnel src {gw} dst {peer}\n"
        );
    }
    c += &format!(
        "sp ipv4 in esp protect 105 pri 1 dst {lan1}/16 sport 0:65535 dport 0:65535\n\
         sa in 105 {cipher}{integrity} type cpu-crypto mode ipv4-tunnel src {peer} dst {gw}\n\
         rt ipv4 dst {peer}/32 port 1\n\
         rt ipv4 dst {lan1}/16 port 0\n"
    );
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_names_the_transform_and_its_keys() {
        let gcm = Transform::new(Cipher::AesGcm128, Auth::Null).unwrap();
        let c = config(gcm, &[0xab; 20], &[], 1).unwrap();
        assert!(c.contains("sa out 5 aead_algo aes-128-gcm aead_key ab:ab:"), "{c}");
        assert!(!c.contains("auth_algo"), "{c}");
        let cbc = Transform::new(Cipher::AesCbc128, Auth::HmacSha1_96).unwrap();
        let c = config(cbc, &[1; 16], &[2; 20], 1).unwrap();
        let out = c.lines().find(|l| l.starts_with("sa out")).unwrap();
        assert_eq!(
            out.split_whitespace().take(9).collect::<Vec<_>>(),
            ["sa", "out", "5", "cipher_algo", "aes-128-cbc", "cipher_key", &hex16(1), "auth_algo", "sha1-hmac"]
        );
        let md5 = Transform::new(Cipher::AesCbc128, Auth::HmacMd5_96).unwrap();
        assert!(config(md5, &[1; 16], &[2; 16], 1).is_err());
    }

    #[test]
    fn several_policies_each_protect_one_far_host_with_their_own_sa() {
        let gcm = Transform::new(Cipher::AesGcm128, Auth::Null).unwrap();
        let c = config(gcm, &[0xab; 20], &[], 3).unwrap();
        let out: Vec<&str> = c.lines().filter(|l| l.starts_with("sp ipv4 out")).collect();
        assert_eq!(out.len(), 3);
        for (i, l) in out.iter().enumerate() {
            let w: Vec<&str> = l.split_whitespace().collect();
            let spi = w[5];
            assert_eq!(w[9], format!("{}/32", lan2_host(i as u32)), "{l}");
            assert_eq!(c.lines().filter(|s| s.starts_with(&format!("sa out {spi} "))).count(), 1, "{c}");
        }
        assert_eq!(c.lines().filter(|l| l.starts_with("sa out")).count(), 3);
    }

    fn hex16(b: u8) -> String {
        vec![format!("{b:02x}"); 16].join(":")
    }
}
