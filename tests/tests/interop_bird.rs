//! Our speaker (`bgp-speaker`) against a real BIRD 2 peer, each in its own
//! network namespace joined by a veth pair: route exchange over IPv4 and
//! IPv6 transport, withdrawals both ways, TCP-MD5, graceful restart (we are
//! the helper), a connection collision, and BIRD's route refresh requests
//! answered per family with Enhanced Route Refresh's markers.
//!
//! Each test uses its own `10.77.N.0/24` / `fd77:N::/64` link and prefixes
//! under `10.77.1NN.0/24` / `fd77:N:1NN::/64`, so the tests run in parallel.
//! BIRD's side is read from `birdc` (protocol counters and `show route`),
//! ours from the speaker's JSON events and its `routes` / `peers` commands.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use podroute_tests::bird::{Bird, speaker_state, wait_established, wait_routes, wait_seen};
use podroute_tests::{Link, Netns, Scratch, SpeakerProc, require_root};
use serde_json::{Value, json};

const SPEAKER: &str = env!("CARGO_BIN_EXE_bgp-speaker");
/// Bound on every wait for something that should happen.
const WAIT: Duration = Duration::from_secs(20);
/// The BGP protocol's name in BIRD's configs.
const PROTO: &str = "speaker";
const ASN: u32 = 64512;

/// A BIRD config: static blackhole routes (no kernel involved) exported to
/// one BGP protocol whose session options are `session`. Timers are short so
/// that a dropped session comes back within a second or two.
fn bird_config(
    scratch: &Scratch,
    router_id: &str,
    v4: &[&str],
    v6: &[&str],
    session: &str,
) -> String {
    let statics = |routes: &[&str]| {
        routes
            .iter()
            .map(|r| format!("route {r} blackhole; "))
            .collect::<String>()
    };
    format!(
        r#"router id {router_id};
log "{log}" all;
protocol device {{ scan time 1; }}
protocol static static4 {{ ipv4; {s4}}}
protocol static static6 {{ ipv6; {s6}}}
protocol bgp {PROTO} {{
  {session}
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 5;
}}
"#,
        log = Bird::log_path(scratch).display(),
        s4 = statics(v4),
        s6 = statics(v6),
    )
}

/// iBGP over IPv4 transport. IPv6 routes need an IPv6 next hop that the
/// IPv4 session cannot provide, hence `next hop address`. `direct` because
/// the peer is on the link (BIRD treats iBGP as multihop by default, and
/// only a direct session may use `gateway direct`).
fn ibgp_over_ipv4(link: &Link, extra: &str) -> String {
    format!(
        "local {} as {ASN}; neighbor {} as {ASN}; direct; {extra}
  ipv4 {{ import all; export all; gateway direct; }};
  ipv6 {{ import all; export all; gateway direct; next hop address {}; }};",
        link.peer_v4(),
        link.our_v4(),
        link.peer_v6(),
    )
}

/// iBGP over IPv6 transport; IPv4 routes take an explicit IPv4 next hop.
fn ibgp_over_ipv6(link: &Link, extra: &str) -> String {
    format!(
        "local {} as {ASN}; neighbor {} as {ASN}; direct; {extra}
  ipv4 {{ import all; export all; gateway direct; next hop address {}; }};
  ipv6 {{ import all; export all; gateway direct; }};",
        link.peer_v6(),
        link.our_v6(),
        link.peer_v4(),
    )
}

/// Our speaker's config: AS 64512, listening on port 179, reconnecting
/// after 1 s, one peer (`peer` is its JSON object), plus `extra` top-level
/// fields.
fn speaker_config(scratch: &Scratch, link: &Link, peer: Value, extra: Value) -> std::path::PathBuf {
    let mut config = json!({
        "local-as": ASN,
        "router-id": link.our_v4(),
        "listen": {"port": 179},
        "connect-retry": 1,
        "peers": [peer],
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    scratch.write("speaker.json", &config.to_string())
}

/// Whether our table holds `prefix` learned from `peer` via `next_hop`.
fn has_route(routes: &BTreeMap<String, Value>, prefix: &str, next_hop: &str, peer: &str) -> bool {
    routes
        .get(prefix)
        .is_some_and(|r| r["next-hop"] == next_hop && r["peer"] == peer)
}

/// Asserts that BIRD holds `prefix` with `BGP.next_hop` `next_hop`.
fn assert_bird_next_hop(bird: &Bird, prefix: &str, next_hop: &str) {
    let route = bird
        .route(prefix)
        .unwrap_or_else(|| panic!("BIRD has no route for {prefix}"));
    assert!(
        route.lines().any(|l| l
            .trim()
            .strip_prefix("BGP.next_hop:")
            .is_some_and(|nh| { nh.split_whitespace().next() == Some(next_hop) })),
        "BIRD's route for {prefix} should have next hop {next_hop}:\n{route}"
    );
}

/// Waits until BIRD's session is Established, with its log on failure.
fn assert_bird_established(bird: &Bird) {
    assert!(
        bird.wait_bgp_state(PROTO, "Established", WAIT),
        "BIRD's session never got Established: {:?}\n{}",
        bird.bgp_state(PROTO),
        bird.log()
    );
}

#[test]
fn bird_ipv4_transport_session_exchanges_ipv4_and_ipv6_routes() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird1");
    let link = Link::new("bird1", 77, 1);
    let session = ibgp_over_ipv4(&link, "passive on;");
    let bird = Bird::start(
        &link.peer,
        &scratch,
        &bird_config(
            &scratch,
            &link.peer_v4(),
            &["10.77.101.0/24"],
            &["fd77:1:101::/64"],
            &session,
        ),
    );
    let conf = speaker_config(
        &scratch,
        &link,
        json!({"address": link.peer_v4(), "asn": ASN}),
        json!({}),
    );
    // The IPv4 route has no next hop: export uses our session address. An
    // IPv4 session has no IPv6 address to use, so the IPv6 route names one.
    let ours_v6 = format!("fd77:1:111::/64,{}", link.our_v6());
    let mut sp = SpeakerProc::start(&link.ours, SPEAKER, &conf, &["10.77.111.0/24", &ours_v6]);

    assert!(
        wait_established(&mut sp, &link.peer_v4(), WAIT),
        "no session: {:?}",
        sp.seen
    );
    assert_bird_established(&bird);
    let (ok, routes) = wait_routes(&mut sp, WAIT, |r| {
        has_route(r, "10.77.101.0/24", &link.peer_v4(), &link.peer_v4())
            && has_route(r, "fd77:1:101::/64", &link.peer_v6(), &link.peer_v4())
    });
    assert!(
        ok,
        "BIRD's routes did not reach us as expected: {routes:#?}"
    );

    assert!(
        bird.wait_counts(PROTO, "ipv4", 1, 1, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );
    assert!(
        bird.wait_counts(PROTO, "ipv6", 1, 1, WAIT),
        "ipv6: {:?}",
        bird.route_counts(PROTO, "ipv6")
    );
    assert_bird_next_hop(&bird, "10.77.111.0/24", &link.our_v4());
    assert_bird_next_hop(&bird, "fd77:1:111::/64", &link.our_v6());
}

#[test]
fn bird_ipv6_transport_session_exchanges_routes() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird2");
    let link = Link::new("bird2", 77, 2);
    let session = ibgp_over_ipv6(&link, "passive on;");
    let bird = Bird::start(
        &link.peer,
        &scratch,
        &bird_config(
            &scratch,
            &link.peer_v4(),
            &["10.77.102.0/24"],
            &["fd77:2:102::/64"],
            &session,
        ),
    );
    let conf = speaker_config(
        &scratch,
        &link,
        json!({"address": link.peer_v6(), "asn": ASN}),
        json!({}),
    );
    // The mirror image of the IPv4-transport test: the IPv6 route takes our
    // session address, the IPv4 route names its next hop.
    let ours_v4 = format!("10.77.112.0/24,{}", link.our_v4());
    let mut sp = SpeakerProc::start(&link.ours, SPEAKER, &conf, &[&ours_v4, "fd77:2:112::/64"]);

    assert!(
        wait_established(&mut sp, &link.peer_v6(), WAIT),
        "no session: {:?}",
        sp.seen
    );
    assert_bird_established(&bird);
    let (ok, routes) = wait_routes(&mut sp, WAIT, |r| {
        has_route(r, "10.77.102.0/24", &link.peer_v4(), &link.peer_v6())
            && has_route(r, "fd77:2:102::/64", &link.peer_v6(), &link.peer_v6())
    });
    assert!(
        ok,
        "BIRD's routes did not reach us as expected: {routes:#?}"
    );

    assert!(
        bird.wait_counts(PROTO, "ipv4", 1, 1, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );
    assert!(
        bird.wait_counts(PROTO, "ipv6", 1, 1, WAIT),
        "ipv6: {:?}",
        bird.route_counts(PROTO, "ipv6")
    );
    assert_bird_next_hop(&bird, "10.77.112.0/24", &link.our_v4());
    assert_bird_next_hop(&bird, "fd77:2:112::/64", &link.our_v6());
}

#[test]
fn bird_withdrawal_reaches_us_and_ours_reaches_bird() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird3");
    let link = Link::new("bird3", 77, 3);
    let session = ibgp_over_ipv4(&link, "passive on;");
    let config =
        |v4: &[&str], v6: &[&str]| bird_config(&scratch, &link.peer_v4(), v4, v6, &session);
    let bird = Bird::start(
        &link.peer,
        &scratch,
        &config(
            &["10.77.103.0/24", "10.77.104.0/24"],
            &["fd77:3:103::/64", "fd77:3:104::/64"],
        ),
    );
    let conf = speaker_config(
        &scratch,
        &link,
        json!({"address": link.peer_v4(), "asn": ASN}),
        json!({}),
    );
    let v6a = format!("fd77:3:113::/64,{}", link.our_v6());
    let v6b = format!("fd77:3:114::/64,{}", link.our_v6());
    let mut sp = SpeakerProc::start(
        &link.ours,
        SPEAKER,
        &conf,
        &["10.77.113.0/24", "10.77.114.0/24", &v6a, &v6b],
    );

    let (ok, routes) = wait_routes(&mut sp, WAIT, |r| {
        [
            "10.77.103.0/24",
            "10.77.104.0/24",
            "fd77:3:103::/64",
            "fd77:3:104::/64",
        ]
        .iter()
        .all(|p| r.contains_key(*p))
    });
    assert!(ok, "BIRD's routes did not all arrive: {routes:#?}");
    assert!(
        bird.wait_counts(PROTO, "ipv4", 2, 2, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );
    assert!(
        bird.wait_counts(PROTO, "ipv6", 2, 2, WAIT),
        "ipv6: {:?}",
        bird.route_counts(PROTO, "ipv6")
    );

    // BIRD drops one static route per family; we withdraw one per family.
    bird.reconfigure(&config(&["10.77.103.0/24"], &["fd77:3:103::/64"]));
    sp.send("withdraw 10.77.114.0/24");
    sp.send("withdraw fd77:3:114::/64");

    for gone in ["10.77.104.0/24", "fd77:3:104::/64"] {
        assert!(
            wait_seen(&mut sp, WAIT, |v| v["event"] == "withdraw"
                && v["prefix"] == gone)
            .is_some(),
            "no withdraw of {gone} from BIRD: {:?}",
            sp.seen
        );
    }
    let routes = sp.routes();
    for kept in ["10.77.103.0/24", "fd77:3:103::/64"] {
        assert!(
            routes.contains_key(kept),
            "{kept} should be kept: {routes:#?}"
        );
    }
    assert!(!routes.contains_key("10.77.104.0/24") && !routes.contains_key("fd77:3:104::/64"));

    assert!(
        bird.wait_counts(PROTO, "ipv4", 1, 1, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );
    assert!(
        bird.wait_counts(PROTO, "ipv6", 1, 1, WAIT),
        "ipv6: {:?}",
        bird.route_counts(PROTO, "ipv6")
    );
    assert!(
        bird.route("10.77.114.0/24").is_none(),
        "BIRD still has 10.77.114.0/24"
    );
    assert!(
        bird.route("fd77:3:114::/64").is_none(),
        "BIRD still has fd77:3:114::/64"
    );
    assert_bird_next_hop(&bird, "10.77.113.0/24", &link.our_v4());
    assert_bird_next_hop(&bird, "fd77:3:113::/64", &link.our_v6());
    assert_eq!(bird.bgp_state(PROTO).as_deref(), Some("Established"));
}

/// The `TcpExt` counter `name` in `ns` (`/proc/net/netstat` is per
/// namespace).
fn tcp_ext_counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.exec("cat", &["/proc/net/netstat"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn bird_md5_matching_password_establishes() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird4");
    let link = Link::new("bird4", 77, 4);
    // Both sides connect and listen, so both the keyed listener and the
    // keyed outgoing socket are exercised.
    let session = ibgp_over_ipv4(&link, r#"password "podroute-md5";"#);
    let bird = Bird::start(
        &link.peer,
        &scratch,
        &bird_config(
            &scratch,
            &link.peer_v4(),
            &["10.77.104.0/24"],
            &[],
            &session,
        ),
    );
    let conf = speaker_config(
        &scratch,
        &link,
        json!({"address": link.peer_v4(), "asn": ASN, "password": "podroute-md5"}),
        json!({}),
    );
    let mut sp = SpeakerProc::start(&link.ours, SPEAKER, &conf, &["10.77.114.0/24"]);

    assert!(
        wait_established(&mut sp, &link.peer_v4(), WAIT),
        "no session: {:?}",
        sp.seen
    );
    assert_bird_established(&bird);
    let (ok, routes) = wait_routes(&mut sp, WAIT, |r| r.contains_key("10.77.104.0/24"));
    assert!(ok, "BIRD's route did not arrive: {routes:#?}");
    assert!(
        bird.wait_counts(PROTO, "ipv4", 1, 1, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );
}

#[test]
fn bird_md5_mismatch_never_establishes() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird7");
    let link = Link::new("bird7", 77, 7);
    let session = ibgp_over_ipv4(&link, r#"password "bird-side";"#);
    let bird = Bird::start(
        &link.peer,
        &scratch,
        &bird_config(
            &scratch,
            &link.peer_v4(),
            &["10.77.107.0/24"],
            &[],
            &session,
        ),
    );
    let conf = speaker_config(
        &scratch,
        &link,
        json!({"address": link.peer_v4(), "asn": ASN, "password": "speaker-side"}),
        json!({}),
    );
    let mut sp = SpeakerProc::start(&link.ours, SPEAKER, &conf, &["10.77.117.0/24"]);

    // Both sides retry every second; for five seconds neither may get a
    // session up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let state = bird.bgp_state(PROTO);
        assert_ne!(
            state.as_deref(),
            Some("Established"),
            "BIRD established despite the wrong key"
        );
        let up = sp.wait_event(Duration::from_millis(200), |v| {
            v["event"] == "peer" && v["state"] == "Established"
        });
        assert!(up.is_none(), "we established despite the wrong key: {up:?}");
    }
    // The segments did arrive and were dropped for their signature, not
    // lost for some other reason.
    let failures =
        tcp_ext_counter(&link.ours, "TCPMD5Failure") + tcp_ext_counter(&link.peer, "TCPMD5Failure");
    assert!(
        failures > 0,
        "no TCP-MD5 failures counted: did the two sides try at all?"
    );
    assert!(
        !sp.seen
            .iter()
            .any(|v| v["event"] == "route" && v["peer"] == link.peer_v4())
    );
    assert_eq!(bird.route_counts(PROTO, "ipv4").map_or(0, |c| c.0), 0);
}

#[test]
fn bird_graceful_restart_keeps_its_routes_stale_until_end_of_rib() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird5");
    let link = Link::new("bird5", 77, 5);
    let session = ibgp_over_ipv4(&link, "graceful restart on; graceful restart time 30;");
    let config = |v4: &[&str]| {
        bird_config(
            &scratch,
            &link.peer_v4(),
            v4,
            &["fd77:5:105::/64"],
            &session,
        )
    };
    let mut bird = Bird::start(
        &link.peer,
        &scratch,
        &config(&["10.77.105.0/24", "10.77.106.0/24"]),
    );
    // Only BIRD connects (1 s after each start), so a connection collision
    // cannot mix into what this test checks.
    let conf = speaker_config(
        &scratch,
        &link,
        json!({"address": link.peer_v4(), "asn": ASN, "passive": true}),
        json!({"graceful-restart": {"restart-time": 30}}),
    );
    let mut sp = SpeakerProc::start(&link.ours, SPEAKER, &conf, &["10.77.115.0/24"]);
    let kept = ["10.77.105.0/24", "fd77:5:105::/64"];
    let removed = "10.77.106.0/24";

    let (ok, routes) = wait_routes(&mut sp, WAIT, |r| {
        kept.iter()
            .chain([&removed])
            .all(|p| r.get(*p).is_some_and(|v| v["stale"] == false))
    });
    assert!(ok, "BIRD's routes did not arrive: {routes:#?}");
    assert!(
        bird.wait_counts(PROTO, "ipv4", 1, 2, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );

    // BIRD goes down without a NOTIFICATION, keeping its forwarding state.
    bird.graceful_restart();
    let down = sp.wait_event(WAIT, |v| {
        v["event"] == "peer" && v["address"] == link.peer_v4() && v["state"] != "Established"
    });
    assert!(
        down.is_some(),
        "we did not notice BIRD going down: {:?}",
        sp.seen
    );
    let routes = sp.routes();
    for p in kept.iter().chain([&removed]) {
        assert!(
            routes.get(*p).is_some_and(|v| v["stale"] == true),
            "{p} should be kept as stale while BIRD restarts: {routes:#?}"
        );
    }

    // BIRD comes back without one of its routes.
    let mark = sp.seen.len();
    bird.restart(&config(&["10.77.105.0/24"]));
    for family in ["Ipv4Unicast", "Ipv6Unicast"] {
        let eor = sp.wait_event(WAIT, |v| {
            v["event"] == "end-of-rib" && v["family"] == family
        });
        assert!(
            eor.is_some(),
            "no {family} End-of-RIB after BIRD's restart: {:?}",
            &sp.seen[mark..]
        );
    }
    let gone = wait_seen(&mut sp, WAIT, |v| {
        v["event"] == "withdraw" && v["prefix"] == removed
    });
    assert!(
        gone.is_some(),
        "{removed} was not swept after End-of-RIB: {:?}",
        &sp.seen[mark..]
    );
    let routes = sp.routes();
    for p in kept {
        assert!(
            routes
                .get(p)
                .is_some_and(|v| v["stale"] == false && v["peer"] == link.peer_v4()),
            "{p} should be fresh after End-of-RIB: {routes:#?}"
        );
    }
    assert!(
        !routes.contains_key(removed),
        "{removed} still there: {routes:#?}"
    );
    let flapped: Vec<&Value> = sp
        .seen
        .iter()
        .filter(|v| v["event"] == "withdraw" && kept.iter().any(|p| v["prefix"] == *p))
        .collect();
    assert!(
        flapped.is_empty(),
        "kept routes were withdrawn during the restart: {flapped:?}"
    );
    assert_bird_established(&bird);
    assert!(
        bird.wait_counts(PROTO, "ipv4", 1, 1, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );
}

/// The established TCP connections on port 179 in our namespace, as
/// `LOCAL PEER` address pairs (the queue columns before them vary).
fn bgp_connections(link: &Link) -> Vec<String> {
    let filter = "( sport = :179 or dport = :179 )";
    let out = link
        .ours
        .exec("ss", &["-Htn", "state", "established", filter]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let ends = words.get(words.len().checked_sub(2)?..)?;
            Some(ends.join(" "))
        })
        .collect()
}

/// Whether `ns` has a TCP connection to port 179 waiting for its SYN-ACK.
fn connecting(ns: &Netns) -> bool {
    let out = ns.exec("ss", &["-Htn", "state", "syn-sent", "( dport = :179 )"]);
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// The MAC address of `ns`'s veth end.
fn mac(ns: &Netns) -> String {
    let out = ns.exec("ip", &["-o", "link", "show", "dev", &ns.veth()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no MAC in {text}"))
}

#[test]
fn simultaneous_open_with_bird_ends_with_one_session() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird6");
    let link = Link::new("bird6", 77, 6);
    // To make the two connections really cross, neither side answers ARP
    // (and keeps asking for 30 s), so each side's SYN waits in its kernel's
    // neighbour queue. Once both sides are connecting, static neighbour
    // entries release both queues at once.
    for ns in [&link.peer, &link.ours] {
        let dev = ns.veth();
        let ignore = format!("net.ipv4.conf.{dev}.arp_ignore=8");
        let solicit = format!("net.ipv4.neigh.{dev}.mcast_solicit=30");
        ns.exec("sysctl", &["-q", "-w", &ignore, &solicit]);
    }
    // Both sides connect (BIRD after its 1 s connect delay, we at once and
    // then every second) and both listen.
    let session = ibgp_over_ipv4(&link, "debug { states, events };");
    let config = bird_config(
        &scratch,
        &link.peer_v4(),
        &["10.77.106.0/24"],
        &[],
        &session,
    );
    let bird = Bird::start(&link.peer, &scratch, &config);
    let peer = json!({"address": link.peer_v4(), "asn": ASN});
    let conf = speaker_config(&scratch, &link, peer, json!({}));
    let mut sp = SpeakerProc::start(&link.ours, SPEAKER, &conf, &["10.77.116.0/24"]);

    let both = podroute_tests::wait_for(WAIT, || {
        (connecting(&link.peer) && connecting(&link.ours)).then_some(())
    });
    assert!(
        both.is_some(),
        "the two sides were never connecting at the same time"
    );
    let (peer_mac, our_mac) = (mac(&link.peer), mac(&link.ours));
    for (ns, addr, lladdr) in [
        (&link.ours, link.peer_v4(), &peer_mac),
        (&link.peer, link.our_v4(), &our_mac),
    ] {
        let dev = ns.veth();
        let args = [
            "neigh",
            "replace",
            &addr,
            "lladdr",
            lladdr,
            "dev",
            &dev,
            "nud",
            "permanent",
        ];
        ns.exec("ip", &args);
    }

    assert!(
        wait_established(&mut sp, &link.peer_v4(), WAIT),
        "no session: {:?}",
        sp.seen
    );
    assert_bird_established(&bird);
    let one = podroute_tests::wait_for(Duration::from_secs(10), || {
        let c = bgp_connections(&link);
        (c.len() == 1).then_some(c)
    });
    let Some(first) = one else {
        panic!(
            "not exactly one BGP connection: {:?}",
            bgp_connections(&link)
        );
    };
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bgp_connections(&link), first, "the connection changed");
    assert_eq!(bird.bgp_state(PROTO).as_deref(), Some("Established"));
    assert_eq!(
        speaker_state(&mut sp, &link.peer_v4()).as_deref(),
        Some("Established")
    );
    assert!(
        bird.wait_counts(PROTO, "ipv4", 1, 1, WAIT),
        "ipv4: {:?}",
        bird.route_counts(PROTO, "ipv4")
    );

    // The collision was resolved without losing the session: one side's
    // resolution must not tear down the connection the other side kept.
    let log = bird.log();
    let sessions = log.matches("BGP session established").count();
    let failures: Vec<&Value> = sp
        .seen
        .iter()
        .filter(|v| v["event"] == "peer" && !v["last-error"].is_null())
        .collect();
    assert!(
        sessions == 1 && failures.is_empty(),
        "the session was reset while resolving the collision: BIRD established \
         {sessions} sessions, our failed attempts: {failures:?}\n{log}"
    );
    // RFC 4271 §6.8: the losing connection is closed with a Cease
    // NOTIFICATION. BIRD logs "Connection closed" only for a close it did
    // not initiate and that came without a NOTIFICATION.
    assert!(
        !log.contains("Connection closed"),
        "a connection to BIRD was closed without a NOTIFICATION:\n{log}"
    );
}

/// Lines of BIRD's log, from byte `from` on, that contain `what`.
fn log_lines(bird: &Bird, from: usize, what: &str) -> usize {
    bird.log()
        .get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(what))
        .count()
}

#[test]
fn bird_reload_in_gets_each_family_once_between_borr_and_eorr() {
    require_root("BIRD interop test");
    let scratch = Scratch::new("bird8");
    let link = Link::new("bird8", 77, 8);
    // `debug { packets }` makes BIRD log every message it gets; Enhanced
    // Route Refresh (RFC 7313) is on by default in BIRD 2.
    let session = ibgp_over_ipv4(&link, "passive on; debug { packets };");
    let bird = Bird::start(
        &link.peer,
        &scratch,
        &bird_config(&scratch, &link.peer_v4(), &[], &[], &session),
    );
    let conf = speaker_config(
        &scratch,
        &link,
        json!({"address": link.peer_v4(), "asn": ASN}),
        json!({}),
    );
    let v6a = format!("fd77:8:111::/64,{}", link.our_v6());
    let v6b = format!("fd77:8:112::/64,{}", link.our_v6());
    let mut sp = SpeakerProc::start(
        &link.ours,
        SPEAKER,
        &conf,
        &["10.77.111.0/24", "10.77.112.0/24", &v6a, &v6b],
    );
    assert!(
        wait_established(&mut sp, &link.peer_v4(), WAIT),
        "no session: {:?}",
        sp.seen
    );
    assert_bird_established(&bird);
    for channel in ["ipv4", "ipv6"] {
        assert!(
            bird.wait_counts(PROTO, channel, 2, 0, WAIT),
            "{channel}: {:?}",
            bird.route_counts(PROTO, channel)
        );
    }

    let before: Vec<Option<u64>> = ["ipv4", "ipv6"]
        .iter()
        .map(|c| bird.import_updates(PROTO, c))
        .collect();
    assert_eq!(before, [Some(2), Some(2)], "BIRD's import counters");

    // BIRD asks for both families again (one ROUTE-REFRESH per channel).
    let from = bird.log().len();
    let out = bird.birdc(&["reload", "in", PROTO]);
    let deadline = Instant::now() + WAIT;
    while log_lines(&bird, from, "Got END-OF-RR") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let anything sent after the EoRRs arrive before counting.
    std::thread::sleep(Duration::from_millis(500));
    let log = bird.log();
    let tail = log.get(from..).unwrap_or_default();
    assert_eq!(
        log_lines(&bird, from, "Got BEGIN-OF-RR"),
        2,
        "one BoRR per family (birdc: {out}):\n{tail}"
    );
    assert_eq!(
        log_lines(&bird, from, "Got END-OF-RR"),
        2,
        "one EoRR per family:\n{tail}"
    );
    // Each route once more. Before, every request got the whole table:
    // both families twice over.
    let after: Vec<Option<u64>> = ["ipv4", "ipv6"]
        .iter()
        .map(|c| bird.import_updates(PROTO, c))
        .collect();
    assert_eq!(
        after,
        [Some(4), Some(4)],
        "each family's two routes sent once again:\n{tail}"
    );
    // Nothing was left stale and flushed at the EoRR.
    for channel in ["ipv4", "ipv6"] {
        assert!(
            bird.wait_counts(PROTO, channel, 2, 0, WAIT),
            "{channel} after the refresh: {:?}",
            bird.route_counts(PROTO, channel)
        );
    }
    assert_bird_next_hop(&bird, "10.77.111.0/24", &link.our_v4());
    assert_bird_next_hop(&bird, "fd77:8:112::/64", &link.our_v6());
    assert_eq!(bird.bgp_state(PROTO).as_deref(), Some("Established"));
}
