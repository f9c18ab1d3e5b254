//! `print` and `print detail`: the manual's numbered tables (`#   ADDRESS         SECRET`) and
//! `field=value` listings wrapped the way the console wraps them.

use crate::config::value::Net;
use crate::config::{Config, IpAddress, IpRoute, Menu};

/// The width the console wraps `field=value` listings at.
const WIDTH: usize = 79;
/// The indent of continuation lines, under the first field.
const INDENT: usize = 6;

/// Renders `print` (or `print detail`) of one menu.
pub fn render(cfg: &Config, menu: Menu, detail: bool) -> String {
    let n = cfg.len(menu);
    let mut out = String::new();
    if menu.has_disabled() && (0..n).any(|i| cfg.flags(menu, i).is_some_and(|(d, _)| d)) {
        out.push_str("Flags: X - disabled\n");
    }
    let columns = if detail { None } else { columns(menu) };
    if let Some(cols) = &columns {
        let head: Vec<(String, usize)> = cols.iter().map(|&(h, w)| (h.to_owned(), w)).collect();
        out.push_str(&row("#", ' ', &head));
    }
    for i in 0..n {
        let (disabled, comment) = cfg.flags(menu, i).unwrap_or((false, ""));
        let flag = if disabled { 'X' } else { ' ' };
        let mut idx = i.to_string();
        if !comment.is_empty() {
            out.push_str(&format!("{idx:>3} {flag} ;;; {comment}\n"));
            idx.clear();
        }
        match &columns {
            Some(cols) => {
                let cells = cells(cfg, menu, i);
                let line: Vec<(String, usize)> =
                    cells.into_iter().zip(cols.iter()).map(|(c, &(_, w))| (c, w)).collect();
                out.push_str(&row(&idx, if idx.is_empty() { ' ' } else { flag }, &line));
            }
            None => {
                let words: Vec<String> = cfg
                    .fields(menu, i)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(f, v, q)| format!("{f}={}", if q { quoted(&v) } else { crate::config::quote(&v) }))
                    .collect();
                let lead = if idx.is_empty() { " ".repeat(INDENT) } else { format!("{idx:>3} {flag} ") };
                out.push_str(&wrap(&lead, INDENT, &words));
                out.push('\n');
            }
        }
    }
    out
}

/// Returns a string in quotes, escaped like the console reads it.
fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Lays out words after `lead`, starting a new line indented by `indent` before a word that
/// would pass the width.
pub fn wrap(lead: &str, indent: usize, words: &[String]) -> String {
    let mut out = String::from(lead);
    let mut line_len = lead.len();
    for (k, w) in words.iter().enumerate() {
        if k > 0 && line_len + 1 + w.len() > WIDTH {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line_len = indent;
        } else if k > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(w);
        line_len += w.len();
    }
    out
}

/// Returns a table row: the number right-aligned in three columns, the flag, then the cells
/// padded to their widths (the last one unpadded).
fn row(idx: &str, flag: char, cells: &[(String, usize)]) -> String {
    let mut line = format!("{idx:>3} {flag} ");
    for (k, (c, w)) in cells.iter().enumerate() {
        if k + 1 == cells.len() {
            line.push_str(c);
        } else {
            line.push_str(&format!("{c:<w$} "));
        }
    }
    line.truncate(line.trim_end().len());
    line.push('\n');
    line
}

/// Returns the table columns of menus printed as tables; the others print `field=value`.
fn columns(menu: Menu) -> Option<&'static [(&'static str, usize)]> {
    Some(match menu {
        Menu::Interface => &[("NAME", 14), ("MTU", 5), ("MAC-ADDRESS", 17), ("DEVICE", 0)],
        Menu::IpAddress => &[("ADDRESS", 18), ("NETWORK", 15), ("BROADCAST", 15), ("INTERFACE", 0)],
        Menu::IpRoute => &[("DST-ADDRESS", 18), ("GATEWAY", 15), ("INTERFACE", 0)],
        Menu::Key => &[("NAME", 16), ("ALGORITHM", 9), ("LENGTH", 6), ("KEY", 0)],
        Menu::PreSharedSecret => &[("ADDRESS", 15), ("SECRET", 0)],
        Menu::Policy | Menu::ManualSa | Menu::Peer | Menu::Proposal => return None,
    })
}

/// Returns the cells of one table row.
fn cells(cfg: &Config, menu: Menu, i: usize) -> Vec<String> {
    let field = |name: &str| -> String {
        cfg.fields(menu, i)
            .unwrap_or_default()
            .into_iter()
            .find(|(f, _, _)| *f == name)
            .map(|(_, v, _)| v)
            .unwrap_or_default()
    };
    match menu {
        Menu::Interface => vec![field("name"), field("mtu"), field("mac-address"), field("device")],
        Menu::IpAddress => {
            let a: &IpAddress = &cfg.entries::<IpAddress>()[i].item;
            vec![
                a.address.to_string(),
                a.address.network().to_string(),
                a.address.broadcast().to_string(),
                a.interface.clone(),
            ]
        }
        Menu::IpRoute => {
            let r: &IpRoute = &cfg.entries::<IpRoute>()[i].item;
            vec![r.dst_address.to_string(), r.gateway.to_string(), gateway_interface(cfg, r)]
        }
        Menu::Key => vec![field("name"), field("algorithm"), field("length"), field("key")],
        Menu::PreSharedSecret => vec![field("address"), field("secret")],
        Menu::Policy | Menu::ManualSa | Menu::Peer | Menu::Proposal => Vec::new(),
    }
}

/// Returns the interface whose enabled address network holds the route's gateway, if any.
fn gateway_interface(cfg: &Config, r: &IpRoute) -> String {
    cfg.entries::<IpAddress>()
        .iter()
        .filter(|e| !e.disabled)
        .find(|e| Net::contains(e.item.address, r.gateway))
        .map(|e| e.item.interface.clone())
        .unwrap_or_default()
}
