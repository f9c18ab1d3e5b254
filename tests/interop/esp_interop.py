#!/usr/bin/python3
"""Interop check of ipsecgw's ESP and AH against two independent implementations.

Peers: Wireshark's ESP dissector (tshark decrypts and checks ICVs with libgcrypt) and scapy's
IPsec layer (scapy.layers.ipsec with the `cryptography` module). For every algorithm pair both
sides support, in tunnel and transport mode, over packets of varied sizes (0 to 1400 payload
bytes, UDP, TCP and ICMP):

  (a) `ipsecgw sa seal` (rust and ipsec-mb engines) -> tshark decrypts to the exact inner packet,
      with the expected SPI, sequence number, RFC 4303 padding and next header, and reports the
      ICV good; the same packets with one flipped ciphertext byte are reported bad. AH: tshark
      dissects SPI, sequence and the inner packet (Wireshark does not verify AH ICVs).
  (b) scapy seals -> `ipsecgw sa open` (both engines) gives back the original packets byte for
      byte; a tampered copy is dropped as auth-failed.
  (c) `ipsecgw sa seal` -> scapy decrypts (and verifies the ICV) to the original packets, and
      refuses a tampered copy.

Run: /usr/bin/python3 tests/interop/esp_interop.py --ipsecgw target/release/ipsecgw
Exit status 0 when every check passed, 1 on any mismatch, 2 when a tool is missing.
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import warnings

# scapy imports `cryptography`, which warns about DES/3DES being deprecated: they are tested
# here on purpose, so the warnings are noise.
warnings.filterwarnings("ignore")

try:
    from scapy.all import ICMP, IP, TCP, UDP, IPOption_Router_Alert, IPOption_RR, Raw
    from scapy.layers.ipsec import AH, CRYPT_ALGOS, AUTH_ALGOS, ESP, IPSecIntegrityError, SecurityAssociation
except ImportError as e:  # pragma: no cover - environment check
    print(f"esp_interop: scapy is not importable by {sys.executable} ({e}); run scripts/setup.sh", file=sys.stderr)
    sys.exit(2)

# The SA endpoints (sa-src, sa-dst) and the LANs behind them for tunnel mode.
R1, R2 = "10.0.0.1", "10.0.0.2"
LAN1, LAN2 = "192.168.1.10", "192.168.2.20"

# Payload sizes of the packets of each run: empty, around every block boundary, large.
SIZES = [0, 1, 2, 3, 7, 8, 13, 14, 15, 16, 17, 31, 32, 33, 100, 255, 256, 1000, 1372, 1400]

# ipsecgw cipher name -> (scapy name, key bytes incl. GCM salt, Wireshark UAT name, IV bytes,
# padding alignment of RFC 4303 section 2.4 as ipsecgw applies it).
CIPHERS = {
    "null": ("NULL", 0, "NULL", 0, 4),
    "des-cbc": ("DES", 8, "DES-CBC [RFC2405]", 8, 8),
    "3des-cbc": ("3DES", 24, "TripleDES-CBC [RFC2451]", 8, 8),
    "aes-cbc-128": ("AES-CBC", 16, "AES-CBC [RFC3602]", 16, 16),
    "aes-cbc-192": ("AES-CBC", 24, "AES-CBC [RFC3602]", 16, 16),
    "aes-cbc-256": ("AES-CBC", 32, "AES-CBC [RFC3602]", 16, 16),
    "aes-gcm-128": ("AES-GCM", 20, "AES-GCM with 16 octet ICV [RFC4106]", 8, 4),
    "aes-gcm-256": ("AES-GCM", 36, "AES-GCM with 16 octet ICV [RFC4106]", 8, 4),
}
# ipsecgw auth name -> (scapy name, key bytes, Wireshark UAT name, ICV bytes).
AUTHS = {
    "null": ("NULL", 0, "NULL", 0),
    "md5hmac": ("HMAC-MD5-96", 16, "HMAC-MD5-96 [RFC2403]", 12),
    "sha1hmac": ("HMAC-SHA1-96", 20, "HMAC-SHA-1-96 [RFC2404]", 12),
    "sha256hmac": ("SHA2-256-128", 32, "HMAC-SHA-256-128 [RFC4868]", 16),
}
ENGINES = ["rust", "ipsec-mb"]
# The sequence number each engine's sealing SA starts after: the second one close to 2^32, so
# that sequence numbers with the top bit set are checked by both peers.
SEQ_BASE = {"rust": 0, "ipsec-mb": 0xFFFFFF00}

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV4 = 1, 101, 228
ETH_HEADER = bytes.fromhex("020000000002" "020000000001" "0800")


class Failures:
    """Collects every mismatch, so one run reports them all."""

    def __init__(self):
        self.items = []

    def add(self, where, what):
        self.items.append(f"{where}: {what}")


def key(n, salt):
    """Deterministic, non-weak key bytes (also distinct 3DES thirds)."""
    return bytes(((i * 37) + salt * 11 + 0x5A) & 0xFF for i in range(n))


def write_pcap(path, link, packets, big_endian=False, nanos=False):
    """Writes IPv4 packets to a classic pcap file with the given link type and byte order."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, link)]
    for i, p in enumerate(packets):
        data = (ETH_HEADER + p) if link == LINKTYPE_ETHERNET else p
        out.append(struct.pack(e + "IIII", 1700000000 + i, i * 1000, len(data), len(data)))
        out.append(data)
    with open(path, "wb") as f:
        f.write(b"".join(out))


def read_pcap(path):
    """Reads a classic pcap file; returns (link type, [(ts, link header, IPv4 packet)])."""
    with open(path, "rb") as f:
        b = f.read()
    (magic,) = struct.unpack("<I", b[:4])
    e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    link = struct.unpack(e + "I", b[20:24])[0]
    off, recs = 24, []
    while off < len(b):
        sec, frac, incl, _orig = struct.unpack(e + "IIII", b[off : off + 16])
        data = b[off + 16 : off + 16 + incl]
        off += 16 + incl
        if link == LINKTYPE_ETHERNET:
            recs.append(((sec, frac), data[:14], data[14:]))
        else:
            recs.append(((sec, frac), b"", data))
    return link, recs


def originals(mode):
    """The plaintext packets of one run: UDP of every size, one TCP and one ICMP among them, two
    with IP options."""
    src, dst = (LAN1, LAN2) if mode == "tunnel" else (R1, R2)
    pkts = []
    for i, n in enumerate(SIZES):
        payload = bytes(((j * 7) + i) & 0xFF for j in range(n))
        ip = IP(src=src, dst=dst, id=0x100 + i, ttl=64 - i, tos=(i * 4) & 0xFC, flags="DF" if i % 2 else 0)
        if i == 3:
            ip.options = [IPOption_Router_Alert()]  # immutable: AH covers it as is
        elif i == 12:
            # Mutable (RFC 4302 appendix A.1): AH zeroes it for the ICV, ESP carries it unchanged.
            ip.options = [IPOption_RR(routers=["192.0.2.1", "0.0.0.0"], pointer=8)]
        if i == 5:
            l4 = ICMP(type=8, id=0x77, seq=i) / Raw(payload)
        elif i == 9:
            l4 = TCP(sport=42000 + i, dport=43000 + i, seq=1000 + i, flags="PA") / Raw(payload)
        else:
            # Ports no Wireshark dissector claims: a dissector that throws on our payload bytes
            # would abort the ESP dissection before the trailer and the ICV check.
            l4 = UDP(sport=42000 + i, dport=43000 + i) / Raw(payload)
        pkts.append(bytes(ip / l4))
    return pkts


def ihl(p):
    return (p[0] & 0x0F) * 4


class Case:
    """One protocol, algorithm pair and mode."""

    def __init__(self, index, proto, cipher, auth, mode):
        self.index, self.proto, self.cipher, self.auth, self.mode = index, proto, cipher, auth, mode
        self.enc_key = key(CIPHERS[cipher][1], index)
        self.auth_key = key(AUTHS[auth][1], index + 100)
        self.pair = f"{proto}:{cipher}+{auth}" if proto == "esp" else f"ah:{auth}"
        self.icv_len = 16 if cipher.startswith("aes-gcm") else AUTHS[auth][3]
        self.has_integrity = self.icv_len > 0
        self.results = {}

    def spi(self, engine):
        """A distinct SPI per case and sealing engine, so one Wireshark SA table serves all."""
        return 0x1000 + self.index * 4 + ENGINES.index(engine)

    def args(self, spi):
        a = ["--proto", self.proto, "--mode", self.mode, "--spi", hex(spi), "--src", R1, "--dst", R2]
        if self.proto == "esp" and self.cipher != "null":
            a += ["--enc", f"{self.cipher}:{self.enc_key.hex()}"]
        if self.auth != "null":
            a += ["--auth", f"{self.auth}:{self.auth_key.hex()}"]
        return a

    def scapy_sa(self, spi):
        kw = dict(spi=spi)
        if self.proto == "esp":
            kw.update(crypt_algo=CIPHERS[self.cipher][0], crypt_key=self.enc_key or None)
        kw.update(auth_algo=AUTHS[self.auth][0], auth_key=self.auth_key or None)
        if self.mode == "tunnel":
            kw["tunnel_header"] = IP(src=R1, dst=R2)
        return SecurityAssociation(ESP if self.proto == "esp" else AH, **kw)

    def uat_line(self, engine):
        c, a = CIPHERS[self.cipher], AUTHS[self.auth]
        ek = "0x" + self.enc_key.hex() if self.enc_key else ""
        ak = "0x" + self.auth_key.hex() if self.auth_key else ""
        return f'"IPv4","{R1}","{R2}","0x{self.spi(engine):08x}","{c[2]}","{ek}","{a[2]}","{ak}"'

    def link(self):
        """Varies the pcap format between cases, so that every format the tool reads is used."""
        return [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_IPV4][self.index % 3]


def supported_by_scapy(case):
    """Returns None if scapy can run the case here, else why not."""
    if case.proto == "esp" and CIPHERS[case.cipher][0] not in CRYPT_ALGOS:
        return f"scapy has no {CIPHERS[case.cipher][0]} (cryptography module too old or too new)"
    if AUTHS[case.auth][0] not in AUTH_ALGOS:
        return f"scapy has no {AUTHS[case.auth][0]}"
    try:
        sa = case.scapy_sa(1)
        sa.decrypt(IP(bytes(sa.encrypt(IP(bytes(IP(src=R1, dst=R2) / UDP() / Raw(b"probe")))))))
    except Exception as e:  # scapy or cryptography refusing the algorithm on this machine
        return f"scapy cannot run it here: {type(e).__name__}: {e}"
    return None


def tamper(sealed, case):
    """Flips one byte the ICV covers: the first ciphertext byte (ESP) or the last payload byte (AH)."""
    b = bytearray(sealed)
    if case.proto == "esp":
        b[ihl(b) + 8 + CIPHERS[case.cipher][3]] ^= 0x01
    else:
        b[-1] ^= 0x80
    return bytes(b)


def l4_header_len(p):
    """Returns the transport header length of an IPv4 packet (UDP, ICMP echo or TCP)."""
    h = ihl(p)
    return (p[h + 12] >> 4) * 4 if p[9] == 6 else 8


def tamper_data(sealed, case, orig):
    """Flips one ciphertext byte of an ESP packet that decrypts into the payload data only, or
    returns None when the packet has too little data for that.

    Wireshark adds its ICV verdict only after dissecting the decrypted packet; a flip that garbles
    the inner headers or the trailer (CBC garbles a whole block and one byte of the next) would
    make it give up before the check, and the tamper test would prove nothing.
    """
    c = CIPHERS[case.cipher]
    block = c[4] if "cbc" in case.cipher else 1  # GCM and NULL change only the flipped byte
    headers = l4_header_len(orig) + (ihl(orig) if case.mode == "tunnel" else 0)
    data_end = len(orig) - (0 if case.mode == "tunnel" else ihl(orig))
    at = -(-headers // block) * block
    if at + 2 * block > data_end:
        return None
    b = bytearray(sealed)
    b[ihl(b) + 8 + c[3] + at] ^= 0x01
    return bytes(b)


def all_cases():
    """Returns every case both sides support, and the skipped ones with the reason."""
    cases, skipped = [], []
    esp_pairs = [(c, a) for c in CIPHERS for a in AUTHS if not (c == "null" and a == "null")]
    # AEAD carries its own integrity (RFC 4106): no separate auth algorithm with GCM.
    esp_pairs = [(c, a) for c, a in esp_pairs if not (c.startswith("aes-gcm") and a != "null")]
    ah_pairs = [("null", a) for a in AUTHS if a != "null"]
    for proto, pairs in [("esp", esp_pairs), ("ah", ah_pairs)]:
        for cipher, auth in pairs:
            for mode in ["tunnel", "transport"]:
                case = Case(len(cases) + len(skipped), proto, cipher, auth, mode)
                why = supported_by_scapy(case)
                if why:
                    skipped.append((case.pair, mode, why))
                    print(f"skip {case.pair} {mode}: {why}")
                else:
                    cases.append(case)
    return cases, skipped


class Run:
    """What one run shares: the binary, its temporary directory, failures, a command log."""

    def __init__(self, exe, tmp):
        self.exe, self.tmp = exe, tmp
        self.fails = Failures()
        self.log = []
        self.tshark_frames = []  # (case, engine, index, sealed bytes, tampered?)

    def tool(self, args):
        """Runs `ipsecgw sa`; returns (exit status, stderr)."""
        r = subprocess.run([self.exe, "sa"] + args, capture_output=True, text=True, cwd=self.tmp)
        self.log.append(f"$ ipsecgw sa {' '.join(args)}\n{r.stderr}")
        return r.returncode, r.stderr

    def path(self, name):
        return os.path.join(self.tmp, name)


def ours_seal(run, case, orig, inp, engine):
    """(a, c): ipsecgw seals; queues the packets for tshark and has scapy decrypt them."""
    where = f"{case.pair} {case.mode}"
    spi = case.spi(engine)
    out = run.path(f"c{case.index}-{engine}-sealed.pcap")
    rc, err = run.tool(["seal"] + case.args(spi) + ["--engine", engine, "--seq", str(SEQ_BASE[engine]), inp, out])
    if rc != 0:
        run.fails.add(f"{where} seal/{engine}", f"exit {rc}: {err.strip()}")
        return
    link, recs = read_pcap(out)
    if link != case.link() or len(recs) != len(orig):
        run.fails.add(f"{where} seal/{engine}", f"link {link}, {len(recs)} packets written")
        return
    for i, (ts, eth, pkt) in enumerate(recs):
        if ts != (1700000000 + i, i * 1000) or (link == LINKTYPE_ETHERNET and eth != ETH_HEADER):
            run.fails.add(f"{where} seal/{engine}", f"packet {i}: timestamp or Ethernet header not kept")
        run.tshark_frames.append((case, engine, i, pkt, False))
        t = tamper_data(pkt, case, orig[i]) if case.proto == "esp" else None
        if t is not None:
            run.tshark_frames.append((case, engine, i, t, True))
    # (c): scapy decrypts what we sealed, and refuses a tampered copy.
    sa = case.scapy_sa(spi)
    ok = 0
    for i, (_, _, pkt) in enumerate(recs):
        try:
            got = bytes(sa.decrypt(IP(pkt)))
        except Exception as e:
            run.fails.add(f"{where} ours/{engine}->scapy", f"packet {i}: {type(e).__name__}: {e}")
            continue
        if got != orig[i]:
            run.fails.add(f"{where} ours/{engine}->scapy", f"packet {i}: got {got.hex()} want {orig[i].hex()}")
            continue
        if case.has_integrity:
            try:
                sa.decrypt(IP(tamper(pkt, case)))
                run.fails.add(f"{where} ours/{engine}->scapy", f"packet {i}: tampered copy accepted")
                continue
            except IPSecIntegrityError:
                pass
        ok += 1
    case.results[f"{engine}->scapy"] = (ok, len(orig))


def scapy_seal(run, case, orig):
    """(b): scapy seals, ipsecgw opens with each engine; a tampered copy is dropped."""
    where = f"{case.pair} {case.mode}"
    sa = case.scapy_sa(case.spi("rust"))
    enc = [bytes(sa.encrypt(IP(p))) for p in orig]
    sealed = run.path(f"c{case.index}-scapy-sealed.pcap")
    write_pcap(sealed, case.link(), enc, big_endian=case.index % 2 == 0)
    bad = run.path(f"c{case.index}-scapy-tampered.pcap")
    write_pcap(bad, case.link(), [tamper(p, case) for p in enc])
    for engine in ENGINES:
        ok = 0
        args = ["open"] + case.args(case.spi("rust")) + ["--engine", engine]
        out = run.path(f"c{case.index}-{engine}-opened.pcap")
        rc, err = run.tool(args + [sealed, out])
        if rc != 0:
            run.fails.add(f"{where} scapy->ours/{engine}", f"exit {rc}: {err.strip()}")
        recs = read_pcap(out)[1] if os.path.exists(out) else []
        for i, (_, _, pkt) in enumerate(recs):
            if i < len(orig) and pkt == orig[i]:
                ok += 1
            else:
                want = orig[i].hex() if i < len(orig) else "nothing"
                run.fails.add(f"{where} scapy->ours/{engine}", f"packet {i}: got {pkt.hex()} want {want}")
        if case.has_integrity:
            out = run.path(f"c{case.index}-{engine}-opened-tampered.pcap")
            rc, err = run.tool(args + [bad, out])
            recs = read_pcap(out)[1] if os.path.exists(out) else []
            if rc != 1 or recs or f"auth-failed: {len(orig)}" not in err:
                run.fails.add(f"{where} scapy->ours/{engine}", f"tampered: exit {rc}, {len(recs)} kept, {err.strip()}")
                ok = 0
        case.results[f"scapy->{engine}"] = (ok, len(orig))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ipsecgw", required=True, help="path of the ipsecgw binary")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--verbose", action="store_true", help="print every ipsecgw command and its report")
    opts = ap.parse_args()
    exe = os.path.abspath(opts.ipsecgw)
    tshark = shutil.which("tshark")
    if tshark is None:
        print("esp_interop: tshark is not installed; run scripts/setup.sh", file=sys.stderr)
        return 2
    if not os.access(exe, os.X_OK):
        print(f"esp_interop: {exe} is not an executable; build it first", file=sys.stderr)
        return 2

    started = time.monotonic()
    run = Run(exe, tempfile.mkdtemp(prefix="esp-interop-"))
    try:
        cases, skipped = all_cases()
        plain = {m: originals(m) for m in ["tunnel", "transport"]}
        for case in cases:
            orig = plain[case.mode]
            inp = run.path(f"c{case.index}-plain.pcap")
            write_pcap(inp, case.link(), orig, big_endian=case.index % 2 == 1, nanos=case.index % 4 >= 2)
            for engine in ENGINES:
                ours_seal(run, case, orig, inp, engine)
            scapy_seal(run, case, orig)
        # (a): one tshark run over everything we sealed, with every SA in its table.
        check_tshark(tshark, run.tmp, cases, run.tshark_frames, plain, run.fails)

        print_summary(cases, skipped)
        elapsed = time.monotonic() - started
        if opts.verbose:
            print("\n".join(run.log))
        fails = run.fails.items
        if fails:
            print(f"\nFAILED: {len(fails)} mismatches ({elapsed:.1f} s)")
            for f in fails[:60]:
                print("  " + f)
            if len(fails) > 60:
                print(f"  ... and {len(fails) - 60} more")
            return 1
        print(f"\nok: {len(cases)} cases, {len(skipped)} skipped, {elapsed:.1f} s")
        return 0
    finally:
        if opts.keep:
            print(f"kept {run.tmp}")
        else:
            shutil.rmtree(run.tmp, ignore_errors=True)


TSHARK_FIELDS = [
    "frame.number",
    "ip.src",
    "ip.dst",
    "ip.id",
    "ip.len",
    "esp.spi",
    "esp.sequence",
    "esp.icv_good",
    "esp.icv_bad",
    "esp.pad_len",
    "esp.pad",
    "esp.protocol",
    "esp.contained_data",
    "ah.spi",
    "ah.sequence",
    "ah.next_header",
    "ah.icv",
    "udp.srcport",
]


def num(v):
    """Parses a tshark number, printed in decimal or as 0x hex."""
    return int(v, 16) if v.startswith("0x") else int(v)


def truthy(v):
    return v in ("1", "True", "true")


def check_tshark(tshark, tmp, cases, frames, plain, fails):
    """Decrypts every sealed frame with tshark and compares it with what was sealed."""
    cfg = os.path.join(tmp, "wireshark-config")
    os.makedirs(os.path.join(cfg, "wireshark"))
    # A private configuration directory: the SA table is ours alone, whatever the user has.
    with open(os.path.join(cfg, "wireshark", "esp_sa"), "w") as f:
        for case in cases:
            if case.proto == "esp":
                for engine in ENGINES:
                    f.write(case.uat_line(engine) + "\n")
    pcap = os.path.join(tmp, "all-sealed.pcap")
    write_pcap(pcap, LINKTYPE_RAW, [f[3] for f in frames])
    cmd = [tshark, "-n", "-r", pcap, "-o", "esp.enable_encryption_decode:TRUE"]
    cmd += ["-o", "esp.enable_authentication_check:TRUE", "-T", "fields", "-E", "separator=|"]
    for fld in TSHARK_FIELDS:
        cmd += ["-e", fld]
    # The payload of a tampered packet decrypts to random bytes, which a heuristic UDP or TCP
    # dissector may claim and then throw on; that aborts the ESP dissection before its ICV check.
    # So every protocol with such a heuristic is disabled (none of them is one we look at).
    heur = subprocess.run([tshark, "-G", "heuristic-decodes"], capture_output=True, text=True).stdout
    needed = {"ip", "esp", "ah", "udp", "tcp", "icmp", "data"}
    for line in heur.splitlines():
        table, proto, *_ = line.split("\t") + ["", ""]
        if table in ("udp", "tcp") and proto and proto not in needed:
            cmd += ["--disable-protocol", proto]
    env = dict(os.environ, XDG_CONFIG_HOME=cfg, HOME=tmp)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        fails.add("tshark", f"exit {r.returncode}: {r.stderr.strip()}")
        return
    lines = r.stdout.splitlines()
    if len(lines) != len(frames):
        fails.add("tshark", f"{len(lines)} frames dissected, {len(frames)} written")
        return
    ok, total = {}, {}
    for line, (case, engine, i, sealed, tampered) in zip(lines, frames):
        key_ = (case.index, engine, tampered)
        total[key_] = total.get(key_, 0) + 1
        v = dict(zip(TSHARK_FIELDS, line.split("|")))
        where = f"{case.pair} {case.mode} ours/{engine}->tshark packet {i}{' (tampered)' if tampered else ''}"
        err = check_frame(case, engine, i, sealed, tampered, v, plain[case.mode][i])
        if err:
            fails.add(where, err)
        else:
            ok[key_] = ok.get(key_, 0) + 1
    for case in cases:
        n = len(plain[case.mode])
        for engine in ENGINES:
            case.results[f"{engine}->tshark"] = (ok.get((case.index, engine, False), 0), n)
            if case.proto == "esp":
                k = (case.index, engine, True)
                case.results[f"{engine}->tshark tampered"] = (ok.get(k, 0), total.get(k, 0))


def check_frame(case, engine, i, sealed, tampered, v, orig):
    """Returns what is wrong with one frame as tshark dissected it, or None."""
    spi, seq = case.spi(engine), SEQ_BASE[engine] + i + 1
    srcs = v["ip.src"].split(",")
    if srcs[0] != R1 or v["ip.dst"].split(",")[0] != R2:
        return f"outer addresses {v['ip.src']} -> {v['ip.dst']}"
    if case.proto == "ah":
        # Wireshark dissects AH but never verifies its ICV; scapy does that in (c).
        if int(v["ah.spi"], 16) != spi or int(v["ah.sequence"]) != seq:
            return f"AH SPI {v['ah.spi']} sequence {v['ah.sequence']}, want {spi:#x} {seq}"
        if len(bytes.fromhex(v["ah.icv"])) != case.icv_len:
            return f"AH ICV {v['ah.icv']} is not {case.icv_len} bytes"
        want_nh = 4 if case.mode == "tunnel" else orig[9]
        if num(v["ah.next_header"]) != want_nh:
            return f"AH next header {v['ah.next_header']}, want {want_nh}"
        ids = [int(x, 16) for x in v["ip.id"].split(",")]
        lens = [int(x) for x in v["ip.len"].split(",")]
        inner_id, inner_len = struct.unpack(">H", orig[4:6])[0], len(orig)
        if case.mode == "tunnel":
            if srcs[1:2] != [LAN1] or ids[1:2] != [inner_id] or lens[1:2] != [inner_len]:
                return f"inner IP {v['ip.src']} id {v['ip.id']} len {v['ip.len']}"
        elif ids[0] != inner_id or lens[0] != inner_len + 12 + case.icv_len:
            return f"IP id {v['ip.id']} len {v['ip.len']}"
        if orig[9] == 17 and v["udp.srcport"] != str(struct.unpack(">H", orig[ihl(orig) : ihl(orig) + 2])[0]):
            return f"UDP source port {v['udp.srcport']}"
        return None
    if int(v["esp.spi"], 16) != spi or int(v["esp.sequence"]) != seq:
        return f"ESP SPI {v['esp.spi']} sequence {v['esp.sequence']}, want {spi:#x} {seq}"
    good, bad = truthy(v["esp.icv_good"]), truthy(v["esp.icv_bad"])
    payload = orig if case.mode == "tunnel" else orig[ihl(orig) :]
    got = bytes.fromhex(v["esp.contained_data"]) if v["esp.contained_data"] else None
    if tampered:
        if case.has_integrity:
            return None if (bad and not good) else f"tampered ICV reported good={good} bad={bad}"
        # Without integrity nothing can notice; the decryption must at least differ.
        return None if got != payload else "tampered packet decrypted to the original"
    if case.has_integrity and not (good and not bad):
        return f"ICV good={v['esp.icv_good']} bad={v['esp.icv_bad']}"
    if got != payload:
        return f"decrypted {v['esp.contained_data']}, want {payload.hex()}"
    align = CIPHERS[case.cipher][4]
    pad_len = -(len(payload) + 2) % align
    if v["esp.pad_len"] != str(pad_len):
        return f"pad length {v['esp.pad_len']}, want {pad_len}"
    if pad_len and bytes.fromhex(v["esp.pad"]) != bytes(range(1, pad_len + 1)):
        return f"padding {v['esp.pad']} is not 1, 2, 3..."
    want_nh = 4 if case.mode == "tunnel" else orig[9]
    if num(v["esp.protocol"]) != want_nh:
        return f"next header {v['esp.protocol']}, want {want_nh}"
    return None


def print_summary(cases, skipped):
    cols = [
        ("rust->tshark", "rust->tshark"),
        ("mb->tshark", "ipsec-mb->tshark"),
        ("tamper(tshark)", None),
        ("rust->scapy", "rust->scapy"),
        ("mb->scapy", "ipsec-mb->scapy"),
        ("scapy->rust", "scapy->rust"),
        ("scapy->mb", "scapy->ipsec-mb"),
    ]
    head = f"{'pair':<28} {'mode':<9} " + " ".join(f"{c[0]:>14}" for c in cols)
    print(head)
    print("-" * len(head))
    for case in cases:
        cells = []
        for _, k in cols:
            if k is None:
                a = case.results.get("rust->tshark tampered")
                b = case.results.get("ipsec-mb->tshark tampered")
                cell = f"{a[0] + b[0]}/{a[1] + b[1]}" if a and b else "n/a (AH)"
            else:
                r = case.results.get(k)
                cell = f"{r[0]}/{r[1]}" if r else "-"
            cells.append(f"{cell:>14}")
        print(f"{case.pair:<28} {case.mode:<9} " + " ".join(cells))
    for pair, mode, why in skipped:
        print(f"{pair:<28} {mode:<9} skipped: {why}")
    print(
        "\ntamper(tshark): copies of the packets both engines sealed with one ciphertext byte flipped (inside"
        "\n  the payload data, packets with enough of it): ICV reported bad, or without integrity, decrypted to"
        "\n  something else. n/a (AH): Wireshark does not verify AH ICVs; scapy does. ours->scapy and"
        "\n  scapy->ours also check that a tampered copy of every packet is refused when the pair has integrity."
    )


if __name__ == "__main__":
    sys.exit(main())
