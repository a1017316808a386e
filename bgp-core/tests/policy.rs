//! Policy: prefix-list matching (FRR semantics), first match wins, default
//! actions, the RFC 8212 eBGP default, and maximum-prefix limits with the
//! RFC 4486 Cease NOTIFICATION.

use bgp_core::policy::{
    Action, MaxPrefix, MaxPrefixAction, MaxPrefixTracker, MaxPrefixVerdict, Policy, PrefixFilter,
    PrefixRule,
};
use bgp_core::wire::{DecodeContext, Family, Message};
use ipnetwork::IpNetwork;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn rule(prefix: &str, ge: Option<u8>, le: Option<u8>) -> PrefixRule {
    PrefixRule::new(net(prefix), ge, le, Action::Accept).unwrap()
}

/// Which of /8, /16, /24, /26, /32 inside 10.0.0.0/8 a rule matches.
fn lengths_matched(r: &PrefixRule) -> Vec<u8> {
    [
        "10.0.0.0/8",
        "10.1.0.0/16",
        "10.1.2.0/24",
        "10.1.2.64/26",
        "10.1.2.3/32",
    ]
    .iter()
    .map(|s| net(s))
    .filter(|n| r.matches(n))
    .map(|n| n.prefix())
    .collect()
}

#[test]
fn ge_le_matrix_follows_frr_prefix_list() {
    // Neither: exact length only.
    assert_eq!(lengths_matched(&rule("10.0.0.0/8", None, None)), vec![8]);
    // ge only: ge up to the family maximum.
    assert_eq!(
        lengths_matched(&rule("10.0.0.0/8", Some(24), None)),
        vec![24, 26, 32]
    );
    // le only: the rule's length up to le.
    assert_eq!(
        lengths_matched(&rule("10.0.0.0/8", None, Some(24))),
        vec![8, 16, 24]
    );
    // Both: ge ..= le.
    assert_eq!(
        lengths_matched(&rule("10.0.0.0/8", Some(16), Some(26))),
        vec![16, 24, 26]
    );
    assert_eq!(
        lengths_matched(&rule("10.0.0.0/8", Some(26), Some(26))),
        vec![26]
    );
    // ge equal to the rule's length is the same as le alone.
    assert_eq!(
        lengths_matched(&rule("10.0.0.0/8", Some(8), Some(16))),
        vec![8, 16]
    );
}

#[test]
fn rule_matches_only_inside_its_prefix_and_family() {
    let r = rule("10.1.0.0/16", None, Some(32));
    assert!(r.matches(&net("10.1.255.0/24")));
    assert!(!r.matches(&net("10.2.0.0/24")));
    assert!(!r.matches(&net("10.0.0.0/8")), "shorter than the rule");
    assert!(!r.matches(&net("2001:db8::/32")));
    let v6 = rule("2001:db8::/32", Some(48), Some(64));
    assert!(v6.matches(&net("2001:db8:1::/48")));
    assert!(v6.matches(&net("2001:db8:1:2::/64")));
    assert!(!v6.matches(&net("2001:db8:1:2::/80")));
    assert!(!v6.matches(&net("2001:db9::/48")));
    // Host bits of the rule itself do not matter.
    let sloppy = PrefixRule::exact(net("10.1.2.3/16"), Action::Accept);
    assert!(sloppy.matches(&net("10.1.0.0/16")));
}

#[test]
fn impossible_ranges_are_refused() {
    for (ge, le) in [
        (Some(4), None),
        (Some(24), Some(16)),
        (None, Some(33)),
        (Some(33), None),
    ] {
        assert!(
            PrefixRule::new(net("10.0.0.0/8"), ge, le, Action::Accept).is_err(),
            "{ge:?} {le:?}"
        );
    }
    assert!(PrefixRule::new(net("2001:db8::/32"), Some(64), Some(128), Action::Reject).is_ok());
}

#[test]
fn first_matching_rule_wins() {
    let f = PrefixFilter::new(
        vec![
            PrefixRule::new(net("10.1.0.0/16"), None, Some(32), Action::Reject).unwrap(),
            PrefixRule::new(net("10.0.0.0/8"), None, Some(32), Action::Accept).unwrap(),
        ],
        Action::Reject,
    );
    assert_eq!(f.evaluate(&net("10.1.2.0/24")), Action::Reject);
    assert_eq!(f.evaluate(&net("10.2.2.0/24")), Action::Accept);
    let reversed = PrefixFilter::new(f.rules.iter().rev().copied().collect(), Action::Reject);
    assert_eq!(reversed.evaluate(&net("10.1.2.0/24")), Action::Accept);
}

#[test]
fn default_action_applies_when_no_rule_matches() {
    let rules = vec![PrefixRule::exact(net("10.0.0.0/8"), Action::Reject)];
    let deny = PrefixFilter::new(rules.clone(), Action::Reject);
    let permit = PrefixFilter::new(rules, Action::Accept);
    assert!(!deny.accepts(&net("192.168.0.0/24")));
    assert!(permit.accepts(&net("192.168.0.0/24")));
    assert!(!permit.accepts(&net("10.0.0.0/8")));
    assert!(!PrefixFilter::new(vec![], Action::Reject).accepts(&net("10.0.0.0/8")));
}

#[test]
fn ebgp_without_policy_exchanges_nothing_rfc8212() {
    let none = Policy::default();
    let p = net("192.168.0.0/26");
    assert!(!none.import_allows(true, &p));
    assert!(!none.export_allows(true, &p));
}

#[test]
fn ibgp_without_policy_accepts_everything() {
    let none = Policy::default();
    let p = net("192.168.0.0/26");
    assert!(none.import_allows(false, &p));
    assert!(none.export_allows(false, &p));
}

#[test]
fn explicit_policy_applies_per_direction_to_both_kinds() {
    let pods = PrefixFilter::new(
        vec![PrefixRule::new(net("192.168.0.0/16"), Some(26), Some(26), Action::Accept).unwrap()],
        Action::Reject,
    );
    let p = Policy {
        import: Some(pods),
        export: None,
    };
    for ebgp in [true, false] {
        assert!(p.import_allows(ebgp, &net("192.168.4.0/26")));
        assert!(!p.import_allows(ebgp, &net("192.168.4.0/24")));
    }
    // Export is still the RFC 8212 default.
    assert!(!p.export_allows(true, &net("192.168.4.0/26")));
    assert!(p.export_allows(false, &net("192.168.4.0/26")));
}

#[test]
fn warn_only_limit_warns_once_per_crossing() {
    let mut t = MaxPrefixTracker::new(
        MaxPrefix::new(10, MaxPrefixAction::WarnOnly),
        Family::Ipv4Unicast,
    );
    assert_eq!(t.check(10), MaxPrefixVerdict::Ok);
    assert_eq!(
        t.check(11),
        MaxPrefixVerdict::Warn {
            count: 11,
            limit: 10
        }
    );
    assert_eq!(t.check(50), MaxPrefixVerdict::Ok);
    // Back under, then over again: warns again.
    assert_eq!(t.check(9), MaxPrefixVerdict::Ok);
    assert_eq!(
        t.check(12),
        MaxPrefixVerdict::Warn {
            count: 12,
            limit: 10
        }
    );
}

#[test]
fn max_prefix_warns_once_at_threshold_then_ceases_with_notification() {
    let limit = MaxPrefix {
        limit: 1000,
        action: MaxPrefixAction::Cease,
        warn_percent: Some(75),
        restart_after: None,
    };
    let mut t = MaxPrefixTracker::new(limit, Family::Ipv4Unicast);
    assert_eq!(t.check(750), MaxPrefixVerdict::Ok);
    assert_eq!(
        t.check(751),
        MaxPrefixVerdict::Warn {
            count: 751,
            limit: 1000
        }
    );
    assert_eq!(t.check(900), MaxPrefixVerdict::Ok);
    assert_eq!(t.check(1000), MaxPrefixVerdict::Ok);
    let MaxPrefixVerdict::Cease(n) = t.check(1001) else {
        panic!("over the limit must cease");
    };
    // RFC 4486 §4: Cease (6) / Maximum Number of Prefixes Reached (1),
    // data AFI 1, SAFI 1, limit 1000.
    let bytes = Message::Notification(n)
        .to_bytes(&DecodeContext::default())
        .unwrap();
    let mut expected = vec![0xff; 16];
    expected.extend_from_slice(&[0x00, 0x1c, 0x03, 0x06, 0x01]);
    expected.extend_from_slice(&[0x00, 0x01, 0x01, 0x00, 0x00, 0x03, 0xe8]);
    assert_eq!(bytes, expected);
}

#[test]
fn ipv6_cease_carries_afi_2() {
    let mut t = MaxPrefixTracker::new(
        MaxPrefix::new(0, MaxPrefixAction::Cease),
        Family::Ipv6Unicast,
    );
    let MaxPrefixVerdict::Cease(n) = t.check(1) else {
        panic!("must cease");
    };
    assert_eq!((n.code, n.subcode), (6, 1));
    assert_eq!(n.data, vec![0x00, 0x02, 0x01, 0, 0, 0, 0]);
}

#[test]
fn config_types_use_kebab_case_and_check_ranges() {
    let json = r#"{
        "import": {
            "rules": [
                {"prefix": "10.0.0.0/8", "le": 26, "action": "accept"},
                {"prefix": "2001:db8::/32", "ge": 48, "le": 64, "action": "reject"}
            ],
            "default": "reject"
        }
    }"#;
    let p: Policy = serde_json::from_str(json).unwrap();
    let f = p.import.as_ref().unwrap();
    assert_eq!(f.rules[0], rule("10.0.0.0/8", None, Some(26)));
    assert_eq!(f.rules[1].action, Action::Reject);
    assert_eq!(p.export, None);
    let back: Policy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);

    let m: MaxPrefix =
        serde_json::from_str(r#"{"limit": 5, "action": "warn-only", "warn-percent": 80}"#).unwrap();
    assert_eq!(m.action, MaxPrefixAction::WarnOnly);
    assert_eq!(m.warn_percent, Some(80));

    let bad = r#"{"prefix": "10.0.0.0/8", "ge": 4, "action": "accept"}"#;
    let err = serde_json::from_str::<PrefixRule>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid prefix range"), "{err}");
    let typo = r#"{"prefix": "10.0.0.0/8", "action": "accept", "lee": 9}"#;
    assert!(serde_json::from_str::<PrefixRule>(typo).is_err());
}
