//! The two-subnet lab of the data-plane tests, in namespaces named after a
//! tag (removed on drop, whichever way the test ends):
//!
//! ```text
//! pod-a 10.244.1.2 ── 10.244.1.1 node-a 10.90.1.2 ── 10.90.1.1 router 10.91.1.1 ── 10.91.1.2 node-b 10.244.2.1 ── 10.244.2.2 pod-b
//! ```
//!
//! The nodes forward; what carries pod traffic between them (a tunnel, its
//! routes, reverse-path filtering) is each test's. Included by path by the
//! tests that use it.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const NODE_A: &str = "10.90.1.2";
pub const NODE_B: &str = "10.91.1.2";
pub const POD_A: &str = "10.244.1.2";
pub const POD_B: &str = "10.244.2.2";

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

pub fn must(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab's namespaces.
pub struct Topology {
    tag: String,
    namespaces: Vec<String>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

impl Topology {
    /// Builds the lab in namespaces `TAG-router`, `TAG-node-a`, ….
    pub fn new(tag: &str) -> Topology {
        let mut t = Topology {
            tag: tag.to_owned(),
            namespaces: Vec::new(),
        };
        for which in ["router", "node-a", "node-b", "pod-a", "pod-b"] {
            let ns = t.ns(which);
            must(&["ip", "netns", "add", &ns]);
            t.namespaces.push(ns);
            t.must(which, &["ip", "link", "set", "lo", "up"]);
        }
        let (r, na, nb, pa, pb) = (
            t.ns("router"),
            t.ns("node-a"),
            t.ns("node-b"),
            t.ns("pod-a"),
            t.ns("pod-b"),
        );
        // Underlay: two subnets joined by the router; pods behind nodes.
        for (inner, peer, outer) in [
            (&na, "to-a", &r),
            (&nb, "to-b", &r),
            (&pa, "cali-a", &na),
            (&pb, "cali-b", &nb),
        ] {
            must(&[
                "ip", "-n", inner, "link", "add", "eth0", "type", "veth", "peer", "name", peer,
                "netns", outer,
            ]);
        }
        let cmds: &[(&str, &[&str])] = &[
            (
                "router",
                &["ip", "addr", "add", "10.90.1.1/24", "dev", "to-a"],
            ),
            (
                "router",
                &["ip", "addr", "add", "10.91.1.1/24", "dev", "to-b"],
            ),
            ("router", &["ip", "link", "set", "to-a", "up"]),
            ("router", &["ip", "link", "set", "to-b", "up"]),
            ("router", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            (
                "node-a",
                &["ip", "addr", "add", "10.90.1.2/24", "dev", "eth0"],
            ),
            ("node-a", &["ip", "link", "set", "eth0", "up"]),
            (
                "node-a",
                &["ip", "route", "add", "default", "via", "10.90.1.1"],
            ),
            (
                "node-a",
                &["ip", "addr", "add", "10.244.1.1/24", "dev", "cali-a"],
            ),
            ("node-a", &["ip", "link", "set", "cali-a", "up"]),
            ("node-a", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            (
                "node-b",
                &["ip", "addr", "add", "10.91.1.2/24", "dev", "eth0"],
            ),
            ("node-b", &["ip", "link", "set", "eth0", "up"]),
            (
                "node-b",
                &["ip", "route", "add", "default", "via", "10.91.1.1"],
            ),
            (
                "node-b",
                &["ip", "addr", "add", "10.244.2.1/24", "dev", "cali-b"],
            ),
            ("node-b", &["ip", "link", "set", "cali-b", "up"]),
            ("node-b", &["sysctl", "-qw", "net.ipv4.ip_forward=1"]),
            (
                "pod-a",
                &["ip", "addr", "add", "10.244.1.2/24", "dev", "eth0"],
            ),
            ("pod-a", &["ip", "link", "set", "eth0", "up"]),
            (
                "pod-a",
                &["ip", "route", "add", "default", "via", "10.244.1.1"],
            ),
            (
                "pod-b",
                &["ip", "addr", "add", "10.244.2.2/24", "dev", "eth0"],
            ),
            ("pod-b", &["ip", "link", "set", "eth0", "up"]),
            (
                "pod-b",
                &["ip", "route", "add", "default", "via", "10.244.2.1"],
            ),
        ];
        for (which, args) in cmds {
            t.must(which, args);
        }
        t
    }

    /// The name of namespace `which` (`router`, `node-a`, `pod-b`, …).
    pub fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.tag)
    }

    /// Runs `args` inside namespace `which`.
    pub fn exec(&self, which: &str, args: &[&str]) -> Output {
        let ns = self.ns(which);
        let mut full = vec!["ip", "netns", "exec", &ns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// [`Topology::exec`], which must succeed; its standard output.
    pub fn must(&self, which: &str, args: &[&str]) -> String {
        let out = self.exec(which, args);
        assert!(
            out.status.success(),
            "in {which}: {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const RECEIVER: &str = r#"
import hashlib, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); s.settimeout(30)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(30)
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(1 << 16)
    if not d: break
    h.update(d); n += len(d)
print(n, h.hexdigest(), flush=True)
"#;

const SENDER: &str = r#"
import hashlib, random, socket, sys, time
data = random.Random(2003).randbytes(10 * 1024 * 1024 + 12345)
for _ in range(100):
    try:
        c = socket.create_connection((sys.argv[1], 5001), timeout=30); break
    except OSError:
        time.sleep(0.1)
c.sendall(data); c.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#;

/// The bytes [`transfer_10_mb`] sends.
pub const TEN_MB: u64 = 10_498_105;

/// Sends 10 MB (and a bit) from namespace `from` to `to_addr` in `to`
/// over TCP and checks the same bytes arrived; returns the byte count.
pub fn transfer_10_mb(t: &Topology, from: &str, to: &str, to_addr: &str) -> u64 {
    let mut receiver = Command::new("ip")
        .args(["netns", "exec", &t.ns(to), "python3", "-c", RECEIVER])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn receiver");
    let sent = t.exec(from, &["python3", "-c", SENDER, to_addr]);
    let received = {
        let deadline = Instant::now() + Duration::from_secs(60);
        while receiver.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = receiver.kill();
        receiver.wait_with_output().expect("receiver output")
    };
    let sent_line = String::from_utf8_lossy(&sent.stdout).trim().to_string();
    let received_text = String::from_utf8_lossy(&received.stdout);
    let received_line = received_text.lines().last().unwrap_or_default().trim();
    assert!(
        sent.status.success() && sent_line.starts_with(&format!("{TEN_MB} ")),
        "sender in {from} failed: {sent_line} {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(
        received_line,
        sent_line,
        "{to} got different bytes; receiver stderr: {}",
        String::from_utf8_lossy(&received.stderr)
    );
    TEN_MB
}
