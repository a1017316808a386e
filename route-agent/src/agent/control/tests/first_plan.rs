//! The first plan of an agent that finds routes of an earlier run in the
//! kernel waits for every peer's End-of-RIB, per negotiated family, with
//! or without graceful restart.

use super::*;

/// [`DIRECT`] without graceful restart.
fn direct_without_gr() -> String {
    format!("{DIRECT}graceful-restart: {{enabled: false}}\n")
}

const C_VIA_7: &str = "10.244.3.0/26 via 10.0.0.7 dev eth0 onlink";

#[test]
fn without_graceful_restart_routes_installed_hold_the_first_plan_until_every_peer_sent_end_of_rib()
{
    let (mut c, t0, out) = start(&direct_without_gr(), true);
    // Planned now, only our blackhole would be in it: the kernel's routes
    // to B and C would be deleted, then added back.
    assert!(plans(&out).is_empty(), "held: {out:?}");
    assert_eq!(c.hold_until(), Some(t0 + first_sync::WAIT_WITHOUT_GR));
    let t1 = t0 + Duration::from_secs(1);
    c.handle_routes(
        t1,
        &[
            peer_up("10.0.0.6", &[Family::Ipv4Unicast]),
            best("10.244.2.0/26", "10.0.0.6", "10.0.0.6"),
            end_of_rib("10.0.0.6", Family::Ipv4Unicast),
            peer_up("10.0.0.7", &[Family::Ipv4Unicast]),
            best("10.244.3.0/26", "10.0.0.7", "10.0.0.7"),
        ],
    );
    assert!(plans(&drain(&mut c)).is_empty(), "10.0.0.7 still due");
    c.handle_routes(t1, &[end_of_rib("10.0.0.7", Family::Ipv4Unicast)]);
    let out = drain(&mut c);
    assert!(matches!(events(&out)[0], Event::InSync), "{out:?}");
    assert_eq!(
        plans(&out),
        [vec![
            BLACKHOLE.to_owned(),
            B_VIA_6.to_owned(),
            C_VIA_7.to_owned()
        ]]
    );
    assert_eq!(c.hold_until(), None);
}

#[test]
fn without_graceful_restart_a_peer_that_never_comes_up_holds_the_first_plan_fifteen_seconds_at_most()
 {
    let (mut c, t0, _) = start(&direct_without_gr(), true);
    c.handle_routes(
        t0,
        &[
            peer_up("10.0.0.6", &[Family::Ipv4Unicast]),
            best("10.244.2.0/26", "10.0.0.6", "10.0.0.6"),
            end_of_rib("10.0.0.6", Family::Ipv4Unicast),
        ],
    );
    assert!(plans(&drain(&mut c)).is_empty());
    let bound = t0 + Duration::from_secs(15);
    assert_eq!(c.poll_timeout(), Some(bound), "before the resync tick");
    c.handle_timeout(bound);
    let out = drain(&mut c);
    match events(&out).first() {
        Some(Event::HoldExpired { missing }) => assert_eq!(missing, &[ip("10.0.0.7")]),
        other => panic!("expected HoldExpired, got {other:?}"),
    }
    assert_eq!(
        plans(&out),
        [vec![BLACKHOLE.to_owned(), B_VIA_6.to_owned()]]
    );
}

#[test]
fn a_dual_stack_peer_holds_the_first_plan_until_its_ipv6_end_of_rib_too() {
    // Only IPv4 End-of-RIB was awaited: the plan made at it had no IPv6
    // routes yet, and the kernel's were deleted and added back.
    let (mut c, t0, _) = start(&direct_without_gr(), true);
    let both = [Family::Ipv4Unicast, Family::Ipv6Unicast];
    c.handle_routes(
        t0,
        &[
            peer_up("10.0.0.6", &both),
            end_of_rib("10.0.0.6", Family::Ipv4Unicast),
            end_of_rib("10.0.0.6", Family::Ipv6Unicast),
            peer_up("10.0.0.7", &both),
            best("10.244.3.0/26", "10.0.0.7", "10.0.0.7"),
            end_of_rib("10.0.0.7", Family::Ipv4Unicast),
        ],
    );
    assert!(plans(&drain(&mut c)).is_empty(), "10.0.0.7's IPv6 due");
    assert!(!c.is_synced());
    c.handle_routes(t0, &[end_of_rib("10.0.0.7", Family::Ipv6Unicast)]);
    let out = drain(&mut c);
    assert!(matches!(events(&out)[0], Event::InSync), "{out:?}");
    assert_eq!(plans(&out).len(), 1);
}

#[test]
fn a_first_start_is_not_held_with_or_without_graceful_restart() {
    for config in [DIRECT.to_owned(), direct_without_gr()] {
        let (c, _, out) = start(&config, false);
        assert_eq!(plans(&out), [vec![BLACKHOLE.to_owned()]], "{config}");
        assert!(c.is_synced());
    }
}
