//! The userspace IPIP data plane between two nodes in different subnets,
//! in namespaces the tests create (root required):
//!
//! ```text
//! pod-a 10.244.1.2 ── 10.244.1.1 node-a 10.90.1.2 ── 10.90.1.1 router 10.91.1.1 ── 10.91.1.2 node-b 10.244.2.1 ── 10.244.2.2 pod-b
//!                                tunl0 (ipip-tunnel)                                 tunl0 (ipip-tunnel)
//! ```
//!
//! Each node runs `ipip-tunnel` and routes the other pod subnet `via
//! OTHER_NODE dev tunl0 onlink`, as Calico does across subnets.

mod common;
#[path = "common/lab.rs"]
mod lab;

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lab::{NODE_A, NODE_B, POD_A, POD_B, Topology, must, transfer_10_mb};

const ROUTER_A: &str = "10.90.1.1";

/// One running `ipip-tunnel`, its stdout going to a file.
struct Tunnel {
    child: Child,
    log: PathBuf,
    reports: usize,
}

impl Tunnel {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Asks for the counters (SIGUSR1) and parses the report.
    fn counters(&mut self) -> HashMap<String, u64> {
        self.reports += 1;
        must(&["kill", "-USR1", &self.child.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.log_text();
            let blocks: Vec<&str> = text.split("--\n").collect();
            // Complete reports are followed by a "--" line.
            if blocks.len() > self.reports {
                let block = blocks[self.reports - 1];
                return block
                    .lines()
                    .filter_map(|l| {
                        let (k, v) = l.split_once(' ')?;
                        Some((k.to_string(), v.parse().ok()?))
                    })
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "no counter report after SIGUSR1; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The lab's namespaces and the processes of one test; everything is
/// removed on drop, whichever way the test ends.
struct Lab {
    topology: Topology,
    dir: PathBuf,
    tunnels: Vec<Tunnel>,
    /// Extra `ipip-tunnel` flags for every tunnel of this lab.
    flags: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for t in &mut self.tunnels {
            let _ = t.child.kill();
            let _ = t.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Deref for Lab {
    type Target = Topology;

    fn deref(&self) -> &Topology {
        &self.topology
    }
}

static LABS: AtomicUsize = AtomicUsize::new(0);

impl Lab {
    /// Builds the topology and starts both tunnels with `--mtu mtu`.
    fn new(mtu: u16) -> Lab {
        Lab::with_flags(mtu, &[])
    }

    /// As [`Lab::new`], with extra `ipip-tunnel` flags.
    fn with_flags(mtu: u16, flags: &[&str]) -> Lab {
        common::require_root(
            "the userspace IPIP namespace tests create network namespaces, TUN devices and raw sockets and",
        );
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("ipipu{}x{n}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut lab = Lab {
            topology: Topology::new(&tag),
            dir,
            tunnels: Vec::new(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        // Strict reverse-path filtering, as on many hosts: decapsulated
        // packets must arrive on the device their source routes through.
        // On node-a it is the default for new devices (tunl0 gets it)
        // rather than forced on all of them, so node-a can use GRO
        // egress; node-b forces it host-wide, where the data plane must
        // fall back to the raw socket.
        lab.must(
            "node-a",
            &["sysctl", "-qw", "net.ipv4.conf.default.rp_filter=1"],
        );
        lab.must(
            "node-b",
            &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"],
        );
        let mtu = mtu.to_string();
        assert_eq!(lab.start_tunnel("node-a", NODE_A, &mtu), 0);
        assert_eq!(lab.start_tunnel("node-b", NODE_B, &mtu), 1);
        // Routes installed after the tunnels start: the data plane learns
        // them from route notifications.
        lab.must(
            "node-a",
            &[
                "ip",
                "route",
                "add",
                "10.244.2.0/24",
                "via",
                NODE_B,
                "dev",
                "tunl0",
                "onlink",
            ],
        );
        lab.must(
            "node-b",
            &[
                "ip",
                "route",
                "add",
                "10.244.1.0/24",
                "via",
                NODE_A,
                "dev",
                "tunl0",
                "onlink",
            ],
        );
        for t in 0..2 {
            lab.wait_for_routes(t, 1);
        }
        lab
    }

    /// Starts `ipip-tunnel` in `which` and returns its index in `tunnels`.
    fn start_tunnel(&mut self, which: &str, local: &str, mtu: &str) -> usize {
        let index = self.tunnels.len();
        let log = self.dir.join(format!("{which}-{index}.log"));
        let err = self.dir.join(format!("{which}-{index}.err"));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(which)])
            .arg(env!("CARGO_BIN_EXE_ipip-tunnel"))
            .args(["--device", "tunl0", "--local", local, "--mtu", mtu])
            .args(&self.flags)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::fs::File::create(&err).expect("err file"))
            .spawn()
            .expect("spawn ipip-tunnel");
        self.tunnels.push(Tunnel {
            child,
            log,
            reports: 0,
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let t = self.tunnels.last_mut().expect("just pushed");
        while !t.log_text().contains("ready") {
            if let Ok(Some(status)) = t.child.try_wait() {
                panic!(
                    "ipip-tunnel in {which} exited with {status}: {}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ipip-tunnel in {which} never got ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        index
    }

    /// Stops tunnel `index` with SIGTERM and returns its final report.
    fn stop_tunnel(&mut self, index: usize) -> String {
        let t = &mut self.tunnels[index];
        must(&["kill", "-TERM", &t.child.id().to_string()]);
        let status = t.child.wait().expect("wait for ipip-tunnel");
        assert!(
            status.success(),
            "ipip-tunnel exited with {status} on SIGTERM"
        );
        t.log_text()
    }

    fn wait_for_routes(&mut self, tunnel: usize, routes: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.tunnels[tunnel].counters();
            if c.get("routes") == Some(&routes) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tunnel {tunnel} never learned its route: {c:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn pods_ping_each_other_through_userspace_tunnels() {
    let mut lab = Lab::new(1500);
    lab.must("pod-a", &["ping", "-c", "3", "-i", "0.2", "-W", "2", POD_B]);
    lab.must("pod-b", &["ping", "-c", "3", "-i", "0.2", "-W", "2", POD_A]);
    let a = lab.tunnels[0].counters();
    let b = lab.tunnels[1].counters();
    assert!(
        a["tx_packets"] >= 6 && a["rx_packets"] >= 6,
        "node-a counters: {a:?}"
    );
    assert!(
        b["tx_packets"] >= 6 && b["rx_packets"] >= 6,
        "node-b counters: {b:?}"
    );
    assert_eq!(a["drop_unknown_peer"], 0, "{a:?}");
    // Pings are not bulk: they leave on the raw socket, without waiting
    // for the GRO device's NAPI thread.
    assert!(
        lab.tunnels[0]
            .log_text()
            .contains("egress=gro via tunl0-gro")
    );
    assert_eq!(a["tx_gro"], 0, "node-a counters: {a:?}");
}

/// Sends 10 MB (and a bit) from pod-a to pod-b over TCP and checks that
/// the same bytes arrived; returns the byte count sent.
fn transfer(lab: &Lab) -> u64 {
    transfer_10_mb(lab, "pod-a", "pod-b", POD_B)
}

/// Node-a's and node-b's counters after a transfer count packets as they
/// crossed the underlay (one per outer datagram), not TUN reads or writes
/// (which carry up to 64 KB each with offloads).
fn assert_counts_wire_packets(lab: &mut Lab, bytes: u64, inner_mtu: u64) {
    let a = lab.tunnels[0].counters();
    let b = lab.tunnels[1].counters();
    // It went through the tunnel, not around it.
    assert!(a["tx_bytes"] >= bytes, "node-a counters: {a:?}");
    // Each wire packet carries at most the inner MTU less 40 header bytes.
    let min_packets = bytes / (inner_mtu - 40);
    assert!(a["tx_packets"] >= min_packets, "node-a counters: {a:?}");
    assert!(b["rx_packets"] >= min_packets, "node-b counters: {b:?}");
    assert!(b["rx_packets"] <= a["tx_packets"], "a {a:?} b {b:?}");
    assert!(
        a["tx_bytes"] / a["tx_packets"] <= inner_mtu,
        "node-a counters: {a:?}"
    );
}

#[test]
fn tcp_transfer_of_10_mb_between_pods_arrives_intact() {
    let mut lab = Lab::new(1500);
    let bytes = transfer(&lab);
    assert_counts_wire_packets(&mut lab, bytes, 1480);
}

/// Node-a (rp_filter 0 host-wide) sends bulk TCP through its GRO device:
/// the kernel merges the segments and forwards them whole, through the
/// router (which merges nothing itself) to node-b, which reads merged
/// datagrams. Node-b, with strict rp_filter host-wide, cannot use GRO
/// egress and says why.
#[test]
fn bulk_tcp_leaves_through_the_gro_device_and_arrives_merged_and_intact() {
    let mut lab = Lab::new(1500);
    let a_log = lab.tunnels[0].log_text();
    assert!(a_log.contains("egress=gro via tunl0-gro"), "{a_log}");
    let b_log = lab.tunnels[1].log_text();
    assert!(
        b_log.contains(
            "egress=raw socket (GRO egress unavailable: net.ipv4.conf.all.rp_filter is 1"
        ),
        "{b_log}"
    );
    let link = lab.exec("node-a", &["ip", "-d", "link", "show", "tunl0-gro"]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains("tun type tap") && link.contains("UP"),
        "{link}"
    );
    let bytes = transfer(&lab);
    let a = lab.tunnels[0].counters();
    let b = lab.tunnels[1].counters();
    // Nearly every data segment went through the GRO device (the rest:
    // the handshake, and ACK-only packets).
    assert!(a["tx_gro"] >= bytes / 1440, "node-a counters: {a:?}");
    assert!(b["rx_merged"] > 0, "node-b counters: {b:?}");
    assert_eq!(b["tx_gro"], 0, "node-b counters: {b:?}");
    assert_eq!(b["drop_bad_outer"], 0, "node-b counters: {b:?}");
}

#[test]
fn without_gro_egress_every_datagram_leaves_on_the_raw_socket() {
    let mut lab = Lab::with_flags(1500, &["--no-gro-egress"]);
    let log = lab.tunnels[0].log_text();
    assert!(log.contains("egress=raw socket (GRO egress off)"), "{log}");
    let bytes = transfer(&lab);
    assert_counts_wire_packets(&mut lab, bytes, 1480);
    assert_eq!(lab.tunnels[0].counters()["tx_gro"], 0);
    let link = lab.exec("node-a", &["ip", "link", "show", "tunl0-gro"]);
    assert!(!link.status.success(), "no GRO device without GRO egress");
}

/// A transfer across an underlay whose router merges node-a's segments
/// before forwarding them, as GRO on a NIC does; checks the bytes and that
/// node-b saw merged datagrams.
///
/// A NIC hands received packets to the kernel's GRO, which merges
/// consecutive IPIP/TCP segments (its IPIP handler is built in, module or
/// not) before the raw socket reads them. A veth does this only when it
/// receives through NAPI with GRO on, for packets a socket sent, and only
/// merges what queued up before its poll: so the router's port facing
/// node-a gets GRO and a NAPI thread of its own, and forwards the merged
/// datagrams to node-b whole. Node-a sends segment by segment
/// (`--no-gro-egress`): merged by its own GRO device, they would arrive
/// merged whatever the router did.
fn transfer_over_a_merging_underlay(flags: &[&str]) {
    let mut flags = flags.to_vec();
    flags.push("--no-gro-egress");
    let mut lab = Lab::with_flags(1500, &flags);
    lab.must(
        "router",
        &[
            "ethtool",
            "-K",
            "to-a",
            "gro",
            "on",
            "rx-udp-gro-forwarding",
            "on",
        ],
    );
    lab.must(
        "router",
        &["sh", "-c", "echo 1 > /sys/class/net/to-a/threaded"],
    );
    // Merging needs segments to queue up, which depends on scheduling: a
    // few transfers give it the chance.
    let mut merged = 0;
    for _ in 0..3 {
        transfer(&lab);
        merged = lab.tunnels[1].counters()["rx_merged"];
        if merged > 0 {
            break;
        }
    }
    assert!(
        merged > 0,
        "node-b never received a merged datagram; router GRO features:\n{}",
        String::from_utf8_lossy(&lab.exec("router", &["ethtool", "-k", "to-a"]).stdout)
    );
}

#[test]
fn segments_the_kernel_merged_on_the_underlay_arrive_intact() {
    transfer_over_a_merging_underlay(&[]);
}

#[test]
fn without_offloads_segments_the_kernel_merged_are_cut_again_and_arrive_intact() {
    // The TUN device takes no super-packet here: a merged datagram written
    // whole would be too big for the pod's link and dropped, again and
    // again for each retransmission.
    transfer_over_a_merging_underlay(&["--no-offload"]);
}

#[test]
fn tcp_transfer_without_offloads_arrives_intact() {
    let mut lab = Lab::with_flags(1500, &["--no-offload"]);
    assert!(lab.tunnels[0].log_text().contains("offload=false"));
    let bytes = transfer(&lab);
    assert_counts_wire_packets(&mut lab, bytes, 1480);
}

/// Pings pod-b from pod-a with DF and `size` bytes of payload, too big for
/// the tunnel: the pings fail and the pod is told the tunnel's inner MTU
/// `mtu` (ICMP fragmentation-needed).
fn assert_df_ping_gets_frag_needed(lab: &Lab, size: &str, mtu: u32) {
    let out = lab.exec(
        "pod-a",
        &[
            "ping", "-M", "do", "-s", size, "-c", "2", "-i", "0.3", "-W", "1", POD_B,
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "too-big DF ping went through: {text}"
    );
    assert!(
        text.contains(&format!("mtu = {mtu}")) || text.contains(&format!("mtu={mtu}")),
        "no fragmentation-needed with MTU {mtu} reached the pod: {text}"
    );
}

#[test]
fn super_packets_are_cut_to_a_smaller_underlay_mtu_and_df_pings_still_get_frag_needed() {
    // tunl0 keeps MTU 1500 and the pods' MSS is 1460, but the underlay
    // takes only 1400-byte outer datagrams: TCP super-packets from the TUN
    // device are segmented to 1380-byte inner packets instead of being
    // refused as too big.
    let mut lab = Lab::new(1400);
    let bytes = transfer(&lab);
    assert_counts_wire_packets(&mut lab, bytes, 1380);
    // A plain (non-GSO) datagram with DF that does not fit still gets a
    // fragmentation-needed carrying the inner MTU.
    assert_df_ping_gets_frag_needed(&lab, "1400", 1380);
}

#[test]
fn ipip_from_a_non_peer_is_dropped_and_counted() {
    let mut lab = Lab::new(1500);
    let before = lab.tunnels[0].counters();
    // The router is on node-a's subnet but is no tunnel peer. It sends a
    // well-formed IPIP packet (the kernel adds the outer header, protocol
    // 4) whose inner ICMP echo is addressed to pod-a.
    let script = format!(
        r#"
import socket, struct
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
icmp = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"stranger"
icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 7, 0, 64, 1, 0,
                  socket.inet_aton("10.244.9.9"), socket.inet_aton("{POD_A}"))
hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
s.sendto(hdr + icmp, ("{NODE_A}", 0))
"#
    );
    lab.must("router", &["python3", "-c", &script]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let after = lab.tunnels[0].counters();
        if after["drop_unknown_peer"] == before["drop_unknown_peer"] + 1 {
            assert_eq!(after["rx_packets"], before["rx_packets"], "{after:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "packet from non-peer {ROUTER_A} not counted: {after:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn too_big_df_packet_gets_fragmentation_needed_with_tunnel_mtu() {
    let mut lab = Lab::new(1500);
    // Without DF a 1500-byte datagram goes through: the tunnel fragments the
    // outer datagram and node-b's kernel reassembles it (RFC 2003 §5.1).
    // First, before the pod learns the path MTU and fragments it itself.
    lab.must(
        "pod-a",
        &[
            "ping", "-M", "dont", "-s", "1472", "-c", "1", "-W", "2", POD_B,
        ],
    );
    // 1472 + 28 = a 1500-byte inner datagram with DF; with the outer header
    // it is 1520, over the 1500 underlay MTU: the tunnel answers with the
    // inner MTU 1480.
    assert_df_ping_gets_frag_needed(&lab, "1472", 1480);
    let c = lab.tunnels[0].counters();
    assert!(c["icmp_frag_needed"] >= 1, "{c:?}");
    // A datagram that fits passes with DF.
    lab.must(
        "pod-a",
        &[
            "ping", "-M", "do", "-s", "1452", "-c", "1", "-W", "2", POD_B,
        ],
    );
}

/// Prints outer and inner addresses of the first two IP-protocol-4 packets
/// seen on an interface (an AF_PACKET capture, so no tshark is needed).
const CAPTURE: &str = r#"
import socket, sys
# ETH_P_ALL: protocol-specific packet sockets do not see outgoing frames.
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0)); s.settimeout(10)
print("capturing", flush=True)
seen = 0
while seen < 2:
    frame = s.recv(65535)
    ip = frame[14:]
    if frame[12:14] == b"\x08\x00" and ip[9] == 4:
        inner = ip[(ip[0] & 15) * 4:]
        a = lambda b: socket.inet_ntoa(b[12:16]) + ">" + socket.inet_ntoa(b[16:20])
        print("outer", a(ip), "inner", a(inner), "inner_proto", inner[9], flush=True)
        seen += 1
"#;

/// A packet capture (one of the scripts above) running in the router
/// namespace, started and ready.
struct Capture {
    child: Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Capture {
    /// Starts `script` with `args` in the router and waits until it
    /// captures.
    fn start(lab: &Lab, script: &str, args: &[&str]) -> Capture {
        use std::io::BufRead;
        let ns = lab.ns("router");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c", script])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn capture");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("capture output");
        assert_eq!(line.trim(), "capturing", "capture did not start");
        Capture { child, stdout }
    }

    /// The next `n` lines it prints, sorted, then stops it.
    fn lines(mut self, n: usize) -> Vec<String> {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for _ in 0..n {
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("capture output");
            seen.push(line.trim().to_string());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        seen.sort();
        seen
    }
}

#[test]
fn underlay_carries_protocol_4_with_node_addresses_outside_and_pod_addresses_inside() {
    let lab = Lab::new(1500);
    let capture = Capture::start(&lab, CAPTURE, &["to-b"]);
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);
    // The echo request and its reply, in whatever order the capture saw
    // them.
    let seen = capture.lines(2);
    let mut want = vec![
        format!("outer {NODE_A}>{NODE_B} inner {POD_A}>{POD_B} inner_proto 1"),
        format!("outer {NODE_B}>{NODE_A} inner {POD_B}>{POD_A} inner_proto 1"),
    ];
    want.sort();
    assert_eq!(seen, want, "unexpected packets on the underlay");
}

/// Prints, for IPIP datagrams from argv[2] arriving on argv[1], the first
/// that carries ICMP and the first longer than one wire packet that
/// carries TCP: kind, outer TTL, outer length. (A packet socket on the
/// receiving veth sees a merged datagram whole.)
const CAPTURE_TTL: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0)); s.settimeout(30)
src = socket.inet_aton(sys.argv[2])
print("capturing", flush=True)
want = {1: "icmp", 6: "tcp"}
while want:
    frame = s.recv(1 << 17)
    ip = frame[14:]
    if frame[12:14] != b"\x08\x00" or ip[9] != 4 or ip[12:16] != src:
        continue
    inner = ip[(ip[0] & 15) * 4:]
    length = int.from_bytes(ip[2:4], "big")
    kind = want.get(inner[9])
    if kind == "icmp" or (kind == "tcp" and length > 1500):
        print(kind, "ttl", ip[8], "merged", length > 1500, flush=True)
        del want[inner[9]]
"#;

/// Bulk TCP leaves node-a merged through the GRO device, pings on the raw
/// socket; on the wire both carry the same outer TTL, as a kernel tunl0's
/// datagrams would (the GRO path starts one higher: the kernel forwards
/// it).
#[test]
fn bulk_datagrams_leave_merged_with_the_same_outer_ttl_as_pings() {
    let lab = Lab::new(1500);
    let capture = Capture::start(&lab, CAPTURE_TTL, &["to-a", NODE_A]);
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);
    transfer(&lab);
    assert_eq!(
        capture.lines(2),
        ["icmp ttl 64 merged False", "tcp ttl 64 merged True"]
    );
}

#[test]
fn deleting_the_tunnel_route_stops_forwarding_and_counts_no_route() {
    let mut lab = Lab::new(1500);
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);
    // A route to the whole pod range through tunl0 without a gateway:
    // the kernel still sends into the TUN device, the tunnel has no
    // outer destination for it.
    lab.must(
        "node-a",
        &["ip", "route", "add", "10.244.0.0/16", "dev", "tunl0"],
    );
    lab.must("node-a", &["ip", "route", "del", "10.244.2.0/24"]);
    lab.wait_for_routes(0, 0);
    let out = lab.exec("pod-a", &["ping", "-c", "1", "-W", "1", POD_B]);
    assert!(!out.status.success(), "ping passed without a tunnel route");
    let c = lab.tunnels[0].counters();
    assert!(c["drop_no_route"] >= 1, "{c:?}");
    // Put back: forwarding resumes from the notification alone.
    lab.must(
        "node-a",
        &[
            "ip",
            "route",
            "add",
            "10.244.2.0/24",
            "via",
            NODE_B,
            "dev",
            "tunl0",
            "onlink",
        ],
    );
    lab.wait_for_routes(0, 1);
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);
}

#[test]
fn a_route_through_a_nexthop_object_is_followed_without_compat_attributes() {
    let mut lab = Lab::new(1500);
    // As FRR setups run: routes through nexthop objects carry only the
    // object's id, not its gateway and device.
    lab.must(
        "node-a",
        &["sysctl", "-qw", "net.ipv4.nexthop_compat_mode=0"],
    );
    lab.must("node-a", &["ip", "route", "del", "10.244.2.0/24"]);
    lab.wait_for_routes(0, 0);
    let nexthop = |lab: &Lab, verb: &str, via: &str| {
        lab.must(
            "node-a",
            &[
                "ip", "nexthop", verb, "id", "7", "via", via, "dev", "tunl0", "onlink",
            ],
        );
    };
    nexthop(&lab, "add", NODE_B);
    lab.must(
        "node-a",
        &["ip", "route", "add", "10.244.2.0/24", "nhid", "7"],
    );
    let shown = String::from_utf8_lossy(
        &lab.exec("node-a", &["ip", "route", "show", "10.244.2.0/24"])
            .stdout,
    )
    .into_owned();
    assert!(
        shown.contains("nhid 7") && !shown.contains("via"),
        "the route still carries its gateway: {shown}"
    );
    lab.wait_for_routes(0, 1);
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);

    // The object changes, not the route: only a nexthop notification
    // tells. Towards an address nobody has, the pings die...
    let ping_until = |passes: bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = lab
                .exec("pod-a", &["ping", "-c", "1", "-W", "1", POD_B])
                .status
                .success();
            if ok == passes {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    };
    nexthop(&lab, "replace", "10.91.1.99");
    assert!(
        ping_until(false),
        "pings still pass through the old gateway"
    );
    // ...and back at node-b they pass again.
    nexthop(&lab, "replace", NODE_B);
    assert!(
        ping_until(true),
        "pings never passed after the object came back"
    );
}

#[test]
fn tunnel_rides_over_peer_restart_and_resumes_forwarding() {
    let mut lab = Lab::new(1500);
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);
    let report = lab.stop_tunnel(1);
    assert!(
        report.ends_with("--\n") && report.contains("rx_packets 1\n"),
        "no final counter report at exit: {report}"
    );
    // Node-b has no tunnel now: node-a keeps encapsulating towards it
    // (node-b's kernel has no IPIP handler and drops them) and must stay up.
    let before = lab.tunnels[0].counters();
    let out = lab.exec("pod-a", &["ping", "-c", "2", "-i", "0.3", "-W", "1", POD_B]);
    assert!(
        !out.status.success(),
        "ping passed with node-b's tunnel down"
    );
    assert!(
        lab.tunnels[0].child.try_wait().expect("try_wait").is_none(),
        "node-a's tunnel died when its peer went away: {}",
        lab.tunnels[0].log_text()
    );
    let a = lab.tunnels[0].counters();
    assert!(a["tx_packets"] >= before["tx_packets"] + 2, "{a:?}");
    // The TUN device went away with the process, and its routes with it.
    let b = lab.start_tunnel("node-b", NODE_B, "1500");
    lab.must(
        "node-b",
        &[
            "ip",
            "route",
            "add",
            "10.244.1.0/24",
            "via",
            NODE_A,
            "dev",
            "tunl0",
            "onlink",
        ],
    );
    lab.wait_for_routes(b, 1);
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);
}
