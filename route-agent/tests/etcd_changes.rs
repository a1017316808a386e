//! `datastore: etcd` end to end, nodes that change while the cluster runs
//! (the cluster and etcd of `etcd_common`): a node whose underlay address
//! changes under its running agent, and a node added. Asserted in etcd,
//! in every node's kernel routes, and with `ip monitor` traces where
//! nothing else may change. The times printed are information, not
//! targets. Needs root and etcd-server.

mod etcd_common;

use std::time::{Duration, Instant};

use etcd_common::*;
use ipnetwork::Ipv4Network;
use route_agent::demo::cluster::{exec, routes};

/// node-c finds its address on eth0 (so the same config serves after the
/// move, as a service manager restarts it); graceful restart long enough
/// to see that the moved routes are taken over by node-c's sessions, not
/// dropped when the move's bound passes.
fn moving_config(name: &str, subnet: u8, host: u8, endpoints: &[String]) -> String {
    let config = agent_config(name, subnet, host, endpoints)
        .replace("restart-time: 10", &format!("restart-time: {MOVE_HOLD_S}"));
    if name == "node-c" {
        config.replace(
            &format!("  address: 10.0.{subnet}.{host}/24\n"),
            "  autodetect: {interface: eth0}\n",
        )
    } else {
        config
    }
}

/// The graceful-restart time of [`moving_config`]: the routes of a node
/// that moved point at its new address at most this long without its
/// sessions.
const MOVE_HOLD_S: u64 = 15;

fn routes_via(s: &Setup, on: &str, block: Ipv4Network, via: &str) -> bool {
    let want = format!("{block} via {via} ");
    routes(&s.c.node(on).unwrap().ns, PROTO)
        .unwrap_or_default()
        .iter()
        .any(|r| r.starts_with(&want))
}

#[test]
fn an_address_change_is_written_to_etcd_and_moves_the_routes_before_the_restart() {
    podroute_tests::require_root("the etcd cluster test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut s = Setup::with("m", moving_config);
    let c_block = s.blocks["node-c"];
    let claims_before = claims(&s.router, &s.endpoints);
    assert!(routes_via(&s, "node-a", c_block, "10.0.2.10"));

    // node-c's underlay address changes under its running agent.
    let c_ns = s.c.node("node-c").unwrap().ns.clone();
    let moved_at = Instant::now();
    for args in [
        &["addr", "del", "10.0.2.10/24", "dev", "eth0"][..],
        &["addr", "add", "10.0.2.12/24", "dev", "eth0"][..],
        &["route", "replace", "default", "via", "10.0.2.1"][..],
    ] {
        exec(&c_ns, "ip", args).expect("ip");
    }

    // Its agent writes the new address to its record ...
    let written = wait_until(Duration::from_secs(30), || {
        s.record("node-c").address.to_string() == "10.0.2.12/24"
    });
    assert!(
        written,
        "node-c's record still says {}; node-c's log:\n{}",
        s.record("node-c").address,
        s.c.log("node-c")
    );
    eprintln!(
        "node-c's address changed: its record holds 10.0.2.12/24 after {:?}",
        moved_at.elapsed()
    );
    // ... the other nodes route its block there without its sessions ...
    let routed = wait_until(Duration::from_secs(30), || {
        ["node-a", "node-b"]
            .iter()
            .all(|n| routes_via(&s, n, c_block, "10.0.2.12"))
    });
    assert!(
        routed,
        "A and B do not route node-c's block to 10.0.2.12: A has {:?}\nA's log:\n{}",
        routes(&s.c.node("node-a").unwrap().ns, PROTO),
        s.c.log("node-a")
    );
    let moved_routes = moved_at.elapsed();
    eprintln!(
        "node-c's address changed: A and B route its block to 10.0.2.12 after {moved_routes:?}"
    );
    // ... and it stops with exit code 3, to be started on the new address.
    let mut code = None;
    wait_until(Duration::from_secs(20), || {
        code = code.or_else(|| s.c.agent_exit_code("node-c"));
        code.is_some()
    });
    assert_eq!(
        code,
        Some(3),
        "node-c's agent did not stop with 3; its log:\n{}",
        s.c.log("node-c")
    );

    // Started again as a service manager would, with the same config: no
    // route changes on the other nodes, past the move's bound (the routes
    // are node-c's sessions' by then). On node-c only its tunnel routes
    // may come and go: a userspace tunnel, bound to the old address, is
    // replaced, and its routes go with its device (with auto's bpf
    // backend on a kernel without ipip none changes: the programs take
    // the new address as the outer source).
    let c_routes = routes(&c_ns, PROTO).unwrap_or_default();
    let (c_monitor, monitors): (Vec<_>, Vec<_>) =
        s.monitors().into_iter().partition(|(n, _)| n == "node-c");
    let in_sync_before = s.c.log("node-c").matches("routes in sync").count();
    let config = moving_config("node-c", 2, 10, &s.endpoints);
    s.c.start_agent("node-c", &agent(), &config).expect("agent");
    assert!(
        wait_until(Duration::from_secs(30), || s
            .c
            .log("node-c")
            .matches("routes in sync")
            .count()
            > in_sync_before),
        "the restarted node-c did not sync with its peers:\n{}",
        s.c.log("node-c")
    );
    let past_bound = moved_at + Duration::from_secs(MOVE_HOLD_S + 3);
    std::thread::sleep(past_bound.saturating_duration_since(Instant::now()));
    assert_no_churn(monitors, "node-c restarted on its new address");
    for (_, m) in c_monitor {
        let lines = m.stop(PROTO);
        assert!(
            lines.iter().all(|l| l.contains("dev tunl0")),
            "node-c's restart changed routes other than its tunnel routes:\n{}",
            lines.join("\n")
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || routes(&c_ns, PROTO)
            .unwrap_or_default()
            == c_routes),
        "node-c's routes after its restart: {:?}, before: {c_routes:?}",
        routes(&c_ns, PROTO)
    );
    for n in ["node-a", "node-b"] {
        assert!(
            routes_via(&s, n, c_block, "10.0.2.12"),
            "{n} lost node-c's route: {:?}",
            routes(&s.c.node(n).unwrap().ns, PROTO)
        );
    }
    assert_eq!(s.record("node-c").address.to_string(), "10.0.2.12/24");
    assert_eq!(
        claims(&s.router, &s.endpoints),
        claims_before,
        "the move changed the claims"
    );
    // Pods on node-c are reached at its new address, through the tunnel.
    let (matrix, ok) = s.c.ping_matrix(3);
    assert!(
        ok,
        "pods cannot reach each other after the move:\n{matrix}\nnode-c's log:\n{}",
        s.c.log("node-c")
    );
}

#[test]
fn a_node_added_gets_its_route_on_every_node_and_nothing_else_changes() {
    podroute_tests::require_root("the etcd cluster test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut s = Setup::new("d");
    let monitors = s.monitors();

    s.c.add_node("node-d", 1, 12).expect("node");
    let config = agent_config("node-d", 1, 12, &s.endpoints);
    let started = Instant::now();
    s.c.start_agent("node-d", &agent(), &config).expect("agent");
    let mut d_block = None;
    wait_until(Duration::from_secs(30), || {
        d_block = claims(&s.router, &s.endpoints)
            .into_iter()
            .find_map(|(b, n)| (n == "node-d").then_some(b));
        d_block.is_some()
    });
    let d_block =
        d_block.unwrap_or_else(|| panic!("node-d claimed no block:\n{}", s.c.log("node-d")));
    assert!(
        !s.blocks
            .values()
            .any(|b| ipnetwork::IpNetwork::V4(*b) == d_block),
        "node-d got a block already held: {d_block} {:?}",
        s.blocks
    );
    // A and B reach node-d on their subnet, C through the tunnel.
    let want = [
        ("node-a", format!("{d_block} via 10.0.1.12 dev eth0 onlink")),
        ("node-b", format!("{d_block} via 10.0.1.12 dev eth0 onlink")),
        (
            "node-c",
            match s.c.tunnel_encap() {
                route_agent::planner::TunnelEncap::Device => {
                    format!("{d_block} via 10.0.1.12 dev tunl0")
                }
                // auto's bpf backend on a kernel without ipip.
                route_agent::planner::TunnelEncap::Bpf => {
                    format!("{d_block} via 10.0.1.12 dev eth0 onlink encap bpf")
                }
            },
        ),
    ];
    let everywhere = wait_until(Duration::from_secs(30), || {
        want.iter().all(|(n, r)| {
            routes(&s.c.node(n).unwrap().ns, PROTO)
                .unwrap_or_default()
                .iter()
                .any(|have| have.starts_with(r.as_str()))
        })
    });
    assert!(
        everywhere,
        "node-d's block is not routed on every node: A {:?}, C {:?}\nnode-d's log:\n{}",
        routes(&s.c.node("node-a").unwrap().ns, PROTO),
        routes(&s.c.node("node-c").unwrap().ns, PROTO),
        s.c.log("node-d")
    );
    eprintln!(
        "node-d added: A, B and C route its block {:?} after its agent started",
        started.elapsed()
    );
    // node-d routes to every other block.
    let d_routes = routes(&s.c.node("node-d").unwrap().ns, PROTO).unwrap_or_default();
    for (n, b) in &s.blocks {
        assert!(
            d_routes.iter().any(|r| r.starts_with(&b.to_string())),
            "node-d has no route to {n}'s {b}: {d_routes:?}"
        );
    }
    // On the others, only node-d's route was added: nothing removed or
    // replaced.
    std::thread::sleep(Duration::from_secs(2));
    for (n, m) in monitors {
        let lines = m.stop(PROTO);
        let others: Vec<&String> = lines
            .iter()
            .filter(|l| !l.starts_with(&d_block.to_string()))
            .collect();
        assert!(
            others.is_empty() && lines.len() == 1,
            "node-d added: {n}'s routes changed beyond one route to node-d's block:\n{}",
            lines.join("\n")
        );
    }
}
