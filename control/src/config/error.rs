//! Configuration errors, worded the way the RouterOS console words them.

use thiserror::Error;

/// Why a configuration command was refused. A refused command changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// An argument the menu does not have.
    #[error("expected end of command (unknown argument {0})")]
    UnknownArgument(String),
    /// A value that is not one of the argument's choices (or names no existing item).
    #[error("input does not match any value of {0}")]
    NoMatch(String),
    /// A value of the wrong form (an address, a number, a duration...).
    #[error("invalid value for argument {0}")]
    InvalidValue(String),
    /// An item number or name that does not exist.
    #[error("no such item")]
    NoSuchItem,
    /// A command that is well formed but cannot be carried out.
    #[error("failure: {0}")]
    Failure(String),
}

impl ConfigError {
    /// Builds a `failure: ...` error.
    pub fn failure(msg: impl Into<String>) -> ConfigError {
        ConfigError::Failure(msg.into())
    }
}
