//! Golden vectors: messages captured from real BIRD 2.0.12 and GoBGP 3.10
//! sessions (`tests/data/README.md` says how; `capture/run.sh` re-captures
//! them). Each decodes without a fault under its session's context and
//! re-encodes byte for byte, and the decoded values are what the daemons
//! were configured to announce.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_core::wire::*;

/// The session context of a capture scenario (tests/data/README.md).
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// iBGP 65001 over IPv4, no ADD-PATH.
    Ibgp,
    /// eBGP, the daemon in AS 65002, over IPv6.
    Ebgp,
    /// iBGP with ADD-PATH received for IPv4 and IPv6 unicast.
    AddPath,
}

fn context(s: Scenario) -> DecodeContext {
    match s {
        Scenario::Ibgp => DecodeContext::ibgp(),
        Scenario::Ebgp => DecodeContext::ebgp(65002),
        Scenario::AddPath => DecodeContext {
            add_path: AddPath {
                ipv4_unicast: true,
                ipv6_unicast: true,
            },
            ..DecodeContext::ibgp()
        },
    }
}

fn read(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decodes `file`, requires no fault and a byte-for-byte re-encoding.
fn golden(file: &str, s: Scenario) -> Message {
    let bytes = read(file);
    let ctx = context(s);
    let decoded = Message::decode(&bytes, &ctx).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(decoded.verdict(), Verdict::Accepted, "{file}");
    let again = decoded.message.to_bytes(&ctx).unwrap();
    assert_eq!(again, bytes, "{file} does not re-encode byte for byte");
    decoded.message
}

fn update(file: &str, s: Scenario) -> Update {
    match golden(file, s) {
        Message::Update(u) => u,
        m => panic!("{file}: {m:?}"),
    }
}

fn nets<'a>(prefixes: impl Iterator<Item = &'a Prefix>) -> BTreeSet<String> {
    prefixes.map(|p| p.network.to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const V4_ROUTES: &[&str] = &[
    "10.244.0.0/26",
    "10.244.0.64/26",
    "10.244.1.0/26",
    "10.244.2.0/24",
];
const V6_ROUTES: &[&str] = &[
    "fd00:244::/122",
    "fd00:244::40/122",
    "fd00:244::80/122",
    "fd00:244:1::/64",
];

/// The attributes every announcement carries (communities 65001:100 and
/// 65001:200, large community 65001:1:2, MED 50). BIRD originates static
/// routes as IGP, `gobgp global rib add` as INCOMPLETE (tshark agrees).
fn assert_common_attributes(u: &Update, file: &str) {
    let origin = if file.starts_with("gobgp") {
        Origin::Incomplete
    } else {
        Origin::Igp
    };
    assert_eq!(u.attribute(1), Some(&AttrValue::Origin(origin)), "{file}");
    assert_eq!(
        u.attribute(4),
        Some(&AttrValue::MultiExitDisc(50)),
        "{file}"
    );
    assert_eq!(
        u.attribute(8),
        Some(&AttrValue::Communities(vec![
            65001 << 16 | 100,
            65001 << 16 | 200
        ])),
        "{file}"
    );
    assert_eq!(
        u.attribute(32),
        Some(&AttrValue::LargeCommunities(vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2
        }])),
        "{file}"
    );
}

#[test]
fn opens_decode_with_the_capabilities_the_daemons_advertise() {
    for (file, hold) in [("bird2-open.bin", 240), ("gobgp-open.bin", 90)] {
        let Message::Open(open) = golden(file, Scenario::Ibgp) else {
            panic!("{file}")
        };
        assert_eq!(open.asn(), 65001, "{file}");
        assert_eq!(open.hold_time, hold, "{file}");
        assert_eq!(open.bgp_id, Ipv4Addr::new(10, 99, 0, 1), "{file}");
        let caps: Vec<&Capability> = open.capabilities().collect();
        for wanted in [
            Capability::Multiprotocol { afi: 1, safi: 1 },
            Capability::Multiprotocol { afi: 2, safi: 1 },
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
        ] {
            assert!(caps.contains(&&wanted), "{file} lacks {wanted:?}: {caps:?}");
        }
        assert!(
            caps.iter()
                .any(|c| matches!(c, Capability::GracefulRestart { .. })),
            "{file}"
        );
        assert!(
            caps.iter().any(|c| matches!(c, Capability::AddPath(_))),
            "{file}"
        );
    }
}

#[test]
fn keepalives_and_end_of_rib_markers_decode() {
    for d in ["bird2", "gobgp"] {
        assert_eq!(
            golden(&format!("{d}-keepalive.bin"), Scenario::Ibgp),
            Message::Keepalive
        );
        assert_eq!(
            update(&format!("{d}-eor-ipv4.bin"), Scenario::Ibgp).end_of_rib(),
            Some((1, 1))
        );
        assert_eq!(
            update(&format!("{d}-eor-ipv6.bin"), Scenario::Ibgp).end_of_rib(),
            Some((2, 1))
        );
    }
}

#[test]
fn ipv4_announcements_carry_the_configured_routes_and_attributes() {
    for d in ["bird2", "gobgp"] {
        let file = format!("{d}-update-ipv4-announce.bin");
        let u = update(&file, Scenario::Ibgp);
        assert!(
            nets(u.announced()).is_subset(&set(V4_ROUTES)),
            "{file}: {:?}",
            nets(u.announced())
        );
        assert!(!u.nlri.is_empty());
        assert_eq!(u.attribute(5), Some(&AttrValue::LocalPref(200)), "{file}");
        assert_eq!(
            u.attribute(3),
            Some(&AttrValue::NextHop(Ipv4Addr::new(10, 99, 0, 1))),
            "{file}"
        );
        assert_eq!(
            u.attribute(2),
            Some(&AttrValue::AsPath(AsPath::default())),
            "{file}: iBGP origin"
        );
        assert_common_attributes(&u, &file);
    }
}

#[test]
fn ipv6_announcements_carry_mp_reach_with_the_global_next_hop() {
    for d in ["bird2", "gobgp"] {
        let file = format!("{d}-update-ipv6-announce.bin");
        let u = update(&file, Scenario::Ibgp);
        let mp = u.mp_reach().expect("MP_REACH_NLRI");
        assert!(
            nets(mp.nlri.prefixes().iter()).is_subset(&set(V6_ROUTES)),
            "{file}"
        );
        assert!(!mp.nlri.prefixes().is_empty());
        let NextHop::Ipv6 { global, .. } = &mp.next_hop else {
            panic!("{file}: {:?}", mp.next_hop)
        };
        assert_eq!(*global, "fd99::1".parse::<Ipv6Addr>().unwrap(), "{file}");
        assert_common_attributes(&u, &file);
    }
}

#[test]
fn bird_sends_a_global_and_link_local_next_hop_on_a_shared_link() {
    let u = update("bird2-update-ipv6-linklocal-nh.bin", Scenario::Ebgp);
    let mp = u.mp_reach().unwrap();
    assert_eq!(
        mp.next_hop,
        NextHop::Ipv6 {
            global: "fd99::1".parse().unwrap(),
            link_local: Some("fe80::99:ff:fe00:1".parse().unwrap()),
        }
    );
    assert_eq!(
        u.attribute(2),
        Some(&AttrValue::AsPath(AsPath::sequence(vec![65002])))
    );
}

#[test]
fn ebgp_announcements_start_the_path_with_the_peer_as_and_carry_no_local_pref() {
    for file in [
        "bird2-ebgp-update-ipv4-announce.bin",
        "gobgp-ebgp-update-ipv4-announce.bin",
        "gobgp-ebgp-update-ipv6-announce.bin",
    ] {
        let u = update(file, Scenario::Ebgp);
        assert_eq!(
            u.attribute(2),
            Some(&AttrValue::AsPath(AsPath::sequence(vec![65002]))),
            "{file}"
        );
        assert_eq!(u.attribute(5), None, "{file}");
        assert!(u.announced().count() > 0, "{file}");
    }
}

#[test]
fn withdrawals_name_the_removed_routes() {
    let withdrawn_v4 = set(&["10.244.1.0/26", "10.244.2.0/24"]);
    let withdrawn_v6 = set(&["fd00:244::80/122", "fd00:244:1::/64"]);
    for d in ["bird2", "gobgp"] {
        let v4 = update(&format!("{d}-update-ipv4-withdraw.bin"), Scenario::Ibgp);
        assert!(
            !v4.withdrawn.is_empty() && nets(v4.withdrawals()).is_subset(&withdrawn_v4),
            "{d}"
        );
        let v6 = update(&format!("{d}-update-ipv6-withdraw.bin"), Scenario::Ibgp);
        assert!(
            v6.mp_unreach().is_some() && nets(v6.withdrawals()).is_subset(&withdrawn_v6),
            "{d}"
        );
        assert!(v6.withdrawals().count() > 0);
    }
}

#[test]
fn add_path_updates_carry_path_identifiers() {
    for d in ["bird2", "gobgp"] {
        for kind in [
            "update-ipv4-addpath",
            "update-ipv6-addpath",
            "update-ipv4-withdraw-addpath",
        ] {
            let file = format!("{d}-{kind}.bin");
            let u = update(&file, Scenario::AddPath);
            let all: Vec<&Prefix> = u.announced().chain(u.withdrawals()).collect();
            assert!(!all.is_empty(), "{file}");
            assert!(all.iter().all(|p| p.path_id.is_some()), "{file}");
            // The same bytes without ADD-PATH are misread: a path ID is
            // taken for a prefix, which is why the context is explicit.
            let plain = Message::decode(&read(&file), &DecodeContext::ibgp());
            assert!(
                plain.is_err()
                    || plain.as_ref().is_ok_and(
                        |d| !d.faults.is_empty() || d.message != Message::Update(u.clone())
                    ),
                "{file}"
            );
        }
    }
}

#[test]
fn shutdown_notifications_carry_the_shutdown_communication() {
    for d in ["bird2", "gobgp"] {
        let Message::Notification(n) =
            golden(&format!("{d}-notification-shutdown.bin"), Scenario::Ibgp)
        else {
            panic!("{d}")
        };
        assert_eq!((n.code, n.subcode), (6, 2), "{d}");
        assert_eq!(
            n.shutdown_communication(),
            Some("golden vector shutdown"),
            "{d}"
        );
    }
}

#[test]
fn every_captured_file_is_covered_by_a_test() {
    let dir = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".bin"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 28, "{files:?}");
    for f in &files {
        let scenario = if f.contains("addpath") {
            Scenario::AddPath
        } else if f.contains("ebgp") || f.contains("linklocal") {
            Scenario::Ebgp
        } else {
            Scenario::Ibgp
        };
        golden(f, scenario);
    }
}
