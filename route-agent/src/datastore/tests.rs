//! Node objects → node sets → configs, one behaviour per test.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use bgp_core::speaker::Password;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::node::{Skip, SkipReason, build, parse};
use super::*;
use crate::config::Config;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

/// A Node as the API server serves it: InternalIP and podCIDRs.
fn node(name: &str, ip: &str, cidrs: &[&str]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(format!("uid-{name}")),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: cidrs.first().map(|c| (*c).to_owned()),
            pod_cidrs: Some(cidrs.iter().map(|c| (*c).to_owned()).collect()),
            ..NodeSpec::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                },
            ]),
            ..NodeStatus::default()
        }),
    }
}

fn annotate(mut n: Node, key: &str, value: &str) -> Node {
    n.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
    n
}

fn labelled(mut n: Node, key: &str, value: &str) -> Node {
    n.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
    n
}

const POOLS: [&str; 1] = ["10.244.0.0/16"];

fn pools() -> Vec<IpNetwork> {
    POOLS.iter().map(|p| net(p)).collect()
}

fn three() -> Vec<Node> {
    vec![
        node("node-a", "10.0.1.10", &["10.244.1.0/26"]),
        node("node-b", "10.0.1.11", &["10.244.2.0/26"]),
        node("node-c", "10.0.2.10", &["10.244.3.0/26"]),
    ]
}

fn skips(nodes: &[Node], previous: &NodeSet) -> (Vec<String>, Vec<(String, SkipReason, bool)>) {
    let b = build(nodes, &pools(), previous);
    (
        b.set.iter().map(|n| n.name.clone()).collect(),
        b.skipped
            .iter()
            .map(|s| (s.node.clone(), s.skip.reason(), s.kept_previous))
            .collect(),
    )
}

#[test]
fn a_node_gives_its_internal_ip_podcidrs_and_the_blocks_first_address_for_the_tunnel() {
    let n = parse(&node(
        "node-a",
        "10.0.1.10",
        &["10.244.1.0/26", "fd00:244:1::/64"],
    ))
    .unwrap();
    assert_eq!(n.address, "10.0.1.10/32".parse().unwrap());
    assert_eq!(n.blocks, [net("10.244.1.0/26"), net("fd00:244:1::/64")]);
    assert_eq!(n.tunnel_address, Some("10.244.1.0".parse().unwrap()));
    assert_eq!(n.reflector, None);
}

#[test]
fn the_first_ipv4_internal_ip_is_taken_on_a_dual_stack_node() {
    let mut n = node("node-a", "fd00::10", &[]);
    if let Some(a) = n.status.as_mut().and_then(|s| s.addresses.as_mut()) {
        a.push(NodeAddress {
            type_: "InternalIP".into(),
            address: "10.0.1.10".into(),
        });
    }
    assert_eq!(parse(&n).unwrap().ip().to_string(), "10.0.1.10");
}

#[test]
fn pod_cidr_is_read_when_pod_cidrs_is_missing() {
    let mut n = node("node-a", "10.0.1.10", &[]);
    n.spec = Some(NodeSpec {
        pod_cidr: Some("10.244.1.0/26".into()),
        ..NodeSpec::default()
    });
    assert_eq!(parse(&n).unwrap().blocks, [net("10.244.1.0/26")]);
}

#[test]
fn calico_annotations_override_the_address_and_tunnel_address() {
    let n = annotate(
        annotate(
            node("node-a", "10.0.1.10", &["10.244.1.0/26"]),
            node::CALICO_IPV4_ADDRESS,
            "10.0.9.10/24",
        ),
        node::CALICO_TUNNEL_ADDRESS,
        "10.244.1.1",
    );
    let n = parse(&n).unwrap();
    assert_eq!(n.address, "10.0.9.10/24".parse().unwrap());
    assert_eq!(n.tunnel_address, Some("10.244.1.1".parse().unwrap()));
}

#[test]
fn a_reflector_is_chosen_by_our_label_or_calicos_annotation() {
    let base = || node("rr", "10.0.1.100", &[]);
    let r = |n: Node| parse(&n).unwrap().reflector.map(|a| a.to_string());
    assert_eq!(
        r(labelled(base(), node::REFLECTOR_LABEL, "true")).as_deref(),
        Some("10.0.1.100")
    );
    assert_eq!(r(labelled(base(), node::REFLECTOR_LABEL, "false")), None);
    let with_id = annotate(
        labelled(base(), node::REFLECTOR_LABEL, "true"),
        node::CLUSTER_ID_ANNOTATION,
        "244.0.0.1",
    );
    assert_eq!(r(with_id).as_deref(), Some("244.0.0.1"));
    // The cluster-ID annotation alone does not make a reflector; Calico's
    // does.
    assert_eq!(
        r(annotate(base(), node::CLUSTER_ID_ANNOTATION, "244.0.0.1")),
        None
    );
    assert_eq!(
        r(annotate(base(), node::CALICO_CLUSTER_ID, "244.0.0.2")).as_deref(),
        Some("244.0.0.2")
    );
}

#[test]
fn bad_input_is_a_typed_skip() {
    let cases: [(Node, SkipReason); 6] = [
        (
            {
                let mut n = node("x", "10.0.1.10", &[]);
                n.status = None;
                n
            },
            SkipReason::NoInternalIp,
        ),
        (
            node("x", "10.0.1.10", &["10.244.1.0/33"]),
            SkipReason::BadPodCidr,
        ),
        (
            node("x", "10.0.1.10", &["10.244.1.7/26"]),
            SkipReason::BadPodCidr,
        ),
        (
            annotate(
                node("x", "10.0.1.10", &[]),
                node::CALICO_IPV4_ADDRESS,
                "10.0.1.10",
            ),
            SkipReason::BadAnnotation,
        ),
        (
            annotate(
                node("x", "10.0.1.10", &[]),
                node::CALICO_TUNNEL_ADDRESS,
                "tunnel",
            ),
            SkipReason::BadAnnotation,
        ),
        (
            labelled(node("x", "10.0.1.10", &[]), node::REFLECTOR_LABEL, "yes"),
            SkipReason::BadAnnotation,
        ),
    ];
    for (n, reason) in cases {
        let got = parse(&n).unwrap_err();
        assert_eq!(got.reason(), reason, "{got}");
        assert!(got.to_string().contains(" — "), "says what to do: {got}");
    }
}

#[test]
fn a_valid_cluster_builds_with_nothing_skipped() {
    let (names, skipped) = skips(&three(), &NodeSet::new());
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    assert!(skipped.is_empty());
}

#[test]
fn a_pod_cidr_outside_every_pool_skips_only_that_node() {
    let mut nodes = three();
    nodes.push(node("node-d", "10.0.2.11", &["192.168.0.0/26"]));
    let (names, skipped) = skips(&nodes, &NodeSet::new());
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    assert_eq!(
        skipped,
        [("node-d".into(), SkipReason::PodCidrOutsidePools, false)]
    );
}

#[test]
fn a_new_node_overlapping_a_known_one_is_skipped_and_the_known_one_stays() {
    let known = build(&three(), &pools(), &NodeSet::new()).set;
    let mut nodes = three();
    // "node-0" sorts first by name: what decides is who was there.
    nodes.push(node("node-0", "10.0.2.11", &["10.244.3.0/25"]));
    let (names, skipped) = skips(&nodes, &known);
    assert_eq!(names, ["node-a", "node-b", "node-c"]);
    assert_eq!(
        skipped,
        [("node-0".into(), SkipReason::PodCidrOverlap, false)]
    );
}

#[test]
fn a_new_node_with_a_known_nodes_address_is_skipped() {
    let known = build(&three(), &pools(), &NodeSet::new()).set;
    let mut nodes = three();
    nodes.push(node("node-0", "10.0.1.11", &["10.244.4.0/26"]));
    let (_, skipped) = skips(&nodes, &known);
    assert_eq!(
        skipped,
        [("node-0".into(), SkipReason::DuplicateAddress, false)]
    );
}

#[test]
fn a_known_node_whose_update_is_bad_keeps_its_last_valid_version() {
    let known = build(&three(), &pools(), &NodeSet::new()).set;
    let mut nodes = three();
    nodes[2] = node("node-c", "10.0.2.10", &["10.244.1.0/26"]); // node-a's block
    let b = build(&nodes, &pools(), &known);
    assert_eq!(b.set, known, "nothing changes");
    assert_eq!(b.skipped.len(), 1);
    assert!(b.skipped[0].kept_previous);
    assert_eq!(b.skipped[0].uid.as_deref(), Some("uid-node-c"));
    assert!(matches!(
        &b.skipped[0].skip,
        Skip::PodCidrOverlap { other, .. } if other == "node-a"
    ));
}

#[test]
fn at_start_the_older_node_keeps_a_contested_block() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let at = |s: &str| Some(Time(s.parse().unwrap()));
    let mut old = node("node-z", "10.0.1.10", &["10.244.1.0/26"]);
    old.metadata.creation_timestamp = at("2026-01-01T00:00:00Z");
    let mut new = node("node-a", "10.0.1.11", &["10.244.1.0/26"]);
    new.metadata.creation_timestamp = at("2026-06-01T00:00:00Z");
    let (names, skipped) = skips(&[new, old], &NodeSet::new());
    assert_eq!(names, ["node-z"]);
    assert_eq!(
        skipped,
        [("node-a".into(), SkipReason::PodCidrOverlap, false)]
    );
}

#[test]
fn block_owners_name_each_block_with_its_nodes_address() {
    let set = build(&three(), &pools(), &NodeSet::new()).set;
    let owners: Vec<(String, String)> = set
        .block_owners()
        .iter()
        .map(|o| (o.block.to_string(), o.next_hop.to_string()))
        .collect();
    assert_eq!(
        owners,
        [
            ("10.244.1.0/26".into(), "10.0.1.10".into()),
            ("10.244.2.0/26".into(), "10.0.1.11".into()),
            ("10.244.3.0/26".into(), "10.0.2.10".into()),
        ]
    );
    assert_eq!(
        set.owner_of(&net("10.244.2.0/27")).map(|n| n.name.as_str()),
        Some("node-b")
    );
    assert_eq!(set.owner_of(&net("10.244.9.0/26")), None);
}

// ---- the config each node runs ----

const FILE: &str = "
datastore: kubernetes
pools: [{cidr: 10.244.0.0/16}]
mesh: {password: s3cret}
peers: [{address: 192.0.2.1, asn: 65001}]
node: {}
";

fn file() -> Config {
    Config::parse(Path::new("k.yaml"), FILE).unwrap()
}

fn desired(nodes: &[Node], me: &str, local: &str) -> Config {
    let set = build(nodes, &pools(), &NodeSet::new()).set;
    let me = set.get(me).unwrap().clone();
    desired_config(&file(), &set, &me, local.parse().unwrap())
}

fn addrs(c: &Config) -> (Vec<String>, Vec<(String, bool)>) {
    (
        c.mesh.peers.iter().map(ToString::to_string).collect(),
        c.peers
            .iter()
            .map(|p| (p.address.to_string(), p.route_reflector_client))
            .collect(),
    )
}

#[test]
fn without_reflectors_every_node_meshes_with_every_other() {
    let c = desired(&three(), "node-a", "10.0.1.10/24");
    assert_eq!(c.node.address, Some("10.0.1.10/24".parse().unwrap()));
    assert_eq!(c.blocks, [net("10.244.1.0/26")]);
    assert_eq!(c.tunnel.address, Some("10.244.1.0".parse().unwrap()));
    let (mesh, peers) = addrs(&c);
    assert_eq!(mesh, ["10.0.1.11", "10.0.2.10"]);
    assert_eq!(
        peers,
        [("192.0.2.1".into(), false)],
        "the file's peers stay"
    );
    // The speaker can reflect if the node is labelled later.
    assert_eq!(
        c.to_speaker_config("10.0.1.10".parse().unwrap()).cluster_id,
        Some("10.0.1.10".parse().unwrap())
    );
}

#[test]
fn every_session_with_another_node_gets_the_node_limits() {
    // Issue 16 item 3: B reflects for A and C (clients: explicit peers of
    // its config); A peers with B (a mesh peer of its config).
    let mut nodes = three();
    nodes[1] = labelled(nodes[1].clone(), node::REFLECTOR_LABEL, "true");
    for (me, local, other) in [
        ("node-b", "10.0.1.11/24", [10, 0, 1, 10]),
        ("node-a", "10.0.1.10/24", [10, 0, 1, 11]),
    ] {
        let c = desired(&nodes, me, local);
        let s = c.to_speaker_config(local.split('/').next().unwrap().parse().unwrap());
        let peer = |a: [u8; 4]| {
            s.peers
                .iter()
                .find(|p| p.address == IpAddr::from(a))
                .unwrap()
        };
        let p = peer(other);
        assert_eq!(p.max_prefixes, Some(c.node_max_prefixes()), "{me}");
        let import = p.import.as_ref().expect("an import filter");
        assert!(import.accepts(&net("10.244.3.0/26")), "{me}");
        assert!(!import.accepts(&net("10.244.3.0/27")), "{me}");
        // The file's eBGP peer is no node: its own settings only.
        assert_eq!(peer([192, 0, 2, 1]).max_prefixes, None, "{me}");
    }
}

#[test]
fn with_a_reflector_ordinary_nodes_peer_only_with_it_and_it_with_everyone_as_clients() {
    let mut nodes = three();
    nodes[1] = labelled(nodes[1].clone(), node::REFLECTOR_LABEL, "true");
    nodes.push(labelled(
        node("rr-2", "10.0.1.100", &[]),
        node::REFLECTOR_LABEL,
        "true",
    ));
    let a = desired(&nodes, "node-a", "10.0.1.10/24");
    assert_eq!(addrs(&a).0, ["10.0.1.11", "10.0.1.100"]);
    assert_eq!(addrs(&a).1, [("192.0.2.1".into(), false)]);
    let b = desired(&nodes, "node-b", "10.0.1.11/24");
    assert_eq!(
        addrs(&b).0,
        ["10.0.1.100"],
        "the other reflector, plain iBGP"
    );
    assert_eq!(
        addrs(&b).1,
        [
            ("192.0.2.1".into(), false),
            ("10.0.1.10".into(), true),
            ("10.0.2.10".into(), true)
        ]
    );
    let client = b
        .peers
        .iter()
        .find(|p| p.address == IpAddr::from([10, 0, 1, 10]))
        .unwrap();
    assert_eq!(
        client.password.as_ref().map(Password::expose),
        Some("s3cret")
    );
    assert_eq!(client.local_address, Some(IpAddr::from([10, 0, 1, 11])));
    // The mesh rule on both ends: B connects to the lower string.
    assert!(!client.passive);
    assert_eq!(
        b.to_speaker_config("10.0.1.11".parse().unwrap()).cluster_id,
        Some("10.0.1.11".parse().unwrap())
    );
}

#[test]
fn the_kubernetes_file_refuses_per_node_keys() {
    for (extra, key) in [
        ("blocks: [10.244.1.0/26]\n", "blocks"),
        ("mesh: {peers: [10.0.0.6]}\n", "mesh.peers"),
        ("tunnel: {address: 10.244.1.1}\n", "tunnel.address"),
        (
            "route-reflector: {cluster-id: 1.1.1.1}\n",
            "route-reflector",
        ),
    ] {
        let text =
            format!("datastore: kubernetes\npools: [{{cidr: 10.244.0.0/16}}]\nnode: {{}}\n{extra}");
        let err = Config::parse(Path::new("k.yaml"), &text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains(&format!("{key} is set")), "{shown}");
    }
    let err = Config::parse(
        Path::new("k.yaml"),
        "datastore: kubernetes\npools: [{cidr: 10.244.0.0/16}]\nnode: {address: 10.0.0.5/24}\n",
    )
    .unwrap_err();
    assert!(err.to_string().contains("node.address is set"), "{err}");
}

#[test]
fn the_default_datastore_is_kubernetes_only_inside_a_pod() {
    assert_eq!(
        DatastoreKind::default_for(Some("10.96.0.1")),
        DatastoreKind::Kubernetes
    );
    assert_eq!(DatastoreKind::default_for(Some("")), DatastoreKind::File);
    assert_eq!(DatastoreKind::default_for(None), DatastoreKind::File);
    let c = Config::parse_with(
        Path::new("k.yaml"),
        "pools: [{cidr: 10.244.0.0/16}]\nnode: {}\n",
        DatastoreKind::Kubernetes,
    )
    .unwrap();
    assert_eq!(c.datastore(), DatastoreKind::Kubernetes);
}
