#!/usr/bin/env python3
"""Capture real BGP messages ("golden vectors") from BIRD 2 and GoBGP.

Stdlib only.  Must run as root (creates network namespaces).

Sub-commands
------------
  all      orchestrate every scenario, write the selected *.bin files and
           README.md into --out (default: the parent folder of this script).
  speaker  minimal BGP speaker; run inside the "capture" namespace by `all`.
           Connects to the peer, sends OPEN/KEEPALIVEs/EoRs and records every
           complete message the peer sends as NNN-<type>.bin in --dir.
  pcap     wrap .bin files into a synthetic pcap (Ethernet/IPv4/TCP port 179)
           so that `tshark -r FILE.pcap` can decode them.

Topology per scenario (all names suffixed with --suffix, default PID):

   [ns bgpc<S><n>p]  peer daemon          [ns bgpc<S><n>c]  speaker + tcpdump
      10.99.0.1/24  fd99::1/64  <-veth->     10.99.0.2/24  fd99::2/64
"""

import argparse
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

MARKER = b"\xff" * 16
MSG_TYPES = {1: "open", 2: "update", 3: "notification", 4: "keepalive", 5: "route-refresh"}

PEER4, CAP4 = "10.99.0.1", "10.99.0.2"
PEER6, CAP6 = "fd99::1", "fd99::2"
PEER_MAC, CAP_MAC = "02:99:00:00:00:01", "02:99:00:00:00:02"  # -> fe80::99:ff:fe00:1 / :2
GOBGP_HOSTNAME = "gobgp-peer"  # GoBGP sends its hostname in the FQDN capability

# --------------------------------------------------------------------------
# message helpers
# --------------------------------------------------------------------------


def bgp_msg(mtype, body=b""):
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def build_open(my_as, router_id, hold=90, addpath=False, families=((1, 1), (2, 1))):
    caps = b""
    for afi, safi in families:  # Multiprotocol (RFC 4760)
        caps += struct.pack("!BBHBB", 1, 4, afi, 0, safi)
    caps += struct.pack("!BB", 2, 0)  # Route refresh (RFC 2918)
    caps += struct.pack("!BB", 6, 0)  # Extended message (RFC 8654)
    gr = struct.pack("!H", 120)  # restart time 120 s, no R/N flags
    for afi, safi in families:
        gr += struct.pack("!HBB", afi, safi, 0)
    caps += struct.pack("!BB", 64, len(gr)) + gr  # Graceful restart (RFC 4724)
    caps += struct.pack("!BBI", 65, 4, my_as)  # 4-octet AS (RFC 6793)
    if addpath:  # ADD-PATH (RFC 7911), 1 = receive
        ap = b"".join(struct.pack("!HBB", afi, safi, 1) for afi, safi in families)
        caps += struct.pack("!BB", 69, len(ap)) + ap
    params = struct.pack("!BB", 2, len(caps)) + caps
    as2 = my_as if my_as <= 0xFFFF else 23456
    body = struct.pack("!BHH4sB", 4, as2, hold, socket.inet_aton(router_id), len(params)) + params
    return bgp_msg(1, body)


def parse_attrs(data):
    attrs = []
    i = 0
    while i < len(data):
        flags, code = data[i], data[i + 1]
        if flags & 0x10:
            alen = struct.unpack("!H", data[i + 2:i + 4])[0]
            i += 4
        else:
            alen = data[i + 2]
            i += 3
        attrs.append((flags, code, data[i:i + alen]))
        i += alen
    return attrs


def classify(msg):
    """Return a short category name for a full BGP message."""
    mtype = msg[18]
    body = msg[19:]
    if mtype != 2:
        return MSG_TYPES.get(mtype, "type%d" % mtype)
    wlen = struct.unpack("!H", body[0:2])[0]
    withdrawn = body[2:2 + wlen]
    alen = struct.unpack("!H", body[2 + wlen:4 + wlen])[0]
    attrs = parse_attrs(body[4 + wlen:4 + wlen + alen])
    nlri = body[4 + wlen + alen:]
    cats = []
    if not withdrawn and not attrs and not nlri:
        return "eor-ipv4"
    if withdrawn:
        cats.append("ipv4-withdraw")
    if nlri:
        cats.append("ipv4-announce")
    for _f, code, val in attrs:
        if code in (14, 15):
            afi, safi = struct.unpack("!HB", val[:3])
            fam = {(1, 1): "ipv4", (2, 1): "ipv6"}.get((afi, safi), "afi%d-safi%d" % (afi, safi))
            if code == 14:
                cats.append(fam + "-announce")
            elif len(val) == 3 and len(attrs) == 1 and not withdrawn and not nlri:
                return "eor-" + fam
            else:
                cats.append(fam + "-withdraw")
    return "update-" + "+".join(cats) if cats else "update-attrs-only"


def describe(msg):
    mtype = msg[18]
    body = msg[19:]
    if mtype == 3:
        return "notification code=%d subcode=%d data=%r" % (body[0], body[1], body[2:])
    return classify(msg)


# --------------------------------------------------------------------------
# speaker (runs inside the capture namespace)
# --------------------------------------------------------------------------


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed connection")
        buf += chunk
    return buf


def cmd_speaker(a):
    os.makedirs(a.dir, exist_ok=True)
    log = open(os.path.join(a.dir, "events.jsonl"), "a", buffering=1)

    def ev(**kw):
        kw["t"] = round(time.time(), 3)
        log.write(json.dumps(kw) + "\n")

    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))

    fam = socket.AF_INET6 if ":" in a.connect else socket.AF_INET
    deadline = time.time() + 60
    while True:
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            if a.bind:
                s.bind((a.bind, 0))
            s.settimeout(3)
            s.connect((a.connect, 179))
            break
        except OSError as e:
            s.close()
            if time.time() > deadline or stop["flag"]:
                ev(event="connect-failed", error=str(e))
                return 1
            time.sleep(0.5)
    s.settimeout(None)
    ev(event="connected", local=s.getsockname()[0], remote=s.getpeername()[0])
    s.sendall(build_open(a.local_as, a.router_id, addpath=a.addpath))
    ev(event="sent", type="open", addpath=a.addpath)

    idx = 0
    last_ka = time.time()
    established = False
    rc = 0
    try:
        while not stop["flag"]:
            r, _, _ = select.select([s], [], [], 1.0)
            if time.time() - last_ka > 20 and established:
                s.sendall(bgp_msg(4))
                last_ka = time.time()
            if not r:
                continue
            hdr = recv_exact(s, 19)
            if hdr[:16] != MARKER:
                ev(event="bad-marker", data=hdr.hex())
                return 2
            length = struct.unpack("!H", hdr[16:18])[0]
            msg = hdr + recv_exact(s, length - 19)
            idx += 1
            name = "%03d-%s.bin" % (idx, MSG_TYPES.get(msg[18], "unknown"))
            with open(os.path.join(a.dir, name), "wb") as f:
                f.write(msg)
            ev(event="recv", idx=idx, file=name, len=len(msg), cat=describe(msg))
            if msg[18] == 1:
                s.sendall(bgp_msg(4))
                last_ka = time.time()
                ev(event="sent", type="keepalive")
            elif msg[18] == 4 and not established:
                established = True
                # our own End-of-RIB markers (we announce nothing)
                s.sendall(bgp_msg(2, b"\x00\x00\x00\x00"))
                s.sendall(bgp_msg(2, b"\x00\x00\x00\x06\x80\x0f\x03\x00\x02\x01"))
                ev(event="established")
            elif msg[18] == 3:
                ev(event="notification-received")
                break
    except (EOFError, OSError) as e:
        ev(event="closed", error=str(e))
        rc = 0
    s.close()
    ev(event="exit")
    return rc


# --------------------------------------------------------------------------
# pcap wrapper (for tshark)
# --------------------------------------------------------------------------


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def write_pcap(path, messages):
    """One TCP segment (peer 10.99.0.1:179 -> 10.99.0.2:40000) per message."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        seq = 1000
        for n, msg in enumerate(messages):
            tcp = struct.pack("!HHIIBBHHH", 179, 40000, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
            src, dst = socket.inet_aton(PEER4), socket.inet_aton(CAP4)
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(msg))
            c = _csum(pseudo + tcp + msg)
            tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(msg), n, 0, 64, 6, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
            eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
            frame = eth + ip + tcp + msg
            f.write(struct.pack("<IIII", n, 0, len(frame), len(frame)))
            f.write(frame)
            seq += len(msg)


def cmd_pcap(a):
    msgs = [open(p, "rb").read() for p in a.files]
    write_pcap(a.output, msgs)
    return 0


def tshark_verbose(msg, tmpdir):
    """tshark -V decode of one message, without bit-field and generated lines."""
    p = os.path.join(tmpdir, "one.pcap")
    write_pcap(p, [msg])
    out = subprocess.run(["tshark", "-r", p, "-O", "bgp", "-V"], capture_output=True, text=True).stdout
    i = out.find("Border Gateway Protocol")
    lines = out[i:].splitlines() if i >= 0 else out.splitlines()
    keep = [l for l in lines if l.strip() and " = " not in l and not l.strip().startswith("[")
            and not l.strip().startswith("Flags:")]
    return "\n".join(keep) + "\n"


PREFIX_RE = None
CAP_SHORT = {
    "Multiprotocol extensions capability": "cap MP", "Route refresh capability": "cap RR",
    "BGP-Extended Message": "cap ExtMsg", "Graceful Restart capability": "cap GR",
    "Support for 4-octet AS number capability": "cap AS4", "Support for Additional Paths": "cap ADD-PATH",
    "Enhanced route refresh capability": "cap EnhRR", "Long-Lived Graceful Restart (LLGR) Capability": "cap LLGR",
    "FQDN Capability": "cap FQDN", "Extended Next Hop Encoding": "cap ExtNH",
}


def tshark_summary(verbose):
    """Squeeze a tshark -V decode into one line."""
    import re
    global PREFIX_RE
    PREFIX_RE = PREFIX_RE or re.compile(r"^[0-9a-fA-F:.]+/\d+( PathId \d+)?$")
    parts, prefixes, ctx = [], [], None

    def flush():
        if prefixes:
            parts.append("%s [%s]" % (ctx, ", ".join(prefixes)))
            prefixes.clear()

    for raw in verbose.splitlines():
        l = raw.strip()
        if l.startswith("Border Gateway Protocol - "):
            parts.append(l[len("Border Gateway Protocol - "):].replace(" Message", ""))
        elif l.split(":")[0] in ("My AS", "Hold Time", "BGP Identifier"):
            parts.append(l)
        elif l.startswith("Capability: "):
            name = l[len("Capability: "):]
            parts.append(CAP_SHORT.get(name, name))
        elif parts and l.startswith(("AFI:", "Send/Receive:", "AS Number:", "Hostname:", "Restart Timers:")):
            v = l.split(":", 1)[1].strip().split(" (")[0]
            parts[-1] = parts[-1][:-1] + "," + v + ")" if parts[-1].endswith(")") else parts[-1] + "(" + v + ")"
        elif l.startswith("Path Attribute - "):
            flush()
            parts.append(l[len("Path Attribute - "):].strip())
        elif l.startswith("Next hop:") and parts and parts[-1].startswith("MP_"):
            parts[-1] += " nh " + l[len("Next hop:"):].strip()
        elif l in ("Withdrawn Routes", "Network Layer Reachability Information (NLRI)"):
            flush()
            ctx = "withdrawn" if l.startswith("Withdrawn") else "nlri"
        elif PREFIX_RE.match(l):
            prefixes.append(l)
        elif l.startswith(("Major error Code", "Minor error Code", "Shutdown Communication:")):
            parts.append(l)
    flush()
    return "; ".join(parts)


# --------------------------------------------------------------------------
# orchestration
# --------------------------------------------------------------------------

V4_ROUTES = ["10.244.0.0/26", "10.244.0.64/26", "10.244.1.0/26", "10.244.2.0/24"]
V6_ROUTES = ["fd00:244::/122", "fd00:244::40/122", "fd00:244::80/122", "fd00:244:1::/64"]
V4_WITHDRAW = ["10.244.1.0/26", "10.244.2.0/24"]
V6_WITHDRAW = ["fd00:244::80/122", "fd00:244:1::/64"]
SHUTDOWN_MSG = "golden vector shutdown"


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def nsx(ns, *args, check=True, **kw):
    return sh("ip", "netns", "exec", ns, *args, check=check, **kw)


class Scenario:
    def __init__(self, name, daemon, transport, peer_as, addpath, suffix, index, workroot, log):
        self.name, self.daemon, self.transport = name, daemon, transport
        self.peer_as, self.addpath = peer_as, addpath
        self.pns = "bgpc%s%dp" % (suffix, index)
        self.cns = "bgpc%s%dc" % (suffix, index)
        self.pif = ("vp%s%d" % (suffix, index))[:15]
        self.cif = ("vc%s%d" % (suffix, index))[:15]
        self.work = os.path.join(workroot, name)
        self.msgdir = os.path.join(self.work, "msgs")
        os.makedirs(self.msgdir, exist_ok=True)
        self.procs = []
        self.bird_pidfile = os.path.join(self.work, "bird.pid")
        self.log = log
        self.peer_addr = PEER4 if transport == "ipv4" else PEER6
        self.cap_addr = CAP4 if transport == "ipv4" else CAP6

    # ---- namespaces -----------------------------------------------------
    def setup_net(self):
        for ns in (self.pns, self.cns):
            sh("ip", "netns", "add", ns)
            nsx(ns, "ip", "link", "set", "lo", "up")
            nsx(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
        sh("ip", "link", "add", self.pif, "netns", self.pns, "address", PEER_MAC, "type", "veth",
           "peer", "name", self.cif, "netns", self.cns, "address", CAP_MAC)
        for ns, ifn, a4, a6 in ((self.pns, self.pif, PEER4, PEER6), (self.cns, self.cif, CAP4, CAP6)):
            nsx(ns, "sysctl", "-qw", "net.ipv6.conf.%s.accept_dad=0" % ifn)
            nsx(ns, "ip", "addr", "add", a4 + "/24", "dev", ifn)
            nsx(ns, "ip", "addr", "add", a6 + "/64", "dev", ifn, "nodad")
            nsx(ns, "ip", "link", "set", ifn, "up")
        time.sleep(1)

    def cleanup(self):
        if os.path.exists(self.bird_pidfile):
            try:
                os.kill(int(open(self.bird_pidfile).read().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        for ns in (self.pns, self.cns):
            r = sh("ip", "netns", "pids", ns, check=False)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            sh("ip", "netns", "del", ns, check=False)

    # ---- BIRD -------------------------------------------------------------
    def bird_conf(self, withdrawn=False):
        v4 = [r for r in V4_ROUTES if not (withdrawn and r in V4_WITHDRAW)]
        v6 = [r for r in V6_ROUTES if not (withdrawn and r in V6_WITHDRAW)]
        ibgp = self.peer_as == 65001
        nh = "next hop self; " if ibgp else ""
        if self.transport == "ipv4":
            local, nbr = PEER4, CAP4
        else:
            local, nbr = PEER6, CAP6
        ap = "add paths tx; " if True else ""
        return f"""# generated by capture.py ({self.name})
log "{self.work}/bird.log" all;
router id {PEER4};
protocol device dev1 {{ }}
protocol static st4 {{ ipv4; {' '.join('route %s blackhole;' % r for r in v4)} }}
protocol static st6 {{ ipv6; {' '.join('route %s blackhole;' % r for r in v6)} }}
filter attrs_out {{
  bgp_community.add((65001,100));
  bgp_community.add((65001,200));
  bgp_large_community.add((65001,1,2));
  bgp_med = 50;
  bgp_local_pref = 200;
  accept;
}}
protocol bgp golden {{
  local {local} as {self.peer_as};
  neighbor {nbr} as 65001;
  passive on;
  graceful restart on;
  enable extended messages on;
  ipv4 {{ import none; export filter attrs_out; {nh}{ap}}};
  ipv6 {{ import none; export filter attrs_out; {nh}{ap}}};
}}
"""

    def start_bird(self):
        self.bird_conf_path = os.path.join(self.work, "bird.conf")
        self.sock = os.path.join(self.work, "bird.ctl")
        with open(self.bird_conf_path, "w") as f:
            f.write(self.bird_conf())
        nsx(self.pns, "bird", "-c", self.bird_conf_path, "-s", self.sock, "-P", self.bird_pidfile)
        for _ in range(50):
            if os.path.exists(self.sock):
                break
            time.sleep(0.1)
        time.sleep(1)

    def birdc(self, *args):
        r = nsx(self.pns, "birdc", "-s", self.sock, *args, check=False)
        self.log("   birdc %s -> %s" % (" ".join(args), r.stdout.strip().replace("\n", " | ")[:300]))
        return r

    # ---- GoBGP ------------------------------------------------------------
    def gobgp_conf(self):
        nbr = CAP4 if self.transport == "ipv4" else CAP6
        ap = ""
        afis = ""
        for fam in ("ipv4-unicast", "ipv6-unicast"):
            afis += f"""
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "{fam}"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.add-paths.config]
      send-max = 8
"""
        return f"""# generated by capture.py ({self.name})
[global.config]
  as = {self.peer_as}
  router-id = "{PEER4}"
  port = 179
  local-address-list = ["{PEER4}", "{PEER6}"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{nbr}"
    peer-as = 65001
  [neighbors.transport.config]
    passive-mode = true
    local-address = "{self.peer_addr}"
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
{afis}{ap}"""

    def start_gobgp(self):
        path = os.path.join(self.work, "gobgpd.toml")
        with open(path, "w") as f:
            f.write(self.gobgp_conf())
        logf = open(os.path.join(self.work, "gobgpd.log"), "w")
        # own UTS namespace so that the FQDN capability does not leak the host name
        p = subprocess.Popen(["ip", "netns", "exec", self.pns, "unshare", "--uts", "sh", "-c",
                              'hostname "$0" && exec gobgpd -f "$1" -p --api-hosts=127.0.0.1:50051 --pprof-disable',
                              GOBGP_HOSTNAME, path],
                             stdout=logf, stderr=subprocess.STDOUT)
        self.procs.append(p)
        for _ in range(100):
            if nsx(self.pns, "gobgp", "-p", "50051", "global", check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("gobgpd did not start")
        for r in V4_ROUTES:
            self.gobgp("global", "rib", "add", "-a", "ipv4", r, "nexthop", PEER4,
                       "community", "65001:100,65001:200", "large-community", "65001:1:2",
                       "med", "50", "local-pref", "200")
        for r in V6_ROUTES:
            self.gobgp("global", "rib", "add", "-a", "ipv6", r, "nexthop", PEER6,
                       "community", "65001:100,65001:200", "large-community", "65001:1:2",
                       "med", "50", "local-pref", "200")

    def gobgp(self, *args):
        r = nsx(self.pns, "gobgp", "-p", "50051", *args, check=False)
        self.log("   gobgp %s -> rc=%d %s" % (" ".join(args), r.returncode, (r.stdout + r.stderr).strip()[:200]))
        return r

    # ---- capture side -------------------------------------------------------
    def start_capture(self):
        pcap = os.path.join(self.work, "wire.pcap")
        p = subprocess.Popen(["ip", "netns", "exec", self.cns, "tcpdump", "-i", self.cif, "-U", "-s", "0",
                              "-w", pcap, "tcp", "port", "179"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.tcpdump = p
        time.sleep(1)
        args = ["ip", "netns", "exec", self.cns, sys.executable, os.path.abspath(__file__), "speaker",
                "--connect", self.peer_addr, "--bind", self.cap_addr, "--local-as", "65001",
                "--router-id", CAP4, "--dir", self.msgdir]
        if self.addpath:
            args.append("--addpath")
        self.speaker = subprocess.Popen(args)
        self.procs.append(self.speaker)

    def events(self):
        try:
            with open(os.path.join(self.msgdir, "events.jsonl")) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def wait_for(self, pred, timeout, quiet=2.0):
        """Wait until pred(events) is true and no new message arrived for `quiet` s."""
        end = time.time() + timeout
        while time.time() < end:
            evs = self.events()
            last = max([e["t"] for e in evs if e["event"] == "recv"] or [0])
            if pred(evs) and time.time() - last >= quiet:
                return True
            if self.speaker.poll() is not None and not pred(evs):
                return False
            time.sleep(0.3)
        return False

    def run(self):
        self.log("== scenario %s (%s, %s transport, peer AS %d, add-path rx %s)" % (
            self.name, self.daemon, self.transport, self.peer_as, "advertised" if self.addpath else "not advertised"))
        # our local AS is always 65001; the *daemon* AS differs for eBGP
        self.setup_net()
        if self.daemon == "bird2":
            self.start_bird()
        else:
            self.start_gobgp()
        self.start_capture()
        cats = lambda evs: {e["cat"] for e in evs if e["event"] == "recv"}
        ok = self.wait_for(lambda evs: {"eor-ipv4", "eor-ipv6"} <= cats(evs), 40, quiet=3)
        self.log("   initial sync done=%s cats=%s" % (ok, sorted(cats(self.events()))))
        if self.daemon == "bird2":
            self.birdc("show", "protocols", "all", "golden")
        else:
            self.gobgp("neighbor")
        n_before = len([e for e in self.events() if e["event"] == "recv"])
        # withdraw some routes
        if self.daemon == "bird2":
            with open(self.bird_conf_path, "w") as f:
                f.write(self.bird_conf(withdrawn=True))
            self.birdc("configure")
        else:
            for r in V4_WITHDRAW:
                self.gobgp("global", "rib", "del", "-a", "ipv4", r)
            for r in V6_WITHDRAW:
                self.gobgp("global", "rib", "del", "-a", "ipv6", r)
        self.wait_for(lambda evs: len([e for e in evs if e["event"] == "recv" and "withdraw" in e["cat"]]) >= 2, 20, quiet=3)
        # shutdown -> NOTIFICATION
        if self.daemon == "bird2":
            self.birdc("disable", "golden", '"%s"' % SHUTDOWN_MSG)
        else:
            # `disable` ignores --reason in gobgp 3.x; the deprecated `shutdown` passes it on
            r = self.gobgp("neighbor", self.cap_addr, "shutdown", "--reason", SHUTDOWN_MSG)
            if r.returncode != 0:
                self.gobgp("neighbor", self.cap_addr, "disable", "--reason", SHUTDOWN_MSG)
        try:
            self.speaker.wait(20)
        except subprocess.TimeoutExpired:
            self.log("   speaker did not exit after shutdown")
        time.sleep(1)
        for e in self.events():
            if e["event"] == "recv":
                self.log("   %s %4d B  %s" % (e["file"], e["len"], e["cat"]))
            elif e["event"] not in ("sent",):
                self.log("   [%s] %s" % (e["event"], {k: v for k, v in e.items() if k not in ("event", "t")}))

    def verify_wire(self):
        """Cross-check: recorded messages == TCP payload the peer sent (from tcpdump)."""
        pcap = os.path.join(self.work, "wire.pcap")
        if not shutil.which("tshark") or not os.path.exists(pcap):
            return None
        flt = "tcp.srcport == 179 and tcp.len > 0"
        r = sh("tshark", "-r", pcap, "-Y", flt, "-T", "fields", "-e", "tcp.seq", "-e", "tcp.payload", check=False)
        segs = {}
        for line in r.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[1]:
                segs[int(parts[0])] = bytes.fromhex(parts[1].replace(":", ""))
        wire = b"".join(segs[k] for k in sorted(segs))
        recorded = b"".join(m for _c, m in self.messages())
        ok = wire == recorded
        self.log("   wire check (tcpdump payload == recorded messages, %d bytes): %s" % (len(wire), "OK" if ok else "MISMATCH"))
        return ok

    def messages(self):
        out = []
        for e in self.events():
            if e["event"] == "recv":
                with open(os.path.join(self.msgdir, e["file"]), "rb") as f:
                    msg = f.read()
                out.append((classify(msg), msg))
        return out


SCENARIOS = [
    # name,              daemon,  transport, peer AS, add-path rx advertised by us
    ("bird2-ibgp-v4", "bird2", "ipv4", 65001, False),
    ("bird2-ebgp-v6", "bird2", "ipv6", 65002, False),
    ("bird2-ibgp-v4-addpath", "bird2", "ipv4", 65001, True),
    ("gobgp-ibgp-v4", "gobgp", "ipv4", 65001, False),
    ("gobgp-ebgp-v6", "gobgp", "ipv6", 65002, False),
    ("gobgp-ibgp-v4-addpath", "gobgp", "ipv4", 65001, True),
]


def cmd_all(a):
    if os.geteuid() != 0:
        print("must run as root", file=sys.stderr)
        return 1
    out = os.path.abspath(a.out)
    workroot = a.workdir or tempfile.mkdtemp(prefix="bgpcap.")
    os.makedirs(workroot, exist_ok=True)
    logf = open(os.path.join(workroot, "capture.log"), "w")

    def log(s):
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    only = set(a.only.split(",")) if a.only else None
    results = {}
    current = []

    def on_signal(signum, _frame):
        for sc in current:
            sc.cleanup()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i, (name, daemon, transport, peer_as, addpath) in enumerate(SCENARIOS):
        if only and name not in only:
            continue
        sc = Scenario(name, daemon, transport, peer_as, addpath, a.suffix, i, workroot, log)
        current[:] = [sc]
        try:
            sc.run()
            results[name] = sc
            time.sleep(0.5)
            sc.tcpdump.terminate()  # stop tcpdump so that the pcap is complete
            sc.tcpdump.wait(5)
            if sc.verify_wire() is False:
                log("ERROR: wire check failed for %s" % name)
                return 1
        finally:
            sc.cleanup()
            current[:] = []
    log("work dir: %s" % workroot)
    if not a.no_select:
        select_and_write(results, out, workroot, log)
    return 0


# --------------------------------------------------------------------------
# selection of golden files + README
# --------------------------------------------------------------------------

# (scenario suffix, category, output name, description)
SELECTION = [
    ("ibgp-v4", "open", "open", "OPEN"),
    ("ibgp-v4", "keepalive", "keepalive", "KEEPALIVE"),
    ("ibgp-v4", "update-ipv4-announce", "update-ipv4-announce",
     "UPDATE announcing IPv4 unicast prefixes in the classic NLRI field (NEXT_HOP, LOCAL_PREF, MED, communities, large community)"),
    ("ibgp-v4", "update-ipv6-announce", "update-ipv6-announce",
     "UPDATE announcing IPv6 unicast prefixes in MP_REACH_NLRI (16-byte global next hop), IPv4 transport"),
    ("ibgp-v4", "update-ipv4-withdraw", "update-ipv4-withdraw", "UPDATE withdrawing IPv4 prefixes (Withdrawn Routes field)"),
    ("ibgp-v4", "update-ipv6-withdraw", "update-ipv6-withdraw", "UPDATE withdrawing IPv6 prefixes (MP_UNREACH_NLRI)"),
    ("ibgp-v4", "eor-ipv4", "eor-ipv4", "End-of-RIB IPv4 unicast (empty UPDATE, 23 bytes)"),
    ("ibgp-v4", "eor-ipv6", "eor-ipv6", "End-of-RIB IPv6 unicast (UPDATE with only an empty MP_UNREACH_NLRI for AFI 2/SAFI 1)"),
    ("ibgp-v4", "notification", "notification-shutdown",
     "NOTIFICATION Cease(6)/Administrative Shutdown(2) with RFC 9003 shutdown communication"),
    ("ebgp-v6", "update-ipv4-announce", "ebgp-update-ipv4-announce",
     "UPDATE IPv4 announce over eBGP (AS_PATH 65002, no LOCAL_PREF); session runs over IPv6 transport"),
    ("ebgp-v6", "update-ipv6-announce", "ebgp-update-ipv6-announce",
     "UPDATE IPv6 announce (MP_REACH_NLRI) over eBGP on a directly connected IPv6 transport session"),
    ("ibgp-v4-addpath", "update-ipv4-announce", "update-ipv4-addpath",
     "UPDATE IPv4 announce WITH ADD-PATH path identifiers in the NLRI field"),
    ("ibgp-v4-addpath", "update-ipv6-announce", "update-ipv6-addpath",
     "UPDATE IPv6 announce (MP_REACH_NLRI) WITH ADD-PATH path identifiers"),
    ("ibgp-v4-addpath", "update-ipv4-withdraw", "update-ipv4-withdraw-addpath",
     "UPDATE IPv4 withdraw WITH ADD-PATH path identifiers"),
]


def _sel_rank(fname):
    name = fname.split("-", 1)[1][:-4].replace("update-ipv6-linklocal-nh", "ebgp-update-ipv6-announce")
    names = [o for _s, _c, o, _d in SELECTION]
    return names.index(name) if name in names else len(names)


def mp_reach_nh_len(msg):
    body = msg[19:]
    wlen = struct.unpack("!H", body[0:2])[0]
    alen = struct.unpack("!H", body[2 + wlen:4 + wlen])[0]
    for _f, code, val in parse_attrs(body[4 + wlen:4 + wlen + alen]):
        if code == 14:
            return val[3]
    return None


def version_of(daemon):
    if daemon == "bird2":
        r = sh("bird", "--version", check=False)
    else:
        r = sh("gobgpd", "--version", check=False)
    return (r.stdout + r.stderr).strip().splitlines()[0]


def context_of(sc):
    ibgp = sc.peer_as == 65001
    return {
        "session": "iBGP" if ibgp else "eBGP",
        "daemon_as": sc.peer_as,
        "capture_as": 65001,
        "transport": "%s (%s -> %s)" % (sc.transport, sc.peer_addr, sc.cap_addr),
        "four_octet_as": True,
        "addpath_rx": {"ipv4-unicast": sc.addpath, "ipv6-unicast": sc.addpath},
        "extended_message": sc.daemon == "bird2",
    }


def context_text(ctx):
    ap = "add-path NEGOTIATED for IPv4+IPv6 unicast (peer sends path ids)" if ctx["addpath_rx"]["ipv4-unicast"] \
        else "add-path not negotiated"
    return "%s, daemon AS %d -> capture AS 65001, %s transport, 4-octet AS, %s" % (
        ctx["session"], ctx["daemon_as"], ctx["transport"].split()[0], ap)


def select_and_write(results, out, workroot, log):
    os.makedirs(out, exist_ok=True)
    chosen = []
    for daemon in ("bird2", "gobgp"):
        seen = {}
        for scen, cat, oname, desc in SELECTION:
            sc = results.get("%s-%s" % (daemon, scen))
            if not sc:
                continue
            msgs = [m for c, m in sc.messages() if c == cat]
            if not msgs:
                log("   (no %s in %s)" % (cat, sc.name))
                continue
            if len(msgs) > 1:
                log("   note: %d %s messages in %s, keeping the smallest by bytes" % (len(msgs), cat, sc.name))
            msg = min(msgs)  # deterministic choice when a daemon splits a change over several UPDATEs
            if oname == "ebgp-update-ipv6-announce" and mp_reach_nh_len(msg) == 32:
                oname = "update-ipv6-linklocal-nh"
                desc += "; next hop = global + link-local (32 bytes)"
            if msg in seen:
                log("   skip %s-%s: identical to %s" % (daemon, oname, seen[msg]))
                continue
            fname = "%s-%s.bin" % (daemon, oname)
            seen[msg] = fname
            chosen.append((fname, sc, desc, msg, len(msgs)))
    # keep entries of scenarios that were not re-run (--only); drop the files of re-run ones
    old_meta = []
    try:
        with open(os.path.join(out, "vectors.json")) as f:
            old_meta = json.load(f)
    except (OSError, ValueError):
        pass
    kept = [m for m in old_meta if m["scenario"] not in results and os.path.exists(os.path.join(out, m["file"]))]
    for m in old_meta:
        if m["scenario"] in results and os.path.exists(os.path.join(out, m["file"])):
            os.unlink(os.path.join(out, m["file"]))
    tmp = tempfile.mkdtemp(prefix="bgpcap-ts.")
    meta, decodes = [], []
    for m in kept:
        with open(os.path.join(out, m["file"]), "rb") as f:
            chosen.append((m["file"], None, m, f.read(), m["candidates"]))
    chosen.sort(key=lambda c: (0 if c[0].startswith("bird2") else 1, _sel_rank(c[0])))
    for fname, sc, desc, msg, n in chosen:
        verbose = tshark_verbose(msg, tmp)
        decodes.append("=" * 78 + "\n%s (%d bytes)\n" % (fname, len(msg)) + "=" * 78 + "\n" + verbose)
        if sc is None:  # kept from a previous run
            desc["tshark"] = tshark_summary(verbose)
            meta.append(desc)
            continue
        with open(os.path.join(out, fname), "wb") as f:
            f.write(msg)
        meta.append({"file": fname, "bytes": len(msg), "daemon": sc.daemon, "version": version_of(sc.daemon),
                     "scenario": sc.name, "description": desc, "context": context_of(sc),
                     "candidates": n, "tshark": tshark_summary(verbose)})
    shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(out, "vectors.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "tshark-decode.txt"), "w") as f:
        f.write("# tshark %s decode of every .bin file (regenerated by capture/capture.py)\n\n"
                % sh("tshark", "--version").stdout.split("\n")[0].split()[1] + "\n".join(decodes))
    write_readme(out, meta)
    log("wrote %d files to %s (+ vectors.json, tshark-decode.txt, README.md)" % (len(chosen), out))


README_HEAD = """# BGP golden vectors (real BIRD 2 / GoBGP bytes)

Every `*.bin` file is ONE complete BGP message exactly as received on the wire
(16-byte 0xff marker + length + type + body), sent by a real daemon to the
minimal speaker in `capture/capture.py`. Nothing here is hand-written.

Generated by `capture/capture.py` - do not edit by hand; re-run instead:

    sudo bgp-core/tests/data/capture/run.sh                       # all scenarios
    sudo bgp-core/tests/data/capture/run.sh --only bird2-ibgp-v4  # one scenario (comma list)

(root needed: it creates two network namespaces per scenario, `bgpc<PID><n>p`
running the daemon with 10.99.0.1/24 + fd99::1/64 and `bgpc<PID><n>c` running
the speaker + tcpdump with 10.99.0.2/24 + fd99::2/64, joined by a veth pair
with fixed MACs 02:99:00:00:00:01/02, so link-local = fe80::99:ff:fe00:1/2.
Everything is torn down on exit, also on error/Ctrl-C.)

Daemons: {versions}. Decoded with {tshark}.

## Session context (needed to decode)

* The capture speaker always sends OPEN: version 4, AS 65001, hold 90,
  BGP id 10.99.0.2, capabilities MP IPv4/unicast + IPv6/unicast, route refresh,
  extended message, graceful restart (120 s, both families), 4-octet AS 65001;
  plus ADD-PATH receive for IPv4+IPv6 unicast only in the `*-addpath` scenarios.
* Both sides advertise 4-octet AS, so **AS_PATH uses 4-octet AS numbers in all files**.
* BIRD and GoBGP both advertise ADD-PATH *send* for both families. So ADD-PATH
  is negotiated (peer -> us) only in the `*-addpath` scenarios; all other files
  have NO path identifiers.
* Extended message (RFC 8654) is negotiated with BIRD only (GoBGP does not offer it);
  no message here is bigger than 4096 bytes anyway.
* Scenarios: `<daemon>-ibgp-v4` (iBGP 65001<->65001 over IPv4 transport, main set),
  `<daemon>-ebgp-v6` (eBGP, daemon AS 65002, capture AS 65001, over IPv6 transport
  fd99::1 <-> fd99::2, directly connected), `<daemon>-ibgp-v4-addpath`
  (as ibgp-v4 but ADD-PATH rx advertised by us).
* Routes announced: IPv4 10.244.0.0/26, 10.244.0.64/26, 10.244.1.0/26, 10.244.2.0/24;
  IPv6 fd00:244::/122, fd00:244::40/122, fd00:244::80/122, fd00:244:1::/64; all with
  communities 65001:100 65001:200, large community 65001:1:2, MED 50, LOCAL_PREF 200
  (iBGP only). Withdrawn afterwards: 10.244.1.0/26, 10.244.2.0/24, fd00:244::80/122,
  fd00:244:1::/64. Then the daemon shuts the session down with
  shutdown communication "golden vector shutdown".
  BIRD packs all prefixes of a family into one UPDATE; GoBGP sends one UPDATE per
  IPv6 prefix and per withdrawn prefix (the file holds the smallest-by-bytes of them).
* BIRD: routes come from `protocol static` (blackhole) + export filter, withdrawals via
  `birdc configure` with fewer routes, NOTIFICATION via `birdc disable golden "..."`;
  iBGP uses `next hop self`. GoBGP: `gobgp global rib add/del`, NOTIFICATION via
  `gobgp neighbor ADDR shutdown --reason "..."` (`disable` ignores --reason in 3.10).
  GoBGP runs in its own UTS namespace with hostname `gobgp-peer`, which appears in
  its FQDN capability (73).
* GoBGP also offers Extended Next Hop (IPv4 NLRI over IPv6 NH), LLGR/Enhanced RR come
  from BIRD; the capture speaker offers none of them, so they are NOT negotiated.
* Reproducibility: BIRD files come out byte-identical on every run. GoBGP iterates
  Go maps, so the NLRI order inside its UPDATEs (and which of its one-prefix IPv6
  UPDATEs is the smallest) can change between runs; the set of prefixes/attributes
  does not.
* Integrity: after every scenario capture.py checks that the concatenation of the
  recorded messages equals the TCP payload the daemon sent according to the
  tcpdump capture taken in the capture namespace (`wire check ... OK` in the log).

Also here: `vectors.json` (same data, machine readable), `tshark-decode.txt`
(full `tshark -V` decode of every file). To look at a file yourself:

    python3 capture/capture.py pcap -o /tmp/x.pcap FILE.bin && tshark -r /tmp/x.pcap -V -O bgp

## Files
"""


def write_readme(out, meta):
    versions = sorted({m["version"] for m in meta})
    tshark = sh("tshark", "--version").stdout.split("\n")[0].rstrip(".")
    lines = [README_HEAD.format(versions=", ".join(versions), tshark=tshark)]
    for m in meta:
        lines.append("* `%s` (%d B) - %s. **%s**; %s; scenario `%s` (`run.sh --only %s`).\n  tshark: %s\n" % (
            m["file"], m["bytes"], m["description"], m["version"], context_text(m["context"]),
            m["scenario"], m["scenario"], m["tshark"]))
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("all")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    p.add_argument("--suffix", default=str(os.getpid()))
    p.add_argument("--workdir", default=None)
    p.add_argument("--only", default=None, help="comma separated scenario names")
    p.add_argument("--no-select", action="store_true")
    p = sub.add_parser("speaker")
    p.add_argument("--connect", required=True)
    p.add_argument("--bind", default=None)
    p.add_argument("--local-as", type=int, default=65001)
    p.add_argument("--router-id", default=CAP4)
    p.add_argument("--addpath", action="store_true")
    p.add_argument("--dir", required=True)
    p = sub.add_parser("readme", help="re-render README.md from vectors.json (no capture)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    p = sub.add_parser("pcap")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("files", nargs="+")
    a = ap.parse_args()
    return {"all": cmd_all, "speaker": cmd_speaker, "pcap": cmd_pcap, "readme": cmd_readme}[a.cmd](a)


def cmd_readme(a):
    with open(os.path.join(a.out, "vectors.json")) as f:
        write_readme(a.out, json.load(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
