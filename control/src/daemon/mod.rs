//! The daemon side of the control plane: the control process that serves the console over a
//! root-only Unix socket and drives the dataplane over another, the client end of the console
//! socket, and the wire format both sockets speak.
//!
//! ```text
//! ipsecgw console/exec --ctl.sock--> ipsecgw control --ctl.sock.dp--> ipsecgw run (DPDK)
//!                       CtlRequest                    DpRequest: Check, Apply(State), Sas, Stats,
//!                                                                Poll (IKE datagrams, events), Send
//! ```

pub mod client;
pub mod ike;
pub mod server;
pub mod sock;
pub mod wire;

/// Where the control socket is unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/ipsecgw/ctl.sock";

/// Returns the dataplane's socket for a control socket: the same path with `.dp` appended.
pub fn dataplane_socket(control: &std::path::Path) -> std::path::PathBuf {
    let mut s = control.as_os_str().to_owned();
    s.push(".dp");
    s.into()
}
