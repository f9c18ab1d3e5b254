//! The menu-independent commands (add, set, remove, move, enable/disable) over one menu's
//! entries, behind an object-safe trait so the console can pick the menu at run time.

use super::value::parse_bool;
use super::{ConfigError, Entry, Item, Ref};

/// One menu's entries, whatever their item type.
pub(super) trait Table {
    fn len(&self) -> usize;
    fn find(&self, name: &str) -> Option<usize>;
    fn name_at(&self, index: usize) -> Option<&str>;
    fn names(&self) -> Vec<Option<&str>>;
    fn id(&self, index: usize) -> Option<u32>;
    fn flags(&self, index: usize) -> Option<(bool, &str)>;
    fn fields(&self, index: usize) -> Option<Vec<(&'static str, String, bool)>>;
    fn refs(&self, index: usize) -> Vec<Ref<'_>>;
    fn export_args(&self, index: usize) -> Vec<(&'static str, String)>;
    fn check_indices(&self, indices: &[usize]) -> Result<(), ConfigError>;
    fn add(&mut self, id: u32, args: &[(&str, &str)]) -> Result<usize, ConfigError>;
    fn set(&mut self, indices: &[usize], args: &[(&str, &str)]) -> Result<(), ConfigError>;
    fn remove(&mut self, indices: &[usize]);
    fn move_items(&mut self, indices: &[usize], before: Option<usize>) -> Result<(), ConfigError>;
    fn set_disabled(&mut self, indices: &[usize], disabled: bool) -> Result<(), ConfigError>;
}

/// Applies one `field=value` to an entry: the entry's own flags, or the item's fields.
fn apply<T: Item>(e: &mut Entry<T>, field: &str, value: &str) -> Result<(), ConfigError> {
    match field {
        "comment" => e.comment = value.into(),
        "disabled" if T::MENU.has_disabled() => e.disabled = parse_bool(field, value)?,
        _ => e.item.set(field, value)?,
    }
    Ok(())
}

impl<T: Item> Table for Vec<Entry<T>> {
    fn len(&self) -> usize {
        <[Entry<T>]>::len(self)
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.iter().position(|e| e.item.name() == Some(name))
    }

    fn name_at(&self, index: usize) -> Option<&str> {
        self.get(index).and_then(|e| e.item.name())
    }

    fn names(&self) -> Vec<Option<&str>> {
        self.iter().map(|e| e.item.name()).collect()
    }

    fn id(&self, index: usize) -> Option<u32> {
        self.get(index).map(|e| e.id)
    }

    fn flags(&self, index: usize) -> Option<(bool, &str)> {
        self.get(index).map(|e| (e.disabled, e.comment.as_str()))
    }

    fn fields(&self, index: usize) -> Option<Vec<(&'static str, String, bool)>> {
        let e = self.get(index)?;
        Some(T::FIELDS.iter().map(|&f| (f, e.item.get(f), T::QUOTED.contains(&f))).collect())
    }

    fn refs(&self, index: usize) -> Vec<Ref<'_>> {
        self.get(index).map(|e| e.item.refs()).unwrap_or_default()
    }

    fn export_args(&self, index: usize) -> Vec<(&'static str, String)> {
        let Some(e) = self.get(index) else { return Vec::new() };
        let default = T::default();
        let mut args: Vec<(&'static str, String)> = T::FIELDS
            .iter()
            .filter(|f| T::REQUIRED.contains(f) || e.item.get(f) != default.get(f))
            .map(|&f| (f, e.item.get(f)))
            .collect();
        if e.disabled {
            args.push(("disabled", "yes".into()));
        }
        if !e.comment.is_empty() {
            args.push(("comment", e.comment.clone()));
        }
        args
    }

    fn check_indices(&self, indices: &[usize]) -> Result<(), ConfigError> {
        if indices.is_empty() || indices.iter().any(|&i| i >= Table::len(self)) {
            return Err(ConfigError::NoSuchItem);
        }
        Ok(())
    }

    fn add(&mut self, id: u32, args: &[(&str, &str)]) -> Result<usize, ConfigError> {
        let mut e = Entry { id, disabled: false, comment: String::new(), item: T::default() };
        for &(f, v) in args {
            apply(&mut e, f, v)?;
        }
        for req in T::REQUIRED {
            if !args.iter().any(|(f, _)| f == req) {
                return Err(ConfigError::failure(format!("{req} must be specified")));
            }
        }
        let given: Vec<&str> = args.iter().map(|&(f, _)| f).collect();
        e.item.complete(&given);
        e.item.check()?;
        self.push(e);
        Ok(Table::len(self) - 1)
    }

    fn set(&mut self, indices: &[usize], args: &[(&str, &str)]) -> Result<(), ConfigError> {
        self.check_indices(indices)?;
        for &i in indices {
            for &(f, v) in args {
                apply(&mut self[i], f, v)?;
            }
            self[i].item.check()?;
        }
        Ok(())
    }

    fn remove(&mut self, indices: &[usize]) {
        let mut i = 0;
        self.retain(|_| {
            i += 1;
            !indices.contains(&(i - 1))
        });
    }

    fn move_items(&mut self, indices: &[usize], before: Option<usize>) -> Result<(), ConfigError> {
        self.check_indices(indices)?;
        let mut ids: Vec<u32> = Vec::new();
        for &i in indices {
            if !ids.contains(&self[i].id) {
                ids.push(self[i].id);
            }
        }
        // The destination is the first item at or after `before` that does not move itself.
        let target = before.and_then(|b| self.iter().skip(b).find(|e| !ids.contains(&e.id)).map(|e| e.id));
        let moved: Vec<Entry<T>> = ids.iter().filter_map(|id| self.iter().find(|e| e.id == *id).cloned()).collect();
        self.retain(|e| !ids.contains(&e.id));
        let at = target.and_then(|t| self.iter().position(|e| e.id == t)).unwrap_or(Table::len(self));
        self.splice(at..at, moved);
        Ok(())
    }

    fn set_disabled(&mut self, indices: &[usize], disabled: bool) -> Result<(), ConfigError> {
        self.check_indices(indices)?;
        for &i in indices {
            self[i].disabled = disabled;
        }
        Ok(())
    }
}
