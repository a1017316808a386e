//! Failures that used to look healthy, and one that killed the agent,
//! made to happen for real (issue 16 item 5):
//!
//! - the BGP speaker's task ends under a running agent: the agent exits
//!   with an error, not 0 (in process, inside a namespace this test makes:
//!   the test binary runs itself there);
//! - a node whose underlay is `lo` (MTU 65,536): the userspace tunnel gets
//!   a command line it accepts, and a SIGHUP during the start or 4 s in
//!   reloads instead of killing the agent;
//! - a SIGHUP while the start waits for the Kubernetes datastore (the
//!   API server unreachable) is kept, not the default action that killed
//!   the agent;
//! - a userspace tunnel that cannot start (`/dev/net/tun` hidden in the
//!   agent's mount namespace) is retried with a backoff, and `/readyz`,
//!   `/metrics` and the status say so;
//! - a userspace tunnel killed while it runs is set up again and counted;
//! - a userspace tunnel that refuses the agent's command line (the agent's
//!   binary replaced, in its mount namespace only, by one that exits 2)
//!   makes the agent exit non-zero with the cause.
//!
//! Needs root.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, require_root};

/// A node on `lo` (address 127.0.0.1/8, MTU 65,536), one mesh peer that
/// does not exist, IPIP always through the userspace tunnel. Its device is
/// not `tunl0`: a kernel with the ipip module puts a `tunl0` of its own in
/// every namespace.
const LOOPBACK_NODE: &str = "\
node: {name: node-lo, address: 127.0.0.1/8}
pools: [{cidr: 10.244.0.0/16, ipip-mode: always}]
blocks: [10.244.1.0/26]
mesh: {peers: [10.99.0.9]}
tunnel: {backend: userspace, device: rtun0}
graceful-restart: {enabled: false}
";

const WAIT: Duration = Duration::from_secs(20);

/// The tunnel section of the agent's status: backend, note and failures.
fn tunnel(node: &Node) -> Option<(String, Option<String>, u64)> {
    let doc = node.status()?;
    let t = &doc["fib"]["tunnel"];
    let t = if t.is_null() { &doc["tunnel"] } else { t };
    Some((
        t["backend"].as_str()?.to_owned(),
        t["note"].as_str().map(str::to_owned),
        t["failures"].as_u64().unwrap_or(0),
    ))
}

fn wait_tunnel(node: &Node, want: impl Fn(&(String, Option<String>, u64)) -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if tunnel(node).is_some_and(|t| want(&t)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The process IDs in `ns` whose command line has `tunnel` as its first
/// argument (`route-agent tunnel ...`).
fn tunnel_pids(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"tunnel"))
        })
        .map(str::to_owned)
        .collect()
}

fn hup(node: &Node) {
    let pid = node
        .agent
        .as_ref()
        .expect("the agent runs")
        .id()
        .to_string();
    let sent = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(sent.success());
}

#[test]
fn on_a_loopback_underlay_the_userspace_tunnel_runs_and_sighups_during_and_after_the_start_reload()
{
    require_root();
    let mut node = Node::new("flo");
    node.start(LOOPBACK_NODE);
    // A SIGHUP as early as the agent has logged anything of its start
    // (the node read): kept, and applied once the agent runs.
    assert!(node.wait_log("node address", WAIT), "{}", node.log());
    hup(&node);
    // The tunnel was given `--underlay-mtu 65536`, refused it and exited
    // at start, while the agent ran on and reported nothing.
    assert!(
        wait_tunnel(&node, |(backend, ..)| backend == "userspace"),
        "the userspace tunnel is not running: {:?}\nlog:\n{}",
        tunnel(&node),
        node.log()
    );
    assert!(
        node.wait_log("SIGHUP: config reloaded", WAIT),
        "the early SIGHUP was not a reload; log:\n{}",
        node.log()
    );
    // The reproduction: a SIGHUP 4 s after the start.
    std::thread::sleep(Duration::from_secs(4));
    hup(&node);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        node.is_running(),
        "SIGHUP killed the agent; log:\n{}",
        node.log()
    );
    assert_eq!(
        node.log().matches("SIGHUP: config reloaded").count(),
        2,
        "{}",
        node.log()
    );
    let link = common::ip(&["-n", &node.ns, "link", "show", "rtun0"]);
    assert!(link.contains("rtun0"), "{link}");
}

#[test]
fn a_userspace_tunnel_that_cannot_start_is_retried_with_a_backoff_and_readiness_and_metrics_say_so()
{
    require_root();
    let mut node = Node::new("fnt");
    // /dev/net/tun is /dev/null in the agent's mount namespace (and so its
    // tunnel's): TUNSETIFF fails and `route-agent tunnel` exits 1.
    node.start_after(
        LOOPBACK_NODE,
        "human",
        &[
            "unshare",
            "-m",
            "sh",
            "-c",
            "mount --bind /dev/null /dev/net/tun && exec \"$@\"",
            "sh",
        ],
    );
    // Set-ups at 0 s, 1 s and 3 s: at least three failures by 5 s.
    assert!(
        wait_tunnel(&node, |(backend, note, failures)| backend == "none"
            && note.as_deref().is_some_and(|n| n.contains("exited"))
            && *failures >= 3),
        "no backoff retries: {:?}\nlog:\n{}",
        tunnel(&node),
        node.log()
    );
    let log = node.log();
    for delay in ["retry_in_s=1", "retry_in_s=2"] {
        assert!(log.contains(delay), "no retry after {delay}; log:\n{log}");
    }
    let (code, body) = node.get("/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.lines()
            .any(|l| l.starts_with("tunnel: rtun0 not running (")),
        "{body}"
    );
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains("route_agent_tunnel_up{device=\"rtun0\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("route_agent_tunnel_failures_total{device=\"rtun0\"} ")),
        "{metrics}"
    );
    assert!(node.is_running(), "{}", node.log());
}

#[test]
fn a_userspace_tunnel_killed_while_it_runs_is_set_up_again_and_counted() {
    require_root();
    let mut node = Node::new("fkt");
    node.start(LOOPBACK_NODE);
    assert!(
        wait_tunnel(&node, |(backend, ..)| backend == "userspace"),
        "{:?}\nlog:\n{}",
        tunnel(&node),
        node.log()
    );
    let pids = tunnel_pids(&node.ns);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let killed = Command::new("kill")
        .args(["-KILL", &pids[0]])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(
        node.wait_log(&format!("(pid {}) exited", pids[0]), WAIT),
        "the exit was not noticed; log:\n{}",
        node.log()
    );
    assert!(
        wait_tunnel(&node, |(backend, note, failures)| backend == "userspace"
            && note.is_none()
            && *failures == 1),
        "not set up again: {:?}\nlog:\n{}",
        tunnel(&node),
        node.log()
    );
    let now = tunnel_pids(&node.ns);
    assert!(now.len() == 1 && now != pids, "{pids:?} then {now:?}");
    let (_, metrics) = node.get("/metrics");
    assert!(
        metrics.contains("route_agent_tunnel_failures_total{device=\"rtun0\"} 1"),
        "{metrics}"
    );
}

#[test]
fn a_tunnel_that_refuses_the_agents_command_line_makes_the_agent_exit_non_zero_with_the_cause() {
    require_root();
    let mut node = Node::new("fcl");
    // No IPIP pool yet: no tunnel.
    node.start(&LOOPBACK_NODE.replace("ipip-mode: always", "ipip-mode: never"));
    assert!(
        node.wait_log("kernel routes reconciled", WAIT),
        "{}",
        node.log()
    );
    // In the agent's mount namespace only (`ip netns exec` made it one),
    // its own binary, which it starts as `route-agent tunnel`, becomes a
    // program that refuses every command line as clap does.
    let pid = node.agent.as_ref().unwrap().id();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let fake = node.dir.join("refuses-its-arguments");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"error: invalid value\" >&2\nexit 2\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let mounted = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "mount", "--bind"])
        .arg(&fake)
        .arg(&exe)
        .status()
        .unwrap();
    assert!(mounted.success());
    // A reload turns IPIP on: the tunnel is started and refuses.
    node.reload(LOOPBACK_NODE);
    let status = node.wait_exit(WAIT);
    let log = node.log();
    assert!(
        status.is_some_and(|s| s.code() == Some(1)),
        "the agent did not exit 1 ({status:?}); log:\n{log}"
    );
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("route-agent: the userspace tunnel `route-agent tunnel --device rtun0")
            && last.contains("exited (exit status: 2)"),
        "the cause is not the last line: {last}\nlog:\n{log}"
    );
}

#[test]
fn a_sighup_while_the_start_waits_for_the_datastore_does_not_kill_the_agent() {
    require_root();
    let mut node = Node::new("fhw");
    // An API server that refuses every connection: the start waits for
    // this node's Node object, for as long as it takes.
    let kubeconfig = node.dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: http://127.0.0.1:9\n\
         users:\n- name: agent\n  user: {}\ncontexts:\n- name: none\n  context:\n    cluster: none\n    user: agent\n\
         current-context: none\n",
    )
    .unwrap();
    let kubeconfig = format!("KUBECONFIG={}", kubeconfig.display());
    node.start_after(
        "datastore: kubernetes\nnode: {name: node-w}\npools: [{cidr: 10.244.0.0/16}]\n",
        "human",
        &["env", &kubeconfig],
    );
    assert!(node.wait_log("config loaded", WAIT), "{}", node.log());
    std::thread::sleep(Duration::from_secs(2));
    assert!(node.is_running(), "{}", node.log());
    // It used to be the default action: the agent was killed by SIGHUP.
    hup(&node);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        node.is_running(),
        "SIGHUP during the start killed the agent ({:?}); log:\n{}",
        node.wait_exit(Duration::ZERO),
        node.log()
    );
    // And SIGTERM stops the wait at once, cleanly.
    let status = node.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}; log:\n{}",
        node.log()
    );
    assert!(
        node.log()
            .contains("stopped while waiting for the datastore"),
        "{}",
        node.log()
    );
}

/// Set in the copy of this test binary that runs inside the namespace.
const INSIDE: &str = "ROUTE_AGENT_TEST_INSIDE_NETNS";

#[test]
fn a_speaker_that_stops_under_the_agent_ends_it_with_an_error_not_a_clean_exit() {
    let name = "a_speaker_that_stops_under_the_agent_ends_it_with_an_error_not_a_clean_exit";
    if std::env::var_os(INSIDE).is_none() {
        require_root();
        let ns = podroute_tests::Netns::new("fsp");
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", ns.name()])
            .arg(&exe)
            .args(["--exact", name, "--nocapture", "--test-threads=1"])
            .env(INSIDE, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "inside the namespace:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    // Inside the namespace: an agent on lo, no peers.
    use route_agent::agent::node::NodeView;
    use route_agent::agent::{Agent, AgentError, Options, Signals};
    use route_agent::config::Config;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = Config::parse(
            std::path::Path::new("inside.yaml"),
            "node: {address: 127.0.0.1/8}\npools: [{cidr: 10.244.0.0/16, ipip-mode: never}]\n\
             blocks: [10.244.1.0/26]\ngraceful-restart: {enabled: false}\n",
        )
        .unwrap();
        let node = NodeView::read(&config.node).unwrap();
        let signals = Signals::install().unwrap();
        let agent = Agent::start(config, node, Options::default(), signals)
            .await
            .unwrap();
        let state = agent.state();
        let run = tokio::spawn(agent.run());
        let deadline = Instant::now() + WAIT;
        while state.snapshot().fib.reconciles == 0 {
            assert!(Instant::now() < deadline, "the agent never reconciled");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The speaker's task ends; the agent did not ask for it.
        state.speaker.shutdown("the speaker task ends").await;
        let ended = tokio::time::timeout(WAIT, run)
            .await
            .expect("the agent ran on without its speaker")
            .unwrap();
        assert!(
            matches!(ended, Err(AgentError::SpeakerStopped)),
            "the agent ended with {ended:?}"
        );
    });
}
