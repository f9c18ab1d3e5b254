//! The configuration model: the menus of RouterOS v2.6 `/ip ipsec` (policy, manual-sa, key, peer,
//! pre-shared-secret, proposal) and the port menus (`/interface`, `/ip address`, `/ip route`),
//! with the manual's defaults, name references checked, and commands that either succeed whole
//! or change nothing.
//!
//! Every command works on a copy that replaces the configuration only once it is complete and
//! consistent: names unique, every reference resolving, every key valid for its algorithm.

mod error;
mod export;
mod ipsec;
mod port;
mod table;
#[cfg(test)]
mod tests;
pub mod value;

use std::fmt;

pub use error::ConfigError;
pub use export::{LoadError, quote};
pub use ipsec::{
    AuthAlgorithm, AuthMethod, DhGroup, EncAlgorithm, ExchangeMode, HashAlgorithm, Key, ManualSa, Peer,
    PeerEncAlgorithm, PfsGroup, Policy, PreSharedSecret, Proposal, ProposalCheck,
};
pub use port::{Interface, IpAddress, IpRoute};
use table::Table;

/// The name of the proposal that always exists (RouterOS creates it and refuses to remove it).
pub const DEFAULT_PROPOSAL: &str = "default";

/// One configuration menu that holds items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Menu {
    /// `/interface`: the ports.
    Interface,
    /// `/ip address`: addresses on the ports.
    IpAddress,
    /// `/ip route`: static routes.
    IpRoute,
    /// `/ip ipsec key`: keys for manual SAs.
    Key,
    /// `/ip ipsec manual-sa`: manual SA templates.
    ManualSa,
    /// `/ip ipsec proposal`: phase 2 proposals.
    Proposal,
    /// `/ip ipsec peer`: IKE peers.
    Peer,
    /// `/ip ipsec pre-shared-secret`: IKE secrets.
    PreSharedSecret,
    /// `/ip ipsec policy`: the ordered security policy database.
    Policy,
}

impl Menu {
    /// Lists every menu, in the order an export recreates them (referenced items first).
    pub const ALL: [Menu; 9] = [
        Menu::Interface,
        Menu::IpAddress,
        Menu::IpRoute,
        Menu::Key,
        Menu::ManualSa,
        Menu::Proposal,
        Menu::Peer,
        Menu::PreSharedSecret,
        Menu::Policy,
    ];

    /// Returns the menu's path words, as typed after `/`.
    pub fn words(self) -> &'static [&'static str] {
        match self {
            Menu::Interface => &["interface"],
            Menu::IpAddress => &["ip", "address"],
            Menu::IpRoute => &["ip", "route"],
            Menu::Key => &["ip", "ipsec", "key"],
            Menu::ManualSa => &["ip", "ipsec", "manual-sa"],
            Menu::Proposal => &["ip", "ipsec", "proposal"],
            Menu::Peer => &["ip", "ipsec", "peer"],
            Menu::PreSharedSecret => &["ip", "ipsec", "pre-shared-secret"],
            Menu::Policy => &["ip", "ipsec", "policy"],
        }
    }

    /// Returns the absolute path, like `/ip ipsec policy`.
    pub fn path(self) -> String {
        format!("/{}", self.words().join(" "))
    }

    /// Returns the last path word, which names the menu's items in messages.
    pub fn name(self) -> &'static str {
        self.words().last().copied().unwrap_or("")
    }

    /// Tells whether the menu's items have a `disabled` flag (`enable`/`disable` apply).
    pub fn has_disabled(self) -> bool {
        matches!(self, Menu::IpAddress | Menu::IpRoute | Menu::Peer | Menu::PreSharedSecret | Menu::Policy)
    }
}

impl fmt::Display for Menu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// A reference from one item to another by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ref<'a> {
    /// The referring field.
    pub field: &'static str,
    /// The menu the name is looked up in.
    pub menu: Menu,
    /// The name.
    pub name: &'a str,
}

/// The typed item of one menu.
pub trait Item: Clone + PartialEq + fmt::Debug + Default + Send + Sync + 'static {
    /// The menu the item lives in.
    const MENU: Menu;
    /// Lists the item's fields in print order (`disabled` and `comment` are the entry's).
    const FIELDS: &'static [&'static str];
    /// Lists the fields `add` must be given.
    const REQUIRED: &'static [&'static str] = &[];
    /// Lists the fields printed in quotes (free-form strings).
    const QUOTED: &'static [&'static str] = &[];

    /// Sets a field from its console text (aliases accepted).
    fn set(&mut self, field: &str, value: &str) -> Result<(), ConfigError>;
    /// Returns a field's canonical console text.
    fn get(&self, field: &str) -> String;
    /// Returns the item's name, for menus whose items are referred to by name.
    fn name(&self) -> Option<&str> {
        None
    }
    /// Returns the names this item refers to.
    fn refs(&self) -> Vec<Ref<'_>> {
        Vec::new()
    }
    /// Fills in defaults that depend on other fields, after `add` set the `given` ones.
    fn complete(&mut self, _given: &[&str]) {}
    /// Checks the item as a whole.
    fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }
    /// Returns the menu's entries in `cfg`.
    fn entries(cfg: &Config) -> &Vec<Entry<Self>>;
}

/// One item in a menu, with the flags every item has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<T> {
    /// Identifies the entry for its whole life, whatever its position: policies carry it to the
    /// dataplane (`Policy::id`, `policy-id` of installed SAs) so counters and SAs survive moves.
    pub id: u32,
    /// Set when the item is disabled (`X` flag); compile skips disabled items.
    pub disabled: bool,
    /// The `comment`, printed as `;;;` above the item.
    pub comment: String,
    /// The item.
    pub item: T,
}

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    interfaces: Vec<Entry<Interface>>,
    addresses: Vec<Entry<IpAddress>>,
    routes: Vec<Entry<IpRoute>>,
    keys: Vec<Entry<Key>>,
    manual_sas: Vec<Entry<ManualSa>>,
    proposals: Vec<Entry<Proposal>>,
    peers: Vec<Entry<Peer>>,
    secrets: Vec<Entry<PreSharedSecret>>,
    policies: Vec<Entry<Policy>>,
    next_id: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// Compares contents (flags, comments and items in order), not entry ids.
impl PartialEq for Config {
    fn eq(&self, other: &Config) -> bool {
        fn same<T: PartialEq>(a: &[Entry<T>], b: &[Entry<T>]) -> bool {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| x.disabled == y.disabled && x.comment == y.comment && x.item == y.item)
        }
        same(&self.interfaces, &other.interfaces)
            && same(&self.addresses, &other.addresses)
            && same(&self.routes, &other.routes)
            && same(&self.keys, &other.keys)
            && same(&self.manual_sas, &other.manual_sas)
            && same(&self.proposals, &other.proposals)
            && same(&self.peers, &other.peers)
            && same(&self.secrets, &other.secrets)
            && same(&self.policies, &other.policies)
    }
}

impl Eq for Config {}

impl Config {
    /// Creates the configuration of a fresh router: only the `default` proposal.
    pub fn new() -> Config {
        let default = Proposal { name: DEFAULT_PROPOSAL.into(), ..Proposal::default() };
        Config {
            interfaces: Vec::new(),
            addresses: Vec::new(),
            routes: Vec::new(),
            keys: Vec::new(),
            manual_sas: Vec::new(),
            proposals: vec![Entry { id: 1, disabled: false, comment: String::new(), item: default }],
            peers: Vec::new(),
            secrets: Vec::new(),
            policies: Vec::new(),
            next_id: 2,
        }
    }

    /// Returns the entries of one menu, typed.
    pub fn entries<T: Item>(&self) -> &[Entry<T>] {
        T::entries(self)
    }

    /// Returns the item named `name` in `T`'s menu.
    pub fn get<T: Item>(&self, name: &str) -> Option<&T> {
        T::entries(self).iter().map(|e| &e.item).find(|i| i.name() == Some(name))
    }

    /// Returns the number of items in a menu.
    pub fn len(&self, menu: Menu) -> usize {
        self.table(menu).len()
    }

    /// Tells whether a menu is empty.
    pub fn is_empty(&self, menu: Menu) -> bool {
        self.len(menu) == 0
    }

    /// Returns the index of the item named `name` in `menu`.
    pub fn find(&self, menu: Menu, name: &str) -> Option<usize> {
        self.table(menu).find(name)
    }

    /// Returns an item's fields with their canonical text, in print order, and whether each
    /// is a quoted string; `None` past the end.
    pub fn fields(&self, menu: Menu, index: usize) -> Option<Vec<(&'static str, String, bool)>> {
        self.table(menu).fields(index)
    }

    /// Returns an item's `disabled` flag and comment; `None` past the end.
    pub fn flags(&self, menu: Menu, index: usize) -> Option<(bool, &str)> {
        self.table(menu).flags(index)
    }

    /// Returns the stable id of an item; `None` past the end.
    pub fn id(&self, menu: Menu, index: usize) -> Option<u32> {
        self.table(menu).id(index)
    }

    /// Adds an item built from `field=value` arguments and returns its index.
    pub fn add(&mut self, menu: Menu, args: &[(&str, &str)]) -> Result<usize, ConfigError> {
        let mut next = self.clone();
        let id = next.next_id;
        next.next_id += 1;
        let index = next.table_mut(menu).add(id, args)?;
        next.verify(menu, &[index])?;
        *self = next;
        Ok(index)
    }

    /// Sets fields of the items at `indices`.
    pub fn set(&mut self, menu: Menu, indices: &[usize], args: &[(&str, &str)]) -> Result<(), ConfigError> {
        let mut next = self.clone();
        next.table_mut(menu).set(indices, args)?;
        next.verify(menu, indices)?;
        *self = next;
        Ok(())
    }

    /// Removes the items at `indices`; refused while another item refers to one of them.
    pub fn remove(&mut self, menu: Menu, indices: &[usize]) -> Result<(), ConfigError> {
        let mut next = self.clone();
        let table = next.table_mut(menu);
        table.check_indices(indices)?;
        if menu == Menu::Proposal && indices.iter().any(|&i| table.name_at(i) == Some(DEFAULT_PROPOSAL)) {
            return Err(ConfigError::failure("can not remove default proposal"));
        }
        table.remove(indices);
        next.verify(menu, &[])?;
        *self = next;
        Ok(())
    }

    /// Moves the items at `indices`, in order, before the item now at `before` (the end if
    /// `None` or past the end).
    pub fn move_items(&mut self, menu: Menu, indices: &[usize], before: Option<usize>) -> Result<(), ConfigError> {
        let mut next = self.clone();
        next.table_mut(menu).move_items(indices, before)?;
        *self = next;
        Ok(())
    }

    /// Sets or clears the `disabled` flag of the items at `indices`.
    pub fn set_disabled(&mut self, menu: Menu, indices: &[usize], disabled: bool) -> Result<(), ConfigError> {
        if !menu.has_disabled() {
            return Err(ConfigError::UnknownArgument("disabled".into()));
        }
        let mut next = self.clone();
        next.table_mut(menu).set_disabled(indices, disabled)?;
        *self = next;
        Ok(())
    }

    /// Gives entries new ids: an entry whose id is a key of `ids` takes the value; any other
    /// entry whose id is one of those values takes a fresh id, so ids stay unique. A restarted
    /// control process uses it to adopt the policy ids the dataplane already runs.
    pub fn renumber(&mut self, ids: &std::collections::HashMap<u32, u32>) {
        let taken: std::collections::HashSet<u32> = ids.values().copied().collect();
        let mut next = self.next_id.max(taken.iter().max().map_or(0, |m| m + 1));
        let mut each = |id: &mut u32| {
            if let Some(&n) = ids.get(id) {
                *id = n;
            } else if taken.contains(id) {
                *id = next;
                next += 1;
            }
        };
        self.interfaces.iter_mut().for_each(|e| each(&mut e.id));
        self.addresses.iter_mut().for_each(|e| each(&mut e.id));
        self.routes.iter_mut().for_each(|e| each(&mut e.id));
        self.keys.iter_mut().for_each(|e| each(&mut e.id));
        self.manual_sas.iter_mut().for_each(|e| each(&mut e.id));
        self.proposals.iter_mut().for_each(|e| each(&mut e.id));
        self.peers.iter_mut().for_each(|e| each(&mut e.id));
        self.secrets.iter_mut().for_each(|e| each(&mut e.id));
        self.policies.iter_mut().for_each(|e| each(&mut e.id));
        self.next_id = next;
    }

    fn table(&self, menu: Menu) -> &dyn Table {
        match menu {
            Menu::Interface => &self.interfaces,
            Menu::IpAddress => &self.addresses,
            Menu::IpRoute => &self.routes,
            Menu::Key => &self.keys,
            Menu::ManualSa => &self.manual_sas,
            Menu::Proposal => &self.proposals,
            Menu::Peer => &self.peers,
            Menu::PreSharedSecret => &self.secrets,
            Menu::Policy => &self.policies,
        }
    }

    fn table_mut(&mut self, menu: Menu) -> &mut dyn Table {
        match menu {
            Menu::Interface => &mut self.interfaces,
            Menu::IpAddress => &mut self.addresses,
            Menu::IpRoute => &mut self.routes,
            Menu::Key => &mut self.keys,
            Menu::ManualSa => &mut self.manual_sas,
            Menu::Proposal => &mut self.proposals,
            Menu::Peer => &mut self.peers,
            Menu::PreSharedSecret => &mut self.secrets,
            Menu::Policy => &mut self.policies,
        }
    }

    /// Checks the invariants after a change to `menu` that touched the items at `touched`:
    /// unique names, the default proposal, and every reference resolving. A dangling reference
    /// from a touched item is a bad value; any other means something in use went away.
    fn verify(&self, menu: Menu, touched: &[usize]) -> Result<(), ConfigError> {
        let names = self.table(menu).names();
        for (i, n) in names.iter().enumerate() {
            if let Some(n) = n {
                if n.is_empty() {
                    return Err(ConfigError::InvalidValue("name".into()));
                }
                if names[..i].contains(&Some(*n)) {
                    return Err(ConfigError::failure("item with such name already exists"));
                }
            }
        }
        if self.find(Menu::Proposal, DEFAULT_PROPOSAL).is_none() {
            return Err(ConfigError::failure("can not rename default proposal"));
        }
        for from in Menu::ALL {
            let table = self.table(from);
            for index in 0..table.len() {
                for r in table.refs(index) {
                    if self.find(r.menu, r.name).is_some() {
                        continue;
                    }
                    if from == menu && touched.contains(&index) {
                        return Err(ConfigError::NoMatch(r.field.into()));
                    }
                    let user = table.name_at(index).map_or_else(|| format!("#{index}"), str::to_owned);
                    return Err(ConfigError::failure(format!(
                        "{} {} is in use by {} {user}",
                        r.menu.name(),
                        r.name,
                        from.name()
                    )));
                }
            }
        }
        Ok(())
    }
}
