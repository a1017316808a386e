//! Redundant route reflectors (issue 14, item 2), in network namespaces
//! this test creates: nodes A and B on 10.0.1.0/24 and C behind a router on
//! 10.0.2.0/24, each with a pod and no mesh, peer with two reflectors of
//! one cluster ID on 10.0.1.0/24. The reflectors list no client: they
//! accept every node of 10.0.0.0/16 as a dynamic neighbour. One reflector
//! is killed while pods ping each other: every client keeps every route,
//! no kernel route of the agents changes, and no ping is lost.
//!
//! Reflectors: two of ours (`route-agent run` with `route-reflector`), and
//! ours beside BIRD 2 configured as Calico configures its reflectors (`rr
//! client; rr cluster id`). Needs root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podroute_tests::bird::Bird;
use podroute_tests::{Netns, RouteMonitor, Scratch, require_root};
use route_agent::demo::cluster::Cluster;
use route_agent::demo::node_config;

const AGENT: &str = env!("CARGO_BIN_EXE_route-agent");
const PROTO: u8 = 98;
const TUNNEL_MTU: u32 = 1480;
const CLUSTER_ID: &str = "10.0.1.100";

/// The clients: (name, subnet, host, block).
const NODES: [(&str, u8, u8, &str); 3] = [
    ("node-a", 1, 10, "10.244.1.0/26"),
    ("node-b", 1, 11, "10.244.2.0/26"),
    ("node-c", 2, 10, "10.244.3.0/26"),
];

/// The reflectors' addresses on subnet 1.
const RR1: (u8, &str) = (100, "10.0.1.100");
const RR2: (u8, &str) = (101, "10.0.1.101");

/// A client's config: no mesh, both reflectors as iBGP peers.
fn client_config(name: &str, address: &str, block: &str) -> String {
    let mut c = node_config(name, address, block, &[]);
    for rr in [RR1.1, RR2.1] {
        c.push_str(&format!(
            "{}  - address: {rr}\n    asn: 64512\n",
            if rr == RR1.1 { "peers:\n" } else { "" }
        ));
    }
    c
}

/// Our reflector's config: a node without pods that reflects for every
/// node of 10.0.0.0/16.
fn reflector_config(name: &str, address: &str) -> String {
    format!(
        "node:\n  name: {name}\n  address: {address}\n\
         pools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n\
         tunnel:\n  backend: auto\n\
         graceful-restart:\n  enabled: true\n  restart-time: 10\n\
         route-reflector:\n  cluster-id: {CLUSTER_ID}\n  clients:\n    - prefix: 10.0.0.0/16\n\
         admin:\n  listen: 127.0.0.1:9179\n"
    )
}

/// BIRD 2 as a reflector beside ours, with Calico's reflector settings:
/// every node an `rr client` of cluster `CLUSTER_ID`, next hops kept. The
/// static default route lets it resolve node C's next hop (iBGP next hops
/// are recursive in BIRD).
fn bird_reflector_config(log: &str) -> String {
    let mut conf = format!(
        "log \"{log}\" all;
router id {rr};
protocol device {{}}
protocol direct {{ ipv4; interface \"eth0\"; }}
protocol static {{ ipv4; route 0.0.0.0/0 via 10.0.1.1; }}
template bgp nodes {{
  local {rr} as 64512;
  rr client;
  rr cluster id {CLUSTER_ID};
  passive on;
  ipv4 {{ import all; export all; }};
}}
",
        rr = RR2.1
    );
    for (i, (_, subnet, host, _)) in NODES.iter().enumerate() {
        conf.push_str(&format!(
            "protocol bgp client{i} from nodes {{ neighbor 10.0.{subnet}.{host} as 64512; {} }}\n",
            if *subnet == 1 { "" } else { "multihop;" }
        ));
    }
    conf
}

/// The three clients with pods, and our first reflector; the second
/// reflector is the caller's.
fn clients_and_reflector(tag: &str) -> Cluster {
    let mut c = Cluster::new(&format!("rar{tag}{}", std::process::id())).expect("cluster");
    for (name, subnet, host, block) in NODES {
        c.add_node(name, subnet, host).expect("node");
        c.add_pod(name, block.parse().unwrap()).expect("pod");
    }
    c.add_node("rr-1", 1, RR1.0).expect("reflector node");
    let address = c.node("rr-1").unwrap().address.to_string();
    c.start_agent(
        "rr-1",
        std::path::Path::new(AGENT),
        &reflector_config("rr-1", &address),
    )
    .expect("reflector");
    for (name, _, _, block) in NODES {
        let address = c.node(name).unwrap().address.to_string();
        c.start_agent(
            name,
            std::path::Path::new(AGENT),
            &client_config(name, &address, block),
        )
        .expect("agent");
    }
    c
}

fn converge(c: &mut Cluster) {
    if let Some(report) = c.convergence_report(PROTO, TUNNEL_MTU, Duration::from_secs(30)) {
        panic!("cluster did not converge:{report}");
    }
}

/// Pings from one pod to another every 20 ms, `count` times, in the
/// background.
fn start_pings(c: &Cluster, from: &str, to: &str, count: u32) -> Child {
    let (ns, _) = c.node(from).unwrap().pod.clone().unwrap();
    let (_, dst) = c.node(to).unwrap().pod.clone().unwrap();
    Command::new("ip")
        .args([
            "netns", "exec", &ns, "ping", "-n", "-q", "-i", "0.02", "-W", "1",
        ])
        .args(["-c", &count.to_string(), &dst.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping")
}

/// Waits for a ping started by [`start_pings`]: (sent, received, output).
fn ping_result(child: Child) -> (u32, u32, String) {
    let out = child.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let numbers = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .map(|l| {
            l.split(',')
                .filter_map(|part| part.split_whitespace().next()?.parse().ok())
                .collect::<Vec<u32>>()
        })
        .unwrap_or_default();
    match numbers.as_slice() {
        [sent, received, ..] => (*sent, *received, text),
        _ => (0, 0, text),
    }
}

/// Kills one reflector while every client pod pings the others, then
/// checks that no ping was lost, that the clients' kernel routes did not
/// change at all, and that they still hold every route once the dead
/// reflector's stale paths are gone (restart time 10 s).
fn kill_one_reflector_and_check(c: &mut Cluster, kill: impl FnOnce(&mut Cluster)) {
    let monitors: Vec<RouteMonitor> = NODES
        .iter()
        .map(|(n, ..)| {
            RouteMonitor::start(&c.node(n).unwrap().ns, c.dir().join(format!("{n}.monitor")))
        })
        .collect();
    // 20 s of pings: the kill, the failover and the end of the dead
    // reflector's graceful-restart time (10 s) all fall inside.
    let pairs = [
        ("node-a", "node-b"),
        ("node-a", "node-c"),
        ("node-c", "node-b"),
    ];
    let pings: Vec<(&str, &str, Child)> = pairs
        .iter()
        .map(|(from, to)| (*from, *to, start_pings(c, from, to, 1000)))
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    kill(c);
    for (from, to, child) in pings {
        let (sent, received, text) = ping_result(child);
        assert!(
            sent == 1000 && received == sent,
            "pod pings {from} → {to} lost packets when a reflector died:\n{text}"
        );
    }
    for ((name, ..), m) in NODES.iter().zip(monitors) {
        let churn = m.stop(PROTO);
        assert!(
            churn.is_empty(),
            "{name}'s routes changed when a reflector died:\n{}\nlog:\n{}",
            churn.join("\n"),
            c.log(name)
        );
    }
    converge(c);
}

fn logs_say(c: &Cluster, name: &str, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if c.log(name).contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn two_reflectors_of_one_cluster_serve_every_client_and_one_dying_loses_nothing() {
    require_root("the redundant route reflector test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut c = clients_and_reflector("o");
    c.add_node("rr-2", 1, RR2.0).expect("second reflector node");
    let address = c.node("rr-2").unwrap().address.to_string();
    c.start_agent(
        "rr-2",
        std::path::Path::new(AGENT),
        &reflector_config("rr-2", &address),
    )
    .expect("second reflector");
    converge(&mut c);
    // Both reflectors took the clients as dynamic neighbours.
    for rr in ["rr-1", "rr-2"] {
        assert!(
            logs_say(&c, rr, "dynamic neighbour accepted"),
            "{rr} accepted no client:\n{}",
            c.log(rr)
        );
    }
    // They show in the reflector's status like configured peers, marked
    // dynamic.
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &c.node("rr-2").unwrap().ns,
            AGENT,
            "status",
            "--json",
        ])
        .output()
        .expect("route-agent status");
    let doc: route_agent::admin::dto::StatusDoc = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}",
                String::from_utf8_lossy(&status.stdout)
            )
        });
    let clients: Vec<String> = doc
        .peers
        .iter()
        .filter(|p| p.dynamic && p.is_established())
        .map(|p| p.address.to_string())
        .collect();
    assert_eq!(
        clients,
        ["10.0.1.10", "10.0.1.11", "10.0.2.10"],
        "{:#?}",
        doc.peers
    );
    let (matrix, all) = c.ping_matrix(3);
    assert!(all, "pod-to-pod pings through the reflectors:\n{matrix}");

    kill_one_reflector_and_check(&mut c, |c| c.kill_agent("rr-1").expect("kill rr-1"));
}

#[test]
fn a_bird_reflector_beside_ours_keeps_every_client_served_when_ours_dies() {
    require_root("the BIRD-beside-ours route reflector test");
    let _one = podroute_tests::one_cluster_at_a_time();
    let mut c = clients_and_reflector("b");
    let bird_ns = Netns::new("rrbird");
    c.attach(bird_ns.name(), 1, RR2.0)
        .expect("BIRD on subnet 1");
    let scratch = Scratch::new("rrbird");
    let log = Bird::log_path(&scratch).to_string_lossy().into_owned();
    let bird = Bird::start(&bird_ns, &scratch, &bird_reflector_config(&log));
    converge(&mut c);
    for i in 0..NODES.len() {
        assert!(
            bird.wait_bgp_state(
                &format!("client{i}"),
                "Established",
                Duration::from_secs(30)
            ),
            "BIRD's session with client {i} did not come up:\n{}",
            bird.log()
        );
    }
    // BIRD holds every client's block, so it can take over.
    for (_, _, _, block) in NODES {
        let deadline = Instant::now() + Duration::from_secs(10);
        while bird.route(block).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(bird.route(block).is_some(), "BIRD lacks {block}");
    }

    kill_one_reflector_and_check(&mut c, |c| c.kill_agent("rr-1").expect("kill rr-1"));
    drop(bird);
}
