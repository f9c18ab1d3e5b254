//! The client end of the control socket, for `ipsecgw console` and `ipsecgw exec`: one session
//! whose command lines run in the control process, which keeps the session's current menu.

use std::io::{self, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::wire::{CtlReply, CtlRequest, VERSION, read_msg, write_msg};

/// A console session over the control socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    prompt: String,
}

/// What a command printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// False when the command was refused (and changed nothing).
    pub ok: bool,
    /// The output, or the error message.
    pub text: String,
}

fn protocol(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl Client {
    /// Connects to the control process listening at `path` and opens a session.
    pub fn connect(path: &Path) -> io::Result<Client> {
        let writer = UnixStream::connect(path)?;
        let reader = BufReader::new(writer.try_clone()?);
        let mut c = Client { reader, writer, prompt: String::new() };
        write_msg(&mut c.writer, &CtlRequest::Hello { version: VERSION })?;
        match read_msg(&mut c.reader)? {
            CtlReply::Hello { version: VERSION, prompt } => c.prompt = prompt,
            CtlReply::Hello { version, .. } => {
                return Err(protocol(&format!("the control process speaks version {version}, we speak {VERSION}")));
            }
            CtlReply::Output { text, .. } => return Err(protocol(&text)),
        }
        Ok(c)
    }

    /// Returns the prompt for the next command, like `[admin@ipsecgw] ip ipsec policy> `.
    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Runs one command line.
    pub fn command(&mut self, line: &str) -> io::Result<Output> {
        write_msg(&mut self.writer, &CtlRequest::Command(line.to_owned()))?;
        match read_msg(&mut self.reader)? {
            CtlReply::Output { ok, text, prompt } => {
                self.prompt = prompt;
                Ok(Output { ok, text })
            }
            CtlReply::Hello { .. } => Err(protocol("unexpected hello")),
        }
    }
}
