//! Nodes from a datastore: block owners, the reflector hand-over, nodes
//! that leave or change.

use super::*;

pub(super) fn cluster_node(name: &str, ip: &str, block: &str, reflector: bool) -> ClusterNode {
    ClusterNode {
        name: name.into(),
        address: format!("{ip}/32").parse().unwrap(),
        address_v6: None,
        blocks: vec![net(block)],
        tunnel_address: None,
        reflector: reflector.then(|| ip.parse().unwrap()),
    }
}

pub(super) fn node_set(b_reflects: bool) -> NodeSet {
    let mut set = NodeSet::new();
    set.insert(cluster_node("node-a", "10.0.0.5", "10.244.1.0/26", false));
    set.insert(cluster_node(
        "node-b",
        "10.0.0.6",
        "10.244.2.0/26",
        b_reflects,
    ));
    set.insert(cluster_node("node-c", "10.0.0.7", "10.244.3.0/26", false));
    set
}

/// A control step of node-a whose nodes come from a datastore.
fn start_with_nodes() -> (Control, Instant, Vec<Output>) {
    start_with(false)
}

/// [`start_with_nodes`]; `writes_record`: the agent writes node-a's
/// record itself (etcd).
pub(super) fn start_with(writes_record: bool) -> (Control, Instant, Vec<Output>) {
    let file = Config::parse_with(
        Path::new("k.yaml"),
        "node: {name: node-a}\npools: [{cidr: 10.244.0.0/16, ipip-mode: never}]\n",
        crate::datastore::DatastoreKind::Kubernetes,
    )
    .unwrap();
    let nodes = node_set(false);
    let me = nodes.get("node-a").unwrap().clone();
    let config = desired_config(&file, &nodes, &me, "10.0.0.5/24".parse().unwrap());
    let t0 = Instant::now();
    let mut c = Control::new(
        t0,
        Start {
            config,
            node: node(1500),
            node_name: Some("node-a".into()),
            log_format: "json".into(),
            installed: false,
            datastore: Some(DatastoreStart {
                name: "node-a".into(),
                file,
                nodes,
                writes_record,
            }),
        },
        Box::new(NoUnderlay),
    );
    let out = drain(&mut c);
    (c, t0, out)
}

pub(super) fn snapshot(nodes: NodeSet) -> Snapshot {
    Snapshot {
        nodes,
        skipped: Vec::new(),
    }
}

#[test]
fn the_block_owners_go_to_the_speaker_and_a_route_from_a_non_owner_is_not_planned() {
    let (mut c, t0, out) = start_with_nodes();
    assert!(commands(&out).iter().any(|cmd| matches!(
        cmd,
        SpeakerCommand::SetBlockOwners(o) if o.len() == 3
    )));
    c.handle_routes(
        t0,
        &[
            best("10.244.2.0/26", "10.0.0.6", "10.0.0.6"),
            // Inside B's block, from C.
            best("10.244.2.0/27", "10.0.0.7", "10.0.0.7"),
        ],
    );
    let out = drain(&mut c);
    assert_eq!(
        plans(&out),
        [vec![
            BLACKHOLE.to_owned(),
            "10.244.2.0/26 via 10.0.0.6 dev eth0 onlink".to_owned()
        ]]
    );
    assert!(events(&out).iter().any(|e| matches!(
        e,
        Event::NotFromOwner { owner, .. } if owner == "node-b"
    )));
}

#[test]
fn a_reflector_labelled_replaces_the_mesh_and_the_routes_of_removed_sessions_are_held() {
    let (mut c, t0, _) = start_with_nodes();
    c.handle_routes(
        t0,
        &[
            best("10.244.2.0/26", "10.0.0.6", "10.0.0.6"),
            best("10.244.3.0/26", "10.0.0.7", "10.0.0.7"),
        ],
    );
    let with_c = plans(&drain(&mut c)).pop().unwrap();
    // B becomes a reflector: A keeps only B.
    c.handle_nodes(t0, &snapshot(node_set(true)));
    let out = drain(&mut c);
    assert_eq!(
        commands(&out)
            .iter()
            .filter_map(|cmd| match cmd {
                SpeakerCommand::RemovePeer(p) => Some(*p),
                _ => None,
            })
            .collect::<Vec<_>>(),
        [ip("10.0.0.7")]
    );
    // C's session goes; its route stays planned through the hand-over ...
    let t1 = t0 + Duration::from_secs(1);
    c.handle_routes(t1, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    assert_eq!(plans(&drain(&mut c)), std::slice::from_ref(&with_c));
    // ... comes back through the reflector with the same next hop ...
    c.handle_routes(t1, &[best("10.244.3.0/26", "10.0.0.7", "10.0.0.6")]);
    assert_eq!(plans(&drain(&mut c)), [with_c]);
    // ... and a withdrawal after the hand-over is final.
    let t2 = t0 + HANDOVER + Duration::from_secs(1);
    c.handle_timeout(t2);
    drain(&mut c);
    c.handle_routes(t2, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    let last = plans(&drain(&mut c)).pop().unwrap();
    assert!(
        !last.iter().any(|r| r.starts_with("10.244.3.0/26")),
        "{last:?}"
    );
}

#[test]
fn a_node_that_left_loses_its_routes_at_once_even_during_a_hand_over() {
    let (mut c, t0, _) = start_with_nodes();
    c.handle_routes(t0, &[best("10.244.3.0/26", "10.0.0.7", "10.0.0.7")]);
    drain(&mut c);
    let mut without_c = NodeSet::new();
    for n in node_set(false).iter().filter(|n| n.name != "node-c") {
        without_c.insert(n.clone());
    }
    c.handle_nodes(t0, &snapshot(without_c));
    drain(&mut c);
    c.handle_routes(t0, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    let last = plans(&drain(&mut c)).pop().unwrap();
    assert_eq!(last, [BLACKHOLE.to_owned()]);
}

#[test]
fn a_route_held_through_a_hand_over_goes_when_its_nodes_block_changes() {
    // Seen in the Kubernetes test under load: C's withdrawal of its old
    // block came during the hand-over of another change (D removed) and
    // just before the news that C's podCIDR changed; the route was held
    // and stayed planned for the rest of the hand-over.
    let (mut c, t0, _) = start_with_nodes();
    c.handle_routes(t0, &[best("10.244.3.0/26", "10.0.0.7", "10.0.0.7")]);
    drain(&mut c);
    c.handle_nodes(t0, &snapshot(node_set(true)));
    drain(&mut c);
    c.handle_routes(t0, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    let held = plans(&drain(&mut c)).pop().unwrap();
    assert!(
        held.iter().any(|r| r.starts_with("10.244.3.0/26")),
        "held through the hand-over: {held:?}"
    );
    let mut moved = NodeSet::new();
    for n in node_set(true).iter() {
        if n.name == "node-c" {
            moved.insert(cluster_node("node-c", "10.0.0.7", "10.244.5.0/26", false));
        } else {
            moved.insert(n.clone());
        }
    }
    c.handle_nodes(t0, &snapshot(moved));
    let last = plans(&drain(&mut c)).pop().unwrap();
    assert!(
        !last.iter().any(|r| r.starts_with("10.244.3.0/26")),
        "{last:?}"
    );
}

/// `prefix` (IPv6) learned from `peer` with IPv6 next hop `next_hop`.
fn best_v6(prefix: &str, next_hop: &str, peer: &str) -> RouteChange {
    let global: std::net::Ipv6Addr = next_hop.parse().unwrap();
    RouteChange::Best(BestRoute {
        prefix: net(prefix),
        next_hop: IpAddr::V6(global),
        peer: Some(ip(peer)),
        attrs: Arc::new(PathAttrs::new(
            Origin::Igp,
            AsPath::default(),
            NextHop::V6 {
                global,
                link_local: None,
            },
        )),
        stale: false,
    })
}

#[test]
fn an_ipv6_block_is_owned_through_its_nodes_ipv6_address() {
    let (mut c, t0, _) = start_with(false);
    let mut nodes = node_set(false);
    let mut b = nodes.get("node-b").unwrap().clone();
    b.address_v6 = Some("fd00::6".parse().unwrap());
    b.blocks.push(net("fd00:244::40/122"));
    nodes.insert(b);
    c.handle_nodes(t0, &snapshot(nodes));
    let out = drain(&mut c);
    assert!(
        commands(&out).iter().any(|cmd| matches!(
            cmd,
            SpeakerCommand::SetBlockOwners(o) if o.iter().any(|o| o.block == net("fd00:244::40/122") && o.next_hop == ip("fd00::6"))
        )),
        "{out:?}"
    );
    // From node-b's IPv6 address: its own route, not refused.
    c.handle_routes(t0, &[best_v6("fd00:244::40/122", "fd00::6", "10.0.0.6")]);
    let out = drain(&mut c);
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::NotFromOwner { .. })),
        "{out:?}"
    );
    // From another IPv6 address: refused as not from the owner.
    c.handle_routes(t0, &[best_v6("fd00:244::40/122", "fd00::7", "10.0.0.7")]);
    let out = drain(&mut c);
    assert!(
        events(&out).iter().any(|e| matches!(
            e,
            Event::NotFromOwner { owner, .. } if owner == "node-b"
        )),
        "{out:?}"
    );
}
