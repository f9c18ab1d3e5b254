//! Targets `console`, `config` and `ctl_wire`: the RouterOS console, the configuration file
//! loader, and the control sockets' wire format.

use control::cli::Console;
use control::config::Config;
use control::daemon::wire::{CtlReply, CtlRequest, DpReply, DpRequest, FrameBuf, Wire, frame};

/// The most command lines one input runs (each may print the whole configuration).
const MAX_LINES: usize = 64;

/// Asserts that `config` survives export then parse: the loader reads back what export wrote.
fn assert_export_round_trips(config: &Config) {
    let script = config.export();
    let back = Config::parse(&script).unwrap_or_else(|e| panic!("export does not load back: {e}\n{script}"));
    assert_eq!(back.export(), script, "export, parse, export changes the configuration");
}

/// Runs each line of the input as a console command, then checks the configuration exports and
/// loads back unchanged.
pub fn console(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut c = Console::new(Config::new());
    for line in text.lines().take(MAX_LINES) {
        let before = c.generation();
        match c.execute(line) {
            Ok(out) => {
                let _ = out.len();
            }
            Err(e) => {
                let _ = e.to_string();
                assert_eq!(c.generation(), before, "a refused command changed the configuration: {line}");
            }
        }
        let _ = c.prompt();
    }
    assert_export_round_trips(c.config());
}

/// Loads the input as a configuration file; what loads exports and loads back unchanged.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if text.lines().count() > MAX_LINES * 4 {
        return;
    }
    match Config::parse(&text) {
        Ok(c) => assert_export_round_trips(&c),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Decodes `body` as `T`; a message that decodes encodes to a body that decodes to itself.
fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(body: &[u8]) {
    if let Ok(m) = T::decode(body) {
        let again = m.encode();
        assert_eq!(T::decode(&again).expect("an encoded message decodes"), m, "encode/decode round trip");
        assert_eq!(frame(&m)[4..], again[..]);
    }
}

/// Decodes the input as each message of the control sockets, and as a byte stream of frames.
pub fn ctl_wire(data: &[u8]) {
    round_trip::<DpRequest>(data);
    round_trip::<DpReply>(data);
    round_trip::<CtlRequest>(data);
    round_trip::<CtlReply>(data);
    // The stream, cut in two pieces at a point the first byte chooses.
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut fb = FrameBuf::default();
    fb.extend(&data[..cut]);
    let mut frames = 0;
    loop {
        match fb.next_frame() {
            Ok(Some(body)) => {
                frames += 1;
                assert!(frames <= data.len() / 4 + 1, "more frames than the bytes can hold");
                round_trip::<DpRequest>(&body);
                round_trip::<CtlRequest>(&body);
            }
            Ok(None) if cut < data.len() => {
                fb.extend(&data[cut..]);
                // Only extend once.
                return ctl_wire_rest(fb, frames, data.len());
            }
            Ok(None) | Err(_) => return,
        }
    }
}

fn ctl_wire_rest(mut fb: FrameBuf, mut frames: usize, len: usize) {
    while let Ok(Some(body)) = fb.next_frame() {
        frames += 1;
        assert!(frames <= len / 4 + 1, "more frames than the bytes can hold");
        round_trip::<DpReply>(&body);
        round_trip::<CtlReply>(&body);
    }
}

/// Returns seeds: the demo configurations, their lines as console sessions, and messages of
/// every control-socket type.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    for cfg in [include_str!("../../tests/fixtures/demo/r1.rsc"), include_str!("../../tests/fixtures/demo/r2.rsc")] {
        v.push(("config", cfg.as_bytes().to_vec()));
        v.push(("console", cfg.as_bytes().to_vec()));
        let c = Config::parse(cfg).expect("the demo configuration loads");
        v.push(("config", c.export().into_bytes()));
        let compiled = control::compile::compile(&c).expect("the demo configuration compiles");
        let state = control::daemon::wire::State::from(&compiled);
        v.push(("ctl_wire", DpRequest::Apply(state.clone()).encode()));
        v.push(("ctl_wire", frame(&DpRequest::Check(state))));
    }
    let session = [
        "/ip ipsec proposal add name=p1 auth-algorithms=sha1,md5 enc-algorithms=3des,aes-128 lifetime=30m pfs-group=modp1024",
        "/ip ipsec peer add address=10.0.0.2/32:500 secret=\"gwejimezyfopmekun\" exchange-mode=aggressive dh-group=modp768",
        "/ip ipsec pre-shared-secret add address=10.0.0.2 secret=\"x y\"",
        "/ip ipsec policy add src-address=10.1.0.0/24 dst-address=10.2.0.0/24 action=encrypt tunnel=yes sa-src-address=10.0.0.1 sa-dst-address=10.0.0.2 proposal=p1 level=unique",
        "/ip ipsec policy",
        "print detail",
        "set 0 level=use",
        "disable 0",
        "enable 0",
        "move 0 0",
        "export",
        "/ip ipsec installed-sa print",
        "/ip ipsec policy remove 0",
        "/ip ipsec key add name=k algorithm=sha1 key=0x0102030405060708090a0b0c0d0e0f1011121314",
        "/ip ipsec manual-sa add name=m ah-key=k/k ah-spi=0x100/0x101",
        "/ip ipsec manual-sa print",
        "/interface add name=wan device=net_null0",
        "/ip address add address=192.0.2.1/24 interface=wan",
        "/ip route add dst-address=0.0.0.0/0 gateway=192.0.2.254",
        "/export",
    ]
    .join("\n");
    v.push(("console", session.into_bytes()));
    v.push(("ctl_wire", frame(&CtlRequest::Hello { version: 1 })));
    v.push(("ctl_wire", CtlRequest::Command("/ip ipsec policy print".into()).encode()));
    v.push(("ctl_wire", CtlReply::Output { ok: true, text: "ok".into(), prompt: "> ".into() }.encode()));
    v.push(("ctl_wire", DpRequest::Hello { version: 1 }.encode()));
    v.push(("ctl_wire", DpRequest::Poll.encode()));
    v.push(("ctl_wire", DpReply::Stats(vec![("rx".into(), 7), ("tx".into(), 9)]).encode()));
    v.push(("ctl_wire", DpReply::Error("no".into()).encode()));
    v
}
