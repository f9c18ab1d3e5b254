//! Root-only Unix sockets: created in a directory made 0700 if it had to be made, given mode
//! 0600 once bound, and every accepted connection's peer checked with `SO_PEERCRED`.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds a listening socket at `path`, only for root: a missing parent directory is created
/// with mode 0700, the socket gets mode 0600. A stale socket file (nobody listening) is
/// replaced; a live one is an `AddrInUse` error.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    if fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{}: another process is listening there", path.display()),
            ));
        }
        fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    fs::set_permissions(path, Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Tells whether the peer of a connection may talk to us: root, or our own user (which is root
/// in production; a developer's unprivileged test run talks to itself).
pub fn peer_allowed(stream: &UnixStream) -> io::Result<bool> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(cred.uid.is_root() || cred.uid == rustix::process::geteuid())
}
