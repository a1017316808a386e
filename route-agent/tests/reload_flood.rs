//! A reload that removes a peer while that peer floods the agent with
//! 100,000 routes (issue 16 item 4). A loop that waits for the speaker's
//! answer to `remove_peer` while it is also the only reader of the
//! speaker's bounded route stream wedges: the speaker, in the middle of
//! the flood, waits for room in the stream before it takes the next
//! command, the loop waits for the speaker, and neither goes on. The
//! agent's loop never waits for the speaker by design (commands go to
//! `agent::speaker_commands`, a task of its own, and the answers come
//! back as one more input of the loop), and this test holds it to that:
//! the reload applies, the peer and its routes go, `/healthz` answers 200
//! throughout, and a second reload that adds the peer back brings its
//! 100,000 routes back. (A build whose loop waits for each peer command's
//! answer fails it: the reload, sent with 43,639 routes installed, had not
//! applied 60 s later, the table stuck at 59,697 routes.)
//!
//! The flooding peer is a bgp-core speaker in a second namespace (its own
//! thread and runtime, which entered the namespace, so its sockets are
//! made there), originating 100,000 /26s behind 50,000 next hops: one
//! UPDATE of two prefixes per next hop, so 50,000 batches on the agent's
//! route stream, far more than its 1,024 places. Needs root.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bgp_core::speaker::{LocalRoute, PeerConfig, RouteChange, Speaker, SpeakerConfig};
use common::{Node, ip, require_root};
use ipnetwork::{IpNetwork, Ipv4Network};

const ROUTES: u32 = 100_000;
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 81, 0, 1);
const FLOOD_IP: Ipv4Addr = Ipv4Addr::new(10, 81, 255, 254);
/// The first next hop; each next hop carries two prefixes.
const FIRST_NEXT_HOP: Ipv4Addr = Ipv4Addr::new(10, 81, 1, 0);
const WAIT: Duration = Duration::from_secs(60);

/// The agent: a pool holding the flood, one block of its own outside it,
/// and the flooding peer (it connects) unless `with_peer` is off.
fn config(with_peer: bool) -> String {
    let peers = if with_peer {
        format!("peers:\n  - address: {FLOOD_IP}\n    asn: 64512\n    passive: true\n")
    } else {
        "peers: []\n".to_owned()
    };
    format!(
        "node: {{name: node-f, address: {NODE_IP}/16}}\nasn: 64512\n\
         pools: [{{cidr: 10.128.0.0/9, ipip-mode: never}}]\nblocks: [10.255.255.192/26]\n\
         graceful-restart: {{enabled: false}}\n{peers}"
    )
}

/// The `i`-th flooded prefix and its next hop.
fn flooded(i: u32) -> (IpNetwork, IpAddr) {
    let base = u32::from(Ipv4Addr::new(10, 128, 0, 0));
    let prefix = Ipv4Network::new(Ipv4Addr::from(base + 64 * i), 26).unwrap();
    let next_hop = Ipv4Addr::from(u32::from(FIRST_NEXT_HOP) + i / 2);
    (IpNetwork::V4(prefix), IpAddr::V4(next_hop))
}

/// The flooding peer, stopped on drop.
struct Flood {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// One message per session that came up.
    up: std::sync::mpsc::Receiver<Instant>,
}

impl Flood {
    /// Starts it in namespace `ns`: it connects to the node and sends its
    /// table as soon as the session is up (and again after a reset).
    fn start(ns: &str) -> Flood {
        let path = format!("/var/run/netns/{ns}");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (up_tx, up) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            enter_netns(&file).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut config = SpeakerConfig::new(64512, FLOOD_IP);
                config.connect_retry = 1;
                config
                    .peers
                    .push(PeerConfig::new(IpAddr::V4(NODE_IP), 64512));
                let routes = (0..ROUTES)
                    .map(|i| {
                        let (prefix, next_hop) = flooded(i);
                        (prefix, LocalRoute::via(next_hop))
                    })
                    .collect();
                let (speaker, mut stream) =
                    Speaker::start_with_routes(config, routes).await.unwrap();
                tokio::pin!(stopped);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        batch = stream.recv_batch() => match batch {
                            Some(batch) => {
                                if batch.iter().any(|c| matches!(c, RouteChange::PeerUp(_))) {
                                    let _ = up_tx.send(Instant::now());
                                }
                            }
                            None => break,
                        },
                    }
                }
                speaker.shutdown("test over").await;
            });
        });
        Flood {
            stop: Some(stop),
            thread: Some(thread),
            up,
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// setns(2) into the network namespace `file` names, for this thread only.
#[allow(unsafe_code)]
fn enter_netns(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns(2) takes a valid fd (kept open by `file` for the call)
    // and changes only the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How many routes of our protocol the node's kernel holds.
fn route_count(node: &Node) -> usize {
    let out = Command::new("ip")
        .args(["-n", &node.ns, "route", "show", "proto", "98"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Waits until `done`; false at the deadline.
fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Asks `/healthz` every 200 ms on a thread of its own; every answer but
/// 200 after the first 200 is kept (with its time since the start).
struct HealthWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl HealthWatch {
    fn start(ns: String) -> HealthWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let (mut answers, mut bad, mut seen_ok) = (0, Vec::new(), false);
            while !stopping.load(Ordering::Relaxed) {
                let (code, body) = common::get_in(&ns, "/healthz");
                answers += 1;
                if code == 200 {
                    seen_ok = true;
                } else if seen_ok {
                    let at = started.elapsed().as_secs_f64();
                    bad.push(format!("{at:.1} s: {code} {}", body.trim()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            (answers, bad)
        });
        HealthWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it: the number of answers and the bad ones.
    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

#[test]
fn a_reload_removing_a_peer_during_its_100000_route_flood_applies_and_the_agent_stays_responsive() {
    require_root();
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut node = Node::new("fld");
    let flood_ns = podroute_tests::Netns::new("fldr");
    let tag = std::process::id() % 100_000;
    let (here, there) = (format!("rfl{tag}a"), format!("rfl{tag}b"));
    ip(&[
        "link",
        "add",
        &here,
        "netns",
        &node.ns,
        "type",
        "veth",
        "peer",
        "name",
        &there,
        "netns",
        flood_ns.name(),
    ]);
    ip(&[
        "-n",
        &node.ns,
        "addr",
        "add",
        &format!("{NODE_IP}/16"),
        "dev",
        &here,
    ]);
    ip(&[
        "-n",
        flood_ns.name(),
        "addr",
        "add",
        &format!("{FLOOD_IP}/16"),
        "dev",
        &there,
    ]);
    ip(&["-n", &node.ns, "link", "set", &here, "up"]);
    ip(&["-n", flood_ns.name(), "link", "set", &there, "up"]);

    // A wedged loop or speaker fails /healthz after 5 s.
    node.start_after(
        &config(true),
        "human",
        &["env", "ROUTE_AGENT_HEALTH_TIMEOUT=5"],
    );
    assert!(
        node.wait_log("node address", WAIT),
        "the agent did not start; log:\n{}",
        node.log()
    );
    let health = HealthWatch::start(node.ns.clone());
    let flood = Flood::start(flood_ns.name());
    let up = flood
        .up
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("the flood's session never came up; log:\n{}", node.log()));

    // The peer's table is on its way: once the first routes of it are in
    // the kernel (the agent reads its route stream at the pace of its
    // plans, so the stream is full from here to the end of the flood),
    // remove the peer.
    let flowing = wait_until(|| route_count(&node) > 40_000);
    assert!(flowing, "no flood; log:\n{}", node.log());
    node.reload(&config(false));
    let reloaded_after = up.elapsed();
    let installed_at_reload = route_count(&node);
    let applied = wait_until(|| {
        node.log().contains("SIGHUP: config reloaded")
            && node.peer(&FLOOD_IP.to_string()).is_none()
            && route_count(&node) == 1
    });
    assert!(
        applied,
        "the reload ({reloaded_after:?} after the session came up, {installed_at_reload} routes installed then) did not apply: peer {:?}, {} routes; log:\n{}",
        node.peer(&FLOOD_IP.to_string()),
        route_count(&node),
        node.log()
    );
    assert!(node.is_running(), "{}", node.log());
    eprintln!(
        "reload applied {:?} after the session came up ({installed_at_reload} routes installed at the reload)",
        up.elapsed()
    );

    // And the agent goes on: the peer added back, its flood comes back
    // whole.
    node.reload(&config(true));
    let back = wait_until(|| route_count(&node) == ROUTES as usize + 1);
    assert!(
        back,
        "the flood did not come back after the second reload: {} routes; log:\n{}",
        route_count(&node),
        node.log()
    );
    eprintln!("flood back {:?} after the session came up", up.elapsed());
    if let Ok(keep) = std::env::var("RELOAD_FLOOD_KEEP_LOG") {
        let _ = std::fs::write(keep, node.log());
    }
    drop(flood);
    let (answers, bad) = health.finish();
    assert!(answers > 10, "only {answers} /healthz answers");
    assert!(
        bad.is_empty(),
        "/healthz failed during the flood and the reloads:\n{}\nlog:\n{}",
        bad.join("\n"),
        node.log()
    );
}
