//! The `bpf` backend ([`ipip::bpf`]) between two nodes in different
//! subnets, in namespaces the tests create (root required), set up by
//! `ipip-tunnel bpf-setup` as an operator without the agent would:
//!
//! ```text
//! pod-a 10.244.1.2 ── node-a 10.90.1.2 ── router ── 10.91.1.2 node-b ── pod-b 10.244.2.2
//!                     eth0: tc ingress decap          eth0: tc ingress decap
//!                     10.244.2.0/24 via 10.91.1.2 dev eth0 onlink encap bpf xmit …
//! ```
//!
//! Each test mounts a bpffs of its own for the pins (`ip netns exec`
//! gives every command a fresh /sys, so pins under /sys/fs/bpf would not
//! outlive the command) and unmounts it on every path.

mod common;
#[path = "common/lab.rs"]
mod lab;

use std::collections::HashMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lab::{NODE_A, NODE_B, POD_A, POD_B, Topology, must, run, transfer_10_mb};

/// The lab's namespaces and a bpffs of the test's own, removed on drop.
struct Lab {
    topology: Topology,
    pins: PathBuf,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = run(&["umount", &self.pins.to_string_lossy()]);
        let _ = std::fs::remove_dir(&self.pins);
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
    /// The topology, and the bpf backend on both nodes.
    fn new() -> Lab {
        common::require_root(
            "the bpf backend's namespace tests create namespaces, load eBPF programs and mount a bpffs, and",
        );
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("ipipb{}x{n}", std::process::id());
        let pins = std::env::temp_dir().join(format!("{tag}-bpffs"));
        std::fs::create_dir_all(&pins).expect("pin dir");
        let lab = Lab {
            topology: Topology::new(&tag),
            pins,
        };
        must(&["mount", "-t", "bpf", "bpf", &lab.pins.to_string_lossy()]);
        // Strict reverse-path filtering: opened packets must arrive on the
        // device their source routes through (eth0 here).
        for node in ["node-a", "node-b"] {
            lab.must(node, &["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"]);
        }
        let a = lab.setup("node-a", NODE_A, &format!("10.244.2.0/24={NODE_B}"));
        assert!(a.contains("opened=loaded ingress=attached"), "{a}");
        let b = lab.setup("node-b", NODE_B, &format!("10.244.1.0/24={NODE_A}"));
        assert!(b.contains("opened=loaded ingress=attached"), "{b}");
        lab
    }

    fn pin_root(&self) -> String {
        self.pins.join("podroute").to_string_lossy().into_owned()
    }

    /// `ipip-tunnel bpf-setup` in `which`.
    fn setup(&self, which: &str, local: &str, route: &str) -> String {
        self.must(
            which,
            &[
                env!("CARGO_BIN_EXE_ipip-tunnel"),
                "bpf-setup",
                "--underlay",
                "eth0",
                "--local",
                local,
                "--route",
                route,
                "--pin-root",
                &self.pin_root(),
            ],
        )
    }

    /// `ipip-tunnel bpf-setup --show` in `which`, as `key=value` pairs.
    fn show(&self, which: &str) -> HashMap<String, String> {
        let line = self.must(
            which,
            &[
                env!("CARGO_BIN_EXE_ipip-tunnel"),
                "bpf-setup",
                "--underlay",
                "eth0",
                "--show",
                "--pin-root",
                &self.pin_root(),
            ],
        );
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn counter(&self, which: &str, name: &str) -> u64 {
        let shown = self.show(which);
        shown
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter {name} in {shown:?}"))
    }
}

#[test]
fn pods_ping_and_move_10_mb_of_tcp_byte_exact_both_ways_through_the_bpf_programs() {
    let lab = Lab::new();
    lab.must("pod-a", &["ping", "-c", "3", "-i", "0.2", "-W", "2", POD_B]);
    lab.must("pod-b", &["ping", "-c", "3", "-i", "0.2", "-W", "2", POD_A]);
    // The route as the kernel holds it reads back as the program's own.
    assert_eq!(lab.show("node-a")["routes"], "1");
    let before = lab.counter("node-a", "encapsulated");
    let bytes = transfer_10_mb(&lab, "pod-a", "pod-b", POD_B);
    transfer_10_mb(&lab, "pod-b", "pod-a", POD_A);
    let a = lab.show("node-a");
    let b = lab.show("node-b");
    let n = |m: &HashMap<String, String>, k: &str| m[k].parse::<u64>().unwrap();
    assert!(
        n(&a, "decapsulated") > 0 && n(&b, "decapsulated") > 0,
        "{a:?} {b:?}"
    );
    assert_eq!(n(&a, "decap_not_node") + n(&b, "decap_not_node"), 0);
    // GSO super-packets were given one outer header each and crossed the
    // underlay whole: far fewer encapsulations than 1,480-byte segments.
    let encapsulated = n(&a, "encapsulated") - before;
    assert!(
        encapsulated < bytes / 1480,
        "node-a encapsulated {encapsulated} packets for 10 MB: no GSO? {a:?}"
    );
    // Kernels up to 6.18 take protocol 0 for GSO packets (the program's
    // first way): no packet is lost to finding out. A kernel that refuses
    // it makes the program switch once, and say so.
    for shown in [&a, &b] {
        let switched = n(shown, "encap_gso_switched");
        let mode = &shown["gso"];
        assert!(
            (switched == 0 && mode == "Some(IpThenIpip)")
                || (switched == 1 && mode == "Some(Ipip)"),
            "{shown:?}"
        );
    }
}

#[test]
fn a_df_packet_too_big_for_the_tunnel_gets_fragmentation_needed_with_mtu_1480() {
    let lab = Lab::new();
    lab.must("pod-a", &["ping", "-c", "1", "-W", "2", POD_B]);
    // 1452 + 28 = 1480 fits; 1453 does not.
    lab.must(
        "pod-a",
        &[
            "ping", "-M", "do", "-s", "1452", "-c", "1", "-W", "2", POD_B,
        ],
    );
    let out = lab.exec(
        "pod-a",
        &[
            "ping", "-M", "do", "-s", "1453", "-c", "2", "-i", "0.3", "-W", "1", POD_B,
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
        text.contains("mtu = 1480") || text.contains("mtu=1480"),
        "no fragmentation-needed with MTU 1480 reached the pod: {text}"
    );
}

/// A UDP datagram to pod-b inside IPIP, sent on a raw protocol-4 socket
/// (the kernel adds the outer header with this host's address), and
/// whether pod-b got it.
const RAW_IPIP: &str = r#"
import socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!10H", b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
src, dst, node, tag = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
udp = struct.pack("!HHHH", 4000, 5002, 8 + len(tag), 0) + tag
h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                socket.inet_aton(src), socket.inet_aton(dst))
h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
for _ in range(3): s.sendto(h + udp, (node, 0))
"#;

const UDP_LISTENER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5002)); s.settimeout(2)
print("listening", flush=True)
got = []
try:
    while True: got.append(s.recv(100).decode())
except socket.timeout: pass
print(" ".join(got) or "none", flush=True)
"#;

/// Sends three IPIP datagrams from `which` to node-b and returns what
/// pod-b received.
fn send_raw_ipip(lab: &Lab, which: &str, tag: &str) -> String {
    let listener = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("pod-b"),
            "python3",
            "-u",
            "-c",
            UDP_LISTENER,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn listener");
    std::thread::sleep(Duration::from_millis(300));
    lab.must(
        which,
        &["python3", "-c", RAW_IPIP, POD_A, POD_B, NODE_B, tag],
    );
    let out = listener.wait_with_output().expect("listener output");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn ipip_from_an_address_that_is_not_a_node_is_dropped_and_counted() {
    let lab = Lab::new();
    // The router (10.91.1.1) is no node: dropped at node-b's ingress.
    assert_eq!(send_raw_ipip(&lab, "router", "stranger"), "none");
    assert_eq!(lab.counter("node-b", "decap_not_node"), 3);
    // The same from node-a, a node, is opened and delivered.
    assert_eq!(send_raw_ipip(&lab, "node-a", "node"), "node node node");
    assert_eq!(lab.counter("node-b", "decap_not_node"), 3);
    assert!(lab.counter("node-b", "decapsulated") >= 3);
}

#[test]
fn a_second_setup_adopts_the_pinned_programs_and_remove_takes_everything_away() {
    let lab = Lab::new();
    lab.must("pod-a", &["ping", "-c", "2", "-i", "0.2", "-W", "2", POD_B]);
    let first = lab.show("node-a");
    let again = lab.setup("node-a", NODE_A, &format!("10.244.2.0/24={NODE_B}"));
    assert!(again.contains("opened=adopted ingress=adopted"), "{again}");
    let second = lab.show("node-a");
    for key in ["encap", "decap", "encapsulated", "routes"] {
        assert_eq!(first[key], second[key], "{key}: {first:?} {second:?}");
    }
    let tc = lab.must(
        "node-a",
        &["tc", "filter", "show", "dev", "eth0", "ingress"],
    );
    assert!(
        tc.contains("podroute_decap") && tc.contains("direct-action"),
        "{tc}"
    );
    let removed = lab.must(
        "node-a",
        &[
            env!("CARGO_BIN_EXE_ipip-tunnel"),
            "bpf-setup",
            "--underlay",
            "eth0",
            "--remove",
            "--pin-root",
            &lab.pin_root(),
        ],
    );
    assert_eq!(removed.trim(), "bpf removed routes=1");
    assert_eq!(
        lab.must("node-a", &["ip", "route", "show", "proto", "98"])
            .trim(),
        ""
    );
    let tc = lab.must(
        "node-a",
        &["tc", "filter", "show", "dev", "eth0", "ingress"],
    );
    assert!(!tc.contains("podroute_decap"), "{tc}");
    assert_eq!(lab.show("node-a").len(), 0, "pins left behind");
    // Node-b's are its own, in its own namespace's directory.
    assert_eq!(lab.show("node-b")["routes"], "1");
}
