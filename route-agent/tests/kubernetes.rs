//! `datastore: kubernetes` end to end (issue 13, item 1 and "Bad input
//! from the cluster"): agents in network namespaces this test creates
//! (`route_agent::demo::cluster`: A and B on 10.0.1.0/24, C behind a router
//! on 10.0.2.0/24, a pod behind each) learn every node from the Kubernetes
//! API server **test double** (`podroute_tests::kube_api`), which listens
//! inside the router's namespace on 10.0.1.1, reached by every node (C
//! through its default route). Each agent gets a kubeconfig pointing at it
//! (`KUBECONFIG`) and a config without blocks or mesh peers. Every
//! scenario is asserted on the kernel routes of every namespace node, with
//! `ip monitor` traces where "nothing else changes" is the claim. Needs
//! root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podroute_tests::kube_api::{KubeApi, node_json};
use podroute_tests::{RouteMonitor, require_root};
use route_agent::demo::cluster::{Cluster, routes};
use serde_json::{Value, json};

const AGENT: &str = env!("CARGO_BIN_EXE_route-agent");
const PROTO: u8 = 98;
const TUNNEL_MTU: u32 = 1480;

/// A, B, C: (name, subnet, host, podCIDR).
const NODES: [(&str, u8, u8, &str); 3] = [
    ("node-a", 1, 10, "10.244.1.0/26"),
    ("node-b", 1, 11, "10.244.2.0/26"),
    ("node-c", 2, 10, "10.244.3.0/26"),
];

/// The ConfigMap every agent shares: cluster-wide settings only.
fn agent_config(name: &str) -> String {
    format!(
        "datastore: kubernetes\nnode:\n  name: {name}\n\
         pools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n\
         tunnel:\n  backend: auto\n\
         graceful-restart:\n  enabled: true\n  restart-time: 10\n\
         admin:\n  listen: 127.0.0.1:9179\n"
    )
}

/// A cluster, the API double in its router and the way to start agents.
struct Kube {
    c: Cluster,
    api: KubeApi,
    kubeconfig: String,
}

impl Kube {
    /// A, B and C with pods and Node objects; agents started and converged.
    fn new(tag: &str) -> Kube {
        let mut c = Cluster::new(&format!("rak{tag}{}", std::process::id())).expect("cluster");
        for (name, subnet, host, block) in NODES {
            c.add_node(name, subnet, host).expect("node");
            c.add_pod(name, block.parse().unwrap()).expect("pod");
        }
        let router = c.router().to_owned();
        let api = KubeApi::start_in_netns(&router, "10.0.1.1".parse().unwrap());
        let kubeconfig = c.dir().join("kubeconfig");
        std::fs::write(&kubeconfig, api.kubeconfig()).expect("kubeconfig");
        let mut k = Kube {
            c,
            api,
            kubeconfig: kubeconfig.to_string_lossy().into_owned(),
        };
        for (name, subnet, host, block) in NODES {
            k.api
                .apply_node(node_json(name, &format!("10.0.{subnet}.{host}"), &[block]));
            k.start(name);
        }
        k.converge(Duration::from_secs(30));
        k
    }

    fn start(&mut self, name: &str) {
        self.c
            .start_agent_with_env(
                name,
                std::path::Path::new(AGENT),
                &agent_config(name),
                &[("KUBECONFIG", &self.kubeconfig)],
            )
            .expect("agent");
    }

    fn converge(&mut self, within: Duration) {
        let wrong = self.c.wait_converged(PROTO, TUNNEL_MTU, within);
        let logs: String = wrong
            .iter()
            .map(|(n, want, have)| {
                format!(
                    "\n{n}: want {want:#?}\nhas {have:#?}\nlog:\n{}",
                    self.c.log(n)
                )
            })
            .collect();
        assert!(wrong.is_empty(), "cluster did not converge:{logs}");
    }

    /// Waits until `check` holds for the routes of every node (name →
    /// routes), returns how long it took.
    fn converged_in(&mut self, within: Duration) -> Duration {
        let start = Instant::now();
        self.converge(within);
        start.elapsed()
    }

    fn monitors(&self, names: &[&str]) -> Vec<(String, RouteMonitor)> {
        names
            .iter()
            .map(|n| {
                let ns = self.c.node(n).unwrap().ns.clone();
                let file = self.c.dir().join(format!("{n}.{}.monitor", rand_tag()));
                ((*n).to_owned(), RouteMonitor::start(&ns, file))
            })
            .collect()
    }

    /// `/metrics` of node `name`'s agent.
    fn metrics(&self, name: &str) -> String {
        let ns = &self.c.node(name).unwrap().ns;
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "bash", "-c"])
            .arg("exec 3<>/dev/tcp/127.0.0.1/9179; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
            .output()
            .expect("metrics");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Stops every monitor and returns the route changes each saw.
fn churn(monitors: Vec<(String, RouteMonitor)>) -> Vec<(String, Vec<String>)> {
    monitors
        .into_iter()
        .map(|(n, m)| (n, m.stop(PROTO)))
        .collect()
}

fn assert_no_churn(monitors: Vec<(String, RouteMonitor)>, what: &str) {
    for (n, lines) in churn(monitors) {
        assert!(
            lines.is_empty(),
            "{what}: {n}'s routes changed:\n{}",
            lines.join("\n")
        );
    }
}

/// Every changed route line mentions one of `allowed` (prefixes).
fn assert_only(monitors: Vec<(String, RouteMonitor)>, allowed: &[&str], what: &str) {
    for (n, lines) in churn(monitors) {
        let other: Vec<&String> = lines
            .iter()
            .filter(|l| !allowed.iter().any(|a| l.contains(a)))
            .collect();
        assert!(
            other.is_empty(),
            "{what}: {n} changed other routes:\n{other:#?}"
        );
    }
}

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn nodes_come_from_the_api_and_a_node_added_removed_or_changed_touches_only_its_routes() {
    require_root("the Kubernetes datastore test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut k = Kube::new("n");
    // Every agent marked its Node's network available once its routes
    // were in.
    assert!(
        wait_until(Duration::from_secs(10), || {
            NODES.iter().all(|(n, ..)| {
                k.api.node(n).is_some_and(|node| {
                    node["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| {
                            c["type"] == "NetworkUnavailable"
                                && c["status"] == "False"
                                && c["reason"] == "RouteAgentIsUp"
                        })
                })
            })
        }),
        "NetworkUnavailable not cleared: {:#?}",
        k.api.patches()
    );
    let (matrix, all) = k.c.ping_matrix(3);
    assert!(all, "pod-to-pod pings:\n{matrix}");

    // Node added: D's agent runs (a DaemonSet pod waits for its Node);
    // its Node appears; its routes are everywhere within a second.
    k.c.add_node("node-d", 2, 11).expect("node D");
    k.c.add_pod("node-d", "10.244.4.0/26".parse().unwrap())
        .expect("pod D");
    k.start("node-d");
    std::thread::sleep(Duration::from_secs(2));
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    k.api
        .apply_node(node_json("node-d", "10.0.2.11", &["10.244.4.0/26"]));
    let took = k.converged_in(Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(1),
        "node D's routes took {took:?}"
    );
    assert_only(monitors, &["10.244.4.0/26"], "node D added");
    eprintln!("node added: routes everywhere after {took:?}");

    // Node removed: its routes go everywhere, nothing else is touched.
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    k.c.kill_agent("node-d").expect("kill D");
    k.api.delete_node("node-d");
    k.c.nodes.retain(|n| n.name != "node-d");
    let took = k.converged_in(Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(1),
        "node D's routes went after {took:?}"
    );
    assert_only(monitors, &["10.244.4.0/26"], "node D removed");
    eprintln!("node removed: routes gone after {took:?}");

    // podCIDR changed: C's block moves; only C's routes change.
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    k.api.update_node("node-c", |n| {
        n["spec"] = json!({"podCIDR": "10.244.5.0/26", "podCIDRs": ["10.244.5.0/26"]});
    });
    if let Some(n) = k.c.nodes.iter_mut().find(|n| n.name == "node-c") {
        n.block = Some("10.244.5.0/26".parse().unwrap());
    }
    let took = k.converged_in(Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(1),
        "C's new podCIDR took {took:?}"
    );
    assert_only(
        monitors,
        &["10.244.3.0/26", "10.244.5.0/26"],
        "C's podCIDR changed",
    );
    eprintln!("podCIDR changed: routes everywhere after {took:?}");

    // Address changed: B moves to 10.0.1.12. B's agent stops (exit 3,
    // routes persist) and is started again, as the DaemonSet does; A and
    // C replace the session, and only B's route changes.
    let monitors = k.monitors(&["node-a", "node-c"]);
    let b_ns = k.c.node("node-b").unwrap().ns.clone();
    Command::new("ip")
        .args(["-n", &b_ns, "addr", "add", "10.0.1.12/24", "dev", "eth0"])
        .status()
        .expect("ip addr add");
    k.api.update_node("node-b", |n| {
        n["status"]["addresses"][0]["address"] = json!("10.0.1.12");
    });
    assert!(
        wait_until(Duration::from_secs(5), || k.c.agent_exit_code("node-b")
            == Some(3)),
        "B's agent did not stop for its new address:\n{}",
        k.c.log("node-b")
    );
    k.start("node-b");
    if let Some(n) = k.c.nodes.iter_mut().find(|n| n.name == "node-b") {
        n.address = "10.0.1.12/24".parse().unwrap();
    }
    let took = k.converged_in(Duration::from_secs(20));
    assert_only(monitors, &["10.244.2.0/26"], "B's address changed");
    eprintln!("address changed: routes everywhere after {took:?} (including B's restart)");
    // B's pod is reached at B's new address (C's pod kept its address
    // from the old podCIDR, so it is not pinged).
    for (from, to) in [("node-a", "node-b"), ("node-b", "node-a")] {
        assert!(
            k.c.pod_ping(from, to, 3).unwrap(),
            "{from} → {to} after B moved"
        );
    }
}

#[test]
fn the_api_server_gone_for_30_s_or_a_410_changes_no_session_and_no_route() {
    require_root("the Kubernetes datastore test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut k = Kube::new("g");
    std::thread::sleep(Duration::from_secs(1));
    let sessions = uptimes(&k);
    assert_eq!(sessions.len(), 6, "{sessions:#?}");
    let t0 = Instant::now();

    // Gone for 30 s.
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    k.api.go_away();
    std::thread::sleep(Duration::from_secs(30));
    k.converge(Duration::from_secs(1));
    let before_back = k.api.requests().len();
    k.api.come_back();
    // Each agent watches again from the resourceVersion it had (still in
    // the server's history, so no relist is needed: as with a real API
    // server); a change made now reaches every agent.
    assert!(
        wait_until(Duration::from_secs(15), || k.api.requests()[before_back..]
            .iter()
            .filter(|r| r.contains("watch=true"))
            .count()
            >= 3),
        "the agents did not watch again: {:#?}",
        k.api.requests()
    );
    k.api.update_node("node-c", |n| {
        n["metadata"]["labels"]["example.com/touched"] = json!("yes");
    });
    assert!(
        wait_until(Duration::from_secs(5), || NODES.iter().all(|(n, ..)| k
            .c
            .log(n)
            .contains("Kubernetes API reachable again"))),
        "an agent did not resync after the API server came back"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_no_churn(monitors, "API server gone for 30 s");
    assert_kept(&sessions, &uptimes(&k), t0.elapsed());
    eprintln!(
        "API server gone 30 s: no route changed, every session kept, watches resumed and a change seen by every agent"
    );

    // 410 Gone: history expired, the agents list again, nothing changes.
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    let lists_before = count_lists(&k.api);
    k.api.expire_history();
    assert!(
        wait_until(Duration::from_secs(10), || count_lists(&k.api)
            >= lists_before + 3),
        "no relist after 410: {:#?}",
        k.api.requests()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_no_churn(monitors, "410 Gone");
    assert_kept(&sessions, &uptimes(&k), t0.elapsed());
    assert!(
        k.api.requests().iter().any(|r| r.contains("watch=true")),
        "no watch"
    );
    eprintln!("410 Gone: relisted, no route changed, every session kept");
}

/// Every agent's sessions: "node→peer" → seconds up (Established only).
fn uptimes(k: &Kube) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for (n, ..) in NODES {
        let ns = k.c.node(n).unwrap().ns.clone();
        let o = Command::new("ip")
            .args(["netns", "exec", &ns, AGENT, "status", "--json"])
            .output()
            .expect("status");
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        for p in doc["peers"].as_array().into_iter().flatten() {
            if let Some(up) = p["uptime_seconds"].as_u64() {
                out.insert(format!("{n}→{}", p["address"]), up);
            }
        }
    }
    out
}

/// No session went down since `before` was taken `elapsed` ago.
fn assert_kept(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    elapsed: Duration,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (k, up) in before {
        assert!(
            after[k] + 2 >= up + elapsed.as_secs(),
            "session {k} was reset: up {up} s before, {} s now, {elapsed:?} later",
            after[k]
        );
    }
}

fn count_lists(api: &KubeApi) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.starts_with("GET /api/v1/nodes") && !r.contains("watch=true"))
        .count()
}

/// Pings `to`'s pod from `from`'s every 20 ms in the background.
fn start_pings(c: &Cluster, from: &str, to: &str, count: u32) -> Child {
    let (ns, _) = c.node(from).unwrap().pod.clone().unwrap();
    let (_, dst) = c.node(to).unwrap().pod.clone().unwrap();
    Command::new("ip")
        .args(["netns", "exec", &ns, "ping", "-n", "-i", "0.02", "-W", "1"])
        .args(["-c", &count.to_string(), &dst.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping")
}

/// The longest run of lost pings (by icmp_seq) of a finished ping.
fn longest_loss(child: Child, count: u32) -> (u32, String) {
    let out = child.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut seqs: Vec<u32> = text
        .lines()
        .filter_map(|l| l.split("icmp_seq=").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let mut worst = 0;
    let mut last = 0;
    for s in seqs.iter().copied().chain([count + 1]) {
        worst = worst.max(s.saturating_sub(last + 1));
        last = s;
    }
    (worst, text.lines().last().unwrap_or_default().to_owned())
}

#[test]
fn labelling_a_reflector_switches_the_topology_without_a_second_of_pod_ping_loss() {
    require_root("the Kubernetes datastore test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut k = Kube::new("r");
    let pairs = [
        ("node-a", "node-c"),
        ("node-c", "node-a"),
        ("node-a", "node-b"),
    ];
    let count = 1000; // 20 s
    let pings: Vec<(&str, &str, Child)> = pairs
        .iter()
        .map(|(f, t)| (*f, *t, start_pings(&k.c, f, t, count)))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    k.api.update_node("node-b", |n| {
        n["metadata"]["labels"]["podroute.io/route-reflector"] = json!("true");
    });
    // A and C now peer with B only: the A–C session is gone.
    let a_ns = k.c.node("node-a").unwrap().ns.clone();
    let peers_of_a = || -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &a_ns, AGENT, "status", "--json"])
            .output()
            .expect("status");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        doc["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["address"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(5), || peers_of_a() == ["10.0.1.11"]),
        "A's peers after B became a reflector: {:?}\n{}",
        peers_of_a(),
        k.c.log("node-a")
    );
    for (from, to, child) in pings {
        let (worst, summary) = longest_loss(child, count);
        assert!(
            worst <= 50,
            "pod pings {from} → {to} failed for {worst} × 20 ms in a row: {summary}\n{}",
            k.c.log(from)
        );
        eprintln!("reflector labelled: {from} → {to}: longest loss {worst} pings ({summary})");
    }
    k.converge(Duration::from_secs(10));
    // Routes of A and C now come through the reflector, next hops kept.
    let c_ns = k.c.node("node-c").unwrap().ns.clone();
    assert!(
        routes(&c_ns, PROTO)
            .unwrap()
            .iter()
            .any(|r| r.starts_with("10.244.1.0/26 via 10.0.1.10"))
    );
}

/// One bad edit of node C's Node: what must be reported, and nothing
/// may change in any kernel.
fn bad_edit(k: &Kube, reason: &str, edit: impl FnOnce(&mut Value)) {
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    let good = k.api.node("node-c").expect("C");
    k.api.update_node("node-c", edit);
    let metric = format!("route_agent_datastore_nodes_skipped{{reason=\"{reason}\"}} 1");
    assert!(
        wait_until(Duration::from_secs(5), || k
            .metrics("node-a")
            .contains(&metric)),
        "{reason}: A's metrics lack `{metric}`:\n{}",
        k.metrics("node-a")
    );
    assert!(
        wait_until(Duration::from_secs(5), || k.api.events().iter().any(|e| {
            e["involvedObject"]["name"] == "node-c"
                && e["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.contains(reason))
        })),
        "{reason}: no Event on Node node-c: {:#?}",
        k.api.events()
    );
    assert!(
        k.c.log("node-a").contains("Node node-c skipped"),
        "{reason}: no log line on A"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_no_churn(monitors, reason);
    k.api.apply_node(good);
    let back = "route_agent_datastore_nodes_skipped{reason=\"".to_owned() + reason + "\"} 0";
    assert!(
        wait_until(Duration::from_secs(5), || k
            .metrics("node-a")
            .contains(&back)),
        "{reason}: not cleared"
    );
}

#[test]
fn bad_input_skips_only_that_node_with_a_log_line_an_event_and_a_metric() {
    require_root("the Kubernetes datastore test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut k = Kube::new("b");
    bad_edit(&k, "no-internal-ip", |n| {
        n["status"]["addresses"] = json!([{"type": "Hostname", "address": "node-c"}]);
    });
    bad_edit(&k, "bad-pod-cidr", |n| {
        n["spec"] = json!({"podCIDR": "10.244.3.0/99", "podCIDRs": ["10.244.3.0/99"]});
    });
    bad_edit(&k, "pod-cidr-outside-pools", |n| {
        n["spec"] = json!({"podCIDR": "192.168.3.0/26", "podCIDRs": ["192.168.3.0/26"]});
    });
    bad_edit(&k, "pod-cidr-overlap", |n| {
        n["spec"] = json!({"podCIDR": "10.244.1.0/27", "podCIDRs": ["10.244.1.0/27"]});
    });
    bad_edit(&k, "duplicate-address", |n| {
        n["status"]["addresses"][0]["address"] = json!("10.0.1.10");
    });
    bad_edit(&k, "bad-annotation", |n| {
        n["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = json!("10.0.2.10");
    });
    // A new node with bad input is left out: no session, no route.
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    k.api
        .apply_node(node_json("node-e", "10.0.2.12", &["10.244.1.0/26"]));
    assert!(
        wait_until(Duration::from_secs(5), || k.metrics("node-a").contains(
            "route_agent_datastore_nodes_skipped{reason=\"pod-cidr-overlap\"} 1"
        )),
        "node-e not skipped"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_no_churn(monitors, "a new node overlapping A");
    k.converge(Duration::from_secs(1));
}

#[test]
fn a_node_announcing_another_nodes_block_changes_no_route() {
    require_root("the Kubernetes datastore test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut k = Kube::new("h");
    // A rogue node: in the API with its own podCIDR, running an agent from
    // a file of its own that also announces B's block and a more specific
    // route inside A's. Its address sorts below B's, so without the import
    // guard its path would win the tie-break for B's block.
    k.c.add_node("node-r", 1, 9).expect("rogue node");
    let rogue = "node:\n  name: node-r\n  address: 10.0.1.9/24\n\
         pools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n\
         blocks: [10.244.9.0/26, 10.244.2.0/26, 10.244.1.0/27]\n\
         tunnel:\n  backend: auto\n\
         mesh:\n  peers: [10.0.1.10, 10.0.1.11, 10.0.2.10]\n\
         admin:\n  listen: 127.0.0.1:9179\n";
    let monitors = k.monitors(&["node-a", "node-b", "node-c"]);
    k.c.start_agent("node-r", std::path::Path::new(AGENT), rogue)
        .expect("rogue agent");
    k.api
        .apply_node(node_json("node-r", "10.0.1.9", &["10.244.9.0/26"]));
    // Its own block reaches everyone (it is a valid node) ...
    assert!(
        wait_until(Duration::from_secs(10), || {
            NODES.iter().all(|(n, ..)| {
                routes(&k.c.node(n).unwrap().ns, PROTO)
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r.starts_with("10.244.9.0/26"))
            })
        }),
        "the rogue node's own block was not installed:\n{}",
        k.c.log("node-r")
    );
    std::thread::sleep(Duration::from_secs(2));
    // ... and nothing else changed anywhere. (The equal-length
    // announcement of B's block needs bgp-core's import guard, fed by
    // SetBlockOwners, to leave the best path alone.)
    assert_only(monitors, &["10.244.9.0/26"], "a node announcing B's block");
    // Every honest node holds exactly its routes and the rogue's own block
    // (its announcement of B's block and inside A's is in no kernel).
    if let Some(r) = k.c.nodes.iter_mut().find(|n| n.name == "node-r") {
        r.block = Some("10.244.9.0/26".parse().unwrap());
    }
    for (n, ..) in NODES {
        let want = k.c.expected_routes(n, TUNNEL_MTU).unwrap();
        let have = routes(&k.c.node(n).unwrap().ns, PROTO).unwrap();
        assert_eq!(have, want, "{n}'s routes");
    }
}
