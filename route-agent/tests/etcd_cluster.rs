//! `datastore: etcd` end to end: agents in the namespace cluster
//! (`route_agent::demo::cluster`: A and B on 10.0.1.0/24, C behind the
//! router on 10.0.2.0/24) with a three-member etcd (`podroute_tests::etcd`)
//! on the router's subnet 10.0.9.0/24 (.21, .22, .23). The agents have no blocks and no
//! mesh peers in their config: each claims a block in etcd, writes its
//! record and learns the others from theirs. Asserted on every node's
//! kernel routes, with `ip monitor` traces where nothing may change, and
//! pod pings. Needs root and etcd-server.

mod etcd_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use etcd_common::*;
use podroute_tests::etcd::EtcdCluster;
use route_agent::datastore::etcd::record::NodeRecord;
use route_agent::demo::cluster::{Cluster, routes};

#[test]
fn agents_claim_blocks_and_follow_records_through_member_and_quorum_loss() {
    podroute_tests::require_root("the etcd cluster test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut s = Setup::new("q");

    // Three distinct blocks, in the kernels as in etcd.
    let distinct: std::collections::BTreeSet<_> = s.blocks.values().collect();
    assert_eq!(distinct.len(), 3, "{:?}", s.blocks);
    let (matrix, ok) = s.c.ping_matrix(3);
    assert!(ok, "pods cannot reach each other:\n{matrix}");

    // One member killed: records still change, and the change reaches
    // every kernel.
    s.etcd.kill(0);
    let c_block = s.blocks["node-c"];
    let c_record = s.record("node-c");
    let t = Instant::now();
    s.delete("node-c");
    assert!(
        wait_until(Duration::from_secs(10), || !s.has_route("node-a", c_block)
            && !s.has_route("node-b", c_block)),
        "node-c's record was deleted but its route stays:\nA: {:?}\nA's log:\n{}",
        routes(&s.c.node("node-a").unwrap().ns, PROTO),
        s.c.log("node-a")
    );
    eprintln!(
        "one member down, node-c's record deleted: its route gone from A and B after {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    s.put(c_record.clone());
    s.converge(Duration::from_secs(10));
    eprintln!(
        "one member down, node-c's record back: every node converged after {:?}",
        t.elapsed()
    );

    // Records written by something else that cannot be used: each is
    // skipped with a log line and the metric, node-c keeps its last valid
    // version, and no route changes anywhere.
    let bad_cases: [(&str, String); 4] = [
        ("bad-record", "{\"name\": \"node-c\", ".to_owned()),
        (
            "address-outside-subnet",
            String::from_utf8(
                NodeRecord {
                    address: "10.0.2.0/24".parse().unwrap(),
                    ..c_record.clone()
                }
                .to_json(),
            )
            .unwrap(),
        ),
        (
            "block-not-claimed",
            String::from_utf8(
                NodeRecord {
                    blocks: vec![s.blocks["node-a"].into()],
                    ..c_record.clone()
                }
                .to_json(),
            )
            .unwrap(),
        ),
        (
            "other-as",
            String::from_utf8(
                NodeRecord {
                    asn: 1,
                    ..c_record.clone()
                }
                .to_json(),
            )
            .unwrap(),
        ),
    ];
    for (reason, value) in bad_cases {
        let monitors = s.monitors();
        let bytes = value.into_bytes();
        etcd_do(&s.router, &s.endpoints, move |mut e| {
            let bytes = bytes.clone();
            async move { e.put_raw_record("node-c", bytes).await }
        });
        let metric = format!("route_agent_datastore_nodes_skipped{{reason=\"{reason}\"}} 1");
        assert!(
            wait_until(Duration::from_secs(10), || ["node-a", "node-b", "node-c"]
                .iter()
                .all(|n| s.metrics(n).contains(&metric))),
            "{reason}: no `{metric}` on every node; node-a's metrics:\n{}",
            s.metrics("node-a")
        );
        assert!(
            s.c.log("node-a")
                .contains("etcd record of node node-c skipped (it keeps its last valid settings)"),
            "{reason}: no log line on node-a:\n{}",
            s.c.log("node-a")
        );
        assert_no_churn(monitors, reason);
        s.put(c_record.clone());
        let cleared = format!("route_agent_datastore_nodes_skipped{{reason=\"{reason}\"}} 0");
        assert!(
            wait_until(Duration::from_secs(10), || s
                .metrics("node-a")
                .contains(&cleared)),
            "{reason}: the skip was not cleared by a good record"
        );
    }
    s.converge(Duration::from_secs(1));

    // Quorum lost for 30 s: every route stays, pods keep talking; when it
    // returns the agents resync without touching a route.
    let monitors = s.monitors();
    s.etcd.kill(1);
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let (matrix, ok) = s.c.ping_matrix(1);
        assert!(ok, "a pod ping failed while etcd had no quorum:\n{matrix}");
        std::thread::sleep(Duration::from_secs(1));
    }
    s.etcd.restart_no_wait(0);
    s.etcd.restart(1);
    s.etcd.wait_healthy(0);
    // Time for the agents' retries (at most 5 s apart) to list again.
    std::thread::sleep(Duration::from_secs(8));
    assert_no_churn(monitors, "quorum lost and back");
    s.converge(Duration::from_secs(1));

    // An agent restarted keeps its block (its claim is found again).
    let before = claims(&s.router, &s.endpoints);
    s.c.kill_agent("node-b").expect("kill node-b's agent");
    let config = agent_config("node-b", 1, 11, &s.endpoints);
    s.c.start_agent("node-b", &agent(), &config).expect("agent");
    s.converge(Duration::from_secs(30));
    assert_eq!(
        claims(&s.router, &s.endpoints),
        before,
        "a restart changed the claims"
    );

    // node-c moves to another address and its agent starts again there:
    // it rewrites its record, and the others route its block to the new
    // address.
    s.c.kill_agent("node-c").expect("kill node-c's agent");
    let c_ns = s.c.node("node-c").unwrap().ns.clone();
    for args in [
        &["addr", "del", "10.0.2.10/24", "dev", "eth0"][..],
        &["addr", "add", "10.0.2.12/24", "dev", "eth0"][..],
        &["route", "replace", "default", "via", "10.0.2.1"][..],
    ] {
        route_agent::demo::cluster::exec(&c_ns, "ip", args).expect("ip");
    }
    let config = agent_config("node-c", 2, 12, &s.endpoints);
    let t = Instant::now();
    s.c.start_agent("node-c", &agent(), &config).expect("agent");
    // Through tunl0, or the bpf backend's program on eth0 (auto's choice
    // on a kernel without ipip).
    let via_new = match s.c.tunnel_encap() {
        route_agent::planner::TunnelEncap::Device => format!("{c_block} via 10.0.2.12 dev tunl0"),
        route_agent::planner::TunnelEncap::Bpf => format!("{c_block} via 10.0.2.12 dev eth0"),
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            ["node-a", "node-b"].iter().all(|n| {
                routes(&s.c.node(n).unwrap().ns, PROTO)
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r.starts_with(&via_new))
            })
        }),
        "node-c's new address is not in the routes: A has {:?}\nnode-c's log:\n{}",
        routes(&s.c.node("node-a").unwrap().ns, PROTO),
        s.c.log("node-c")
    );
    eprintln!(
        "node-c moved to 10.0.2.12: A and B route its block there {:?} after its agent started",
        t.elapsed()
    );
    assert_eq!(s.record("node-c").address.to_string(), "10.0.2.12/24");
    assert_eq!(
        claims(&s.router, &s.endpoints),
        before,
        "a move changed the claims"
    );

    // After the resync the watch works again: `route-agent node remove`
    // takes node-c's route off every other node.
    let config = s.c.dir().join("remove.yaml");
    std::fs::write(&config, agent_config("node-x", 9, 99, &s.endpoints)).unwrap();
    let t = Instant::now();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &s.router])
        .arg(agent())
        .args(["node", "remove", "node-c", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(10), || !s.has_route("node-a", c_block)
            && !s.has_route("node-b", c_block)),
        "after quorum came back, a removed node was not followed"
    );
    eprintln!(
        "route-agent node remove node-c: its route gone from A and B {:?} after the command started",
        t.elapsed()
    );
}

#[test]
fn twenty_agents_started_at_once_get_twenty_blocks_in_etcd_and_every_kernel() {
    podroute_tests::require_root("the etcd cluster test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut c = Cluster::new(&format!("rae20{}", std::process::id())).expect("cluster");
    let names: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
    for (i, name) in names.iter().enumerate() {
        c.add_node(name, 1, 10 + u8::try_from(i).unwrap())
            .expect("node");
    }
    let router = c.router().to_owned();
    let etcd = EtcdCluster::start_on("e220", |ns, i| {
        let host = u8::try_from(i + 21).unwrap();
        c.attach(ns.name(), 9, host)
            .expect("attach etcd member")
            .ip()
    });
    let endpoints = etcd.endpoints();
    // One subnet, no IPIP: direct routes only, no tunnels to start.
    for (i, name) in names.iter().enumerate() {
        let config = agent_config(name, 1, 10 + u8::try_from(i).unwrap(), &endpoints)
            .replace("ipip-mode: cross-subnet", "ipip-mode: never");
        c.start_agent(name, &agent(), &config).expect("agent");
    }
    // In etcd: twenty claims, one per node, all distinct (a map by block).
    let mut by_node: BTreeMap<String, ipnetwork::IpNetwork> = BTreeMap::new();
    let all_claimed = wait_until(Duration::from_secs(60), || {
        by_node = claims(&router, &endpoints)
            .into_iter()
            .map(|(b, n)| (n, b))
            .collect();
        by_node.len() == 20
    });
    let claimed = claims(&router, &endpoints);
    assert!(
        all_claimed && claimed.len() == 20,
        "claims: {claimed:?}\nfirst log:\n{}",
        c.log(&names[0])
    );
    // In every kernel: its own block as a blackhole, the nineteen others
    // via their nodes.
    let want = |me: &str| -> Vec<String> {
        let mut v: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if n == me {
                    format!("blackhole {}", by_node[n])
                } else {
                    format!("{} via 10.0.1.{} dev eth0 onlink", by_node[n], 10 + i)
                }
            })
            .collect();
        v.sort();
        v
    };
    let converged = wait_until(Duration::from_secs(90), || {
        names
            .iter()
            .all(|n| routes(&c.node(n).unwrap().ns, PROTO).unwrap_or_default() == want(n))
    });
    let wrong: Vec<String> = names
        .iter()
        .filter(|n| routes(&c.node(n).unwrap().ns, PROTO).unwrap_or_default() != want(n))
        .map(|n| format!("{n}: {:?}", routes(&c.node(n).unwrap().ns, PROTO)))
        .collect();
    assert!(
        converged,
        "kernels without every block:\n{}",
        wrong.join("\n")
    );
    drop(etcd);
}
