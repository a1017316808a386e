//! `datastore: etcd` with a dual-stack pool set, end to end (the cluster
//! and etcd of `etcd_common`, with IPv6 on the underlay: A fd00:1::10 and
//! B fd00:1::11 on one link, C fd00:2::10 behind the router): each agent
//! claims one IPv4 and one IPv6 block (the IPv6 pool's Calico default,
//! /122), writes both and its IPv6 address to its record, and every other
//! kernel routes its IPv6 block to that address; with IPv4 pools only,
//! the records hold no IPv6 address (agents from before IPv6 blocks would
//! refuse the key). Needs root and etcd-server.

mod etcd_common;

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_common::*;
use ipnetwork::IpNetwork;
use route_agent::demo::cluster::{Cluster, exec};

const POOL_V6: &str = "fd00:244::/48";

/// Each node's IPv6 address on its eth0.
fn address_v6(name: &str) -> &'static str {
    match name {
        "node-a" => "fd00:1::10",
        "node-b" => "fd00:1::11",
        _ => "fd00:2::10",
    }
}

fn dual_config(name: &str, subnet: u8, host: u8, endpoints: &[String]) -> String {
    agent_config(name, subnet, host, endpoints).replace(
        "pools:\n",
        &format!("pools:\n  - cidr: {POOL_V6}\n    ipip-mode: never\n"),
    )
}

/// IPv6 on the underlay: the router on both subnets, forwarding; each
/// node's address and a default route through the router.
fn add_ipv6(c: &Cluster) {
    let router = c.router();
    exec(router, "sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]).expect("sysctl");
    for (bridge, address) in [("br1", "fd00:1::1/64"), ("br2", "fd00:2::1/64")] {
        exec(
            router,
            "ip",
            &["addr", "add", address, "dev", bridge, "nodad"],
        )
        .expect("ip");
    }
    for (name, subnet, _) in NODES {
        let ns = &c.node(name).unwrap().ns;
        let address = format!("{}/64", address_v6(name));
        let gateway = format!("fd00:{subnet}::1");
        exec(ns, "ip", &["addr", "add", &address, "dev", "eth0", "nodad"]).expect("ip");
        exec(
            ns,
            "ip",
            &["-6", "route", "add", "default", "via", &gateway],
        )
        .expect("ip");
    }
}

/// `ip -6 route show proto 98` in `ns`.
fn routes6(ns: &str) -> Vec<String> {
    exec(
        ns,
        "ip",
        &["-6", "route", "show", "proto", &PROTO.to_string()],
    )
    .map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

#[test]
fn a_dual_stack_pool_set_gives_each_node_a_block_of_each_family_routed_in_every_kernel() {
    podroute_tests::require_root("the etcd cluster test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let s = Setup::build("6", dual_config, add_ipv6);

    // In etcd: one IPv4 /26 and one IPv6 /122 per node, all distinct.
    let claims = claims(&s.router, &s.endpoints);
    let mut by_node: BTreeMap<String, Vec<IpNetwork>> = BTreeMap::new();
    for (block, name) in &claims {
        by_node.entry(name.clone()).or_default().push(*block);
    }
    assert_eq!(by_node.len(), 3, "{claims:?}");
    for (name, blocks) in &by_node {
        let v4: Vec<_> = blocks.iter().filter(|b| b.is_ipv4()).collect();
        let v6: Vec<_> = blocks.iter().filter(|b| b.is_ipv6()).collect();
        assert!(
            v4.len() == 1 && v4[0].prefix() == 26,
            "{name}: IPv4 blocks {v4:?}"
        );
        assert!(
            v6.len() == 1 && v6[0].prefix() == 122,
            "{name}: IPv6 blocks {v6:?}"
        );
        assert!(POOL_V6.parse::<IpNetwork>().unwrap().contains(v6[0].ip()));
        // Its record lists both, and the IPv6 address they are reached at.
        let record = s.record(name);
        let mut listed = record.blocks.clone();
        listed.sort();
        let mut held = blocks.clone();
        held.sort();
        assert_eq!(listed, held, "{name}'s record");
        assert_eq!(
            record.address_v6.map(|a| a.to_string()).as_deref(),
            Some(address_v6(name))
        );
    }
    assert_eq!(s.blocks_v6.len(), 3);

    // In every kernel: its own IPv6 block as a blackhole, the others'
    // through their IPv6 addresses: directly on a shared IPv6 subnet (A
    // and B), else through the underlay's route to that address (the
    // router, between C and the others).
    let subnet_of = |n: &str| NODES.iter().find(|(m, _, _)| *m == n).map(|(_, s, _)| *s);
    let expected = |me: &str| -> Vec<String> {
        let mut want: Vec<String> = s
            .blocks_v6
            .iter()
            .map(|(n, b)| {
                if n == me {
                    format!("blackhole {b} ")
                } else if subnet_of(n) == subnet_of(me) {
                    format!("{b} via {} dev eth0 ", address_v6(n))
                } else {
                    format!("{b} via fd00:{}::1 dev eth0 ", subnet_of(me).unwrap_or(0))
                }
            })
            .collect();
        want.sort();
        want
    };
    let matches = |me: &str| -> bool {
        let have = routes6(&s.c.node(me).unwrap().ns);
        have.len() == 3
            && expected(me)
                .iter()
                .all(|w| have.iter().any(|h| h.starts_with(w.as_str())))
    };
    let converged = wait_until(Duration::from_secs(30), || {
        NODES.iter().all(|(n, _, _)| matches(n))
    });
    let report: String = NODES
        .iter()
        .map(|(n, _, _)| {
            format!(
                "\n{n}: want {:?}\nhas {:?}",
                expected(n),
                routes6(&s.c.node(n).unwrap().ns)
            )
        })
        .collect();
    assert!(
        converged,
        "IPv6 blocks not routed everywhere:{report}\nnode-a's log:\n{}",
        s.c.log("node-a")
    );
}

#[test]
fn ipv4_only_pools_on_a_dual_stack_underlay_start_and_record_no_ipv6_address() {
    podroute_tests::require_root("the etcd cluster test");
    let _one = podroute_tests::one_cluster_at_a_time();
    // Setup waits for every agent's claim and for every kernel's routes:
    // an agent waiting for its own record to come back as it wrote it
    // never gets there.
    let s = Setup::build("4", agent_config, add_ipv6);
    for (name, _, _) in NODES {
        let record = s.record(name);
        assert_eq!(record.address_v6, None, "{name}'s record: {record:?}");
        assert!(record.blocks.iter().all(IpNetwork::is_ipv4), "{record:?}");
    }
    assert!(s.blocks_v6.is_empty());
}
