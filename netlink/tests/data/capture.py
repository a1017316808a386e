#!/usr/bin/env python3
"""Captures the netlink byte vectors in kernel.txt (see README.md).

Run as root from the repository root:

    python3 netlink/tests/data/capture.py > netlink/tests/data/kernel.txt

It makes a throwaway network namespace, and inside it:

- runs each `ip` command of REQUESTS under strace and keeps the route and
  nexthop requests iproute2 sent (`request` lines: what the kernel accepts
  for that command, for value -> bytes tests);
- installs the routes and nexthop objects of INSTALL, listening to the
  route and nexthop multicast groups meanwhile (`notify` lines), then dumps
  every route (RTM_GETROUTE, AF_UNSPEC) and nexthop object (RTM_GETNEXTHOP)
  and keeps the messages of what it installed (`dump` lines: bytes the
  kernel wrote, for bytes -> value tests), once with
  net.ipv4.nexthop_compat_mode 1 (the default) and once with 0;
- records the interface indexes (`link` lines).

Every message is kept whole (struct nlmsghdr included), as hex. This
script reads only netlink headers and RTA_DST; the crate's parser is what
the vectors test.
"""

import os
import re
import socket
import struct
import subprocess
import sys

NS = "nlcap-%d" % os.getpid()
ID = 0x62000001  # the FIB's first nexthop id (ID_BASE + 1)

SETUP = [
    # A blackhole nexthop object sits on lo, which must be up.
    "link set lo up",
    "link add veth0 type veth peer name veth1",
    "addr add 10.66.0.5/24 dev veth0",
    "addr add fd00:66::5/64 dev veth0 nodad",
    "link set veth0 up",
    "link set veth1 up",
    # A veth named tunl0: it has carrier, which nexthop objects need.
    "link add tunl0 type veth peer name tunl0p",
    "link set tunl0 up",
    "link set tunl0p up",
]

# (label, ip arguments): requests the FIB's writers must match byte for
# byte. The argument order follows the order iproute2 adds attributes in.
REQUESTS = [
    ("new blackhole", "route replace blackhole 10.244.1.0/26 proto 98"),
    ("new direct", "route replace 10.244.2.0/26 via 10.66.0.6 dev veth0 onlink proto 98"),
    ("new tunnel", "route replace 10.244.3.0/26 via 10.67.0.7 dev tunl0 onlink mtu 1440 proto 98"),
    ("new underlay", "route replace 10.66.9.0/24 via 10.66.0.1 dev veth0 proto 98"),
    ("new v6 underlay", "-6 route replace fd00:244:2::/122 via fd00:66::6 dev veth0 proto 98"),
    ("new v6 blackhole", "-6 route replace blackhole fd00:244:1::/122 proto 98"),
    ("new nexthop object", "nexthop replace id %d dev veth0 via 10.66.0.6 onlink proto 98" % ID),
    ("new v6 nexthop object", "-6 nexthop replace id %d dev veth0 via fd00:66::6 proto 98" % (ID + 1)),
    ("new through object", "route replace 10.244.4.0/26 nhid %d proto 98" % ID),
    ("new through object with mtu", "route replace 10.244.5.0/26 nhid %d mtu 1440 proto 98" % ID),
    ("setup keyed", "route add 10.244.6.0/26 tos 4 metric 50 via 10.66.0.6 dev veth0 onlink proto 98"),
    ("del keyed gateway", "route del unicast 10.244.6.0/26 tos 4 metric 50 via 10.66.0.6 dev veth0 proto 98"),
    ("del blackhole", "route del blackhole 10.244.1.0/26 metric 0 proto 98"),
    ("del through object", "route del unicast 10.244.4.0/26 metric 0 proto 98"),
    ("del any type", "route del 10.244.5.0/26 metric 0 proto 98"),
    ("del v6 underlay", "-6 route del unicast fd00:244:2::/122 metric 1024 via fd00:66::6 dev veth0 proto 98"),
    ("del nexthop object", "nexthop del id %d" % ID),
]

# (label, ip arguments): the table whose dump is captured. The routes
# installed above are removed first (`route flush proto 98`).
INSTALL = [
    ("nexthop gateway", "nexthop add id %d via 10.66.0.6 dev veth0 onlink proto 98" % ID),
    ("nexthop v6 gateway", "-6 nexthop add id 7 via fd00:66::7 dev veth0 proto static"),
    ("nexthop tunnel", "nexthop add id 8 via 10.67.0.8 dev tunl0 onlink"),
    ("nexthop group", "nexthop add id 20 group 8/%d" % ID),
    ("nexthop blackhole", "nexthop add id 30 blackhole"),
    ("blackhole", "route add blackhole 10.244.1.0/26 proto 98"),
    ("direct", "route add 10.244.2.0/26 via 10.66.0.6 dev veth0 onlink proto 98"),
    ("tunnel", "route add 10.244.3.0/26 via 10.67.0.7 dev tunl0 onlink mtu 1440 proto 98"),
    ("underlay", "route add 10.66.9.0/24 via 10.66.0.1 dev veth0 proto 98"),
    ("through object", "route add 10.244.4.0/26 nhid %d proto 98" % ID),
    ("through object with mtu", "route add 10.244.5.0/26 nhid %d mtu 1440 proto 98" % ID),
    ("other table", "route add 10.244.7.0/26 via 10.66.0.6 dev veth0 onlink proto bird table 1000 metric 50 tos 8"),
    ("multipath", "route add 10.244.8.0/26 proto bird nexthop via 10.67.0.5 dev tunl0 onlink nexthop via 10.66.0.6 dev veth0 onlink"),
    ("through group", "route add 10.244.9.0/26 nhid 20 proto bird"),
    ("default", "route add blackhole default metric 7 proto 98"),
    ("v6 blackhole", "-6 route add blackhole fd00:244:1::/122 proto 98"),
    ("v6 underlay", "-6 route add fd00:244:2::/122 via fd00:66::6 dev veth0 proto 98"),
]

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEXTHOP, RTM_GETNEXTHOP = 104, 106
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_NEXTHOP = 7, 11, 32
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1
IFLA_IFNAME, RTA_DST, NHA_ID = 3, 1, 1


def out(kind, label, data):
    print("%s\t%s\t%s" % (kind, label, data.hex()))


def messages(datagram):
    """(type, whole message) for each message in a datagram."""
    at = 0
    while at + 16 <= len(datagram):
        length, kind = struct.unpack_from("=IH", datagram, at)
        if length < 16:
            break
        yield kind, datagram[at:at + length]
        at += (length + 3) & ~3


def attrs(body):
    at = 0
    while at + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, at)
        if length < 4:
            break
        yield kind & 0x3FFF, body[at + 4:at + length]
        at += (length + 3) & ~3


def dump(kind, body):
    """Every message of a dump of `kind` with request body `body`."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    s.bind((0, 0))
    s.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
    result = []
    while True:
        for t, m in messages(s.recv(1 << 20)):
            if t == NLMSG_DONE:
                s.close()
                return result
            if t == NLMSG_ERROR:
                sys.exit("dump of type %d refused: %r" % (kind, m))
            result.append((t, m))


def ip(args, check=True):
    r = subprocess.run(["ip"] + args.split(), capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit("ip %s: %s" % (args, r.stderr))
    return r


def strace_requests(args):
    """The route and nexthop messages `ip ARGS` sent, from strace's hex dump."""
    r = subprocess.run(
        ["strace", "-qq", "-e", "trace=sendmsg", "-e", "write=all", "ip"] + args.split(),
        capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("ip %s: %s" % (args, r.stderr))
    # Each buffer's dump: ` | 00000  34 00 00 00 ...  4...... |`.
    buffers, current = [], None
    for line in r.stderr.splitlines():
        if re.match(r"^ \* \d+ bytes in buffer", line):
            current = bytearray()
            buffers.append(current)
            continue
        m = re.match(r"^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})", line)
        if m and current is not None:
            current.extend(bytes.fromhex(m.group(1).replace(" ", "")))
    found = []
    for buf in buffers:
        for t, m in messages(bytes(buf)):
            if t not in (RTM_GETLINK,):
                found.append(m)
    return found


def inside():
    for args in SETUP:
        ip(args)
    for name in ("lo", "veth0", "veth1", "tunl0", "tunl0p"):
        index = open("/sys/class/net/%s/ifindex" % name).read().strip()
        print("link\t%s\t%s" % (name, index))

    for label, args in REQUESTS:
        for m in strace_requests(args):
            out("request", label, m)
    ip("route flush proto 98")
    ip("-6 route flush proto 98")
    ip("nexthop flush")

    monitor = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    monitor.bind((0, 0))
    for group in (RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_NEXTHOP):
        monitor.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
    monitor.setblocking(False)
    for _, args in INSTALL:
        ip(args)
    notes = []
    try:
        while True:
            notes.extend(messages(monitor.recv(1 << 20)))
    except BlockingIOError:
        pass
    # The first notification of each type: one route, one nexthop.
    seen = set()
    for t, m in notes:
        if t not in seen:
            seen.add(t)
            out("notify", "type %d" % t, m)

    # struct rtmsg / struct nhmsg, all zero: every family, every table.
    for compat in ("1", "0"):
        with open("/proc/sys/net/ipv4/nexthop_compat_mode", "w") as f:
            f.write(compat)
        suffix = "" if compat == "1" else " (compat 0)"
        routes = dump(RTM_GETROUTE, bytes(12))
        for label, args in INSTALL:
            if "nexthop add" in args:
                continue
            for _, m in routes:
                if matches_route(m, args):
                    out("dump", label + suffix, m)
        if compat == "1":
            for _, m in dump(RTM_GETNEXTHOP, bytes(8)):
                nh_id = [struct.unpack("=I", v)[0] for k, v in attrs(m[24:]) if k == NHA_ID]
                for label, args in INSTALL:
                    words = args.split()
                    if "nexthop add" in args and nh_id and words[words.index("id") + 1] == str(nh_id[0]):
                        out("dump", label, m)


def matches_route(message, args):
    """Whether a dumped route is the one `ip ARGS` installed: same family,
    destination and table."""
    family, dst_len, _, _, table = struct.unpack_from("=BBBBB", message, 16)
    dst = b""
    for kind, value in attrs(message[28:]):
        if kind == RTA_DST:
            dst = value
        if kind == 15:  # RTA_TABLE
            table = struct.unpack("=I", value)[0]
    words = args.split()
    want_table = int(words[words.index("table") + 1]) if "table" in words else 254
    prefix = next(w for w in words if "/" in w or w == "default")
    if prefix == "default":
        net, length = ("0.0.0.0" if family == socket.AF_INET else "::"), 0
        want_family = socket.AF_INET if not args.startswith("-6") else socket.AF_INET6
    else:
        net, length = prefix.split("/")
        want_family = socket.AF_INET6 if ":" in net else socket.AF_INET
    if family != want_family or table != want_table or dst_len != int(length):
        return False
    if length == 0:
        return dst in (b"", bytes(4 if family == socket.AF_INET else 16))
    return dst == socket.inet_pton(family, net)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        inside()
        return
    kernel = os.uname().release
    version = subprocess.run(["ip", "-V"], capture_output=True, text=True).stdout.strip()
    print("# Captured by netlink/tests/data/capture.py (see README.md)")
    print("# kernel %s, %s" % (kernel, version))
    sys.stdout.flush()
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", NS, sys.executable, __file__, "--inside"])
        if r.returncode != 0:
            sys.exit(r.returncode)
    finally:
        subprocess.run(["ip", "netns", "del", NS])


if __name__ == "__main__":
    main()
