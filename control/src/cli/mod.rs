//! The RouterOS console: menu paths (absolute, relative, `..`, `/`), the item commands `add`,
//! `set`, `remove`, `move`, `enable`, `disable`, `print [detail]` and `export`, and
//! `/ip ipsec installed-sa print` over SA snapshots the caller supplies.
//!
//! A [`Console`] owns the configuration and the current menu. A command that fails changes
//! nothing: it runs on a copy, which an optional validator (the daemon compiles it) may still
//! refuse, and replaces the configuration only when everything succeeded.

pub(crate) mod installed;
mod print;
#[cfg(test)]
pub(crate) mod tests;

use thiserror::Error;

pub use installed::{Direction, InstalledSa, InstalledSas};

use crate::config::{Config, ConfigError, Menu};

/// Why a console command was refused.
#[derive(Debug, Error)]
pub enum CliError {
    /// The configuration refused the change.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A word that is neither a menu nor a command here.
    #[error("bad command name {0}")]
    BadCommand(String),
    /// Something after a complete command.
    #[error("expected end of command ({0})")]
    ExpectedEnd(String),
    /// A line that does not tokenize (an unterminated quote).
    #[error("syntax error ({0})")]
    Syntax(String),
    /// The validator refused the resulting configuration.
    #[error("failure: {0}")]
    Rejected(String),
}

/// A node of the menu tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Root,
    Ip,
    IpIpsec,
    Items(Menu),
    InstalledSa,
}

impl Node {
    fn children(self) -> &'static [(&'static str, Node)] {
        match self {
            Node::Root => &[("interface", Node::Items(Menu::Interface)), ("ip", Node::Ip)],
            Node::Ip => &[
                ("address", Node::Items(Menu::IpAddress)),
                ("route", Node::Items(Menu::IpRoute)),
                ("ipsec", Node::IpIpsec),
            ],
            Node::IpIpsec => &[
                ("policy", Node::Items(Menu::Policy)),
                ("installed-sa", Node::InstalledSa),
                ("manual-sa", Node::Items(Menu::ManualSa)),
                ("peer", Node::Items(Menu::Peer)),
                ("pre-shared-secret", Node::Items(Menu::PreSharedSecret)),
                ("key", Node::Items(Menu::Key)),
                ("proposal", Node::Items(Menu::Proposal)),
            ],
            Node::Items(_) | Node::InstalledSa => &[],
        }
    }

    fn child(self, word: &str) -> Option<Node> {
        self.children().iter().find(|(w, _)| *w == word).map(|&(_, n)| n)
    }

    fn parent(self) -> Node {
        match self {
            Node::Root | Node::Ip | Node::Items(Menu::Interface) => Node::Root,
            Node::IpIpsec | Node::Items(Menu::IpAddress | Menu::IpRoute) => Node::Ip,
            Node::Items(_) | Node::InstalledSa => Node::IpIpsec,
        }
    }

    fn path(self) -> String {
        match self {
            Node::Root => String::new(),
            Node::Ip => "ip".into(),
            Node::IpIpsec => "ip ipsec".into(),
            Node::Items(m) => m.words().join(" "),
            Node::InstalledSa => "ip ipsec installed-sa".into(),
        }
    }

    /// Returns the item menus at or under this node, in export order.
    fn menus(self) -> Vec<Menu> {
        Menu::ALL
            .into_iter()
            .filter(|m| self.path().is_empty() || m.words().join(" ").starts_with(&self.path()))
            .collect()
    }
}

/// One word of a command line: `value`, or `key=value`, quotes removed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    key: Option<String>,
    value: String,
}

/// Splits a line into words. `"..."` quotes (with `\"`, `\\`, `\n`, `\t` escapes) may appear
/// anywhere in a word; the first `=` outside quotes separates a key from its value.
fn tokenize(line: &str) -> Result<Vec<Token>, CliError> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(tokens);
        }
        let (mut key, mut cur, mut quoted) = (None, String::new(), false);
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => match chars.next() {
                    Some('n') => cur.push('\n'),
                    Some('t') => cur.push('\t'),
                    Some(e) => cur.push(e),
                    None => break,
                },
                c if c.is_whitespace() && !quoted => break,
                '=' if !quoted && key.is_none() => key = Some(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        if quoted {
            return Err(CliError::Syntax("unterminated string".into()));
        }
        tokens.push(Token { key, value: cur });
    }
}

/// Checks a candidate configuration before a command commits it.
pub type Validator = Box<dyn Fn(&Config) -> Result<(), String> + Send>;

/// A console session: the configuration, the current menu, and where installed SAs come from.
pub struct Console {
    config: Config,
    node: Node,
    generation: u64,
    sas: Box<dyn InstalledSas + Send>,
    validator: Option<Validator>,
}

impl Console {
    /// Opens a console at the root menu over `config`, with no installed SAs.
    pub fn new(config: Config) -> Console {
        Console { config, node: Node::Root, generation: 0, sas: Box::new(Vec::new()), validator: None }
    }

    /// Sets where `installed-sa print` gets its SAs.
    pub fn set_installed_sas(&mut self, sas: Box<dyn InstalledSas + Send>) {
        self.sas = sas;
    }

    /// Sets a check every changed configuration must pass before it replaces the current one.
    pub fn set_validator(&mut self, validator: Validator) {
        self.validator = Some(validator);
    }

    /// Returns the configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the configuration, closing the console.
    pub fn into_config(self) -> Config {
        self.config
    }

    /// Returns a number that grows with every accepted change, to tell when to save and compile.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Returns the prompt for the current menu, like `[admin@ipsecgw] ip ipsec policy> `.
    pub fn prompt(&self) -> String {
        let path = self.node.path();
        if path.is_empty() { "[admin@ipsecgw] > ".into() } else { format!("[admin@ipsecgw] {path}> ") }
    }

    /// Runs one command line and returns what it prints.
    pub fn execute(&mut self, line: &str) -> Result<String, CliError> {
        let mut tokens = tokenize(line)?;
        let mut node = self.node;
        let mut navigated = false;
        if let Some(first) = tokens.first_mut().filter(|t| t.key.is_none() && t.value.starts_with('/')) {
            node = Node::Root;
            navigated = true;
            first.value.remove(0);
            if first.value.is_empty() {
                tokens.remove(0);
            }
        }
        let mut i = 0;
        while let Some(t) = tokens.get(i).filter(|t| t.key.is_none()) {
            node = match t.value.as_str() {
                ".." => node.parent(),
                w => match node.child(w) {
                    Some(n) => n,
                    None => break,
                },
            };
            navigated = true;
            i += 1;
        }
        let Some(cmd) = tokens.get(i) else {
            if navigated {
                self.node = node;
            }
            return Ok(String::new());
        };
        if let Some(k) = &cmd.key {
            return Err(CliError::BadCommand(k.clone()));
        }
        let cmd = cmd.value.clone();
        let args = &tokens[i + 1..];
        match node {
            Node::Items(menu) => self.item_command(menu, &cmd, args),
            Node::InstalledSa if cmd == "print" => {
                expect_end(print_mode(args)?.1)?;
                Ok(installed::render(&self.sas.installed_sas()))
            }
            _ if cmd == "export" => {
                expect_end(args)?;
                Ok(node.menus().into_iter().map(|m| self.config.export_menu(m)).collect())
            }
            _ => Err(CliError::BadCommand(cmd)),
        }
    }

    fn item_command(&mut self, menu: Menu, cmd: &str, args: &[Token]) -> Result<String, CliError> {
        match cmd {
            "print" => {
                let (detail, rest) = print_mode(args)?;
                expect_end(rest)?;
                Ok(print::render(&self.config, menu, detail))
            }
            "export" => {
                expect_end(args)?;
                Ok(self.config.export_menu(menu))
            }
            "add" => {
                let fields = fields(args)?;
                self.change(|c| c.add(menu, &fields).map(drop))
            }
            "set" => {
                let (target, rest) = split_target(args, "numbers");
                let indices = resolve(&self.config, menu, &target)?;
                let fields = fields(&rest)?;
                self.change(|c| c.set(menu, &indices, &fields))
            }
            "remove" | "enable" | "disable" => {
                if cmd != "remove" && !menu.has_disabled() {
                    return Err(CliError::BadCommand(cmd.into()));
                }
                let (target, rest) = split_target(args, "numbers");
                expect_end(&rest)?;
                let indices = resolve(&self.config, menu, &target)?;
                match cmd {
                    "remove" => self.change(|c| c.remove(menu, &indices)),
                    c => self.change(|cfg| cfg.set_disabled(menu, &indices, c == "disable")),
                }
            }
            "move" => {
                let (target, rest) = split_target(args, "numbers");
                let (dest, rest) = split_target(&rest, "destination");
                expect_end(&rest)?;
                let indices = resolve(&self.config, menu, &target)?;
                let before = match dest.as_str() {
                    "" => None,
                    d => match resolve(&self.config, menu, d) {
                        Ok(v) if v.len() == 1 => Some(v[0]),
                        // A destination past the last item means the end.
                        _ if d.parse::<usize>().is_ok_and(|n| n == self.config.len(menu)) => None,
                        _ => return Err(ConfigError::NoSuchItem.into()),
                    },
                };
                self.change(|c| c.move_items(menu, &indices, before))
            }
            _ => Err(CliError::BadCommand(cmd.into())),
        }
    }

    /// Applies a change to a copy, validates it, and commits it.
    fn change(&mut self, f: impl FnOnce(&mut Config) -> Result<(), ConfigError>) -> Result<String, CliError> {
        let mut next = self.config.clone();
        f(&mut next)?;
        if let Some(v) = &self.validator {
            v(&next).map_err(CliError::Rejected)?;
        }
        self.config = next;
        self.generation += 1;
        Ok(String::new())
    }
}

/// Fails unless nothing is left of the command.
fn expect_end(rest: &[Token]) -> Result<(), CliError> {
    match rest.first() {
        None => Ok(()),
        Some(t) => Err(CliError::ExpectedEnd(match &t.key {
            Some(k) => format!("unknown argument {k}"),
            None => format!("unexpected {}", t.value),
        })),
    }
}

/// Takes `print`'s optional `detail` word.
fn print_mode(args: &[Token]) -> Result<(bool, &[Token]), CliError> {
    match args.first() {
        Some(Token { key: None, value }) if value == "detail" => Ok((true, &args[1..])),
        Some(Token { key: None, value }) if value == "brief" => Ok((false, &args[1..])),
        _ => Ok((false, args)),
    }
}

/// Takes a command's target: `key=...` anywhere, or else the first unnamed word.
fn split_target(args: &[Token], key: &str) -> (String, Vec<Token>) {
    let mut rest = args.to_vec();
    let pos = match rest.iter().position(|t| t.key.as_deref() == Some(key)) {
        Some(p) => Some(p),
        None => rest.first().filter(|t| t.key.is_none()).map(|_| 0),
    };
    match pos {
        Some(p) => (rest.remove(p).value, rest),
        None => (String::new(), rest),
    }
}

/// Returns the `field=value` pairs of a command; an unnamed word is an error.
fn fields(args: &[Token]) -> Result<Vec<(&str, &str)>, CliError> {
    args.iter()
        .map(|t| match &t.key {
            Some(k) => Ok((k.as_str(), t.value.as_str())),
            None => Err(CliError::ExpectedEnd(format!("unexpected {}", t.value))),
        })
        .collect()
}

/// Resolves item numbers (`0,2-3`) or names to indices.
fn resolve(cfg: &Config, menu: Menu, target: &str) -> Result<Vec<usize>, CliError> {
    if target.is_empty() {
        return Err(ConfigError::NoSuchItem.into());
    }
    let len = cfg.len(menu);
    let mut out = Vec::new();
    for part in target.split(',') {
        let num = |s: &str| s.parse::<usize>().ok().filter(|&n| n < len);
        let range = part.split_once('-').and_then(|(a, b)| Some((num(a)?, num(b)?)));
        if let Some(n) = num(part) {
            out.push(n);
        } else if let Some((a, b)) = range.filter(|(a, b)| a <= b) {
            out.extend(a..=b);
        } else if let Some(n) = cfg.find(menu, part) {
            out.push(n);
        } else {
            return Err(ConfigError::NoSuchItem.into());
        }
    }
    out.dedup();
    Ok(out)
}
