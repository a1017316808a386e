#!/usr/bin/env python3
"""Writes the committed seed corpus under fuzz/corpus/<target>/.

Deterministic and stdlib-only: run `python3 fuzz/seeds.py` after changing
it, and commit the result. Each target directory is rewritten whole (files
this script does not generate are removed), so the corpus is exactly what
this file describes; crash inputs belong in fuzz/regressions/<target>/.

Input shapes (see bgp-core/src/fuzzing.rs):

- message, roundtrip: 2 context bytes (`context_from(bits, extra)`), then a
  whole message, header included.
- update: 2 context bytes, then an UPDATE body (no header).
- open: an OPEN body (no header; the target adds it).
- framer: 1 byte N (odd N means extended messages), N chunk sizes, then
  the byte stream.

Seed files are named after what they hold; for the context-prefixed
targets the suffix after the last dot names the context (see CTX).
"""

import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
TARGETS = ("message", "update", "open", "roundtrip", "framer", "ipip_packet", "ipip_offload")

# ---------------------------------------------------------------- contexts
# context_from bits: 0 four-octet AS, 1 extended message, 2 ADD-PATH v4,
# 3 ADD-PATH v6, 4 eBGP (peer AS = extra), 5 enforce first AS,
# 6 local router id / local address 10.0.0.<extra>, 7 cluster id 10.0.0.<extra>.
PEER_AS = 65  # eBGP peer AS: the `extra` byte
CTX = {
    "ibgp2": (0x00, 0),
    "ibgp4": (0x01, 0),
    "ext": (0x03, 0),  # 4-octet AS + extended messages
    "addpath": (0x0D, 0),  # 4-octet AS + ADD-PATH v4 and v6
    "ebgp4": (0x31, PEER_AS),  # eBGP, enforce first AS
    "ebgp2": (0x30, PEER_AS),
    "rr": (0xC1, 1),  # local id / address / cluster id 10.0.0.1
    "all": (0xFF, PEER_AS),
}


def ctx(name):
    bits, extra = CTX[name]
    return bytes([bits, extra])


# ---------------------------------------------------------------- encoding
def u8(v):
    return struct.pack("!B", v)


def u16(v):
    return struct.pack("!H", v)


def u32(v):
    return struct.pack("!I", v)


def ipv4(s):
    return bytes(int(x) for x in s.split("."))


def ipv6(s):
    head, _, tail = s.partition("::")
    h = [int(x, 16) for x in head.split(":") if x]
    t = [int(x, 16) for x in tail.split(":") if x] if "::" in s else []
    groups = h + [0] * (8 - len(h) - len(t)) + t
    return b"".join(u16(g) for g in groups)


def header(msg_type, body, length=None):
    n = 19 + len(body) if length is None else length
    return b"\xff" * 16 + u16(n) + u8(msg_type) + body


OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5


def prefix4(p, path_id=None):
    net, bits = p.split("/")
    bits = int(bits)
    pid = b"" if path_id is None else u32(path_id)
    return pid + u8(bits) + ipv4(net)[: (bits + 7) // 8]


def prefix6(p, path_id=None):
    net, bits = p.split("/")
    bits = int(bits)
    pid = b"" if path_id is None else u32(path_id)
    return pid + u8(bits) + ipv6(net)[: (bits + 7) // 8]


def attr(flags, code, value):
    if flags & 0x10:
        return u8(flags) + u8(code) + u16(len(value)) + value
    return u8(flags) + u8(code) + u8(len(value)) + value


def update_body(withdrawn=b"", attrs=b"", nlri=b""):
    return u16(len(withdrawn)) + withdrawn + u16(len(attrs)) + attrs + nlri


def as_path(segments, width=4):
    out = b""
    for kind, asns in segments:
        out += u8(kind) + u8(len(asns))
        for a in asns:
            out += u32(a) if width == 4 else u16(a)
    return out


SET, SEQ, CONFED_SEQ, CONFED_SET = 1, 2, 3, 4


def origin(v=0):
    return attr(0x40, 1, u8(v))


def aspath(asns, width=4, flags=0x40):
    return attr(flags, 2, as_path([(SEQ, asns)], width) if asns else b"")


def next_hop(a):
    return attr(0x40, 3, ipv4(a))


def med(v):
    return attr(0x80, 4, u32(v))


def local_pref(v=100):
    return attr(0x40, 5, u32(v))


def mp_reach(afi, safi, nh, nlri, flags=0x90):
    return attr(flags, 14, u16(afi) + u8(safi) + u8(len(nh)) + nh + b"\x00" + nlri)


def mp_unreach(afi, safi, nlri, flags=0x90):
    return attr(flags, 15, u16(afi) + u8(safi) + nlri)


def communities(values):
    return attr(0xC0, 8, b"".join(u32(v) for v in values))


IBGP_BASE = origin(0) + aspath([]) + local_pref(100)


def ibgp_v4(nh="192.0.2.1"):
    return origin(0) + aspath([65001, 65002]) + next_hop(nh) + local_pref(100)


# ---------------------------------------------------------------- UPDATEs
# (name, context, body)
def updates():
    u = []
    v4_nlri = b"".join(prefix4(p) for p in ("10.1.0.0/16", "10.2.3.0/24", "192.0.2.1/32", "0.0.0.0/0"))
    u.append(("ipv4-announce", "ibgp4", update_body(attrs=ibgp_v4() + med(0), nlri=v4_nlri)))
    u.append(
        (
            "ipv4-announce-2byte-as",
            "ibgp2",
            update_body(attrs=origin(2) + aspath([65001, 100], width=2) + next_hop("192.0.2.1") + local_pref(200), nlri=v4_nlri),
        )
    )
    u.append(("ipv4-withdraw", "ibgp4", update_body(withdrawn=prefix4("10.1.0.0/16") + prefix4("10.2.3.0/24"))))
    u.append(("ipv4-withdraw-and-announce", "ibgp4", update_body(withdrawn=prefix4("10.9.0.0/16"), attrs=ibgp_v4(), nlri=prefix4("10.8.0.0/16"))))
    u.append(("eor-ipv4", "ibgp4", update_body()))
    u.append(("eor-ipv6", "ibgp4", update_body(attrs=mp_unreach(2, 1, b""))))
    v6_nlri = prefix6("2001:db8:1::/48") + prefix6("2001:db8:2::/64") + prefix6("::/0") + prefix6("2001:db8::1/128")
    u.append(("mp-reach-v6-global", "ibgp4", update_body(attrs=IBGP_BASE + mp_reach(2, 1, ipv6("2001:db8::1"), v6_nlri))))
    u.append(
        (
            "mp-reach-v6-linklocal",
            "ibgp4",
            update_body(attrs=mp_reach(2, 1, ipv6("2001:db8::1") + ipv6("fe80::1"), v6_nlri) + IBGP_BASE),
        )
    )
    u.append(("mp-unreach-v6", "ibgp4", update_body(attrs=mp_unreach(2, 1, prefix6("2001:db8:1::/48") + prefix6("2001:db8:2::/64")))))
    u.append(("mp-reach-v4-v6-nexthop-rfc8950", "ibgp4", update_body(attrs=IBGP_BASE + mp_reach(1, 1, ipv6("2001:db8::1"), prefix4("10.1.0.0/16")))))
    u.append(("mp-reach-v4-nexthop", "ibgp4", update_body(attrs=IBGP_BASE + mp_reach(1, 1, ipv4("192.0.2.1"), prefix4("10.1.0.0/16")))))
    u.append(("mp-unreach-v4", "ibgp4", update_body(attrs=mp_unreach(1, 1, prefix4("10.1.0.0/16")))))
    u.append(
        (
            "mp-reach-unknown-family-vpnv4",
            "ibgp4",
            update_body(attrs=IBGP_BASE + mp_reach(1, 128, bytes(8) + ipv4("192.0.2.1"), bytes([112, 0, 0, 0x11]) + bytes(8) + ipv4("10.1.0.0")[:2])),
        )
    )
    u.append(("mp-unreach-unknown-family-evpn", "ibgp4", update_body(attrs=mp_unreach(25, 70, bytes([2, 3, 1, 2, 3])))))
    u.append(("mp-reach-bad-nexthop-length", "ibgp4", update_body(attrs=IBGP_BASE + mp_reach(2, 1, ipv4("192.0.2.1"), v6_nlri))))
    u.append(("mp-reach-bad-prefix-129", "ibgp4", update_body(attrs=IBGP_BASE + mp_reach(2, 1, ipv6("2001:db8::1"), b"\x81" + bytes(17)))))
    u.append(("mp-reach-truncated", "ibgp4", update_body(attrs=IBGP_BASE + attr(0x80, 14, u16(2) + u8(1) + u8(16) + bytes(5)))))
    u.append(("mp-reach-duplicate", "ibgp4", update_body(attrs=mp_unreach(2, 1, b"") + mp_unreach(2, 1, b""))))
    u.append(("mp-reach-flags-not-optional", "ibgp4", update_body(attrs=IBGP_BASE + mp_reach(2, 1, ipv6("2001:db8::1"), v6_nlri, flags=0x50))))
    u.append(
        (
            "communities",
            "ibgp4",
            update_body(attrs=ibgp_v4() + communities([(65001 << 16) | 100, 0xFFFFFF01, 0xFFFFFF02]), nlri=prefix4("10.1.0.0/16")),
        )
    )
    large = b"".join(u32(a) + u32(b) + u32(c) for a, b, c in ((4200000001, 1, 2), (65001, 0, 0xFFFFFFFF)))
    u.append(("large-communities", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 32, large), nlri=prefix4("10.1.0.0/16"))))
    u.append(("large-communities-bad-length", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 32, large[:13]), nlri=prefix4("10.1.0.0/16"))))
    ext = bytes([0x00, 0x02, 0xFD, 0xE9, 0, 0, 0, 100]) + bytes([0x03, 0x0C, 0, 0, 0, 0, 0, 8])
    u.append(("extended-communities", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 16, ext), nlri=prefix4("10.1.0.0/16"))))
    u.append(("ipv6-extended-communities", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 25, b"\x00\x02" + ipv6("2001:db8::1") + b"\x00\x64"), nlri=prefix4("10.1.0.0/16"))))
    u.append(
        (
            "as4-path-from-2byte-peer",
            "ebgp2",
            update_body(
                attrs=origin(0)
                + aspath([PEER_AS, 23456, 23456], width=2)
                + next_hop("192.0.2.1")
                + attr(0xC0, 7, u16(23456) + ipv4("192.0.2.9"))
                + attr(0xC0, 17, as_path([(SEQ, [PEER_AS, 4200000001, 4200000002])]))
                + attr(0xC0, 18, u32(4200000002) + ipv4("192.0.2.9")),
                nlri=prefix4("10.1.0.0/16"),
            ),
        )
    )
    u.append(("as4-path-from-4byte-peer-discarded", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 17, as_path([(SEQ, [4200000001])])), nlri=prefix4("10.1.0.0/16"))))
    u.append(("unknown-optional-transitive-attr28", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 28, bytes([0x01, 0x02, 0x03, 0x04])), nlri=prefix4("10.1.0.0/16"))))
    u.append(("unknown-optional-transitive-partial", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xE0, 200, b"\xde\xad\xbe\xef"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("unknown-optional-nontransitive-dropped", "ibgp4", update_body(attrs=ibgp_v4() + attr(0x80, 201, b"\x00"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("unknown-well-known-attr", "ibgp4", update_body(attrs=ibgp_v4() + attr(0x40, 202, b"\x00"), nlri=prefix4("10.1.0.0/16"))))
    u.append(
        (
            "malformed-origin",
            "ibgp4",
            update_body(attrs=attr(0x40, 1, u8(3)) + aspath([65001]) + next_hop("192.0.2.1") + local_pref(), nlri=prefix4("10.1.0.0/16")),
        )
    )
    u.append(
        (
            "origin-bad-length",
            "ibgp4",
            update_body(attrs=attr(0x40, 1, b"\x00\x00") + aspath([65001]) + next_hop("192.0.2.1") + local_pref(), nlri=prefix4("10.1.0.0/16")),
        )
    )
    u.append(("origin-flags-conflict", "ibgp4", update_body(attrs=attr(0xC0, 1, b"\x00") + aspath([65001]) + next_hop("192.0.2.1") + local_pref(), nlri=prefix4("10.1.0.0/16"))))
    # The last attribute claims 40 bytes; 3 remain in the section.
    u.append(("truncated-attribute", "ibgp4", update_body(attrs=ibgp_v4() + b"\xc0\x08\x28\x00\x01\x02", nlri=prefix4("10.1.0.0/16"))))
    u.append(("truncated-attribute-header", "ibgp4", update_body(attrs=ibgp_v4() + b"\x90\x0e\x01", nlri=prefix4("10.1.0.0/16"))))
    body = update_body(attrs=ibgp_v4(), nlri=prefix4("10.1.0.0/16"))
    u.append(("attribute-length-overruns-message", "ibgp4", body[:2] + u16(200) + body[4:]))
    u.append(("withdrawn-length-overruns-message", "ibgp4", u16(100) + prefix4("10.0.0.0/8")))
    u.append(("too-short", "ibgp4", b"\x00"))
    u.append(("duplicate-origin", "ibgp4", update_body(attrs=origin(0) + origin(1) + aspath([65001]) + next_hop("192.0.2.1") + local_pref(), nlri=prefix4("10.1.0.0/16"))))
    u.append(("missing-next-hop", "ibgp4", update_body(attrs=origin(0) + aspath([65001]) + local_pref(), nlri=prefix4("10.1.0.0/16"))))
    u.append(("missing-local-pref-ibgp", "ibgp4", update_body(attrs=origin(0) + aspath([65001]) + next_hop("192.0.2.1"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("martian-next-hop-loopback", "ibgp4", update_body(attrs=ibgp_v4("127.0.0.1"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("next-hop-is-local-address", "rr", update_body(attrs=ibgp_v4("10.0.0.1"), nlri=prefix4("10.1.0.0/16"))))
    ebgp = origin(0) + aspath([PEER_AS, 65002]) + next_hop("192.0.2.1")
    u.append(("ebgp-announce", "ebgp4", update_body(attrs=ebgp + med(10), nlri=prefix4("10.1.0.0/16"))))
    u.append(("ebgp-first-as-mismatch", "ebgp4", update_body(attrs=origin(0) + aspath([64999]) + next_hop("192.0.2.1"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("ebgp-first-segment-is-set", "ebgp4", update_body(attrs=origin(0) + attr(0x40, 2, as_path([(SET, [PEER_AS])])) + next_hop("192.0.2.1"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("ebgp-local-pref-discarded", "ebgp4", update_body(attrs=ebgp + local_pref(), nlri=prefix4("10.1.0.0/16"))))
    u.append(
        (
            "rr-originator-is-us-cluster-loop",
            "rr",
            update_body(attrs=ibgp_v4() + attr(0x80, 9, ipv4("10.0.0.1")) + attr(0x80, 10, ipv4("10.0.0.2") + ipv4("10.0.0.1")), nlri=prefix4("10.1.0.0/16")),
        )
    )
    u.append(
        (
            "rr-originator-cluster-list",
            "ibgp4",
            update_body(attrs=ibgp_v4() + attr(0x80, 9, ipv4("192.0.2.7")) + attr(0x80, 10, ipv4("10.0.0.2")), nlri=prefix4("10.1.0.0/16")),
        )
    )
    u.append(
        (
            "addpath-ipv4-ipv6",
            "addpath",
            update_body(
                withdrawn=prefix4("10.9.0.0/16", 7),
                attrs=ibgp_v4() + mp_reach(2, 1, ipv6("2001:db8::1"), prefix6("2001:db8:1::/48", 1) + prefix6("2001:db8:1::/48", 2)),
                nlri=prefix4("10.1.0.0/16", 1) + prefix4("10.1.0.0/16", 2),
            ),
        )
    )
    u.append(("addpath-mp-unreach-v6", "addpath", update_body(attrs=mp_unreach(2, 1, prefix6("2001:db8:1::/48", 1)))))
    u.append(
        (
            "as-path-set-and-confederation",
            "ibgp4",
            update_body(
                attrs=origin(0)
                + attr(0x40, 2, as_path([(CONFED_SEQ, [64512, 64513]), (CONFED_SET, [64514]), (SEQ, [65001]), (SET, [65002, 65003])]))
                + next_hop("192.0.2.1")
                + local_pref(),
                nlri=prefix4("10.1.0.0/16"),
            ),
        )
    )
    u.append(("as-path-zero-as", "ibgp4", update_body(attrs=origin(0) + aspath([65001, 0]) + next_hop("192.0.2.1") + local_pref(), nlri=prefix4("10.1.0.0/16"))))
    u.append(("as-path-bad-segment-type", "ibgp4", update_body(attrs=origin(0) + attr(0x40, 2, b"\x05\x01" + u32(65001)) + next_hop("192.0.2.1") + local_pref(), nlri=prefix4("10.1.0.0/16"))))
    u.append(("as-path-segment-overrun", "ibgp4", update_body(attrs=origin(0) + attr(0x40, 2, b"\x02\x03" + u32(65001)) + next_hop("192.0.2.1") + local_pref(), nlri=prefix4("10.1.0.0/16"))))
    long_path = as_path([(SEQ, list(range(64600, 64600 + 255))), (SEQ, [65001])])
    u.append(
        (
            "extended-length-attributes",
            "ibgp4",
            update_body(
                attrs=attr(0x50, 1, b"\x00") + attr(0x50, 2, long_path) + next_hop("192.0.2.1") + local_pref() + attr(0xD0, 8, b"".join(u32(0xFDE90000 + i) for i in range(80))),
                nlri=prefix4("10.1.0.0/16"),
            ),
        )
    )
    u.append(
        (
            "atomic-aggregate-aggregator",
            "ibgp4",
            update_body(attrs=ibgp_v4() + attr(0x40, 6, b"") + attr(0xC0, 7, u32(65001) + ipv4("192.0.2.1")), nlri=prefix4("10.0.0.0/8")),
        )
    )
    u.append(("aggregator-zero-as", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 7, u32(0) + ipv4("192.0.2.1")), nlri=prefix4("10.0.0.0/8"))))
    u.append(("otc", "ebgp4", update_body(attrs=ebgp + attr(0xC0, 35, u32(PEER_AS)), nlri=prefix4("10.1.0.0/16"))))
    aigp = b"\x01\x00\x0b" + bytes(7) + b"\x64"
    tunnel = u16(8) + u16(6) + b"\x01\x04" + u32(0) + b""
    u.append(
        (
            "aigp-tunnel-encap-prefix-sid",
            "ibgp4",
            update_body(
                attrs=ibgp_v4() + attr(0x80, 26, aigp) + attr(0xC0, 23, tunnel) + attr(0xC0, 40, b"\x01\x00\x07" + bytes(7)) + attr(0x80, 29, u16(1) + u16(2) + b"ab"),
                nlri=prefix4("10.1.0.0/16"),
            ),
        )
    )
    u.append(("prefix-sid-malformed-tlv", "ibgp4", update_body(attrs=ibgp_v4() + attr(0xC0, 40, b"\x01\x00\x09\x00"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("nlri-prefix-length-33", "ibgp4", update_body(attrs=ibgp_v4(), nlri=b"\x21" + bytes(5))))
    u.append(("nlri-prefix-truncated", "ibgp4", update_body(attrs=ibgp_v4(), nlri=b"\x18\x0a\x01")))
    u.append(("nlri-host-bits-set", "ibgp4", update_body(attrs=ibgp_v4(), nlri=b"\x10\x0a\x01" + b"\x0f\x0a\x03")))
    many = b"".join(prefix4("10.%d.%d.0/24" % (i // 256, i % 256)) for i in range(1100))
    u.append(("extended-message-4400-bytes-nlri", "ext", update_body(attrs=ibgp_v4(), nlri=many)))
    u.append(("med-local-pref-bad-length", "ibgp4", update_body(attrs=origin(0) + aspath([65001]) + next_hop("192.0.2.1") + attr(0x40, 5, b"\x00\x64") + attr(0x80, 4, b"\x00"), nlri=prefix4("10.1.0.0/16"))))
    u.append(("everything-context", "all", update_body(withdrawn=prefix4("10.9.0.0/16", 3), attrs=ebgp + attr(0x80, 9, ipv4("10.0.0.65")), nlri=prefix4("10.1.0.0/16", 1))))
    return u


# ---------------------------------------------------------------- OPENs
def cap(code, value=b""):
    return u8(code) + u8(len(value)) + value


def param(value, ptype=2):
    return u8(ptype) + u8(len(value)) + value


def open_body(params=b"", my_as=65001, hold=90, bgp_id="192.0.2.1", version=4, opt_len=None):
    n = len(params) if opt_len is None else opt_len
    return u8(version) + u16(my_as) + u16(hold) + ipv4(bgp_id) + u8(n) + params


def open_extended(params_values, my_as=65001, hold=90, bgp_id="192.0.2.1"):
    """RFC 9072: 255, 255, 2-byte length, parameters with 2-byte lengths."""
    ps = b"".join(u8(2) + u16(len(v)) + v for v in params_values)
    return u8(4) + u16(my_as) + u16(hold) + ipv4(bgp_id) + b"\xff\xff" + u16(len(ps)) + ps


MP_V4 = cap(1, u16(1) + b"\x00\x01")
MP_V6 = cap(1, u16(2) + b"\x00\x01")
RR = cap(2)
ERR = cap(70)
EXT_MSG = cap(6)
AS4 = cap(65, u32(4200000001))
GR = cap(64, u16(0x8000 | 0x4000 | 120) + u16(1) + b"\x01\x80" + u16(2) + b"\x01\x00")
ADD_PATH = cap(69, u16(1) + b"\x01\x03" + u16(2) + b"\x01\x01")
LLGR = cap(71, u16(1) + b"\x01\x80" + b"\x00\x0e\x10" + u16(2) + b"\x01\x00" + b"\xff\xff\xff")
EXT_NH = cap(5, u16(1) + u16(1) + u16(2))
FQDN = cap(73, b"\x04node\x00")
CISCO_RR = cap(128)


def opens():
    o = []
    o.append(("minimal-no-params", open_body()))
    o.append(("multiprotocol-v4-v6", open_body(param(MP_V4 + MP_V6))))
    allcaps = MP_V4 + MP_V6 + RR + ERR + AS4 + GR + ADD_PATH + EXT_MSG + LLGR + EXT_NH + FQDN + CISCO_RR
    o.append(("all-capabilities-one-param-bird-style", open_body(param(allcaps), my_as=23456)))
    o.append(("one-capability-per-param-gobgp-style", open_body(b"".join(param(c) for c in (MP_V4, MP_V6, RR, AS4, GR, ADD_PATH)), my_as=23456)))
    o.append(("four-octet-as-trans", open_body(param(AS4 + MP_V4), my_as=23456, hold=180)))
    o.append(("graceful-restart-restarting", open_body(param(MP_V4 + GR + AS4))))
    o.append(("graceful-restart-helper-no-families", open_body(param(cap(64, u16(90)) + AS4))))
    o.append(("add-path-v4-v6", open_body(param(MP_V4 + MP_V6 + ADD_PATH + AS4))))
    o.append(("extended-message", open_body(param(EXT_MSG + AS4))))
    o.append(("enhanced-route-refresh", open_body(param(RR + ERR))))
    o.append(("llgr", open_body(param(GR + LLGR))))
    o.append(("unknown-capability", open_body(param(cap(250, b"\x01\x02\x03") + FQDN))))
    o.append(("empty-capabilities-param", open_body(param(b""))))
    o.append(("rfc9072-extended-params", open_extended([MP_V4 + AS4, RR])))
    o.append(("rfc9072-extended-params-empty", open_extended([])))
    big = b"".join(cap(1, u16(afi) + b"\x00" + u8(safi)) for afi in (1, 2, 25) for safi in (1, 2, 4, 65, 70, 128, 129, 133, 134))
    big += b"".join(cap(200 + i, bytes(range(i, i + 8))) for i in range(20))
    o.append(("rfc9072-extended-params-over-255-bytes", open_extended([big])))
    o.append(("classic-opt-len-255", open_body(param(cap(250, bytes(251))))))
    o.append(("hold-time-zero", open_body(param(MP_V4), hold=0)))
    o.append(("hold-time-one-refused", open_body(param(MP_V4), hold=1)))
    o.append(("hold-time-max", open_body(param(MP_V4), hold=65535)))
    o.append(("bad-version-3", open_body(version=3)))
    o.append(("bgp-id-zero", open_body(bgp_id="0.0.0.0")))
    o.append(("unsupported-param-auth", open_body(param(b"\x01\x02\x03", ptype=1))))
    o.append(("malformed-multiprotocol-length", open_body(param(cap(1, b"\x00\x01\x00")))))
    o.append(("malformed-four-octet-as-length", open_body(param(cap(65, b"\x00\x01")))))
    o.append(("malformed-add-path-length", open_body(param(cap(69, b"\x00\x01\x01")))))
    o.append(("malformed-route-refresh-with-value", open_body(param(cap(2, b"\x00")))))
    o.append(("capability-overruns-param", open_body(param(b"\x01\x09\x00\x01"))))
    o.append(("opt-len-overruns-message", open_body(param(MP_V4), opt_len=40)))
    o.append(("trailing-bytes-after-params", open_body(param(MP_V4)) + b"\x00\x00"))
    o.append(("truncated-fixed-fields", open_body()[:6]))
    o.append(("empty-body", b""))
    return o


# ---------------------------------------------------------------- others
def notifications():
    shutdown = "maintenance: draining pod routes".encode()
    reset = "réinitialisation ✓".encode()
    return [
        ("notification-cease-admin-shutdown-communication", header(NOTIFICATION, b"\x06\x02" + u8(len(shutdown)) + shutdown)),
        ("notification-cease-admin-reset-utf8", header(NOTIFICATION, b"\x06\x04" + u8(len(reset)) + reset)),
        ("notification-cease-admin-shutdown-bad-utf8", header(NOTIFICATION, b"\x06\x02\x03\xff\xfe\xfd")),
        ("notification-cease-admin-shutdown-length-overrun", header(NOTIFICATION, b"\x06\x02\x40abc")),
        ("notification-cease-hard-reset-rfc8538", header(NOTIFICATION, b"\x06\x09\x04\x00")),
        ("notification-hold-timer-expired", header(NOTIFICATION, b"\x04\x00")),
        ("notification-open-unsupported-capability", header(NOTIFICATION, b"\x02\x07" + EXT_MSG)),
        ("notification-header-bad-length", header(NOTIFICATION, b"\x01\x02\x10\x01")),
        ("notification-update-malformed-as-path", header(NOTIFICATION, b"\x03\x0b")),
        ("notification-too-short-one-byte-body", header(NOTIFICATION, b"\x06")),
    ]


def route_refreshes():
    return [
        ("route-refresh-ipv4", header(ROUTE_REFRESH, u16(1) + b"\x00\x01")),
        ("route-refresh-ipv6", header(ROUTE_REFRESH, u16(2) + b"\x00\x01")),
        ("route-refresh-borr", header(ROUTE_REFRESH, u16(1) + b"\x01\x01")),
        ("route-refresh-eorr", header(ROUTE_REFRESH, u16(2) + b"\x02\x01")),
        ("route-refresh-orf-entries", header(ROUTE_REFRESH, u16(1) + b"\x00\x01" + b"\x01\x40" + u16(7) + b"\x00\x00\x00\x00\x01\x18\x0a")),
        ("route-refresh-borr-with-trailing", header(ROUTE_REFRESH, u16(1) + b"\x01\x01\x00")),
        ("route-refresh-unknown-subtype", header(ROUTE_REFRESH, u16(1) + b"\x03\x01\xaa")),
        ("route-refresh-too-short", header(ROUTE_REFRESH, u16(1) + b"\x00")),
    ]


KEEPALIVE_MSG = header(KEEPALIVE, b"")


def other_messages():
    return [
        ("keepalive", KEEPALIVE_MSG),
        ("keepalive-bad-length-20", header(KEEPALIVE, b"\x00")),
        ("bad-marker", b"\xff" * 15 + b"\xfe" + u16(19) + u8(KEEPALIVE)),
        ("unknown-type-7", header(7, b"\x00\x00")),
        ("length-field-mismatch", header(KEEPALIVE, b"", length=20)),
        ("update-over-4096-without-extended", header(UPDATE, update_body(nlri=bytes(4100)))),
    ]


# ---------------------------------------------------------------- corpus
def message_seeds():
    """Whole messages for `message` and `roundtrip`: (name, bytes)."""
    seeds = []
    for name, msg in other_messages() + notifications() + route_refreshes():
        seeds.append((name + ".ibgp4", ctx("ibgp4") + msg))
    seeds.append(("keepalive.ibgp2", ctx("ibgp2") + KEEPALIVE_MSG))
    for name, body in opens():
        seeds.append(("open-" + name + ".ibgp4", ctx("ibgp4") + header(OPEN, body)))
    for name, c, body in updates():
        seeds.append(("update-" + name + "." + c, ctx(c) + header(UPDATE, body)))
    # The same announcement under contexts it was not written for.
    body = dict((n, b) for n, _, b in updates())["addpath-ipv4-ipv6"]
    seeds.append(("update-addpath-ipv4-ipv6.ibgp4", ctx("ibgp4") + header(UPDATE, body)))
    body = dict((n, b) for n, _, b in updates())["ipv4-announce"]
    seeds.append(("update-ipv4-announce.ebgp2", ctx("ebgp2") + header(UPDATE, body)))
    return seeds


def update_seeds():
    return [("update-" + name + "." + c, ctx(c) + body) for name, c, body in updates()]


def open_seeds():
    return [("open-" + name, body) for name, body in opens()]


def framer_input(sizes, stream, extended=False):
    """N, the sizes, the stream; N's low bit selects extended messages."""
    sizes = list(sizes)
    if (len(sizes) & 1) != int(extended):
        # Pad with a repeat of the first size (or 1) to get the right parity.
        sizes.append(sizes[0] if sizes else 1)
    assert len(sizes) <= 255
    return u8(len(sizes)) + bytes(sizes) + stream


def framer_seeds():
    ups = dict((n, b) for n, _, b in updates())
    open_msg = header(OPEN, dict(opens())["all-capabilities-one-param-bird-style"])
    announce = header(UPDATE, ups["ipv4-announce"])
    v6 = header(UPDATE, ups["mp-reach-v6-linklocal"])
    eor = header(UPDATE, ups["eor-ipv4"])
    notif = notifications()[0][1]
    session = open_msg + KEEPALIVE_MSG + announce + v6 + eor + KEEPALIVE_MSG + notif
    big = header(UPDATE, ups["extended-message-4400-bytes-nlri"])
    rr = route_refreshes()[0][1]
    return [
        ("framer-keepalive-one-byte-chunks", framer_input([1, 1], KEEPALIVE_MSG * 3)),
        ("framer-session-start", framer_input([7, 19, 100, 3], session)),
        ("framer-session-one-chunk", framer_input([], session)),
        ("framer-session-split-in-marker", framer_input([5, 11, 2, 1], session)),
        ("framer-session-split-at-header", framer_input([19, 255], session)),
        ("framer-zero-size-chunks", framer_input([0, 0, 3, 0], KEEPALIVE_MSG + rr)),
        ("framer-extended-large-update", framer_input([200], KEEPALIVE_MSG + big + KEEPALIVE_MSG, extended=True)),
        ("framer-large-update-not-extended", framer_input([200, 17], KEEPALIVE_MSG + big + KEEPALIVE_MSG)),
        ("framer-desync-after-keepalive", framer_input([3, 4], KEEPALIVE_MSG + b"\xff" * 10 + b"\x00" + KEEPALIVE_MSG)),
        ("framer-trailing-partial-message", framer_input([13, 6], KEEPALIVE_MSG + announce + announce[:30])),
        ("framer-bad-type", framer_input([16, 16], KEEPALIVE_MSG + header(9, b"") + KEEPALIVE_MSG)),
        ("framer-bad-length-18", framer_input([2, 2], KEEPALIVE_MSG + header(KEEPALIVE, b"", length=18))),
        ("framer-open-over-4096-extended", framer_input([255], header(OPEN, bytes(4100)), extended=True)),
        ("framer-sizes-longer-than-input", b"\x20" + bytes(5)),
        ("framer-empty-stream", framer_input([10, 20], b"")),
        ("framer-route-refresh-and-notifications", framer_input([9, 1, 23], rr + b"".join(m for _, m in notifications()))),
    ]


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    names = set()
    for name, data in seeds:
        assert name not in names, "duplicate seed name " + name
        assert "/" not in name
        names.add(name)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    for stale in sorted(set(os.listdir(d)) - names):
        os.remove(os.path.join(d, stale))
    return len(seeds), sum(len(b) for _, b in seeds)


def ipv4_datagram(src, dst, payload, ttl=64, df=True, proto=17, tos=0):
    """An IPv4 datagram with a valid header checksum (RFC 791)."""
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), 0x1234,
                                0x4000 if df else 0, ttl, proto, 0, ipv4(src), ipv4(dst)))
    s = sum(struct.unpack("!10H", bytes(hdr)))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", hdr, 10, ~s & 0xFFFF)
    return bytes(hdr) + payload


def ipip_seeds():
    """ipip_packet target: one MTU byte (tunnel MTU = 68 + 6 * byte; odd
    bytes make a forwarding encapsulator), then a datagram that is both
    decapsulated and encapsulated."""
    inner = ipv4_datagram("10.244.1.5", "10.244.2.7", b"ping" * 10)
    big_df = ipv4_datagram("10.244.1.5", "10.244.2.7", bytes(1400))
    big = ipv4_datagram("10.244.1.5", "10.244.2.7", bytes(1400), df=False)
    outer = ipv4_datagram("192.0.2.1", "198.51.100.2", inner, proto=4)
    return [
        ("ipip-small-inner", bytes([238]) + inner),
        ("ipip-too-big-df", bytes([200]) + big_df),
        ("ipip-too-big-fragment", bytes([200]) + big),
        ("ipip-ttl-1-forwarding", bytes([239]) + ipv4_datagram("10.244.1.5", "10.244.2.7", b"x", ttl=1)),
        ("ipip-outer-packet", bytes([238]) + outer),
        ("ipip-truncated", bytes([238]) + inner[:15]),
    ]


def csum_fold(s):
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b):
    if len(b) % 2:
        b = b + b"\x00"
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def tcp_datagram(seq, flags, payload, sport=40000, partial=False):
    """A TCP/IPv4 datagram 10.244.1.2 -> 10.244.2.2:5201 with a 12-byte
    timestamp option and valid checksums; with partial=True the TCP
    checksum field holds only the pseudo-header sum, as the kernel hands
    out packets with NEEDS_CSUM."""
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, 5201, seq, 7, 0x80, flags, 502, 0, 0))
    tcp += bytes([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]) + payload
    pseudo = ipv4("10.244.1.2") + ipv4("10.244.2.2") + struct.pack("!BBH", 0, 6, len(tcp))
    if partial:
        c = csum_fold(words(pseudo))
    else:
        c = ~csum_fold(words(pseudo) + words(bytes(tcp))) & 0xFFFF
    struct.pack_into("!H", tcp, 16, c)
    return ipv4_datagram("10.244.1.2", "10.244.2.2", bytes(tcp), proto=6)


def vnet_hdr(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset):
    """struct virtio_net_hdr in host (little-endian, x86) byte order."""
    return struct.pack("<BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def offload_seeds():
    """ipip_offload target: an even first byte B segments (vnet header,
    then a packet; segments of at most 68 + 6 * B bytes), an odd one
    coalesces (packets behind 2-byte big-endian lengths) for an inner MTU
    of 68 + 6 * B, or 65535 if bit 1 of B is set."""
    data = bytes((i * 7 + 3) & 0xFF for i in range(4000))
    tso = tcp_datagram(1000, 0x18, data, partial=True)
    gso = vnet_hdr(1, 1, 52, 1428, 20, 16)
    segs = [tcp_datagram(1000 + 1428 * i, 0x10 | (0x08 if i == 2 else 0), data[1428 * i:1428 * (i + 1)])
            for i in range(3)]
    ack = tcp_datagram(9999, 0x10, b"")
    other_flow = tcp_datagram(5000, 0x10, data[:100], sport=40001)

    def framed(packets):
        return b"".join(struct.pack("!H", len(p)) + p for p in packets)

    return [
        ("offload-tso-super-packet", bytes([238]) + gso + tso),
        ("offload-tso-cut-to-small-mtu", bytes([100]) + gso + tso),
        ("offload-tso-ecn-cwr", bytes([238]) + vnet_hdr(1, 0x81, 52, 1000, 20, 16)
         + tcp_datagram(1000, 0x98, data[:2500], partial=True)),
        ("offload-needs-csum-only", bytes([238]) + vnet_hdr(1, 0, 0, 0, 20, 16)
         + tcp_datagram(1000, 0x18, data[:300], partial=True)),
        ("offload-udp-gso-rejected", bytes([238]) + vnet_hdr(1, 3, 28, 1400, 20, 6) + tso),
        ("offload-truncated-tcp-header", bytes([238]) + gso + tso[:30]),
        ("offload-coalesce-three-segments", bytes([3]) + framed(segs)),
        ("offload-coalesce-interleaved-ack-and-flow", bytes([3]) + framed(
            [segs[0], other_flow, segs[1], ack, segs[2]])),
        ("offload-coalesce-out-of-order", bytes([3]) + framed([segs[1], segs[0], segs[2]])),
        ("offload-coalesce-garbage", bytes([3]) + framed([b"\x45" * 30, segs[0][:50], b""])),
        # Byte 237: inner MTU 68 + 6 * 237 = 1490; a 4052-byte packet as the
        # kernel's GRO leaves it (pseudo-header sum in the checksum field).
        ("offload-coalesce-gro-merged-too-big", bytes([237]) + framed(
            [tcp_datagram(1000, 0x18, data, partial=True), segs[0]])),
    ]


def main():
    per_target = {
        "ipip_packet": ipip_seeds(),
        "ipip_offload": offload_seeds(),
        "message": message_seeds(),
        "update": update_seeds(),
        "open": open_seeds(),
        "roundtrip": message_seeds(),
        "framer": framer_seeds(),
    }
    assert set(per_target) == set(TARGETS)
    total = 0
    for target in TARGETS:
        n, size = write(target, per_target[target])
        total += size
        print("%-10s %3d seeds %7d bytes" % (target, n, size))
    print("%-10s %7d bytes" % ("total", total))
    if total > 200_000:
        sys.exit("corpus over 200 KB")


if __name__ == "__main__":
    main()
