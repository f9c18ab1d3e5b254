//! The output of a test's child process, line by line: a reader thread per stream (stdout and
//! stderr, both piped) sends every line to one channel, so a test can wait for a line with a
//! timeout and keep what it saw.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;

/// Takes `child`'s piped stdout and stderr and returns the channel their lines arrive on.
pub fn collect(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    let streams: [Box<dyn std::io::Read + Send>; 2] =
        [Box::new(child.stdout.take().expect("stdout piped")), Box::new(child.stderr.take().expect("stderr piped"))];
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    lines
}
