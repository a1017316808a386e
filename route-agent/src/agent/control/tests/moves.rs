//! Addresses that change while the agents run: ours written to the record
//! (etcd), another node's followed from the node set.

use super::nodes::{cluster_node, node_set, snapshot, start_with};
use super::*;

/// node-c at `ip` (its block 10.244.3.0/26), the others as in
/// [`node_set`].
fn with_c_at(ip: &str) -> NodeSet {
    let mut set = NodeSet::new();
    for n in node_set(false).iter() {
        if n.name == "node-c" {
            set.insert(cluster_node("node-c", ip, "10.244.3.0/26", false));
        } else {
            set.insert(n.clone());
        }
    }
    set
}

fn routes_to_c(plan: &[String]) -> Vec<&String> {
    plan.iter()
        .filter(|r| r.starts_with("10.244.3.0/26"))
        .collect()
}

#[test]
fn a_node_that_moved_is_routed_at_its_new_address_until_its_sessions_bring_it() {
    let (mut c, t0, _) = start_with(false);
    c.handle_routes(t0, &[best("10.244.3.0/26", "10.0.0.7", "10.0.0.7")]);
    drain(&mut c);
    // The record says node-c is at .9 now: the route follows at once,
    // before any session change.
    c.handle_nodes(t0, &snapshot(with_c_at("10.0.0.9")));
    let out = drain(&mut c);
    let moved = plans(&out).pop().unwrap();
    assert_eq!(
        routes_to_c(&moved),
        ["10.244.3.0/26 via 10.0.0.9 dev eth0 onlink"]
    );
    assert!(events(&out).iter().any(|e| matches!(
        e,
        Event::NodeMoved { node, blocks, .. } if node == "node-c" && blocks == &[net("10.244.3.0/26")]
    )));
    assert!(
        commands(&out)
            .iter()
            .any(|cmd| **cmd == SpeakerCommand::RemovePeer(ip("10.0.0.7")))
    );
    // The session to the old address goes, and its withdrawal changes
    // nothing ...
    let t1 = t0 + Duration::from_secs(1);
    c.handle_routes(t1, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    let plans_now = plans(&drain(&mut c));
    assert!(
        plans_now.iter().all(|p| *p == moved),
        "the withdrawal of the old route changed the plan: {plans_now:?}"
    );
    // ... node-c's session from .9 brings the same route ...
    c.handle_routes(t1, &[best("10.244.3.0/26", "10.0.0.9", "10.0.0.9")]);
    assert_eq!(plans(&drain(&mut c)), std::slice::from_ref(&moved));
    // ... which then stays after the bound.
    c.handle_timeout(t0 + super::super::moves::moved_hold(c.config()) + Duration::from_secs(1));
    let after = drain(&mut c);
    assert!(plans(&after).iter().all(|p| *p == moved), "{after:?}");
    c.handle_routes(t1, &[]);
    assert_eq!(plans(&drain(&mut c)), [moved]);
}

#[test]
fn a_moved_route_goes_after_the_bound_when_the_node_never_comes_back() {
    let (mut c, t0, _) = start_with(false);
    c.handle_routes(t0, &[best("10.244.3.0/26", "10.0.0.7", "10.0.0.7")]);
    drain(&mut c);
    c.handle_nodes(t0, &snapshot(with_c_at("10.0.0.9")));
    drain(&mut c);
    c.handle_routes(t0, &[RouteChange::Withdrawn(net("10.244.3.0/26"))]);
    drain(&mut c);
    let bound = super::super::moves::moved_hold(c.config());
    c.handle_timeout(t0 + bound - Duration::from_millis(1));
    c.handle_routes(t0 + bound - Duration::from_millis(1), &[]);
    let before = plans(&drain(&mut c)).pop().unwrap();
    assert_eq!(
        routes_to_c(&before),
        ["10.244.3.0/26 via 10.0.0.9 dev eth0 onlink"]
    );
    c.handle_timeout(t0 + bound);
    let after = plans(&drain(&mut c)).pop().unwrap();
    assert!(routes_to_c(&after).is_empty(), "{after:?}");
}

#[test]
fn a_move_adds_no_route_that_was_not_there_and_a_second_move_follows_again() {
    let (mut c, t0, _) = start_with(false);
    // No route to node-c yet: its move plans none.
    c.handle_nodes(t0, &snapshot(with_c_at("10.0.0.9")));
    let out = drain(&mut c);
    assert!(
        plans(&out).iter().all(|p| routes_to_c(p).is_empty()),
        "{out:?}"
    );
    assert!(
        !events(&out)
            .iter()
            .any(|e| matches!(e, Event::NodeMoved { .. }))
    );
    c.handle_routes(t0, &[best("10.244.3.0/26", "10.0.0.9", "10.0.0.9")]);
    drain(&mut c);
    c.handle_nodes(t0, &snapshot(with_c_at("10.0.0.8")));
    c.handle_nodes(t0, &snapshot(with_c_at("10.0.0.11")));
    let last = plans(&drain(&mut c)).pop().unwrap();
    assert_eq!(
        routes_to_c(&last),
        ["10.244.3.0/26 via 10.0.0.11 dev eth0 onlink"]
    );
}

fn moved_node(address: &str) -> NodeView {
    NodeView {
        address: address.parse().unwrap(),
        ..node(1500)
    }
}

#[test]
fn with_an_own_record_a_new_address_writes_the_record_then_stops() {
    let (mut c, t0, _) = start_with(true);
    c.handle_node(t0, Ok(moved_node("10.0.0.8/24")));
    let out = drain(&mut c);
    let write = out
        .iter()
        .position(|o| matches!(o, Output::WriteRecord(me) if me.name == "node-a" && me.address.to_string() == "10.0.0.8/24" && me.blocks == [net("10.244.1.0/26")]))
        .unwrap_or_else(|| panic!("no record written: {out:?}"));
    let stop = out
        .iter()
        .position(|o| {
            matches!(o, Output::Stop(Stop::AddressChanged(a))
                if a.old.to_string() == "10.0.0.5" && a.new.to_string() == "10.0.0.8")
        })
        .unwrap_or_else(|| panic!("no stop: {out:?}"));
    assert!(write < stop, "the stop came before the write: {out:?}");
}

#[test]
fn with_an_own_record_a_new_prefix_length_is_written_without_a_stop() {
    let (mut c, t0, _) = start_with(true);
    c.handle_node(t0, Ok(moved_node("10.0.0.5/16")));
    let out = drain(&mut c);
    assert!(
        out.iter().any(
            |o| matches!(o, Output::WriteRecord(me) if me.address.to_string() == "10.0.0.5/16")
        ),
        "{out:?}"
    );
    assert!(!out.iter().any(|o| matches!(o, Output::Stop(_))), "{out:?}");
    // Read again unchanged: nothing more to write.
    c.handle_node(t0, Ok(moved_node("10.0.0.5/16")));
    let again = drain(&mut c);
    assert!(
        !again.iter().any(|o| matches!(o, Output::WriteRecord(_))),
        "{again:?}"
    );
}

#[test]
fn without_an_own_record_a_new_address_writes_nothing() {
    // Kubernetes: the kubelet owns the Node; a new address there stops
    // the agent (handle_nodes), not the interface.
    let (mut c, t0, _) = start_with(false);
    c.handle_node(t0, Ok(moved_node("10.0.0.8/24")));
    let out = drain(&mut c);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::WriteRecord(_) | Output::Stop(_))),
        "{out:?}"
    );
}

#[test]
fn a_new_ipv6_address_announces_the_ipv6_blocks_again_through_it() {
    let text = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16, ipip-mode: never}, {cidr: \"fd00:244::/48\"}]
blocks: [10.244.1.0/26, \"fd00:244::40/122\"]
";
    let t0 = Instant::now();
    let with_v6 = |a: &str| NodeView {
        address_v6: Some(a.parse().unwrap()),
        ..node(1500)
    };
    let mut c = Control::new(
        t0,
        Start {
            config: config(text),
            node: with_v6("fd00::5/64"),
            node_name: Some("node-a".into()),
            log_format: "json".into(),
            installed: false,
            datastore: None,
        },
        Box::new(NoUnderlay),
    );
    drain(&mut c);
    c.handle_node(t0, Ok(with_v6("fd00::15/64")));
    let out = drain(&mut c);
    assert_eq!(
        commands(&out),
        [&SpeakerCommand::Announce(
            net("fd00:244::40/122"),
            bgp_core::speaker::LocalRoute::via(ip("fd00::15"))
        )]
    );
    // The IPv6 address gone: the block is withdrawn, not left announced
    // through an address the node does not have.
    c.handle_node(t0, Ok(node(1500)));
    let out = drain(&mut c);
    assert_eq!(
        commands(&out),
        [&SpeakerCommand::Withdraw(net("fd00:244::40/122"))]
    );
    // An IPv4-only change announces nothing again.
    c.handle_node(t0, Ok(moved_node("10.0.0.5/16")));
    assert!(commands(&drain(&mut c)).is_empty());
}

#[test]
fn with_an_own_record_a_new_ipv6_address_is_written_only_with_ipv6_blocks() {
    // node-a has an IPv4 block only: its record holds no IPv6 address
    // (and its address as the agent reads it, as with etcd).
    let (mut c, t0, _) = start_with(true);
    let mut nodes = node_set(false);
    let mut a = nodes.get("node-a").unwrap().clone();
    a.address = "10.0.0.5/24".parse().unwrap();
    nodes.insert(a);
    c.handle_nodes(t0, &snapshot(nodes));
    drain(&mut c);
    let with_v6 = NodeView {
        address_v6: Some("fd00::5/64".parse().unwrap()),
        ..node(1500)
    };
    c.handle_node(t0, Ok(with_v6));
    let out = drain(&mut c);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::WriteRecord(_) | Output::Stop(_))),
        "{out:?}"
    );
}
