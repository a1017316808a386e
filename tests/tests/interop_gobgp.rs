//! Interop with GoBGP 3.10: our speaker (`bgp-speaker`) and `gobgpd` in two
//! network namespaces joined by a veth pair, each session checked from both
//! ends (our JSON event stream and `gobgp -j`). The last test makes our
//! speaker a route reflector between a BIRD 2 client and a GoBGP client.
//!
//! Needs root, `gobgpd` / `gobgp`, `bird` / `birdc` and `ss`. Each test has
//! its own `10.78.N.0/24` and `fd78:N::/64` (and namespaces), so the tests
//! run in parallel.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use podroute_tests::gobgp::{
    Config, ESTABLISHED, Gobgp, Neighbor, attach_to_bridge, attr, next_hop, wait_peer_state,
    wait_routes,
};
use podroute_tests::{Daemon, Link, Netns, Scratch, SpeakerProc, require_root, wait_for};
use serde_json::{Value, json};

const SPEAKER: &str = env!("CARGO_BIN_EXE_bgp-speaker");
const AS: u32 = 64512;
/// The bound on every wait for the other side.
const WAIT: Duration = Duration::from_secs(30);

/// GoBGP and our speaker on a [`Link`], session up. Fields drop in
/// order: processes first, then the scratch directory, then namespaces.
struct Pair {
    sp: SpeakerProc,
    gobgp: Gobgp,
    scratch: Scratch,
    link: Link,
}

/// Our speaker's config: one iBGP peer, fast reconnects, listening on `::`.
fn speaker_config(router_id: &str, peers: Vec<Value>, extra: Value) -> Value {
    let mut c = json!({
        "local-as": AS, "router-id": router_id, "listen": {"port": 179},
        "connect-retry": 1, "peers": peers,
    });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

fn start_speaker(ns: &Netns, scratch: &Scratch, config: &Value, announce: &[&str]) -> SpeakerProc {
    let path = scratch.write("speaker.json", &config.to_string());
    let mut sp = SpeakerProc::start(ns, SPEAKER, &path, announce);
    assert!(
        sp.wait_event(Duration::from_secs(10), |v| v["event"] == "started")
            .is_some(),
        "bgp-speaker did not start: {:?}",
        sp.seen
    );
    sp
}

/// GoBGP at `10.78.N.1` / `fd78:N::1`, us at `.2` / `::2`, iBGP over IPv4
/// or IPv6 transport, both sides active; returns once both say Established.
fn pair(tag: &str, n: u8, v6_transport: bool, graceful_restart: bool, announce: &[&str]) -> Pair {
    let link = Link::new(tag, 78, n);
    let scratch = Scratch::new(tag);
    let (gobgp_addr, our_addr) = if v6_transport {
        (format!("fd78:{n}::1"), format!("fd78:{n}::2"))
    } else {
        (format!("10.78.{n}.1"), format!("10.78.{n}.2"))
    };
    let mut neighbor = Neighbor::new(&our_addr, AS);
    neighbor.graceful_restart = graceful_restart;
    let config = Config {
        asn: AS,
        router_id: format!("10.78.{n}.1"),
        listen: vec![format!("10.78.{n}.1"), format!("fd78:{n}::1")],
        neighbors: vec![neighbor],
    };
    let gobgp = Gobgp::start(&link.peer, &scratch, &config, &[]);
    let extra = if graceful_restart {
        json!({"graceful-restart": {"restart-time": 60}})
    } else {
        json!({})
    };
    let config = speaker_config(
        &format!("10.78.{n}.2"),
        vec![json!({"address": gobgp_addr, "asn": AS})],
        extra,
    );
    let mut sp = start_speaker(&link.ours, &scratch, &config, announce);
    assert!(
        wait_peer_state(&mut sp, &gobgp_addr, "Established", WAIT),
        "our session to GoBGP did not come up: {:?}\ngobgpd:\n{}",
        sp.seen,
        gobgp.log_tail()
    );
    assert!(
        gobgp.wait_established(&our_addr, WAIT),
        "GoBGP does not see the session Established: {:?}",
        gobgp.neighbor(&our_addr)
    );
    Pair {
        sp,
        gobgp,
        scratch,
        link,
    }
}

/// Asserts our speaker holds `prefix` from `peer` via `next_hop`, not stale.
fn assert_learned(
    routes: &std::collections::BTreeMap<String, Value>,
    prefix: &str,
    peer: &str,
    hop: &str,
) {
    let r = routes
        .get(prefix)
        .unwrap_or_else(|| panic!("{prefix} missing from our routes: {routes:?}"));
    assert_eq!(r["peer"], peer, "{prefix}: {r}");
    assert_eq!(r["next-hop"], hop, "{prefix}: {r}");
    assert_eq!(r["stale"], false, "{prefix}: {r}");
}

/// Waits until GoBGP holds `prefix` from `neighbor` and returns the path.
fn gobgp_learns(g: &Gobgp, family: &str, prefix: &str, neighbor: &str) -> Value {
    wait_for(WAIT, || g.learned(family, prefix, neighbor)).unwrap_or_else(|| {
        panic!(
            "GoBGP never learned {prefix} from {neighbor}; its {family} RIB: {:?}",
            g.rib(family)
        )
    })
}

/// Waits until our speaker has reported every prefix in `prefixes` withdrawn.
fn wait_withdrawn(sp: &mut SpeakerProc, prefixes: &[&str]) {
    let mut left: HashSet<String> = prefixes.iter().map(|p| (*p).to_owned()).collect();
    let done = sp.wait_event(WAIT, |v| {
        if v["event"] == "withdraw"
            && let Some(p) = v["prefix"].as_str()
        {
            left.remove(p);
        }
        left.is_empty()
    });
    assert!(done.is_some(), "not withdrawn: {left:?}");
}

#[test]
fn gobgp_ipv4_transport_session_exchanges_ipv4_and_ipv6_routes() {
    require_root("GoBGP interop test");
    // Our IPv4 route takes the session address as next hop; the IPv6 one
    // cannot (the session is IPv4), so it names one.
    let mut p = pair(
        "gb4",
        11,
        false,
        false,
        &["10.78.211.0/26", "fd78:211::/64,fd78:11::2"],
    );
    p.gobgp.cli(&["global", "rib", "add", "10.78.111.0/24"]);
    p.gobgp.cli(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv6",
        "fd78:111::/64",
        "nexthop",
        "fd78:11::1",
    ]);

    let (ok, routes) = wait_routes(&mut p.sp, WAIT, |r| {
        r.contains_key("10.78.111.0/24") && r.contains_key("fd78:111::/64")
    });
    assert!(ok, "GoBGP's routes did not reach us: {routes:?}");
    assert_learned(&routes, "10.78.111.0/24", "10.78.11.1", "10.78.11.1");
    assert_learned(&routes, "fd78:111::/64", "10.78.11.1", "fd78:11::1");

    let v4 = gobgp_learns(&p.gobgp, "ipv4", "10.78.211.0/26", "10.78.11.2");
    assert_eq!(next_hop(&v4).as_deref(), Some("10.78.11.2"), "{v4}");
    let v6 = gobgp_learns(&p.gobgp, "ipv6", "fd78:211::/64", "10.78.11.2");
    assert_eq!(next_hop(&v6).as_deref(), Some("fd78:11::2"), "{v6}");
}

#[test]
fn gobgp_ipv6_transport_session_exchanges_routes() {
    require_root("GoBGP interop test");
    // Over IPv6 our IPv6 route takes the session address; the IPv4 one
    // names its next hop.
    let mut p = pair(
        "gb6",
        12,
        true,
        false,
        &["fd78:212::/64", "10.78.212.0/26,10.78.12.2"],
    );
    p.gobgp
        .cli(&["global", "rib", "add", "-a", "ipv6", "fd78:112::/64"]);
    p.gobgp.cli(&[
        "global",
        "rib",
        "add",
        "10.78.112.0/24",
        "nexthop",
        "10.78.12.1",
    ]);

    let (ok, routes) = wait_routes(&mut p.sp, WAIT, |r| {
        r.contains_key("10.78.112.0/24") && r.contains_key("fd78:112::/64")
    });
    assert!(ok, "GoBGP's routes did not reach us: {routes:?}");
    assert_learned(&routes, "fd78:112::/64", "fd78:12::1", "fd78:12::1");
    assert_learned(&routes, "10.78.112.0/24", "fd78:12::1", "10.78.12.1");

    let v6 = gobgp_learns(&p.gobgp, "ipv6", "fd78:212::/64", "fd78:12::2");
    assert_eq!(next_hop(&v6).as_deref(), Some("fd78:12::2"), "{v6}");
    let v4 = gobgp_learns(&p.gobgp, "ipv4", "10.78.212.0/26", "fd78:12::2");
    assert_eq!(next_hop(&v4).as_deref(), Some("10.78.12.2"), "{v4}");
}

#[test]
fn gobgp_withdrawal_reaches_us_and_ours_reaches_gobgp() {
    require_root("GoBGP interop test");
    let mut p = pair(
        "gbw",
        13,
        false,
        false,
        &[
            "10.78.213.0/26",
            "10.78.213.64/26",
            "fd78:213::/64,fd78:13::2",
        ],
    );
    let g = &p.gobgp;
    g.cli(&["global", "rib", "add", "10.78.113.0/24"]);
    g.cli(&["global", "rib", "add", "10.78.114.0/24"]);
    g.cli(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv6",
        "fd78:113::/64",
        "nexthop",
        "fd78:13::1",
    ]);
    let (ok, routes) = wait_routes(&mut p.sp, WAIT, |r| {
        ["10.78.113.0/24", "10.78.114.0/24", "fd78:113::/64"]
            .iter()
            .all(|k| r.contains_key(*k))
    });
    assert!(ok, "GoBGP's routes did not reach us: {routes:?}");
    for prefix in ["10.78.213.0/26", "10.78.213.64/26"] {
        gobgp_learns(g, "ipv4", prefix, "10.78.13.2");
    }
    gobgp_learns(g, "ipv6", "fd78:213::/64", "10.78.13.2");

    // GoBGP withdraws one IPv4 and the IPv6 route; the other stays.
    g.cli(&["global", "rib", "del", "10.78.113.0/24"]);
    g.cli(&["global", "rib", "-a", "ipv6", "del", "fd78:113::/64"]);
    wait_withdrawn(&mut p.sp, &["10.78.113.0/24", "fd78:113::/64"]);
    let routes = p.sp.routes();
    assert!(
        !routes.contains_key("10.78.113.0/24") && !routes.contains_key("fd78:113::/64"),
        "{routes:?}"
    );
    assert_learned(&routes, "10.78.114.0/24", "10.78.13.1", "10.78.13.1");

    // We withdraw one IPv4 and the IPv6 route; the other stays.
    p.sp.send("withdraw 10.78.213.0/26");
    p.sp.send("withdraw fd78:213::/64");
    let gone = wait_for(WAIT, || {
        (g.learned("ipv4", "10.78.213.0/26", "10.78.13.2").is_none()
            && g.learned("ipv6", "fd78:213::/64", "10.78.13.2").is_none())
        .then_some(())
    });
    assert!(
        gone.is_some(),
        "GoBGP still has our withdrawn routes: {:?} {:?}",
        g.rib("ipv4"),
        g.rib("ipv6")
    );
    assert!(
        g.learned("ipv4", "10.78.213.64/26", "10.78.13.2").is_some(),
        "the route we kept went too: {:?}",
        g.rib("ipv4")
    );
}

#[test]
fn gobgp_graceful_restart_keeps_its_routes_stale_until_end_of_rib() {
    require_root("GoBGP interop test");
    let mut p = pair("gbgr", 14, false, true, &["10.78.214.0/26"]);
    // GoBGP sends End-of-RIB only when graceful restart was negotiated.
    let eor = |v: &Value| {
        v["event"] == "end-of-rib" && v["peer"] == "10.78.14.1" && v["family"] == "Ipv4Unicast"
    };
    assert!(
        p.sp.seen.iter().any(eor) || p.sp.wait_event(WAIT, eor).is_some(),
        "no End-of-RIB from GoBGP: graceful restart not negotiated? {:?}",
        p.sp.seen
    );
    let (kept, gone) = (["10.78.114.0/24", "10.78.115.0/24"], "10.78.116.0/24");
    for prefix in kept.iter().chain([&gone]) {
        p.gobgp.cli(&["global", "rib", "add", prefix]);
    }
    let (ok, routes) = wait_routes(&mut p.sp, WAIT, |r| {
        kept.iter().chain([&gone]).all(|k| r.contains_key(*k))
    });
    assert!(ok, "GoBGP's routes did not reach us: {routes:?}");

    // SIGKILL: the TCP connection dies without a NOTIFICATION, so we keep
    // GoBGP's routes, marked stale (RFC 4724 §4.2).
    p.gobgp.kill();
    let all_stale = |r: &std::collections::BTreeMap<String, Value>| {
        kept.iter()
            .chain([&gone])
            .all(|k| r.get(*k).is_some_and(|v| v["stale"] == true))
    };
    let (ok, routes) = wait_routes(&mut p.sp, WAIT, all_stale);
    assert!(
        ok,
        "GoBGP's routes not kept stale after it died: {routes:?}"
    );

    // Restart it as a restarting speaker (`-r`: Restart State and
    // Forwarding State bits set), held admin-down until it holds only some
    // of the routes again, so its first table after the restart is exactly
    // those.
    let mut neighbor = Neighbor::new("10.78.14.2", AS);
    neighbor.graceful_restart = true;
    neighbor.admin_down = true;
    let config = Config {
        asn: AS,
        router_id: "10.78.14.1".into(),
        listen: vec!["10.78.14.1".into(), "fd78:14::1".into()],
        neighbors: vec![neighbor],
    };
    p.gobgp = Gobgp::start(&p.link.peer, &p.scratch, &config, &["-r"]);
    for prefix in kept {
        p.gobgp.cli(&["global", "rib", "add", prefix]);
    }
    let routes = p.sp.routes();
    assert!(
        all_stale(&routes),
        "stale routes not kept while GoBGP is down: {routes:?}"
    );

    let mark = p.sp.seen.len();
    p.gobgp.cli(&["neighbor", "10.78.14.2", "enable"]);
    let withdrawn =
        p.sp.wait_event(WAIT, |v| v["event"] == "withdraw" && v["prefix"] == gone);
    assert!(
        withdrawn.is_some(),
        "{gone} (not re-announced) never withdrawn: {:?}\ngobgpd:\n{}",
        &p.sp.seen[mark..],
        p.gobgp.log_tail()
    );
    // It went only after the refreshed routes came in, with End-of-RIB, not
    // when the session came back up.
    let after = p.sp.seen[mark..].to_vec();
    for prefix in kept {
        assert!(
            after
                .iter()
                .any(|v| v["event"] == "route" && v["prefix"] == prefix && v["stale"] == false),
            "{gone} withdrawn before {prefix} was refreshed: {after:?}"
        );
    }
    assert!(
        after.iter().any(eor) || p.sp.wait_event(WAIT, eor).is_some(),
        "no End-of-RIB from the restarted GoBGP: {after:?}"
    );
    let routes = p.sp.routes();
    assert!(!routes.contains_key(gone), "{routes:?}");
    for prefix in kept {
        assert_learned(&routes, prefix, "10.78.14.1", "10.78.14.1");
    }
    gobgp_learns(&p.gobgp, "ipv4", "10.78.214.0/26", "10.78.14.2");
}

/// Established TCP connections on port 179 in `ns`.
fn bgp_connections(ns: &Netns) -> Vec<String> {
    let out = ns.exec(
        "ss",
        &[
            "-Htn",
            "state",
            "established",
            "( sport = :179 or dport = :179 )",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn simultaneous_open_with_gobgp_ends_with_one_session() {
    require_root("GoBGP interop test");
    let link = Link::new("gbso", 78, 15);
    let scratch = Scratch::new("gbso");
    // Both sides are active, but we connect at once while GoBGP's first
    // attempt comes 5-10 s after it starts. To make them overlap, our SYNs
    // are routed to a MAC nobody has until GoBGP has connected to us: our
    // connect stays in flight (SYN-SENT) and completes only after the
    // session is up on GoBGP's connection (which GoBGP then closes).
    let dev = link.ours.veth();
    let ours = &link.ours;
    ours.exec(
        "ip",
        &[
            "neigh",
            "replace",
            "10.78.15.99",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            &dev,
            "nud",
            "permanent",
        ],
    );
    ours.exec(
        "ip",
        &[
            "route",
            "add",
            "10.78.15.1/32",
            "via",
            "10.78.15.99",
            "dev",
            &dev,
            "table",
            "100",
        ],
    );
    let hold = [
        "rule", "add", "ipproto", "tcp", "dport", "179", "table", "100",
    ];
    ours.exec("ip", &hold);

    let config = Config {
        asn: AS,
        router_id: "10.78.15.1".into(),
        listen: vec!["10.78.15.1".into()],
        neighbors: vec![Neighbor::new("10.78.15.2", AS)],
    };
    let gobgp = Gobgp::start(&link.peer, &scratch, &config, &[]);
    let config = speaker_config(
        "10.78.15.2",
        vec![json!({"address": "10.78.15.1", "asn": AS})],
        json!({}),
    );
    let mut sp = start_speaker(ours, &scratch, &config, &["10.78.215.0/26"]);

    let inbound = wait_for(Duration::from_secs(20), || {
        (!bgp_connections(ours).is_empty()).then_some(())
    });
    assert!(inbound.is_some(), "GoBGP never connected to us");
    let pending = ours.exec("ss", &["-Htn", "state", "syn-sent", "( dport = :179 )"]);
    eprintln!(
        "our connect in flight when GoBGP's arrived: {:?}",
        String::from_utf8_lossy(&pending.stdout)
    );
    ours.exec("ip", &hold.map(|w| if w == "add" { "del" } else { w }));

    assert!(
        wait_peer_state(&mut sp, "10.78.15.1", "Established", WAIT),
        "{:?}",
        sp.seen
    );
    assert!(gobgp.wait_established("10.78.15.2", WAIT));
    let uptime = |g: &Gobgp| {
        g.neighbor("10.78.15.2")
            .map(|n| n["timers"]["state"]["uptime"].clone())
    };
    let up_since = uptime(&gobgp);

    // Watch for a few seconds: our released connect completes meanwhile.
    let flap = sp.wait_event(Duration::from_secs(4), |v| {
        v["event"] == "peer" && v["state"] != "Established"
    });
    assert!(flap.is_none(), "our session flapped: {:?}", sp.seen);
    let conns = bgp_connections(ours);
    assert_eq!(conns.len(), 1, "BGP connections: {conns:?}");
    assert!(wait_peer_state(
        &mut sp,
        "10.78.15.1",
        "Established",
        Duration::from_secs(1)
    ));
    assert_eq!(gobgp.session_state("10.78.15.2"), Some(ESTABLISHED));
    assert_eq!(
        uptime(&gobgp),
        up_since,
        "GoBGP's session was re-established"
    );
    gobgp_learns(&gobgp, "ipv4", "10.78.215.0/26", "10.78.15.2");
}

/// BIRD 2 in the foreground (`-f`) under a [`Daemon`] guard: killed and
/// reaped on drop, with no pidfile to race on.
struct Bird {
    _daemon: Daemon,
    ctl: PathBuf,
}

impl Bird {
    fn start(ns: &Netns, scratch: &Scratch, conf: &str) -> Bird {
        let conf = scratch.write("bird.conf", conf);
        let ctl = scratch.join("bird.ctl");
        let pid = scratch.join("bird.pid");
        let args = [
            "-f",
            "-c",
            &*conf.to_string_lossy(),
            "-s",
            &*ctl.to_string_lossy(),
            "-P",
            &*pid.to_string_lossy(),
        ]
        .map(str::to_owned);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let daemon = Daemon::spawn(Some(ns), "bird", &args, &scratch.join("bird.log"));
        Bird {
            _daemon: daemon,
            ctl,
        }
    }

    /// `birdc -s CTL ARGS`; empty while BIRD is not answering.
    fn cli(&self, args: &[&str]) -> String {
        Command::new("birdc")
            .arg("-s")
            .arg(&self.ctl)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

#[test]
fn route_reflector_reflects_between_a_bird_client_and_a_gobgp_client() {
    require_root("route reflector interop test");
    // One segment, 10.78.16.0/24: GoBGP .1, us .2 (the bridge lives in our
    // namespace), BIRD .3. All next hops are on-link for everyone.
    let ours = Netns::new("rro");
    let gns = Netns::new("rrg");
    let bns = Netns::new("rrb");
    // A set address: an unset one follows the ports as they join.
    ours.exec(
        "ip",
        &[
            "link",
            "add",
            "br0",
            "address",
            "02:00:0a:4e:10:02",
            "type",
            "bridge",
        ],
    );
    ours.exec("ip", &["addr", "add", "10.78.16.2/24", "dev", "br0"]);
    ours.exec("ip", &["link", "set", "br0", "up"]);
    attach_to_bridge(&gns, &ours, "br0", "10.78.16.1/24");
    attach_to_bridge(&bns, &ours, "br0", "10.78.16.3/24");
    let scratch = Scratch::new("rr");

    let config = Config {
        asn: AS,
        router_id: "10.78.16.1".into(),
        listen: vec!["10.78.16.1".into()],
        neighbors: vec![Neighbor::new("10.78.16.2", AS)],
    };
    let gobgp = Gobgp::start(&gns, &scratch, &config, &[]);
    let bird = Bird::start(
        &bns,
        &scratch,
        "router id 10.78.16.3;\n\
         protocol device {}\n\
         protocol static announced { ipv4; route 10.78.116.0/24 blackhole; }\n\
         protocol bgp reflector {\n\
           local 10.78.16.3 as 64512;\n\
           neighbor 10.78.16.2 as 64512;\n\
           direct;\n\
           connect retry time 1;\n\
           error wait time 1, 2;\n\
           ipv4 { import all; export all; gateway direct; };\n\
         }\n",
    );
    let config = speaker_config(
        "10.78.16.2",
        vec![
            json!({"address": "10.78.16.1", "asn": AS, "route-reflector-client": true}),
            json!({"address": "10.78.16.3", "asn": AS, "route-reflector-client": true}),
        ],
        json!({"cluster-id": "10.78.16.200"}),
    );
    let mut sp = start_speaker(&ours, &scratch, &config, &[]);
    for peer in ["10.78.16.1", "10.78.16.3"] {
        assert!(
            wait_peer_state(&mut sp, peer, "Established", WAIT),
            "{peer}: {:?}",
            sp.seen
        );
    }
    gobgp.cli(&["global", "rib", "add", "10.78.216.0/24"]);

    // BIRD's route, reflected to GoBGP: next hop untouched, ORIGINATOR_ID
    // BIRD's router ID, CLUSTER_LIST our cluster ID (RFC 4456 §8).
    let path = gobgp_learns(&gobgp, "ipv4", "10.78.116.0/24", "10.78.16.2");
    assert_eq!(next_hop(&path).as_deref(), Some("10.78.16.3"), "{path}");
    assert_eq!(
        attr(&path, 9).map(|a| &a["value"]),
        Some(&json!("10.78.16.3")),
        "ORIGINATOR_ID: {path}"
    );
    assert_eq!(
        attr(&path, 10).map(|a| &a["value"]),
        Some(&json!(["10.78.16.200"])),
        "CLUSTER_LIST: {path}"
    );

    // GoBGP's route, reflected to BIRD.
    let mut shown = String::new();
    let seen = wait_for(WAIT, || {
        shown = bird.cli(&["show", "route", "10.78.216.0/24", "all"]);
        shown.contains("BGP.cluster_list").then_some(())
    });
    assert!(
        seen.is_some(),
        "BIRD never got 10.78.216.0/24: {shown}\n{}",
        bird.cli(&["show", "protocols", "all", "reflector"])
    );
    assert!(shown.contains("BGP.next_hop: 10.78.16.1"), "{shown}");
    assert!(shown.contains("BGP.originator_id: 10.78.16.1"), "{shown}");
    assert!(shown.contains("BGP.cluster_list: 10.78.16.200"), "{shown}");
}
