//! SIGHUP: what a new config changes, so that only that changes.
//!
//! Peers, pools and blocks are applied live: a peer whose settings did not
//! change keeps its session, a changed one is removed and added again
//! (BIRD's `configure` restarts a protocol whose config changed, too).
//! The `cni` section and `admin.per-peer-metrics` are live too (the CNI
//! file follows the one, `/metrics` the other). Settings that shape the
//! speaker or the node itself (AS, node address, BGP port, route protocol,
//! tunnel, admin listener, graceful restart) need a restart and are
//! reported, not applied.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bgp_core::speaker::PeerConfig;
use ipnetwork::IpNetwork;

use crate::config::Config;

/// The difference between the running config and a reloaded one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reload {
    /// Peers to remove (gone, or changed: they are added again).
    pub remove_peers: Vec<IpAddr>,
    /// Peers to add (new, or changed).
    pub add_peers: Vec<PeerConfig>,
    /// Blocks to start announcing.
    pub announce: Vec<IpNetwork>,
    /// Blocks to withdraw.
    pub withdraw: Vec<IpNetwork>,
    /// The pools changed (re-plan).
    pub pools_changed: bool,
    /// `admin.per-peer-metrics`, when it changed.
    pub per_peer_metrics: Option<bool>,
    /// Keys that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

impl Reload {
    /// True when nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self == &Reload::default()
    }
}

/// Compares `old` and `new` on a node with address `node`.
pub fn diff(old: &Config, new: &Config, node: Ipv4Addr) -> Reload {
    // Compared without the import guards derived from the blocks, so a
    // change of blocks does not restart every session (the planner still
    // refuses routes into the new blocks; sessions pick up the new guards
    // when they are re-added or the agent restarts).
    let peers = |c: &Config| -> BTreeMap<IpAddr, PeerConfig> {
        c.peers_unguarded(node)
            .into_iter()
            .map(|p| (p.address, p))
            .collect()
    };
    let (before, after) = (peers(old), peers(new));
    // A new limit on the other nodes (`mesh.max-prefixes`, or a default
    // that moved with the pools) re-adds the mesh sessions: the engine
    // takes a peer's limit when the peer is added.
    let new_limit = old.node_max_prefixes() != new.node_max_prefixes();
    let relimited = |a: &IpAddr| new_limit && new.mesh.peers.contains(a);
    let mut reload = Reload::default();
    for (address, peer) in &before {
        if after.get(address) != Some(peer) || relimited(address) {
            reload.remove_peers.push(*address);
        }
    }
    for (address, peer) in &after {
        if before.get(address) != Some(peer) || (before.contains_key(address) && relimited(address))
        {
            let mut peer = peer.clone();
            new.guard_import(&mut peer);
            reload.add_peers.push(peer);
        }
    }
    reload.announce = new
        .blocks
        .iter()
        .filter(|b| !old.blocks.contains(b))
        .copied()
        .collect();
    reload.withdraw = old
        .blocks
        .iter()
        .filter(|b| !new.blocks.contains(b))
        .copied()
        .collect();
    reload.pools_changed = old.pools != new.pools;
    reload.per_peer_metrics = (old.admin.per_peer_metrics != new.admin.per_peer_metrics)
        .then_some(new.admin.per_peer_metrics);
    let restart_keys: [(&'static str, bool); 13] = [
        ("datastore", old.datastore != new.datastore),
        (
            "route-reflector",
            old.route_reflector != new.route_reflector,
        ),
        ("hold-time", old.hold_time != new.hold_time),
        ("keepalive-time", old.keepalive_time != new.keepalive_time),
        ("connect-retry", old.connect_retry != new.connect_retry),
        ("asn", old.asn != new.asn),
        ("node", old.node != new.node),
        ("listen-port", old.listen_port != new.listen_port),
        ("route-protocol", old.route_protocol != new.route_protocol),
        (
            "nexthop-objects",
            old.nexthop_objects != new.nexthop_objects,
        ),
        ("tunnel", old.tunnel != new.tunnel),
        ("admin.listen", old.admin.listen != new.admin.listen),
        (
            "graceful-restart",
            old.graceful_restart != new.graceful_restart,
        ),
    ];
    reload.needs_restart = restart_keys
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
    reload
}

/// Takes from `new` the keys a reload applies live (peers, mesh, blocks,
/// pools, persist-routes, cni, admin.per-peer-metrics) into `running`; the
/// keys [`diff`] reports as needing a restart keep their running values.
pub fn apply_live(running: &mut Config, new: Config) {
    running.admin.per_peer_metrics = new.admin.per_peer_metrics;
    running.peers = new.peers;
    running.mesh = new.mesh;
    running.blocks = new.blocks;
    running.pools = new.pools;
    running.persist_routes = new.persist_routes;
    running.cni = new.cni;
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use bgp_core::speaker::Password;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("test.yaml"), text).unwrap()
    }

    const BASE: &str = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16}]
blocks: [10.244.1.0/26]
mesh: {peers: [10.0.0.6, 10.0.0.7]}
";

    const NODE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

    #[test]
    fn an_unchanged_config_changes_nothing() {
        assert!(diff(&config(BASE), &config(BASE), NODE).is_empty());
    }

    #[test]
    fn a_new_mesh_peer_is_added_and_the_others_are_left_alone() {
        let new = BASE.replace("10.0.0.7]", "10.0.0.7, 10.0.0.8]");
        let r = diff(&config(BASE), &config(&new), NODE);
        assert!(r.remove_peers.is_empty());
        assert_eq!(
            r.add_peers.iter().map(|p| p.address).collect::<Vec<_>>(),
            vec![IpAddr::from([10, 0, 0, 8])]
        );
        assert!(r.needs_restart.is_empty());
    }

    #[test]
    fn a_removed_peer_is_removed() {
        let new = BASE.replace(", 10.0.0.7]", "]");
        let r = diff(&config(BASE), &config(&new), NODE);
        assert_eq!(r.remove_peers, vec![IpAddr::from([10, 0, 0, 7])]);
        assert!(r.add_peers.is_empty());
    }

    #[test]
    fn a_changed_peer_is_removed_and_added_again() {
        let new = BASE.replace("10.0.0.7]}", "10.0.0.7], password: s3cret}");
        let r = diff(&config(BASE), &config(&new), NODE);
        assert_eq!(r.remove_peers.len(), 2);
        assert_eq!(r.add_peers.len(), 2);
        assert!(
            r.add_peers
                .iter()
                .all(|p| p.password.as_ref().map(Password::expose) == Some("s3cret"))
        );
    }

    #[test]
    fn the_logged_diff_shows_no_password() {
        // The agent logs a reload's diff with `Debug` (`?change`).
        let new = BASE.replace("10.0.0.7]}", "10.0.0.7], password: s3cret}")
            + "peers: [{address: 192.0.2.1, asn: 65001, password: 0th3r}]\n";
        let r = diff(&config(BASE), &config(&new), NODE);
        assert_eq!(r.add_peers.len(), 3);
        for shown in [format!("{r:?}"), format!("{r:#?}")] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("0th3r"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_new_limit_on_the_other_nodes_re_adds_the_mesh_sessions_only() {
        let old = BASE.to_owned() + "peers: [{address: 192.0.2.1, asn: 65001}]\n";
        let new = old.replace(
            "10.0.0.7]}",
            "10.0.0.7], max-prefixes: {limit: 50, action: cease}}",
        );
        let r = diff(&config(&old), &config(&new), NODE);
        let mesh: [IpAddr; 2] = [[10, 0, 0, 6].into(), [10, 0, 0, 7].into()];
        assert_eq!(r.remove_peers, mesh);
        assert_eq!(
            r.add_peers.iter().map(|p| p.address).collect::<Vec<_>>(),
            mesh
        );
        assert!(
            r.add_peers
                .iter()
                .all(|p| p.max_prefixes.map(|m| m.limit) == Some(50)),
            "{:?}",
            r.add_peers
        );
        // A pool change that moves the default limit does the same.
        let bigger = old.replace("10.244.0.0/16", "10.244.0.0/15");
        assert_eq!(
            diff(&config(&old), &config(&bigger), NODE).remove_peers,
            mesh
        );
    }

    #[test]
    fn blocks_and_pools_are_diffed() {
        let new = BASE.replace("[10.244.1.0/26]", "[10.244.1.64/26]").replace(
            "[{cidr: 10.244.0.0/16}]",
            "[{cidr: 10.244.0.0/16, ipip-mode: always}]",
        );
        let r = diff(&config(BASE), &config(&new), NODE);
        assert_eq!(r.announce, vec!["10.244.1.64/26".parse().unwrap()]);
        assert_eq!(r.withdraw, vec!["10.244.1.0/26".parse().unwrap()]);
        assert!(r.pools_changed);
        assert!(
            r.remove_peers.is_empty() && r.add_peers.is_empty(),
            "a change of blocks restarts no session"
        );
    }

    /// What [`diff`] says of per-peer-metrics between `a` and `b`.
    fn per_peer_change(a: &Config, b: &Config) -> Option<bool> {
        diff(a, b, NODE).per_peer_metrics
    }

    #[test]
    fn per_peer_metrics_is_applied_by_a_reload_without_a_restart() {
        let old = config(BASE);
        let new = config(&format!("{BASE}admin: {{per-peer-metrics: false}}\n"));
        let r = diff(&old, &new, NODE);
        assert_eq!(r.per_peer_metrics, Some(false));
        assert!(r.needs_restart.is_empty(), "{r:?}");
        assert_eq!(per_peer_change(&new, &old), Some(true));
        assert_eq!(per_peer_change(&new, &new), None);
        // The listener still needs a restart.
        let moved = config(&format!("{BASE}admin: {{listen: 127.0.0.1:9999}}\n"));
        assert_eq!(diff(&old, &moved, NODE).needs_restart, vec!["admin.listen"]);
    }

    #[test]
    fn every_key_is_either_applied_live_or_reported_as_needing_a_restart() {
        let old = config(BASE);
        let new = config(
            "
node: {address: 10.0.0.9/24}
asn: 65000
listen-port: 1179
pools: [{cidr: 10.244.0.0/16, ipip-mode: always}]
blocks: [10.244.1.64/26]
tunnel: {device: tun9}
mesh: {peers: [10.0.0.6, 10.0.0.8], password: s3cret}
peers: [{address: 192.0.2.1, asn: 65001}]
graceful-restart: {enabled: false}
route-protocol: 99
persist-routes: false
nexthop-objects: true
admin: {listen: 127.0.0.1:9999, per-peer-metrics: false}
cni: {enabled: true, conf-dir: /run/cni}
",
        );
        let mut applied = old.clone();
        apply_live(&mut applied, new.clone());
        assert!(!applied.admin.per_peer_metrics);
        assert_eq!(per_peer_change(&applied, &new), None);
        let after = diff(&applied, &new, NODE);
        assert!(
            after.announce.is_empty() && after.withdraw.is_empty() && !after.pools_changed,
            "{after:?}"
        );
        assert_eq!((&applied.peers, &applied.mesh), (&new.peers, &new.mesh));
        assert_eq!(applied.persist_routes, new.persist_routes);
        assert_eq!(applied.cni, new.cni);
        assert_eq!(after.needs_restart, diff(&old, &new, NODE).needs_restart);
        assert_eq!(after.needs_restart.len(), 8, "{after:?}");
        // With the restart keys taken as well, nothing is left over: a new
        // key of the config must go in one list or the other.
        applied.asn = new.asn;
        applied.node = new.node.clone();
        applied.listen_port = new.listen_port;
        applied.route_protocol = new.route_protocol;
        applied.nexthop_objects = new.nexthop_objects;
        applied.tunnel = new.tunnel.clone();
        applied.admin = new.admin.clone();
        applied.graceful_restart = new.graceful_restart.clone();
        assert_eq!(applied, new);
    }

    #[test]
    fn speaker_wide_settings_are_reported_as_needing_a_restart() {
        let new = format!("{BASE}asn: 65000\nroute-protocol: 99\n");
        let r = diff(&config(BASE), &config(&new), NODE);
        assert_eq!(r.needs_restart, vec!["asn", "route-protocol"]);
    }
}
