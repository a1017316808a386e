//! The `bpf` tunnel backend under the agent (`tunnel.backend: bpf`), on
//! the demo's three-node cluster in network namespaces: A and B share
//! 10.0.1.0/24, C is behind a router on 10.0.2.0/24, so A↔C and B↔C go
//! through the programs. Needs root.
//!
//! The SIGKILL-and-restart case (no ping lost, no route changed: the
//! programs are adopted, not reloaded) is `tests/cluster.rs`'s restart
//! test, which runs this backend on a kernel without ipip (`auto`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use route_agent::demo::build_with;
use route_agent::demo::cluster::{Cluster, routes};
use route_agent::planner::TunnelEncap;

const AGENT: &str = env!("CARGO_BIN_EXE_route-agent");
const PROTO: u8 = 98;

/// The demo's cluster with `tunnel.backend: bpf` and `extra` appended to
/// every config, converged.
fn cluster(tag: &str, extra: &str) -> Cluster {
    let mut c = Cluster::new(&format!("rab{tag}{}", std::process::id())).expect("cluster");
    c.set_tunnel_encap(TunnelEncap::Bpf);
    build_with(&mut c, std::path::Path::new(AGENT), |_, config| {
        config.replace("backend: auto", "backend: bpf") + extra
    })
    .expect("cluster");
    if let Some(report) = c.convergence_report(PROTO, 1480, Duration::from_secs(30)) {
        panic!("cluster did not converge:{report}");
    }
    c
}

fn ns(c: &Cluster, name: &str) -> String {
    c.node(name).unwrap().ns.clone()
}

fn status_json(ns: &str) -> serde_json::Value {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, AGENT, "status", "--json"])
        .output()
        .expect("route-agent status");
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The value of the series `name{labels}` in a `/metrics` text.
fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn pods_reach_each_other_through_the_bpf_programs_which_report_in_status_and_metrics() {
    common::require_root();
    let _one = podroute_tests::one_cluster_at_a_time();
    let c = cluster("p", "");
    let (matrix, all) = c.ping_matrix(3);
    assert!(all, "pod-to-pod pings:\n{matrix}");
    let a = ns(&c, "node-a");
    // The status names the backend and the programs; the allow-list
    // holds the other two nodes (read every 10 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut doc = status_json(&a);
    while doc["bpf_tunnel"]["nodes"] != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        doc = status_json(&a);
    }
    assert_eq!(doc["tunnel"]["backend"], "bpf", "{doc}");
    assert_eq!(doc["bpf_tunnel"]["nodes"], 2, "{doc}");
    assert_eq!(doc["bpf_tunnel"]["blocks"], 1, "A tunnels only to C: {doc}");
    assert!(common::tc_ingress(&a).contains("podroute_decap"));
    // The pings went through A's programs both ways: at least A's echo
    // request to C's pod and its reply to C's (a pair's first success
    // ends its tries).
    let deadline = Instant::now() + Duration::from_secs(15);
    let series = |text: &str, direction: &str, result: &str| {
        metric(
            text,
            &format!(
                "route_agent_bpf_tunnel_packets_total{{direction=\"{direction}\",result=\"{result}\"}}"
            ),
        )
    };
    let mut text = common::get_in(&a, "/metrics").1;
    while series(&text, "ingress", "decapsulated").unwrap_or(0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        text = common::get_in(&a, "/metrics").1;
    }
    assert!(
        series(&text, "egress", "encapsulated").unwrap_or(0) >= 2,
        "{text}"
    );
    assert!(
        series(&text, "ingress", "decapsulated").unwrap_or(0) >= 2,
        "{text}"
    );
    assert_eq!(series(&text, "ingress", "not_node"), Some(0), "{text}");
    // The human status says the same.
    let out = Command::new("ip")
        .args(["netns", "exec", &a, AGENT, "status"])
        .output()
        .expect("route-agent status");
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("(bpf)"), "{human}");
    assert!(human.contains("bpf programs: encap"), "{human}");
}

#[test]
fn with_persist_routes_off_a_clean_stop_takes_the_routes_then_the_programs_away() {
    common::require_root();
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut c = cluster("r", "persist-routes: false\n");
    let cn = ns(&c, "node-c");
    assert!(common::tc_ingress(&cn).contains("podroute_decap"));
    let pins = c.dir().join("bpffs").join("podroute");
    let pinned = |pins: &std::path::Path| {
        std::fs::read_dir(pins)
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    };
    assert_eq!(pinned(&pins), 3, "one pin directory per node's namespace");
    c.signal_agent("node-c", 15).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.agent_exit_code("node-c").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(routes(&cn, PROTO).unwrap(), Vec::<String>::new());
    assert!(
        !common::tc_ingress(&cn).contains("podroute_decap"),
        "C's ingress program stayed"
    );
    assert_eq!(pinned(&pins), 2, "C's pins stayed:\n{}", c.log("node-c"));
    // A and B keep theirs, and still reach each other directly.
    assert!(common::tc_ingress(&ns(&c, "node-a")).contains("podroute_decap"));
    assert!(c.pod_ping("node-a", "node-b", 3).unwrap());
}
