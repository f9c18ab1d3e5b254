//! Reads a gateway's configuration file (a RouterOS export script) into its setup: the control
//! plane parses and compiles it, this adds what only the process knows (the device strings).

use control::compile::{SaSpec, compile};
use control::config::{Config, Interface};
use control::daemon::wire::State;
use dataplane::pipeline::Direction;
use ipsecgw::gateway::{IfaceSetup, SaSetup, Setup};

/// Parses and compiles an export script into a gateway setup.
pub fn setup_from_script(text: &str) -> Result<Setup, String> {
    let cfg = Config::parse(text).map_err(|e| e.to_string())?;
    let compiled = compile(&cfg).map_err(|e| e.to_string())?;
    for w in &compiled.warnings {
        eprintln!("warning: {w}");
    }
    let devices: Vec<String> = cfg.entries::<Interface>().iter().map(|e| e.item.device.clone()).collect();
    Ok(setup_from_state(&State::from(&compiled), &devices))
}

/// Turns the state the control process sends into a gateway setup on the given devices (in
/// port order).
pub fn setup_from_state(compiled: &State, devices: &[String]) -> Setup {
    let ifaces = compiled
        .ifaces
        .iter()
        .map(|i| IfaceSetup {
            name: i.name.clone(),
            device: devices.get(usize::from(i.port)).cloned().unwrap_or_default(),
            addrs: i.addrs.clone(),
            mtu: i.mtu,
        })
        .collect();
    let mut sas = Vec::new();
    for p in &compiled.sas {
        for (direction, bundle) in [(Direction::Out, &p.outbound), (Direction::In, &p.inbound)] {
            for spec in bundle.esp.iter().chain(bundle.ah.iter()) {
                sas.push(sa_setup(p.policy_id, direction, spec));
            }
        }
    }
    Setup { name: String::new(), ifaces, routes: compiled.routes.clone(), policies: compiled.policies.clone(), sas }
}

/// Returns an installed SA as the control plane specifies SAs (the inverse of `sa_setup`).
pub fn sa_spec(s: &SaSetup) -> SaSpec {
    SaSpec {
        key: dataplane::ctl::SaKey { src: s.src, dst: s.dst, proto: s.proto, spi: s.spi },
        mode: s.mode,
        xf: s.xf,
        enc_key: s.enc_key.clone(),
        auth_key: s.auth_key.clone(),
        replay_window: s.replay_window,
        lifetimes: s.lifetimes,
        dont_fragment: s.dont_fragment,
        encap: s.encap,
    }
}

fn sa_setup(policy_id: u32, direction: Direction, s: &SaSpec) -> SaSetup {
    SaSetup {
        policy_id,
        direction,
        proto: s.key.proto,
        mode: s.mode,
        spi: s.key.spi,
        src: s.key.src,
        dst: s.key.dst,
        xf: s.xf,
        enc_key: s.enc_key.clone(),
        auth_key: s.auth_key.clone(),
        dont_fragment: s.dont_fragment,
        lifetimes: s.lifetimes,
        replay_window: s.replay_window,
        encap: s.encap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configurations_compile_to_mirrored_gateways() {
        let root = env!("CARGO_MANIFEST_DIR");
        let r1 =
            setup_from_script(&std::fs::read_to_string(format!("{root}/tests/fixtures/demo/r1.rsc")).unwrap()).unwrap();
        let r2 =
            setup_from_script(&std::fs::read_to_string(format!("{root}/tests/fixtures/demo/r2.rsc")).unwrap()).unwrap();
        assert_eq!(r1.ifaces[0].device, "net_ring_r1lan");
        assert_eq!(r1.policies.len(), 1);
        let out1 = r1.sas.iter().find(|s| s.direction == Direction::Out).unwrap();
        let in2 = r2.sas.iter().find(|s| s.direction == Direction::In).unwrap();
        assert_eq!((out1.spi, out1.src, out1.dst), (in2.spi, in2.src, in2.dst));
        assert_eq!(out1.spi, 259, "esp-spi=258/259: incoming first, outgoing second");
        assert_eq!(*out1.enc_key, *in2.enc_key);
    }
}
