//! The items of the port menus: `/interface` (a DPDK device per port), `/ip address` and
//! `/ip route`.

use std::net::Ipv4Addr;

use super::value::{Net, mac_name, parse_ip, parse_mac, parse_num};
use super::{Config, ConfigError, Entry, Item, Menu, Ref};

/// One `/interface`: a port, in config order (the first is port 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// `name`, for reference from `/ip address`.
    pub name: String,
    /// `device`: the DPDK device, a PCI address or a virtual device string like
    /// `net_af_packet0,iface=veth0`.
    pub device: String,
    /// `mac-address`; `None` (`none`) takes the port's own.
    pub mac_address: Option<[u8; 6]>,
    /// `mtu`, default 1500.
    pub mtu: u16,
}

impl Default for Interface {
    fn default() -> Self {
        Interface { name: String::new(), device: String::new(), mac_address: None, mtu: 1500 }
    }
}

/// The MTU range a port accepts: the IPv4 minimum (RFC 791) up to a 9216-byte jumbo frame.
const MTU_RANGE: std::ops::RangeInclusive<u16> = 68..=9216;

impl Item for Interface {
    const MENU: Menu = Menu::Interface;
    const FIELDS: &'static [&'static str] = &["name", "device", "mac-address", "mtu"];
    const REQUIRED: &'static [&'static str] = &["name", "device"];
    const QUOTED: &'static [&'static str] = &["name", "device"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "name" => self.name = v.into(),
            "device" if !v.is_empty() => self.device = v.into(),
            "mac-address" if v == "none" || v.is_empty() => self.mac_address = None,
            "mac-address" => self.mac_address = Some(parse_mac(field, v)?),
            "mtu" => {
                let m: u16 = parse_num(field, v)?;
                if !MTU_RANGE.contains(&m) {
                    return Err(ConfigError::InvalidValue(field.into()));
                }
                self.mtu = m;
            }
            "device" => return Err(ConfigError::InvalidValue(field.into())),
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "name" => self.name.clone(),
            "device" => self.device.clone(),
            "mac-address" => self.mac_address.as_ref().map_or_else(|| "none".into(), mac_name),
            "mtu" => self.mtu.to_string(),
            _ => String::new(),
        }
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.interfaces
    }
}

/// One `/ip address`: an address and prefix on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpAddress {
    /// `address`, `A.B.C.D/M`.
    pub address: Net,
    /// `interface`, by name.
    pub interface: String,
}

impl Default for IpAddress {
    fn default() -> Self {
        IpAddress { address: Net { addr: Ipv4Addr::UNSPECIFIED, len: 32 }, interface: String::new() }
    }
}

impl Item for IpAddress {
    const MENU: Menu = Menu::IpAddress;
    const FIELDS: &'static [&'static str] = &["address", "interface"];
    const REQUIRED: &'static [&'static str] = &["address", "interface"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "address" => self.address = Net::parse(field, v)?,
            "interface" => self.interface = v.into(),
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "address" => self.address.to_string(),
            "interface" => self.interface.clone(),
            _ => String::new(),
        }
    }

    fn refs(&self) -> Vec<Ref<'_>> {
        vec![Ref { field: "interface", menu: Menu::Interface, name: &self.interface }]
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.addresses
    }
}

/// One `/ip route`: a static route through a gateway on a connected network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRoute {
    /// `dst-address`, `A.B.C.D/M`, default `0.0.0.0/0`.
    pub dst_address: Net,
    /// `gateway`.
    pub gateway: Ipv4Addr,
}

impl Default for IpRoute {
    fn default() -> Self {
        IpRoute { dst_address: Net::ANY, gateway: Ipv4Addr::UNSPECIFIED }
    }
}

impl Item for IpRoute {
    const MENU: Menu = Menu::IpRoute;
    const FIELDS: &'static [&'static str] = &["dst-address", "gateway"];
    const REQUIRED: &'static [&'static str] = &["gateway"];

    fn set(&mut self, field: &str, v: &str) -> Result<(), ConfigError> {
        match field {
            "dst-address" => self.dst_address = Net::parse(field, v)?,
            "gateway" => self.gateway = parse_ip(field, v)?,
            _ => return Err(ConfigError::UnknownArgument(field.into())),
        }
        Ok(())
    }

    fn get(&self, field: &str) -> String {
        match field {
            "dst-address" => self.dst_address.to_string(),
            "gateway" => self.gateway.to_string(),
            _ => String::new(),
        }
    }

    fn entries(cfg: &Config) -> &Vec<Entry<Self>> {
        &cfg.routes
    }
}
