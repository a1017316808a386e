//! The session state machine, driven as a pair on a virtual clock: every
//! state and transition, every timer, collisions and each OPEN error.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use bgp_core::session::{ConnId, DownReason, SessionConfig, SessionEvent, State};
use bgp_core::wire::iana::notify;
use bgp_core::wire::*;
use common::{Pair, Side, configs};

fn established_pair() -> Pair {
    let (a, mut b) = configs();
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.states(), (State::Established, State::Established));
    p
}

fn notifications_sent(p: &Pair, side: Side) -> Vec<Notification> {
    p.events_of(side)
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Down(DownReason::NotificationSent(n)) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

/// NOTIFICATIONs `side` put on the wire, decoded.
fn wire_notifications(p: &Pair, side: Side) -> Vec<Notification> {
    p.wire
        .iter()
        .filter(|(_, s, b)| *s == side && b[18] == 3)
        .map(|(_, _, b)| {
            match Message::decode(b, &DecodeContext::default())
                .unwrap()
                .message
            {
                Message::Notification(n) => n,
                m => panic!("{m:?}"),
            }
        })
        .collect()
}

#[test]
fn active_and_passive_sessions_walk_every_state_to_established() {
    let p = established_pair();
    assert_eq!(
        p.state_trace(Side::A),
        [
            State::Idle,
            State::Connect,
            State::OpenSent,
            State::OpenConfirm,
            State::Established
        ]
    );
    assert_eq!(
        p.state_trace(Side::B),
        [
            State::Idle,
            State::Active,
            State::OpenSent,
            State::OpenConfirm,
            State::Established
        ]
    );
    let n = p.a.negotiated().expect("negotiated");
    assert_eq!(n.peer_as, 65001);
    assert_eq!(n.peer_id, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(n.hold_time, 90);
    assert_eq!(n.families, [Family::Ipv4Unicast, Family::Ipv6Unicast]);
    assert!(
        n.rx.four_octet_as && n.rx.extended_message && n.route_refresh && n.enhanced_route_refresh
    );
}

#[test]
fn keepalives_every_third_of_the_hold_time_keep_the_session_up() {
    let mut p = established_pair();
    let before = p.wire.len();
    p.advance(Duration::from_secs(600));
    assert_eq!(p.states(), (State::Established, State::Established));
    let keepalives_from_a = p.wire[before..]
        .iter()
        .filter(|(_, s, b)| *s == Side::A && b.len() == 19 && b[18] == 4)
        .count();
    // 600 s / 30 s = 20 keepalives.
    assert_eq!(keepalives_from_a, 20);
}

#[test]
fn smaller_hold_time_wins_negotiation() {
    let (mut a, mut b) = configs();
    a.hold_time = 240;
    b.hold_time = 9;
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.a.negotiated().unwrap().hold_time, 9);
    assert_eq!(
        p.a.negotiated().unwrap().keepalive(),
        Some(Duration::from_secs(3))
    );
}

#[test]
fn hold_timer_expiry_sends_hold_timer_expired_and_goes_idle() {
    let mut p = established_pair();
    p.mute = Some(Side::B); // B's keepalives no longer arrive
    p.advance(Duration::from_secs(89));
    assert_eq!(p.a.state(), State::Established);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.a.state(), State::Idle);
    let sent = notifications_sent(&p, Side::A);
    assert_eq!(
        sent,
        [Notification::new(notify::HOLD_TIMER_EXPIRED, 0, vec![])]
    );
}

#[test]
fn session_restarts_after_an_error_and_reestablishes() {
    let mut p = established_pair();
    p.mute = Some(Side::B);
    p.advance(Duration::from_secs(91));
    assert_eq!(p.a.state(), State::Idle);
    p.mute = None;
    p.advance(Duration::from_secs(30));
    assert_eq!(p.states(), (State::Established, State::Established));
}

#[test]
fn connect_retry_backs_off_with_jitter_up_to_the_cap() {
    let (a, b) = configs();
    let mut p = Pair::new(a, b);
    p.network_up = false;
    p.a.handle_start(p.now);
    p.drive();
    p.advance(Duration::from_secs(1200));
    let connects: Vec<Duration> = p
        .events
        .iter()
        .filter(|(_, s, e)| *s == Side::A && *e == SessionEvent::Connect)
        .map(|(t, _, _)| *t)
        .collect();
    let gaps: Vec<f64> = connects
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    // base 5 s doubling to the 120 s cap, each scaled by 0.75..1.0.
    let nominal = [5.0, 10.0, 20.0, 40.0, 80.0, 120.0, 120.0];
    for (gap, nom) in gaps.iter().zip(nominal) {
        assert!(
            *gap >= 0.75 * nom && *gap <= nom,
            "gap {gap} outside jitter of {nom}: {gaps:?}"
        );
    }
    assert!(gaps.len() >= nominal.len(), "{gaps:?}");
    assert!(
        gaps.windows(2).any(|w| w[0] != w[1]),
        "jitter varies the intervals"
    );
}

#[test]
fn state_goes_connect_then_active_when_the_connection_fails() {
    let (a, b) = configs();
    let mut p = Pair::new(a, b);
    p.network_up = false;
    p.a.handle_start(p.now);
    p.drive();
    assert_eq!(p.a.state(), State::Active);
    assert_eq!(
        p.state_trace(Side::A),
        [State::Idle, State::Connect, State::Active]
    );
}

#[test]
fn passive_session_never_connects() {
    let (mut a, mut b) = configs();
    a.passive = true;
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    p.advance(Duration::from_secs(600));
    assert!(p.events.iter().all(|(_, _, e)| *e != SessionEvent::Connect));
    assert_eq!(p.states(), (State::Active, State::Active));
}

#[test]
fn idle_session_refuses_connections() {
    let (a, b) = configs();
    let mut p = Pair::new(a, b);
    p.a.handle_start(p.now); // B never started
    p.drive();
    assert_eq!(p.b.state(), State::Idle);
    assert!(
        p.events_of(Side::B)
            .contains(&&SessionEvent::Close(ConnId::Inbound))
    );
}

#[test]
fn delay_open_holds_our_open_back_until_the_timer() {
    let (mut a, mut b) = configs();
    a.delay_open = Some(Duration::from_secs(5));
    b.delay_open = Some(Duration::from_secs(5));
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    assert!(p.wire.is_empty(), "no OPEN before the delay");
    p.advance(Duration::from_secs(5));
    assert_eq!(p.states(), (State::Established, State::Established));
    assert!(p.wire.iter().all(|(t, _, _)| *t >= Duration::from_secs(5)));
}

#[test]
fn delay_open_answers_at_once_when_the_peer_opens_first() {
    let (a, mut b) = configs();
    b.delay_open = Some(Duration::from_secs(60));
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.states(), (State::Established, State::Established));
    assert_eq!(p.elapsed(), Duration::ZERO);
}

#[test]
fn send_hold_timer_closes_a_session_whose_peer_stops_reading() {
    // Hold time 0: no keepalives, so only the send hold timer (RFC 9687)
    // notices a peer that stopped reading.
    let (mut a, mut b) = configs();
    a.hold_time = 0;
    b.hold_time = 0;
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.states(), (State::Established, State::Established));
    p.stalled = Some(Side::A); // nothing A queues is taken from it
    p.a.send_update(p.now, &Update::end_of_rib_marker(Family::Ipv4Unicast))
        .unwrap();
    p.advance(Duration::from_secs(8 * 60 - 1));
    assert_eq!(p.a.state(), State::Established);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.a.state(), State::Idle);
    assert_eq!(
        notifications_sent(&p, Side::A),
        [Notification::new(
            notify::SEND_HOLD_TIMER_EXPIRED,
            0,
            vec![]
        )]
    );
}

#[test]
fn simultaneous_open_ends_with_one_session_on_the_higher_ids_connection() {
    let (a, b) = configs(); // both active; B (10.0.0.2) has the higher ID
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.states(), (State::Established, State::Established));
    // B's outbound connection (A's inbound) survives; A's was closed with
    // Cease / Connection Collision Resolution.
    assert!(p.link_ba && !p.link_ab, "ab={} ba={}", p.link_ab, p.link_ba);
    let collision = Notification::new(
        notify::CEASE,
        notify::cease::CONNECTION_COLLISION_RESOLUTION,
        vec![],
    );
    let all: Vec<_> = wire_notifications(&p, Side::A)
        .into_iter()
        .chain(wire_notifications(&p, Side::B))
        .collect();
    assert!(all.contains(&collision), "{all:?}");
    let established = |side| {
        p.events_of(side)
            .iter()
            .filter(|e| matches!(e, SessionEvent::Established(_)))
            .count()
    };
    assert_eq!((established(Side::A), established(Side::B)), (1, 1));
}

#[test]
fn simultaneous_open_resolves_the_same_way_when_the_lower_id_connects_first() {
    let (mut a, b) = configs();
    a.router_id = Ipv4Addr::new(10, 0, 0, 9); // now A has the higher ID
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.states(), (State::Established, State::Established));
    assert!(p.link_ab && !p.link_ba);
}

/// A (router ID `a_id`) is established with passive B (graceful restart
/// on both) over A's outbound connection; then a second connection from B
/// arrives at A carrying B's OPEN, with the Restart State bit if
/// `restarted`.
fn second_connection_at_a(a_id: Ipv4Addr, restarted: bool) -> Pair {
    let (mut a, mut b) = configs();
    a.router_id = a_id;
    a.graceful_restart = Some(Default::default());
    b.graceful_restart = Some(Default::default());
    b.passive = true;
    let mut b_again = b.clone();
    b_again.graceful_restart = Some(bgp_core::session::GracefulRestartConfig {
        restarting: restarted,
        ..Default::default()
    });
    let b_open = Message::Open(b_again.open())
        .to_bytes(&DecodeContext::default())
        .unwrap();
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.states(), (State::Established, State::Established));
    while p.a.poll_event().is_some() {}
    while p.a.poll_transmit(p.now).is_some() {}
    let now = p.now;
    p.a.handle_connected(now, ConnId::Inbound);
    while p.a.poll_transmit(p.now).is_some() {}
    p.a.handle_bytes(now, ConnId::Inbound, &b_open);
    p
}

fn collision_cease() -> Notification {
    Notification::new(
        notify::CEASE,
        notify::cease::CONNECTION_COLLISION_RESOLUTION,
        vec![],
    )
}

#[test]
fn new_connection_while_established_is_closed_and_the_established_one_kept() {
    // As RFC 4271 §6.8 (and BIRD, GoBGP) say, whichever identifier is
    // higher: both ends must agree on which connection survives.
    for a_id in [Ipv4Addr::new(10, 0, 0, 9), Ipv4Addr::new(10, 0, 0, 1)] {
        let mut p = second_connection_at_a(a_id, false);
        let mut events = Vec::new();
        while let Some(e) = p.a.poll_event() {
            events.push(e);
        }
        assert!(
            events.contains(&SessionEvent::Close(ConnId::Inbound)),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|e| matches!(e, SessionEvent::Down(_))),
            "{events:?}"
        );
        assert_eq!(p.a.state(), State::Established);
        let cease: Vec<_> = std::iter::from_fn(|| p.a.poll_transmit(p.now))
            .filter(|(id, _)| *id == ConnId::Inbound)
            .filter_map(|(_, b)| {
                match Message::decode(&b, &DecodeContext::default()).ok()?.message {
                    Message::Notification(n) => Some(n),
                    _ => None,
                }
            })
            .collect();
        assert_eq!(
            cease,
            [collision_cease()],
            "the closed connection is told why"
        );
    }
}

#[test]
fn a_restarted_peers_new_connection_replaces_the_established_one() {
    // RFC 4724 §4.2: the peer's OPEN carries the Restart State bit, so the
    // Established connection is dead; it goes (as a connection loss, so
    // the peer's routes are kept stale) and the new one continues.
    let mut p = second_connection_at_a(Ipv4Addr::new(10, 0, 0, 1), true);
    let mut events = Vec::new();
    while let Some(e) = p.a.poll_event() {
        events.push(e);
    }
    assert!(
        events.contains(&SessionEvent::Close(ConnId::Outbound)),
        "{events:?}"
    );
    assert!(
        events.contains(&SessionEvent::Down(DownReason::ConnectionClosed)),
        "{events:?}"
    );
    assert_eq!(
        p.a.state(),
        State::OpenConfirm,
        "continuing on the new connection"
    );
}

fn open_error(a_config: SessionConfig, b_config: SessionConfig) -> Notification {
    let mut b_config = b_config;
    b_config.passive = true;
    let mut p = Pair::new(a_config, b_config);
    p.start_both();
    assert_ne!(p.b.state(), State::Established);
    match p.b.last_down() {
        Some(DownReason::NotificationSent(n)) => n.clone(),
        other => panic!("B refused nothing: {other:?}, states {:?}", p.states()),
    }
}

#[test]
fn open_with_the_wrong_peer_as_is_refused_with_bad_peer_as() {
    let (a, mut b) = configs();
    b.peer_as = 65002;
    b.local_as = 65002;
    let n = open_error(a, b);
    assert_eq!((n.code, n.subcode), (2, 2));
}

#[test]
fn open_with_our_own_identifier_on_ibgp_is_refused_with_bad_bgp_identifier() {
    let (mut a, b) = configs();
    a.router_id = b.router_id;
    let n = open_error(a, b);
    assert_eq!((n.code, n.subcode), (2, 3));
}

#[test]
fn open_with_a_hold_time_below_our_minimum_is_refused() {
    let (mut a, mut b) = configs();
    a.hold_time = 5;
    b.min_hold_time = 10;
    let n = open_error(a, b);
    assert_eq!((n.code, n.subcode), (2, 6));
}

#[test]
fn open_without_a_required_capability_is_refused_naming_it() {
    let (mut a, mut b) = configs();
    a.families = vec![Family::Ipv4Unicast];
    b.required_capabilities = vec![Capability::Multiprotocol { afi: 2, safi: 1 }];
    let n = open_error(a, b);
    assert_eq!((n.code, n.subcode, n.data), (2, 7, vec![1, 4, 0, 2, 0, 1]));
}

/// B in OpenSent receives these raw bytes from A's side.
fn raw_from_a(bytes: &[u8]) -> Notification {
    let (a, mut b) = configs();
    b.passive = true;
    let mut p = Pair::new(a, b);
    let now = p.now;
    p.b.handle_start(now);
    p.b.handle_connected(now, ConnId::Inbound);
    p.b.handle_bytes(now, ConnId::Inbound, bytes);
    assert_eq!(p.b.state(), State::Idle);
    let mut n = None;
    while let Some((_, b)) = p.b.poll_transmit(now) {
        if let Ok(d) = Message::decode(&b, &DecodeContext::default())
            && let Message::Notification(x) = d.message
        {
            n = Some(x);
        }
    }
    n.expect("a NOTIFICATION")
}

fn header(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

#[test]
fn open_with_version_3_is_refused_with_unsupported_version() {
    let n = raw_from_a(&header(1, &[3, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 0]));
    assert_eq!((n.code, n.subcode, n.data), (2, 1, vec![0, 4]));
}

#[test]
fn open_with_an_unknown_optional_parameter_is_refused() {
    let n = raw_from_a(&header(1, &[4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, 3, 7, 1, 0]));
    assert_eq!((n.code, n.subcode), (2, 4));
}

#[test]
fn open_with_hold_time_two_is_refused_with_unacceptable_hold_time() {
    let n = raw_from_a(&header(1, &[4, 0xfd, 0xe9, 0, 2, 10, 0, 0, 1, 0]));
    assert_eq!((n.code, n.subcode), (2, 6));
}

#[test]
fn keepalive_before_open_is_an_fsm_error_in_open_sent() {
    let n = raw_from_a(&header(4, &[]));
    assert_eq!((n.code, n.subcode), (notify::FSM, 1));
}

#[test]
fn a_broken_marker_is_connection_not_synchronized() {
    let mut m = header(4, &[]);
    m[0] = 0;
    let n = raw_from_a(&m);
    assert_eq!((n.code, n.subcode), (1, 1));
}

#[test]
fn update_in_open_confirm_is_an_fsm_error() {
    let (a, mut b) = configs();
    b.passive = true;
    let mut p = Pair::new(a, b);
    let now = p.now;
    p.b.handle_start(now);
    p.b.handle_connected(now, ConnId::Inbound);
    let open = Message::Open(configs().0.open())
        .to_bytes(&DecodeContext::default())
        .unwrap();
    p.b.handle_bytes(now, ConnId::Inbound, &open);
    assert_eq!(p.b.state(), State::OpenConfirm);
    p.b.handle_bytes(now, ConnId::Inbound, &header(2, &[0, 0, 0, 0]));
    assert_eq!(p.b.state(), State::Idle);
    assert!(matches!(
        p.b.last_down(),
        Some(DownReason::NotificationSent(n)) if (n.code, n.subcode) == (notify::FSM, 2)
    ));
}

#[test]
fn admin_stop_sends_cease_with_the_shutdown_communication() {
    let mut p = established_pair();
    let now = p.now;
    p.a.handle_stop(now, Notification::admin_shutdown("node drain"));
    p.drive();
    assert_eq!(p.a.state(), State::Idle);
    let received = p.events_of(Side::B).into_iter().find_map(|e| match e {
        SessionEvent::Down(DownReason::NotificationReceived(n)) => Some(n.clone()),
        _ => None,
    });
    assert_eq!(
        received
            .and_then(|n| n.shutdown_communication().map(str::to_owned))
            .as_deref(),
        Some("node drain")
    );
    // A stays down: no reconnect after a manual stop.
    p.advance(Duration::from_secs(600));
    assert_eq!(p.a.state(), State::Idle);
}

#[test]
fn peer_closing_the_connection_takes_the_session_down() {
    let mut p = established_pair();
    let now = p.now;
    p.b.handle_closed(now, ConnId::Inbound);
    p.drive();
    assert!(
        p.events_of(Side::B)
            .contains(&&SessionEvent::Down(DownReason::ConnectionClosed))
    );
}

#[test]
fn updates_flow_and_a_treat_as_withdraw_keeps_the_session_up() {
    let mut p = established_pair();
    let now = p.now;
    // A malformed ORIGIN (value 9) on an otherwise good UPDATE.
    let mut attrs = vec![
        PathAttribute::new(AttrValue::Origin(Origin::Igp)),
        PathAttribute::new(AttrValue::AsPath(AsPath::default())),
        PathAttribute::new(AttrValue::NextHop(Ipv4Addr::new(10, 0, 0, 1))),
        PathAttribute::new(AttrValue::LocalPref(100)),
    ];
    let good = Update {
        withdrawn: vec![],
        attributes: attrs.clone(),
        nlri: vec![Prefix::new("10.244.1.0/26".parse().unwrap())],
    };
    p.a.send_update(now, &good).unwrap();
    attrs[0] = PathAttribute {
        flags: 0x40,
        value: AttrValue::Opaque {
            code: 1,
            value: vec![9],
        },
    };
    // Opaque with a known code encodes the raw bad ORIGIN byte.
    let bad = Update {
        attributes: attrs,
        ..good.clone()
    };
    p.a.send_update(now, &bad).unwrap();
    p.drive();
    let updates: Vec<_> = p
        .events_of(Side::B)
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Update(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].verdict(), Verdict::Accepted);
    assert!(updates[1].is_treat_as_withdraw());
    assert_eq!(p.states(), (State::Established, State::Established));
}

#[test]
fn negotiation_enables_add_path_receive_only_where_offered_and_reports_graceful_restart() {
    let (mut a, mut b) = configs();
    a.add_path_receive = vec![Family::Ipv4Unicast];
    b.graceful_restart = Some(Default::default());
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    let n = p.a.negotiated().unwrap();
    // B only offered receive, not send: A cannot receive path IDs.
    assert!(!n.rx.add_path.ipv4_unicast && !n.tx.add_path.ipv4_unicast);
    let gr = n
        .peer_graceful_restart
        .as_ref()
        .expect("B advertised graceful restart");
    assert_eq!(gr.restart_time, Duration::from_secs(120));
    assert_eq!(
        gr.families,
        [(Family::Ipv4Unicast, true), (Family::Ipv6Unicast, true)]
    );
    assert!(p.b.negotiated().unwrap().peer_graceful_restart.is_none());
}

#[test]
fn families_fall_back_to_ipv4_unicast_without_multiprotocol_capabilities() {
    let (mut a, mut b) = configs();
    a.families = vec![];
    b.passive = true;
    let mut p = Pair::new(a, b);
    p.start_both();
    assert_eq!(p.b.negotiated().unwrap().families, [Family::Ipv4Unicast]);
}

#[test]
fn sending_before_established_is_refused() {
    let (a, b) = configs();
    let mut s = bgp_core::session::Session::new(a, 1);
    let _ = b;
    let now = std::time::Instant::now();
    assert_eq!(
        s.send_update(now, &Update::default()),
        Err(bgp_core::session::SendError::NotEstablished)
    );
}

#[test]
fn restart_state_bit_is_advertised_until_the_config_clears_it() {
    let (mut a, b) = configs();
    a.graceful_restart = Some(bgp_core::session::GracefulRestartConfig {
        restarting: true,
        ..Default::default()
    });
    let restart_bit = |open: &Open| {
        open.capabilities().any(|c| {
            matches!(c, Capability::GracefulRestart { flags, .. } if flags & gr_flags::RESTART_STATE != 0)
        })
    };
    assert!(restart_bit(&a.open()));
    let mut s = bgp_core::session::Session::new(a.clone(), 1);
    a.graceful_restart.as_mut().unwrap().restarting = false;
    s.set_config(a);
    assert!(!restart_bit(&s.config().open()));
    let _ = b;
}

#[test]
fn unanswered_connect_attempts_back_off_too() {
    // The network swallows SYNs: no failure is ever reported, the retry
    // timer fires instead. The interval must still double.
    let (a, b) = configs();
    let mut p = Pair::new(a, b);
    p.network_up = false;
    p.a.handle_start(p.now);
    // Drop the Connect events without answering them.
    while p.a.poll_event().is_some() {}
    let mut connects = Vec::new();
    for _ in 0..6 {
        let t = p.a.poll_timeout().expect("retry timer armed");
        p.now = t;
        p.a.handle_timeout(t);
        while let Some(e) = p.a.poll_event() {
            if e == SessionEvent::Connect {
                connects.push(p.now - p.start);
            }
        }
    }
    let gaps: Vec<f64> = connects
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    assert!(
        gaps.windows(2).all(|w| w[1] > w[0] * 1.3),
        "no backoff: {gaps:?}"
    );
}

/// A (10.0.0.1) has sent OPEN and KEEPALIVE on its outbound connection (so
/// it is in OpenConfirm there) when B (10.0.0.2, the higher identifier)
/// connects in and sends its OPEN: by identifier A's outbound connection
/// would lose, but B may already be Established on it.
fn collision_after_open_confirm() -> (bgp_core::session::Session, std::time::Instant) {
    let (a, b) = configs();
    let mut s = bgp_core::session::Session::new(a, 1);
    let now = std::time::Instant::now();
    let b_open = Message::Open(b.open())
        .to_bytes(&DecodeContext::default())
        .unwrap();
    s.handle_start(now);
    s.handle_connected(now, ConnId::Outbound);
    s.handle_bytes(now, ConnId::Outbound, &b_open);
    assert_eq!(s.state(), State::OpenConfirm);
    s.handle_connected(now, ConnId::Inbound);
    s.handle_bytes(now, ConnId::Inbound, &b_open);
    while s.poll_event().is_some() {}
    (s, now)
}

fn sent_on(s: &mut bgp_core::session::Session, id: ConnId, now: std::time::Instant) -> Vec<u8> {
    std::iter::from_fn(|| s.poll_transmit(now))
        .filter(|(c, _)| *c == id)
        .map(|(_, b)| b[18])
        .collect()
}

fn keepalive() -> Vec<u8> {
    Message::Keepalive
        .to_bytes(&DecodeContext::default())
        .unwrap()
}

#[test]
fn collision_after_open_confirm_waits_for_the_peer_instead_of_closing_either() {
    let (mut s, now) = collision_after_open_confirm();
    // Only OPENs were sent on the new connection: no KEEPALIVE (which could
    // let the peer establish it), no NOTIFICATION.
    assert_eq!(sent_on(&mut s, ConnId::Inbound, now), [1]);
    assert_eq!(s.state(), State::OpenConfirm);
}

#[test]
fn held_collision_keeps_the_old_connection_when_the_peer_closes_the_new_one() {
    // B was Established on A's outbound connection: it closes the new one.
    let (mut s, now) = collision_after_open_confirm();
    let cease = Message::Notification(collision_cease())
        .to_bytes(&DecodeContext::default())
        .unwrap();
    s.handle_bytes(now, ConnId::Inbound, &cease);
    s.handle_bytes(now, ConnId::Outbound, &keepalive());
    assert_eq!(s.state(), State::Established);
}

#[test]
fn held_collision_moves_to_the_new_connection_when_the_peer_closes_the_old_one() {
    // B was in OpenConfirm too and resolved by identifier.
    let (mut s, now) = collision_after_open_confirm();
    let cease = Message::Notification(collision_cease())
        .to_bytes(&DecodeContext::default())
        .unwrap();
    s.handle_bytes(now, ConnId::Outbound, &cease);
    assert_eq!(s.state(), State::OpenConfirm);
    assert_eq!(
        sent_on(&mut s, ConnId::Inbound, now),
        [1, 4],
        "our KEEPALIVE now goes out"
    );
    s.handle_bytes(now, ConnId::Inbound, &keepalive());
    assert_eq!(s.state(), State::Established);
}

#[test]
fn held_collision_follows_the_peers_keepalive() {
    // The peer's KEEPALIVE on the new connection says it chose that one.
    let (mut s, now) = collision_after_open_confirm();
    s.handle_bytes(now, ConnId::Inbound, &keepalive());
    assert_eq!(s.state(), State::Established);
    let mut closed = Vec::new();
    while let Some(e) = s.poll_event() {
        closed.push(e);
    }
    assert!(
        closed.contains(&SessionEvent::Close(ConnId::Outbound)),
        "{closed:?}"
    );
    // And the KEEPALIVE on the old connection says the other thing.
    let (mut s, now) = collision_after_open_confirm();
    s.handle_bytes(now, ConnId::Outbound, &keepalive());
    assert_eq!(s.state(), State::Established);
    let mut closed = Vec::new();
    while let Some(e) = s.poll_event() {
        closed.push(e);
    }
    assert!(
        closed.contains(&SessionEvent::Close(ConnId::Inbound)),
        "{closed:?}"
    );
}
