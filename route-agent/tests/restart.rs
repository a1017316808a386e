//! An agent restarted on a node whose kernel holds its routes changes none
//! of them: with graceful restart off, its first reconcile waits for every
//! peer's End-of-RIB (it used to delete the learned routes at once and add
//! them back when they came); with graceful restart on, for the End-of-RIB
//! of every family each session negotiated (it used to wait for IPv4's
//! only). Two dual-stack nodes in namespaces; `ip monitor route` records
//! every change of our protocol's routes, IPv4 and IPv6, across the
//! restart. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::{Node, dual_config, ip, pair, require_root, routes6, wait_routes6};
use podroute_tests::RouteMonitor;

const PROTO: u8 = 98;

/// A and B of [`pair`]`(tag, n)` with IPv6 addresses on their link, each
/// running a dual-stack agent (graceful restart as `gr` says) with the
/// other as its mesh peer; returns them once each routes the other's
/// IPv4 and IPv6 blocks.
fn dual_stack_pair(tag: &str, n: u8, gr: bool) -> (Node, Node) {
    let (mut a, mut b, va, vb) = pair(tag, n);
    for (node, dev, host) in [(&a, &va, 1), (&b, &vb, 2)] {
        let address = format!("fd00:96:{n}::{host}/64");
        ip(&["-n", &node.ns, "addr", "add", &address, "dev", dev, "nodad"]);
    }
    let config = |name: &str, host: u8, peer: u8| {
        dual_config(
            name,
            &format!("10.96.{n}.{host}/24"),
            &format!("10.244.{host}.0/26"),
            &format!("fd00:244:0:{host}::/122"),
            &format!("10.96.{n}.{peer}"),
        )
        .replace(
            "enabled: false",
            if gr {
                "enabled: true"
            } else {
                "enabled: false"
            },
        )
    };
    a.start(&config("node-a", 1, 2));
    b.start(&config("node-b", 2, 1));
    let want4 = vec![
        format!("10.244.2.0/26 via 10.96.{n}.2 dev {va} onlink"),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    assert_eq!(a.wait_routes(&want4), want4, "A's log:\n{}", a.log());
    let want6 = vec![
        "blackhole fd00:244:0:1::/122 dev lo metric 1024 pref medium".to_owned(),
        format!("fd00:244:0:2::/122 via fd00:96:{n}::2 dev {va} metric 1024 onlink pref medium"),
    ];
    assert_eq!(wait_routes6(&a.ns, &want6), want6, "A's log:\n{}", a.log());
    let want_b = vec![
        format!("10.244.1.0/26 via 10.96.{n}.1 dev {vb} onlink"),
        "blackhole 10.244.2.0/26".to_owned(),
    ];
    assert_eq!(b.wait_routes(&want_b), want_b, "B's log:\n{}", b.log());
    (a, b)
}

/// Stops A's agent with SIGTERM (routes persist), starts it again on the
/// same config and waits until its first reconcile after the restart
/// (`every peer sent End-of-RIB`, at most 30 s) and a second more.
/// Returns whether that reconcile came; the callers look at the routes
/// first, so that an agent that does not hold its first reconcile shows
/// its churn.
fn restart(a: &mut Node) -> bool {
    let status = a.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "A after SIGTERM: {status:?}; log:\n{}",
        a.log()
    );
    let config = std::fs::read_to_string(a.dir.join("agent.yaml")).unwrap();
    a.start(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    let synced = || a.log().contains("every peer sent End-of-RIB");
    while !synced() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    synced()
}

/// The restarted agent saw every End-of-RIB and knew it restarted.
fn assert_synced(a: &Node, synced: bool) {
    assert!(
        synced,
        "A's restarted agent never saw every End-of-RIB; log:\n{}",
        a.log()
    );
    assert!(
        a.log().contains("routes of an earlier run are installed"),
        "{}",
        a.log()
    );
}

#[test]
fn a_restart_without_graceful_restart_deletes_and_re_adds_none_of_its_routes() {
    require_root();
    let _one = podroute_tests::one_cluster_at_a_time();
    let (mut a, _b) = dual_stack_pair("rs", 20, false);
    let (before4, before6) = (a.routes(), routes6(&a.ns));
    let monitor = RouteMonitor::start(&a.ns, a.dir.join("monitor"));
    let synced = restart(&mut a);
    // Without graceful restart B drops A's routes at A's Cease and takes
    // them again: that is what turning it off means. A's own table, which
    // persisted across its restart, must not change.
    let churn = monitor.stop(PROTO);
    assert!(
        churn.is_empty(),
        "A's routes changed across its restart:\n{}\nA's log:\n{}",
        churn.join("\n"),
        a.log()
    );
    assert_eq!((a.routes(), routes6(&a.ns)), (before4, before6));
    assert_synced(&a, synced);
}

#[test]
fn a_restart_with_graceful_restart_changes_no_ipv4_or_ipv6_route_on_either_node() {
    require_root();
    let _one = podroute_tests::one_cluster_at_a_time();
    let (mut a, b) = dual_stack_pair("rg", 21, true);
    let before = [(a.routes(), routes6(&a.ns)), (b.routes(), routes6(&b.ns))];
    let monitors = [
        RouteMonitor::start(&a.ns, a.dir.join("monitor")),
        RouteMonitor::start(&b.ns, b.dir.join("monitor")),
    ];
    let synced = restart(&mut a);
    for ((name, monitor), node) in ["A", "B"].into_iter().zip(monitors).zip([&a, &b]) {
        let churn = monitor.stop(PROTO);
        assert!(
            churn.is_empty(),
            "{name}'s routes changed across A's restart:\n{}\nits log:\n{}",
            churn.join("\n"),
            node.log()
        );
    }
    let after = [(a.routes(), routes6(&a.ns)), (b.routes(), routes6(&b.ns))];
    assert_eq!(after, before);
    assert_synced(&a, synced);
}
