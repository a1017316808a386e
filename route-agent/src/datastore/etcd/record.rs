//! Node records in etcd → [`ClusterNode`]s and the [`NodeSet`]. Pure:
//! tests feed key/value pairs.
//!
//! `PREFIX/nodes/NAME` holds the node's record, JSON written by its agent
//! at start ([`NodeRecord`]):
//!
//! ```json
//! {"name": "node-a", "address": "10.0.1.10/24", "address-v6": "fd00:1::10",
//!  "tunnel-address": "10.244.0.0", "blocks": ["10.244.0.0/26", "fd00:244::/122"],
//!  "asn": 64512, "route-reflector": null}
//! ```
//!
//! `address-v6` is the next hop of the node's IPv6 blocks: only routes
//! to them through it are accepted; without it, none.
//!
//! A record is input like any other, whoever wrote it. One that does not
//! parse, whose address is not a host address of its own subnet, that
//! lists a block not claimed for it under `PREFIX/blocks/`, or that has
//! another AS is skipped ([`Skip`]) and nothing else changes: a node that
//! was valid keeps its last valid version, a new one is left out. The
//! checks across nodes (pools, overlaps, one address per node) are the
//! Kubernetes datastore's (`node::check`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network};
use serde::{Deserialize, Serialize};

use super::super::node::{Built, Skip, Skipped, check};
use super::super::{ClusterNode, NodeSet};

/// The folder of node records under the prefix.
pub const NODES: &str = "nodes";

/// The key of `name`'s record: `PREFIX/nodes/NAME`.
pub fn node_key(prefix: &str, name: &str) -> String {
    format!("{prefix}/{NODES}/{name}")
}

/// The folder every record key starts with (`PREFIX/nodes/`).
pub fn nodes_folder(prefix: &str) -> String {
    format!("{prefix}/{NODES}/")
}

/// The node name of a record key, if it is one.
pub fn parse_node_key<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(&nodes_folder(prefix))
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// A node's record as stored (JSON, kebab-case keys, unknown keys
/// refused so that a typo is seen rather than ignored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeRecord {
    /// The node name (the same as the key's).
    pub name: String,
    /// The node address with its subnet's prefix length (required: the
    /// prefix length is the CrossSubnet test).
    #[serde(deserialize_with = "with_prefix_length")]
    pub address: Ipv4Network,
    /// Its IPv6 address, the next hop of its IPv6 blocks; written only
    /// with IPv6 blocks (agents before IPv6 blocks refuse unknown keys, so
    /// an IPv4-only cluster's records stay readable to them during an
    /// upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_v6: Option<Ipv6Addr>,
    /// Its tunnel device's address (default: its first block's first
    /// address).
    #[serde(default)]
    pub tunnel_address: Option<Ipv4Addr>,
    /// Its pod blocks (IPv4 and IPv6), each claimed for it under
    /// `PREFIX/blocks/`.
    pub blocks: Vec<IpNetwork>,
    /// Its AS.
    pub asn: u32,
    /// Its route-reflector cluster ID, when it is a reflector.
    #[serde(default)]
    pub route_reflector: Option<Ipv4Addr>,
}

impl NodeRecord {
    /// The record of `node` with `asn`.
    pub fn of(node: &ClusterNode, asn: u32) -> NodeRecord {
        NodeRecord {
            name: node.name.clone(),
            address: node.address,
            address_v6: recorded_v6(node.address_v6, &node.blocks),
            tunnel_address: node.tunnel_address,
            blocks: node.blocks.clone(),
            asn,
            route_reflector: node.reflector,
        }
    }

    /// As stored.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings and numbers always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The IPv6 address a record holds for a node with `address_v6` and
/// `blocks`: its address when it has an IPv6 block (its next hop), else
/// none ([`NodeRecord::address_v6`]). The agent's own node is built with
/// this, so that it equals its record read back.
pub fn recorded_v6(address_v6: Option<Ipv6Addr>, blocks: &[IpNetwork]) -> Option<Ipv6Addr> {
    address_v6.filter(|_| blocks.iter().any(IpNetwork::is_ipv6))
}

/// An IPv4 address that must be written with its prefix length.
fn with_prefix_length<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Ipv4Network, D::Error> {
    let text = String::deserialize(d)?;
    if !text.contains('/') {
        return Err(serde::de::Error::custom(format!(
            "address `{text}` has no prefix length (write e.g. 10.0.1.10/24)"
        )));
    }
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!("address `{text}` is not an IPv4 address/prefix"))
    })
}

/// One record as read from etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// The node name from the key.
    pub name: String,
    /// The value.
    pub value: Vec<u8>,
    /// The key's create revision (older nodes win conflicts).
    pub created: i64,
}

/// A record as a [`ClusterNode`], or why it cannot be one. `claims` are
/// the block claims by block; `asn` is ours.
pub fn parse(
    raw: &RawRecord,
    claims: &BTreeMap<IpNetwork, String>,
    asn: u32,
) -> Result<ClusterNode, Skip> {
    let r: NodeRecord =
        serde_json::from_slice(&raw.value).map_err(|e| Skip::BadRecord(e.to_string()))?;
    if r.name != raw.name {
        return Err(Skip::BadRecord(format!(
            "its key names node {} but its `name` is {}",
            raw.name, r.name
        )));
    }
    let a = r.address;
    if a.prefix() < 31 && (a.ip() == a.network() || a.ip() == a.broadcast()) {
        return Err(Skip::AddressOutsideSubnet(a));
    }
    if r.asn != asn {
        return Err(Skip::OtherAs {
            asn: r.asn,
            ours: asn,
        });
    }
    let mut blocks = Vec::new();
    for b in &r.blocks {
        if b.ip() != b.network() {
            return Err(Skip::BadRecord(format!(
                "block {b} is not a network address"
            )));
        }
        let holder = claims.get(b);
        if holder != Some(&r.name) {
            return Err(Skip::BlockNotClaimed {
                block: *b,
                holder: holder.cloned(),
            });
        }
        if !blocks.contains(b) {
            blocks.push(*b);
        }
    }
    let tunnel_address = r.tunnel_address.or(r.blocks.iter().find_map(|b| match b {
        IpNetwork::V4(b) => Some(b.network()),
        IpNetwork::V6(_) => None,
    }));
    Ok(ClusterNode {
        name: r.name,
        address: a,
        address_v6: r.address_v6,
        blocks,
        tunnel_address,
        reflector: r.route_reflector,
    })
}

/// Every record → the [`NodeSet`], given the claims, the config's pools
/// and AS, and the set built last time. Conflicts go to the node that
/// holds the resource already (nodes of `previous` first, then the oldest
/// record, then by name), as with Kubernetes Nodes.
pub fn build(
    records: &[RawRecord],
    claims: &BTreeMap<IpNetwork, String>,
    pools: &[IpNetwork],
    previous: &NodeSet,
    asn: u32,
) -> Built {
    let mut order: Vec<&RawRecord> = records.iter().collect();
    order.sort_by_key(|r| (previous.get(&r.name).is_none(), r.created, r.name.clone()));
    let mut set = NodeSet::new();
    let mut by_address: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut seen = BTreeSet::new();
    for raw in order {
        if !seen.insert(raw.name.clone()) {
            continue;
        }
        let checked =
            parse(raw, claims, asn).and_then(|n| check(&n, pools, &set, &by_address).map(|()| n));
        let accepted = match checked {
            Ok(n) => Some(n),
            Err(skip) => {
                let kept = previous
                    .get(&raw.name)
                    .filter(|p| check(p, pools, &set, &by_address).is_ok())
                    .cloned();
                skipped.push(Skipped {
                    node: raw.name.clone(),
                    uid: None,
                    skip,
                    kept_previous: kept.is_some(),
                });
                kept
            }
        };
        if let Some(n) = accepted {
            by_address.insert(n.ip(), n.name.clone());
            set.insert(n);
        }
    }
    skipped.sort_by(|a, b| a.node.cmp(&b.node));
    Built { set, skipped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::SkipReason;

    const ASN: u32 = 64512;

    fn raw(name: &str, json: &str, created: i64) -> RawRecord {
        RawRecord {
            name: name.into(),
            value: json.as_bytes().to_vec(),
            created,
        }
    }

    fn record(name: &str, address: &str, block: &str) -> String {
        format!(r#"{{"name":"{name}","address":"{address}","blocks":["{block}"],"asn":{ASN}}}"#)
    }

    fn claims(list: &[(&str, &str)]) -> BTreeMap<IpNetwork, String> {
        list.iter()
            .map(|(b, n)| (b.parse().unwrap(), (*n).to_owned()))
            .collect()
    }

    fn pools() -> Vec<IpNetwork> {
        vec!["10.244.0.0/16".parse().unwrap()]
    }

    /// Two good nodes, a and b, and one more record; returns the build.
    fn with_third(third: RawRecord, previous: &NodeSet) -> Built {
        let records = vec![
            raw("a", &record("a", "10.0.1.10/24", "10.244.0.0/26"), 1),
            raw("b", &record("b", "10.0.1.11/24", "10.244.0.64/26"), 2),
            third,
        ];
        let c = claims(&[
            ("10.244.0.0/26", "a"),
            ("10.244.0.64/26", "b"),
            ("10.244.0.128/26", "c"),
        ]);
        build(&records, &c, &pools(), previous, ASN)
    }

    fn reasons(b: &Built) -> Vec<(String, SkipReason, bool)> {
        b.skipped
            .iter()
            .map(|s| (s.node.clone(), s.skip.reason(), s.kept_previous))
            .collect()
    }

    #[test]
    fn good_records_make_the_node_set() {
        let b = with_third(
            raw("c", &record("c", "10.0.2.10/24", "10.244.0.128/26"), 3),
            &NodeSet::new(),
        );
        assert!(b.skipped.is_empty(), "{:?}", b.skipped);
        let c = b.set.get("c").unwrap();
        assert_eq!(c.address.to_string(), "10.0.2.10/24");
        assert_eq!(c.tunnel_address, Some("10.244.0.128".parse().unwrap()));
        assert_eq!(b.set.len(), 3);
    }

    #[test]
    fn a_record_that_does_not_parse_is_skipped_alone() {
        for bad in [
            "not json",
            r#"{"name":"c","address":"10.0.2.10/24","blocks":[],"asn":64512,"colour":"red"}"#,
            r#"{"name":"d","address":"10.0.2.10/24","blocks":[],"asn":64512}"#,
            r#"{"name":"c","address":"10.0.2.10","blocks":[],"asn":64512}"#,
        ] {
            let b = with_third(raw("c", bad, 3), &NodeSet::new());
            assert_eq!(
                reasons(&b),
                vec![("c".into(), SkipReason::BadRecord, false)],
                "{bad}"
            );
            assert_eq!(b.set.len(), 2);
            assert!(b.skipped[0].skip.to_string().contains("does not parse"));
        }
    }

    #[test]
    fn an_address_outside_its_subnet_is_skipped() {
        for address in ["10.0.2.0/24", "10.0.2.255/24"] {
            let b = with_third(
                raw("c", &record("c", address, "10.244.0.128/26"), 3),
                &NodeSet::new(),
            );
            assert_eq!(
                reasons(&b),
                vec![("c".into(), SkipReason::AddressOutsideSubnet, false)]
            );
            assert_eq!(b.set.len(), 2);
        }
    }

    #[test]
    fn a_record_claiming_another_nodes_block_is_skipped_and_the_owner_keeps_it() {
        let b = with_third(
            raw("c", &record("c", "10.0.2.10/24", "10.244.0.0/26"), 0),
            &NodeSet::new(),
        );
        assert_eq!(
            reasons(&b),
            vec![("c".into(), SkipReason::BlockNotClaimed, false)]
        );
        assert!(b.skipped[0].skip.to_string().contains("claimed by node a"));
        assert_eq!(
            b.set.get("a").unwrap().blocks[0].to_string(),
            "10.244.0.0/26"
        );
        // Unclaimed blocks are refused too.
        let b = with_third(
            raw("c", &record("c", "10.0.2.10/24", "10.244.1.0/26"), 3),
            &NodeSet::new(),
        );
        assert!(b.skipped[0].skip.to_string().contains("claimed by no node"));
    }

    #[test]
    fn a_bad_update_keeps_the_last_valid_version() {
        let good = with_third(
            raw("c", &record("c", "10.0.2.10/24", "10.244.0.128/26"), 3),
            &NodeSet::new(),
        );
        let b = with_third(raw("c", "{", 3), &good.set);
        assert_eq!(reasons(&b), vec![("c".into(), SkipReason::BadRecord, true)]);
        assert_eq!(b.set, good.set);
    }

    #[test]
    fn another_as_is_skipped() {
        let json =
            r#"{"name":"c","address":"10.0.2.10/24","blocks":["10.244.0.128/26"],"asn":65000}"#;
        let b = with_third(raw("c", json, 3), &NodeSet::new());
        assert_eq!(reasons(&b), vec![("c".into(), SkipReason::OtherAs, false)]);
    }

    #[test]
    fn a_dual_stack_record_gives_both_blocks_and_the_ipv6_next_hop() {
        let json = r#"{"name":"c","address":"10.0.2.10/24","address-v6":"fd00:2::10","blocks":["10.244.0.128/26","fd00:244::80/122"],"asn":64512}"#;
        let records = vec![raw("c", json, 3)];
        let mut cl = claims(&[("10.244.0.128/26", "c")]);
        cl.insert("fd00:244::80/122".parse().unwrap(), "c".to_owned());
        let pools: Vec<IpNetwork> = vec![
            "10.244.0.0/16".parse().unwrap(),
            "fd00:244::/48".parse().unwrap(),
        ];
        let b = build(&records, &cl, &pools, &NodeSet::new(), ASN);
        assert!(b.skipped.is_empty(), "{:?}", b.skipped);
        let c = b.set.get("c").unwrap();
        assert_eq!(c.blocks.len(), 2);
        assert_eq!(c.tunnel_address, Some("10.244.0.128".parse().unwrap()));
        let v6: IpNetwork = "fd00:244::80/122".parse().unwrap();
        assert_eq!(c.next_hop_for(&v6).to_string(), "fd00:2::10");
        // Its IPv6 block claimed by another node: skipped.
        cl.insert(v6, "d".to_owned());
        let b = build(&records, &cl, &pools, &NodeSet::new(), ASN);
        assert_eq!(
            reasons(&b),
            vec![("c".into(), SkipReason::BlockNotClaimed, false)]
        );
        // And the record round-trips with both.
        let again = NodeRecord::of(c, ASN);
        assert_eq!(again.blocks.len(), 2);
        assert_eq!(again.address_v6, Some("fd00:2::10".parse().unwrap()));
    }

    #[test]
    fn a_node_without_ipv6_blocks_writes_no_ipv6_address() {
        // Agents from before IPv6 blocks refuse unknown keys: an IPv4-only
        // node's record stays as they know it.
        let node = ClusterNode {
            name: "a".into(),
            address: "10.0.1.10/24".parse().unwrap(),
            address_v6: Some("fd00:1::10".parse().unwrap()),
            blocks: vec!["10.244.0.0/26".parse().unwrap()],
            tunnel_address: None,
            reflector: None,
        };
        let json = String::from_utf8(NodeRecord::of(&node, ASN).to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"name":"a","address":"10.0.1.10/24","tunnel-address":null,"blocks":["10.244.0.0/26"],"asn":64512,"route-reflector":null}"#
        );
    }

    #[test]
    fn records_round_trip() {
        let b = with_third(
            raw("c", &record("c", "10.0.2.10/24", "10.244.0.128/26"), 3),
            &NodeSet::new(),
        );
        let c = b.set.get("c").unwrap();
        let again = raw(
            "c",
            std::str::from_utf8(&NodeRecord::of(c, ASN).to_json()).unwrap(),
            3,
        );
        let cl = claims(&[("10.244.0.128/26", "c")]);
        assert_eq!(&parse(&again, &cl, ASN).unwrap(), c);
        assert_eq!(parse_node_key("/p", "/p/nodes/c"), Some("c"));
        assert_eq!(parse_node_key("/p", "/p/nodes/"), None);
        assert_eq!(node_key("/p", "c"), "/p/nodes/c");
    }
}
