//! `route-agent run` end to end on two nodes sharing a subnet, each in a
//! network namespace this test creates: the agents peer over the
//! node-to-node mesh, each blackholes its own block and routes the other's
//! directly (`via NH dev <underlay> onlink`), and the routes outlive a
//! SIGKILLed agent. Needs root.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    AGENT, Node, config, dual_config, ip, pair, pair_configs, require_root, wait_routes6,
};

#[test]
fn two_agents_on_one_subnet_route_each_others_blocks_directly_restore_deleted_routes_and_keep_them_after_sigkill()
 {
    require_root();
    let (mut a, mut b, va, vb) = pair("d", 0);
    let (config_a, config_b) = pair_configs(0);
    a.start(&config_a);
    b.start(&config_b);

    let want_a = vec![
        "10.244.2.0/26 via 10.96.0.2 dev VA onlink".replace("VA", &va),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    let want_b = vec![
        "10.244.1.0/26 via 10.96.0.1 dev VB onlink".replace("VB", &vb),
        "blackhole 10.244.2.0/26".to_owned(),
    ];
    let got_a = a.wait_routes(&want_a);
    assert_eq!(got_a, want_a, "node A's routes; log:\n{}", a.log());
    let got_b = b.wait_routes(&want_b);
    assert_eq!(got_b, want_b, "node B's routes; log:\n{}", b.log());

    // A route of ours deleted by hand is back within a second.
    let ours = want_a[0].split(" via ").next().unwrap().to_owned();
    ip(&["-n", &a.ns, "route", "del", &ours]);
    let deleted_at = Instant::now();
    assert_restored_within_a_second(&a, &a.wait_routes(&want_a), &want_a, deleted_at);

    // SIGKILL: nothing is cleaned up, the kernel keeps forwarding.
    b.kill();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.routes(), want_b, "B's routes outlive its agent");
}

#[test]
fn a_nexthop_object_of_ours_deleted_by_hand_is_back_with_its_route_within_a_second() {
    require_root();
    let (mut a, mut b, va, _) = pair("n", 9);
    let objects = "nexthop-objects: true\n";
    let (config_a, config_b) = pair_configs(9);
    a.start(&(config_a + objects));
    b.start(&(config_b + objects));
    // `B nhid N via NH dev D onlink`, the id left out.
    let shape = |routes: Vec<String>| -> Vec<String> {
        routes
            .into_iter()
            .map(|r| {
                let words: Vec<&str> = r.split(' ').collect();
                match words.as_slice() {
                    [dst, "nhid", _, rest @ ..] => format!("{dst} nhid * {}", rest.join(" ")),
                    _ => r,
                }
            })
            .collect()
    };
    let want = vec![
        format!("10.244.2.0/26 nhid * via 10.96.9.2 dev {va} onlink"),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    let wait = |since: Instant| loop {
        let got = shape(a.routes());
        if got == want || since.elapsed() > Duration::from_secs(30) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        wait(Instant::now()),
        want,
        "node A's routes; log:\n{}",
        a.log()
    );

    // Deleting the object takes the route along without a route
    // notification; the object's own notification brings both back.
    let shown = ip(&["-n", &a.ns, "nexthop", "show", "proto", "98"]);
    let id = shown
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no object of ours: {shown}"))
        .to_owned();
    ip(&["-n", &a.ns, "nexthop", "del", "id", &id]);
    let deleted_at = Instant::now();
    assert_restored_within_a_second(&a, &wait(deleted_at), &want, deleted_at);
    b.kill();
}

/// After a route of ours was deleted by hand at `deleted_at`: the routes
/// are `want` again, back within a second.
fn assert_restored_within_a_second(
    node: &Node,
    got: &[String],
    want: &[String],
    deleted_at: Instant,
) {
    assert_eq!(
        got,
        want,
        "the deleted route was not restored; log:\n{}",
        node.log()
    );
    assert!(
        deleted_at.elapsed() < Duration::from_secs(1),
        "restored after {:?}",
        deleted_at.elapsed()
    );
}

#[test]
fn sighup_adds_a_block_and_a_peer_without_resetting_the_established_session() {
    require_root();
    let (mut a, mut b, _, vb) = pair("h", 1);
    let (config_a, config_b) = pair_configs(1);
    a.start(&config_a);
    b.start(&config_b);
    assert!(
        b.wait_peer_state("10.96.1.1", "Established"),
        "B never established with A; log:\n{}",
        b.log()
    );
    let want_b = vec![
        "10.244.1.0/26 via 10.96.1.1 dev VB onlink".replace("VB", &vb),
        "blackhole 10.244.2.0/26".to_owned(),
    ];
    assert_eq!(b.wait_routes(&want_b), want_b, "B's log:\n{}", b.log());
    // Let the session age so that a reset would show in its uptime.
    std::thread::sleep(Duration::from_millis(2100));

    // A gets a second block and a mesh peer that does not exist.
    let reloaded = config_a
        .replace("[10.244.1.0/26]", "[10.244.1.0/26, 10.244.1.64/26]")
        .replace("[10.96.1.2]", "[10.96.1.2, 10.96.1.3]");
    a.reload(&reloaded);
    let want_b2 = vec![
        "10.244.1.0/26 via 10.96.1.1 dev VB onlink".replace("VB", &vb),
        "10.244.1.64/26 via 10.96.1.1 dev VB onlink".replace("VB", &vb),
        "blackhole 10.244.2.0/26".to_owned(),
    ];
    assert_eq!(
        b.wait_routes(&want_b2),
        want_b2,
        "B did not learn A's new block; A's log:\n{}",
        a.log()
    );
    let new_peer = a.peer("10.96.1.3");
    assert!(
        new_peer.as_ref().is_some_and(|(s, _)| s != "Established"),
        "A's new peer: {new_peer:?}; log:\n{}",
        a.log()
    );
    let (state, uptime) = a.peer("10.96.1.2").expect("A still has B");
    assert_eq!(state, "Established");
    assert!(
        uptime.is_some_and(|u| u >= 2),
        "the session to B was reset by the reload (uptime {uptime:?}); log:\n{}",
        a.log()
    );
    assert!(a.log().contains("SIGHUP: config reloaded"), "{}", a.log());

    // A broken config is refused and the running one stays.
    a.reload("node: {address: nonsense}\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.log().contains("config not reloaded") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(a.log().contains("config not reloaded"), "{}", a.log());
    assert_eq!(
        a.peer("10.96.1.2").map(|p| p.0).as_deref(),
        Some("Established")
    );
}

#[test]
fn a_change_of_the_underlay_mtu_re_plans_the_tunnel_routes_and_the_tunnel() {
    require_root();
    let (mut a, mut b, va, _) = pair("m", 2);
    // IPIP always: the peer's block goes through tunl0 although it shares
    // our subnet, with the tunnel MTU = underlay MTU − 20.
    // The userspace backend: the bpf one (auto's choice on a kernel
    // without ipip) has no tunnel device, and its routes no MTU of their
    // own (their encapsulation headroom lowers the path MTU).
    let always = |c: String| {
        c.replace("ipip-mode: cross-subnet", "ipip-mode: always") + "tunnel: {backend: userspace}\n"
    };
    let (config_a, config_b) = pair_configs(2);
    a.start(&always(config_a));
    b.start(&always(config_b));
    let want = |mtu: u32| {
        vec![
            format!("10.244.2.0/26 via 10.96.2.2 dev tunl0 onlink mtu {mtu}"),
            "blackhole 10.244.1.0/26".to_owned(),
        ]
    };
    assert_eq!(a.wait_routes(&want(1480)), want(1480), "log:\n{}", a.log());

    ip(&["-n", &a.ns, "link", "set", "dev", &va, "mtu", "1400"]);
    let changed = Instant::now();
    assert_eq!(
        a.wait_routes(&want(1380)),
        want(1380),
        "the tunnel route did not follow the MTU; log:\n{}",
        a.log()
    );
    assert!(
        changed.elapsed() < Duration::from_secs(2),
        "took {:?}",
        changed.elapsed()
    );
    let link = ip(&["-n", &a.ns, "link", "show", "tunl0"]);
    assert!(link.contains("mtu 1380"), "tunl0: {link}");

    // SIGTERM: a clean exit (Cease to B), routes and tunnel stay.
    let status = a.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "A's agent after SIGTERM: {status:?}; log:\n{}",
        a.log()
    );
    assert_eq!(a.routes(), want(1380), "routes persist after SIGTERM");
    assert!(ip(&["-n", &a.ns, "link", "show", "tunl0"]).contains("tunl0"));
    // Without graceful restart (this config) A sends Cease and B drops
    // A's block at once.
    let want_b = vec!["blackhole 10.244.2.0/26".to_owned()];
    assert_eq!(
        b.wait_routes(&want_b),
        want_b,
        "B kept A's route after A's Cease; B's log:\n{}",
        b.log()
    );
}

#[test]
fn demo_builds_a_three_node_cluster_pings_every_pair_and_removes_everything() {
    require_root();
    // Only what a fresh Debian machine has and the demo names as needed:
    // `ip` (iproute2) and `sh`. No ping, no kill: the demo sends its own
    // ICMP echoes and signals.
    let bin = std::env::temp_dir().join(format!("demo-path-{}", std::process::id()));
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["ip", "sh"] {
        let found = String::from_utf8(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        let _ = std::fs::remove_file(bin.join(tool));
        std::os::unix::fs::symlink(found.trim(), bin.join(tool)).unwrap();
    }
    let child = Command::new(AGENT)
        .arg("demo")
        .env("PATH", &bin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&bin);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo (PATH with only ip and sh) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The tunnel route: tunl0 where the kernel has ipip, else the bpf
    // backend's program on eth0 (the program's id in its name varies).
    let tunnel_route = stdout.lines().any(|l| {
        if route_agent::demo::cluster::kernel_has_ipip() {
            l.contains("10.244.3.0/26 via 10.0.2.10 dev tunl0 proto 98 onlink mtu 1480")
        } else {
            l.contains("10.244.3.0/26  encap bpf xmit podroute-ipip-")
                && l.contains("via 10.0.2.10 dev eth0 proto 98 onlink")
        }
    });
    assert!(tunnel_route, "no tunnel route to C's block in:\n{stdout}");
    for want in [
        "10.244.2.0/26 via 10.0.1.11 dev eth0 proto 98 onlink",
        "blackhole 10.244.1.0/26 proto 98",
        "demo passed",
    ] {
        assert!(stdout.contains(want), "no `{want}` in:\n{stdout}");
    }
    let left = ip(&["netns", "list"]);
    assert!(
        !left.contains(&format!("rademo{pid}")),
        "the demo left namespaces behind:\n{left}"
    );
}

#[test]
fn a_first_start_with_graceful_restart_installs_routes_without_waiting_for_a_peer_that_is_down() {
    require_root();
    let (mut a, mut b, va, _) = pair("f", 3);
    // Graceful restart on (120 s), and a mesh peer that never answers.
    let gr = |c: String| c.replace("enabled: false", "enabled: true");
    a.start(&gr(config(
        "node-a",
        "10.96.3.1/24",
        "10.244.1.0/26",
        "10.96.3.2, 10.96.3.9",
    )));
    b.start(&gr(pair_configs(3).1));
    let want = vec![
        "10.244.2.0/26 via 10.96.3.2 dev VA onlink".replace("VA", &va),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    let started = Instant::now();
    assert_eq!(a.wait_routes(&want), want, "log:\n{}", a.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the first install waited {:?} (for the dead peer's End-of-RIB?)",
        started.elapsed()
    );
    assert!(
        !a.log().contains("restarting with graceful restart"),
        "{}",
        a.log()
    );
}

#[test]
fn dual_stack_ipv6_blocks_go_direct_on_the_shared_ipv6_subnet_with_the_node_ipv6_next_hop() {
    require_root();
    let (mut a, mut b, va, vb) = pair("6d", 4);
    ip(&[
        "-n",
        &a.ns,
        "addr",
        "add",
        "fd00:96:4::1/64",
        "dev",
        &va,
        "nodad",
    ]);
    ip(&[
        "-n",
        &b.ns,
        "addr",
        "add",
        "fd00:96:4::2/64",
        "dev",
        &vb,
        "nodad",
    ]);
    // A names its IPv6 address; B's is found on its underlay interface.
    a.start(
        &dual_config(
            "node-a",
            "10.96.4.1/24",
            "10.244.1.0/26",
            "fd00:244:0:1::/122",
            "10.96.4.2",
        )
        .replace(
            "  address: 10.96.4.1/24\n",
            "  address: 10.96.4.1/24\n  address-v6: fd00:96:4::1/64\n",
        ),
    );
    b.start(&dual_config(
        "node-b",
        "10.96.4.2/24",
        "10.244.2.0/26",
        "fd00:244:0:2::/122",
        "10.96.4.1",
    ));
    let want_a = vec![
        "blackhole fd00:244:0:1::/122 dev lo metric 1024 pref medium".to_owned(),
        format!("fd00:244:0:2::/122 via fd00:96:4::2 dev {va} metric 1024 onlink pref medium"),
    ];
    let want_b = vec![
        "blackhole fd00:244:0:2::/122 dev lo metric 1024 pref medium".to_owned(),
        format!("fd00:244:0:1::/122 via fd00:96:4::1 dev {vb} metric 1024 onlink pref medium"),
    ];
    assert_eq!(
        wait_routes6(&a.ns, &want_a),
        want_a,
        "A's log:\n{}",
        a.log()
    );
    assert_eq!(
        wait_routes6(&b.ns, &want_b),
        want_b,
        "B's log:\n{}",
        b.log()
    );
    // IPv4 goes on as before.
    let want4 = vec![
        format!("10.244.2.0/26 via 10.96.4.2 dev {va} onlink"),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    assert_eq!(a.wait_routes(&want4), want4);
}

#[test]
fn dual_stack_ipv6_blocks_off_the_ipv6_subnet_go_via_the_underlay_route_to_the_next_hop() {
    require_root();
    let (mut a, mut b, va, vb) = pair("6u", 5);
    // Different IPv6 subnets on one link, joined by connected routes.
    ip(&[
        "-n",
        &a.ns,
        "addr",
        "add",
        "fd00:96:5::1/64",
        "dev",
        &va,
        "nodad",
    ]);
    ip(&[
        "-n",
        &b.ns,
        "addr",
        "add",
        "fd00:96:6::2/64",
        "dev",
        &vb,
        "nodad",
    ]);
    ip(&[
        "-n",
        &a.ns,
        "-6",
        "route",
        "add",
        "fd00:96:6::/64",
        "dev",
        &va,
    ]);
    ip(&[
        "-n",
        &b.ns,
        "-6",
        "route",
        "add",
        "fd00:96:5::/64",
        "dev",
        &vb,
    ]);
    a.start(&dual_config(
        "node-a",
        "10.96.5.1/24",
        "10.244.1.0/26",
        "fd00:244:0:1::/122",
        "10.96.5.2",
    ));
    b.start(&dual_config(
        "node-b",
        "10.96.5.2/24",
        "10.244.2.0/26",
        "fd00:244:0:2::/122",
        "10.96.5.1",
    ));
    let want_a = vec![
        "blackhole fd00:244:0:1::/122 dev lo metric 1024 pref medium".to_owned(),
        format!("fd00:244:0:2::/122 via fd00:96:6::2 dev {va} metric 1024 pref medium"),
    ];
    assert_eq!(
        wait_routes6(&a.ns, &want_a),
        want_a,
        "A's log:\n{}",
        a.log()
    );
    let got_b = wait_routes6(
        &b.ns,
        &[
            "blackhole fd00:244:0:2::/122 dev lo metric 1024 pref medium".to_owned(),
            format!("fd00:244:0:1::/122 via fd00:96:5::1 dev {vb} metric 1024 pref medium"),
        ],
    );
    assert!(
        got_b
            .iter()
            .any(|r| r.starts_with("fd00:244:0:1::/122 via fd00:96:5::1")),
        "{got_b:?}"
    );
    // Pods' IPv6 traffic would follow: the route resolves.
    let get = ip(&["-n", &a.ns, "-6", "route", "get", "fd00:244:0:2::5"]);
    assert!(get.contains("via fd00:96:6::2"), "{get}");
}

#[test]
fn with_persist_routes_off_a_clean_stop_removes_our_routes_and_nothing_else() {
    require_root();
    let (mut a, mut b, va, _) = pair("p", 7);
    let (config_a, config_b) = pair_configs(7);
    a.start(&format!("{config_a}persist-routes: false\n"));
    b.start(&config_b);
    // A route of another protocol that must survive.
    ip(&[
        "-n",
        &a.ns,
        "route",
        "add",
        "192.0.2.0/24",
        "via",
        "10.96.7.2",
    ]);
    let want = vec![
        format!("10.244.2.0/26 via 10.96.7.2 dev {va} onlink"),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    assert_eq!(a.wait_routes(&want), want, "log:\n{}", a.log());

    let status = a.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}; log:\n{}",
        a.log()
    );
    assert_eq!(a.routes(), Vec::<String>::new(), "log:\n{}", a.log());
    assert!(ip(&["-n", &a.ns, "route", "show"]).contains("192.0.2.0/24 via 10.96.7.2"));
}

#[test]
fn json_logs_are_one_object_per_line_with_time_level_and_fields() {
    require_root();
    let (mut a, mut b, va, _) = pair("j", 8);
    let (config_a, config_b) = pair_configs(8);
    a.start_with_logs(&config_a, "json");
    b.start(&config_b);
    let want = vec![
        format!("10.244.2.0/26 via 10.96.8.2 dev {va} onlink"),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    assert_eq!(a.wait_routes(&want), want, "log:\n{}", a.log());
    a.kill();
    let log = a.log();
    // Every line, the userspace tunnel's included (it logs to the same
    // file in the agent's format).
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "kernel routes reconciled"
                && l["fields"]["added"].as_u64().is_some()),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "session established"
                && l["fields"]["peer"] == "10.96.8.2"),
        "{log}"
    );
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
}

impl Node {
    /// The raw HTTP answer (headers and body) of the agent's `/metrics`
    /// in the node's namespace, asked without an `Accept` header.
    fn metrics(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "bash", "-c"])
            .arg("exec 3<>/dev/tcp/127.0.0.1/9179; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
            .output()
            .expect("bash runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The value of the sample written `series` (name and labels) in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        if s == series { v.parse().ok() } else { None }
    })
}

#[test]
fn a_running_agent_times_its_reconciles_and_learned_routes_on_their_way_to_the_kernel() {
    require_root();
    let (mut a, mut b, va, _) = pair("x", 6);
    let (config_a, config_b) = pair_configs(6);
    // Node A serves no series labelled by peer; B does.
    a.start(&format!("{config_a}admin:\n  per-peer-metrics: false\n"));
    b.start(&config_b);
    let want_a = vec![
        "10.244.2.0/26 via 10.96.6.2 dev VA onlink".replace("VA", &va),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    assert_eq!(a.wait_routes(&want_a), want_a, "log:\n{}", a.log());
    // B's block came from B's UPDATE through A's loop and planner to the
    // FIB thread: the pass that installed it observed the time since the
    // batch arrived. (The route can be in the kernel a moment before the
    // pass ends and observes, so poll.)
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let m = a.metrics();
        if sample(&m, "route_agent_bgp_update_to_kernel_seconds_count").is_some_and(|n| n >= 1.0)
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        scrape
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{scrape}"
    );
    for histogram in [
        "route_agent_bgp_update_to_kernel_seconds",
        "route_agent_fib_reconcile_duration_seconds",
    ] {
        let count = sample(&scrape, &format!("{histogram}_count"));
        assert!(count.is_some_and(|n| n >= 1.0), "{histogram}: {scrape}");
        let inf = sample(&scrape, &format!("{histogram}_bucket{{le=\"+Inf\"}}"));
        assert_eq!(inf, count, "{histogram}: +Inf bucket and count");
        let sum = sample(&scrape, &format!("{histogram}_sum"));
        assert!(sum.is_some_and(|s| s > 0.0), "{histogram}: {scrape}");
    }
    // One reconcile pass at least per observation of the first.
    let passes = sample(&scrape, "route_agent_fib_reconciles_total").unwrap();
    assert!(
        sample(&scrape, "route_agent_fib_reconcile_duration_seconds_count") <= Some(passes),
        "{scrape}"
    );
    // The process figures of the agent itself. Its CPU time may still
    // be below one clock tick (10 ms): present, maybe 0.
    assert!(
        sample(&scrape, "process_cpu_seconds_total").is_some_and(|v| v >= 0.0),
        "{scrape}"
    );
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            sample(&scrape, name).is_some_and(|v| v > 0.0),
            "{name}: {scrape}"
        );
    }
    // per-peer-metrics: false on A: the sessions by state, no peer label.
    assert_eq!(
        sample(&scrape, "route_agent_bgp_sessions{state=\"established\"}"),
        Some(1.0)
    );
    assert!(!scrape.contains("peer=\""), "{scrape}");
    // B keeps the default.
    let scrape_b = b.metrics();
    assert_eq!(
        sample(&scrape_b, "route_agent_bgp_peer_up{peer=\"10.96.6.1\"}"),
        Some(1.0),
        "{scrape_b}"
    );
    assert!(
        sample(
            &scrape_b,
            "route_agent_bgp_prefixes_received_total{peer=\"10.96.6.1\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{scrape_b}"
    );
    // A reload of A's config without the setting (SIGHUP) brings its
    // per-peer series back, no restart needed.
    a.reload(&config_a);
    let deadline = Instant::now() + Duration::from_secs(10);
    let scrape = loop {
        let m = a.metrics();
        if m.contains("peer=\"") || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        sample(&scrape, "route_agent_bgp_peer_up{peer=\"10.96.6.2\"}"),
        Some(1.0),
        "log:\n{}\n{scrape}",
        a.log()
    );
    assert!(
        !a.log().contains("take effect only after a restart"),
        "{}",
        a.log()
    );
}
