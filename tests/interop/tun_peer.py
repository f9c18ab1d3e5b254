#!/usr/bin/python3
"""An independent IPsec peer for tests/interop_manual.rs: a userspace ESP/AH gateway (R2) on a
TUN device, with scapy's IPsec layer doing the cryptography.

Linux here has no ESP in XFRM, so this script is R2's IPsec stack:

  LAN side: a TUN device. The kernel routes the far LAN (tunnel mode) or the far gateway's WAN
    address (transport mode) into it; the script reads those cleartext packets, seals them with
    the outgoing SA(s) and sends them to R1 through a raw IP socket bound to the WAN device.
  WAN side: raw sockets for IPPROTO_ESP and IPPROTO_AH receive what R1 sends to our WAN address;
    the script verifies and opens it with the incoming SA(s) and writes the inner packet into
    the TUN device, where the kernel answers a ping as any host would.

The SAs come as JSON (--sa): {"mode": "tunnel"|"transport", "local": R2, "remote": R1,
"esp": {"in": SA, "out": SA} (optional), "ah": {"in": SA, "out": SA} (optional)}, SA =
{"spi": N, "crypt": scapy name, "crypt_key": hex, "auth": scapy name, "auth_key": hex}.
With both ESP and AH (the manual's `ah,esp`), ESP is applied first (tunnel mode when the mode
is tunnel) and AH over it in transport mode; AH alone tunnels itself.

Prints `ready` once the TUN device is configured and the sockets are open, one line per event
with --verbose, and a final `peer: ...` line of counters on SIGTERM or SIGINT.
Exit status 2 when scapy is missing.
"""

import argparse
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import warnings

# `cryptography` warns that DES and 3DES are deprecated; they are tested here on purpose.
warnings.filterwarnings("ignore")

try:
    from scapy.layers.inet import IP
    from scapy.packet import Raw
    from scapy.layers.ipsec import AH, ESP, IPSecIntegrityError, SecurityAssociation
except ImportError as e:  # pragma: no cover - environment check
    print(f"tun_peer: scapy is not importable by {sys.executable} ({e}); run scripts/setup.sh", file=sys.stderr)
    sys.exit(2)

# linux/if_tun.h
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
# linux/socket.h (not exported by every Python build)
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IPPROTO_ESP, IPPROTO_AH = 50, 51


def open_tun(name):
    """Creates the TUN device `name` (gone when the descriptor closes) and returns its fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def ip(*args):
    subprocess.run(["ip", *args], check=True)


def scapy_sa(proto, sa, tunnel):
    """Builds one direction's scapy SA; `tunnel` is (src, dst) of the outer header or None."""
    kw = dict(spi=sa["spi"])
    if proto is ESP:
        kw.update(crypt_algo=sa["crypt"], crypt_key=bytes.fromhex(sa["crypt_key"]) or None)
    kw.update(auth_algo=sa["auth"], auth_key=bytes.fromhex(sa["auth_key"]) or None)
    if tunnel:
        kw["tunnel_header"] = IP(src=tunnel[0], dst=tunnel[1])
    return SecurityAssociation(proto, **kw)


def ah_over_esp(sa, pkt):
    """Applies the transport-mode AH SA `sa` to the ESP packet `pkt`.

    scapy's `SecurityAssociation.encrypt` cannot do this itself (scapy 2.5): its AH signing
    checks for an ESP layer first, so over ESP it appends the AH ICV to the ESP payload and
    leaves the AH ICV zero. Here the ESP packet is carried as opaque bytes, so only the AH
    branch applies; the ICV is computed by scapy as usual (mutable IP fields zeroed).
    """
    data = bytes(pkt)
    hl = (data[0] & 0x0F) * 4
    header, payload = IP(data[:hl]), data[hl:]
    ah = AH(nh=header.proto, spi=sa.spi, seq=sa.seq_num, icv=b"\x00" * sa.auth_algo.icv_size)
    ah.payloadlen = len(ah) // 4 - 2  # RFC 4302 2.2; 12 + 12 bytes with HMAC-SHA1-96
    header.remove_payload()
    header.proto, header.len = IPPROTO_AH, hl + len(ah) + len(payload)
    del header.chksum
    header = IP(bytes(header))
    signed = sa.auth_algo.sign(header / ah / Raw(payload), sa.auth_key)
    sa.seq_num += 1
    return IP(bytes(signed))


class Peer:
    """R2's SAs and counters."""

    def __init__(self, spec, verbose):
        self.verbose = verbose
        local, remote = spec["local"], spec["remote"]
        self.remote = remote
        tunnel = spec["mode"] == "tunnel"
        esp, ah = spec.get("esp"), spec.get("ah")
        # Outgoing SAs run from us to R1, incoming ones from R1 to us (their outer header is only
        # used to build packets; scapy's decrypt checks the SPI and the ICV).
        self.esp_out = scapy_sa(ESP, esp["out"], (local, remote) if tunnel else None) if esp else None
        self.esp_in = scapy_sa(ESP, esp["in"], (remote, local) if tunnel else None) if esp else None
        ah_tunnel = tunnel and not esp
        self.ah_out = scapy_sa(AH, ah["out"], (local, remote) if ah_tunnel else None) if ah else None
        self.ah_in = scapy_sa(AH, ah["in"], (remote, local) if ah_tunnel else None) if ah else None
        self.count = dict(sealed=0, opened=0, integrity_failed=0, bad_spi=0, errors=0, unexpected=0)

    def log(self, what):
        if self.verbose:
            print(what, flush=True)

    def seal(self, data):
        """Returns the packet to send to R1 for a cleartext packet from the TUN device."""
        pkt = IP(data)
        if self.esp_out:
            pkt = IP(bytes(self.esp_out.encrypt(pkt)))
        if self.ah_out and self.esp_out:
            pkt = ah_over_esp(self.ah_out, pkt)
        elif self.ah_out:
            pkt = IP(bytes(self.ah_out.encrypt(pkt)))
        return bytes(pkt)

    def open(self, data):
        """Returns the inner packet of an ESP or AH packet from R1, or None (counted)."""
        pkt = IP(data)
        try:
            if pkt.proto == IPPROTO_AH:
                if not self.ah_in:
                    self.count["unexpected"] += 1
                    return None
                pkt = IP(bytes(self.ah_in.decrypt(pkt)))
            elif self.ah_in:
                # The policy requires AH: a packet without it is not ours to accept.
                self.count["unexpected"] += 1
                return None
            if pkt.proto == IPPROTO_ESP:
                if not self.esp_in:
                    self.count["unexpected"] += 1
                    return None
                pkt = IP(bytes(self.esp_in.decrypt(pkt)))
            elif self.esp_in:
                self.count["unexpected"] += 1
                return None
        except IPSecIntegrityError as e:
            self.count["integrity_failed"] += 1
            self.log(f"integrity failed: {e}")
            return None
        except TypeError as e:  # scapy: "packet spi=... does not match the SA spi=..."
            self.count["bad_spi"] += 1
            self.log(f"refused: {e}")
            return None
        except Exception as e:  # garbage after a wrong key (bad padding, short packet)
            self.count["errors"] += 1
            self.log(f"cannot open: {type(e).__name__}: {e}")
            return None
        self.count["opened"] += 1
        return bytes(pkt)

    def summary(self):
        return "peer: " + " ".join(f"{k.replace('_', '-')}={v}" for k, v in self.count.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sa", required=True, help="the SAs, as JSON (see the module doc)")
    ap.add_argument("--tun", default="lan2", help="name of the TUN device to create")
    ap.add_argument("--wan-dev", default="eth0", help="the WAN device R1 is reached through")
    ap.add_argument("--addr", action="append", default=[], help="an address for the TUN device (A.B.C.D/M)")
    ap.add_argument("--route", action="append", default=[], help="a prefix to route into the TUN device")
    ap.add_argument("--verbose", action="store_true")
    opts = ap.parse_args()
    peer = Peer(json.loads(opts.sa), opts.verbose)

    tun = open_tun(opts.tun)
    ip("link", "set", opts.tun, "up")
    for a in opts.addr:
        ip("addr", "add", a, "dev", opts.tun)
    for r in opts.route:
        ip("route", "add", r, "dev", opts.tun)
    # Sealed packets leave through the WAN device even when R1's own address is routed into the
    # TUN device (transport mode): the send socket is bound to it.
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    tx.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, opts.wan_dev.encode())
    rx = [socket.socket(socket.AF_INET, socket.SOCK_RAW, p) for p in (IPPROTO_ESP, IPPROTO_AH)]

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        try:
            readable, _, _ = select.select([tun] + rx, [], [], 0.5)
        except InterruptedError:
            continue
        for r in readable:
            if r == tun:
                data = os.read(tun, 65535)
                if not data or data[0] >> 4 != 4:
                    continue  # IPv6 from the kernel (router solicitations): not ours
                out = peer.seal(data)
                tx.sendto(out, (peer.remote, 0))
                peer.count["sealed"] += 1
                peer.log(f"sealed {len(data)} -> {len(out)} bytes")
            else:
                data = r.recv(65535)
                inner = peer.open(data)
                if inner is not None:
                    os.write(tun, inner)
                    peer.log(f"opened {len(data)} -> {len(inner)} bytes")
    print(peer.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
