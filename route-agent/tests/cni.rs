//! The CNI config the agent writes, used as a container runtime uses it
//! (issue 13, item 2).
//!
//! Three nodes in network namespaces (`route_agent::demo::cluster`): A and
//! B share 10.0.1.0/24 and an IPv6 subnet, C is behind a router on
//! 10.0.2.0/24. Each runs the real `route-agent run` with `cni.enabled`,
//! writing its conflist into a scratch directory (host-local's leases too).
//! For each node the test then does what containerd does through libcni:
//! it creates a pod network namespace and runs the conflist's plugins,
//! Debian's `containernetworking-plugins` from `/usr/lib/cni`, inside the
//! node's namespace with the CNI protocol (`CNI_COMMAND`, `CNI_CONTAINERID`,
//! `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH`, the plugin's config on stdin with
//! `name`, `cniVersion` and the previous plugin's `prevResult` injected;
//! DEL in reverse order with the cached ADD result). Pods ping each other
//! directly (A↔B, IPv4 and IPv6) and through the IPIP tunnel (to and from
//! C: the kernel's tunl0 where the kernel has ipip, else the `bpf`
//! backend's programs on eth0), also at the full pod MTU with DF set; DEL
//! must leave no link, route or lease behind. Needs root.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podroute_tests::{Netns, Scratch, require_root};
use route_agent::demo::cluster::{Cluster, exec, run};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_route-agent");
const PROTO: u8 = 98;
/// The underlay veths' 1500 − 20: the tunnel's MTU and so the pods'.
const POD_MTU: u32 = 1480;
/// Where Debian's containernetworking-plugins puts the plugins.
const PLUGIN_DIR: &str = "/usr/lib/cni";

/// A node: name, subnet, host, IPv4 block, and its IPv6 address and block.
type NodeSpec = (
    &'static str,
    u8,
    u8,
    &'static str,
    Option<(&'static str, &'static str)>,
);

const NODES: [NodeSpec; 3] = [
    (
        "node-a",
        1,
        10,
        "10.244.1.0/26",
        Some(("fd00:1::10/64", "fd00:244:0:1::/122")),
    ),
    (
        "node-b",
        1,
        11,
        "10.244.2.0/26",
        Some(("fd00:1::11/64", "fd00:244:0:2::/122")),
    ),
    ("node-c", 2, 10, "10.244.3.0/26", None),
];

/// Fails with the package to install when a plugin is missing.
fn require_plugins() {
    for plugin in ["ptp", "host-local", "portmap"] {
        let path = Path::new(PLUGIN_DIR).join(plugin);
        assert!(
            path.is_file(),
            "{} is missing: install Debian's containernetworking-plugins (scripts/install-deps.sh does)",
            path.display()
        );
    }
}

/// Node `name`'s config: the demo's pools plus an IPv6 pool, its blocks,
/// the mesh, and CNI on with the file and leases under `dir`.
fn node_config(
    name: &str,
    address: &str,
    blocks: &[&str],
    v6: Option<&str>,
    mesh: &[String],
    dir: &Path,
) -> String {
    let v6 = v6
        .map(|a| format!("  address-v6: {a}\n"))
        .unwrap_or_default();
    let blocks: String = blocks.iter().map(|b| format!("  - '{b}'\n")).collect();
    let dir = dir.display();
    format!(
        "node:\n  name: {name}\n  address: {address}\n{v6}\
         pools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n  - cidr: 'fd00:244::/48'\n\
         blocks:\n{blocks}\
         mesh:\n  peers: [{}]\n\
         graceful-restart:\n  enabled: true\n  restart-time: 10\n\
         cni:\n  enabled: true\n  conf-dir: {dir}/net.d\n  ipam-data-dir: {dir}/ipam\n",
        mesh.join(", ")
    )
}

/// Why a plugin failed: its CNI error (`code`, `msg`) or what it printed.
#[derive(Debug)]
struct PluginError {
    plugin: String,
    command: &'static str,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} failed: {} {}",
            self.plugin, self.command, self.stdout, self.stderr
        )
    }
}

/// A pod as the runtime knows it: a network namespace and a container ID.
struct Pod {
    netns: Netns,
    id: String,
}

impl Pod {
    fn new(node: &str) -> Pod {
        let netns = Netns::new("cnipod");
        let id = format!("{node}-{}", netns.name());
        Pod { netns, id }
    }

    fn netns_path(&self) -> PathBuf {
        Path::new("/run/netns").join(self.netns.name())
    }
}

/// One network list run as libcni runs it, with the node's namespace as
/// the host.
struct Runtime {
    node_ns: String,
    list: Value,
}

impl Runtime {
    /// libcni's `buildOneConfig`: the plugin's own config with the list's
    /// `name` and `cniVersion` and, when there is one, `prevResult`.
    fn plugin_config(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = self.list["name"].clone();
        conf["cniVersion"] = self.list["cniVersion"].clone();
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        conf
    }

    fn plugins(&self) -> Vec<Value> {
        self.list["plugins"].as_array().cloned().unwrap_or_default()
    }

    /// Runs one plugin binary with the CNI protocol; its stdout as JSON
    /// (`Null` when empty, as after CHECK and DEL).
    fn invoke(
        &self,
        plugin: &Value,
        command: &'static str,
        pod: &Pod,
        prev: Option<&Value>,
    ) -> Result<Value, PluginError> {
        let kind = plugin["type"].as_str().unwrap_or_default().to_owned();
        let conf = self.plugin_config(plugin, prev);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.node_ns])
            .arg(Path::new(PLUGIN_DIR).join(&kind))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &pod.id)
            .env("CNI_NETNS", pod.netns_path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", PLUGIN_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {kind}: {e}"));
        let stdin = child.stdin.take().unwrap();
        {
            let mut stdin = stdin;
            stdin.write_all(conf.to_string().as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(PluginError {
                plugin: kind,
                command,
                stdout,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        if stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{kind} {command}: {e}: {stdout}")))
    }

    /// ADD: every plugin in order, each given the previous one's result.
    fn add(&self, pod: &Pod) -> Result<Value, PluginError> {
        let mut result: Option<Value> = None;
        for plugin in self.plugins() {
            result = Some(self.invoke(&plugin, "ADD", pod, result.as_ref())?);
        }
        Ok(result.unwrap_or(Value::Null))
    }

    /// CHECK: every plugin in order with the cached ADD result.
    fn check(&self, pod: &Pod, cached: &Value) -> Result<(), PluginError> {
        for plugin in self.plugins() {
            self.invoke(&plugin, "CHECK", pod, Some(cached))?;
        }
        Ok(())
    }

    /// DEL: every plugin in reverse order with the cached ADD result.
    fn del(&self, pod: &Pod, cached: &Value) -> Result<(), PluginError> {
        for plugin in self.plugins().iter().rev() {
            self.invoke(plugin, "DEL", pod, Some(cached))?;
        }
        Ok(())
    }
}

/// What a node holds that a pod's ADD adds and its DEL must take away.
#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    links: BTreeSet<String>,
    routes_v4: Vec<String>,
    routes_v6: Vec<String>,
}

fn lines(out: &[u8]) -> Vec<String> {
    let mut l: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    l.sort();
    l
}

fn footprint(ns: &str) -> Footprint {
    let links = run("ip", &["-n", ns, "-o", "link", "show"]).unwrap();
    let links = String::from_utf8_lossy(&links.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect();
    let v4 = run("ip", &["-n", ns, "-4", "route", "show", "table", "all"]).unwrap();
    let v6 = run("ip", &["-n", ns, "-6", "route", "show", "table", "all"]).unwrap();
    Footprint {
        links,
        routes_v4: lines(&v4.stdout),
        routes_v6: lines(&v6.stdout),
    }
}

/// Waits until no IPv6 address in `ns` is tentative (duplicate address
/// detection takes a second or two; the link-local addresses' routes
/// appear only after it).
fn settle_ipv6(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = run("ip", &["-n", ns, "-6", "addr", "show", "tentative"]).unwrap();
        if out.stdout.is_empty() || Instant::now() > deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Files of host-local's lease directory (recursively), relative to it.
fn lease_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((name, std::fs::read_to_string(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn wait_for_file(path: &Path, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Some(text);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pod's addresses from a CNI result (`ips[].address`, no prefix).
fn addresses(result: &Value) -> Vec<IpAddr> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .collect()
}

/// `ping` from `ns` to `dst`: up to `tries` single pings of `size` bytes
/// of payload, with DF set (`-M do`) when `df`.
fn ping(ns: &str, dst: IpAddr, size: u32, df: bool, tries: u32) -> bool {
    let size = size.to_string();
    let dst = dst.to_string();
    let mut args = vec!["-c", "1", "-W", "1", "-s", &size];
    if df {
        args.extend(["-M", "do"]);
    }
    args.push(&dst);
    (0..tries).any(|_| exec(ns, "ping", &args).is_ok())
}

/// The device node `ns` routes `dst` through (`ip route get`).
fn route_dev(ns: &str, dst: IpAddr) -> String {
    let out = run("ip", &["-n", ns, "route", "get", &dst.to_string()]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "dev")
        .map(|w| w[1].to_owned())
        .unwrap_or(text)
}

#[test]
fn pods_set_up_by_the_real_plugins_from_the_written_conflist_reach_each_other_directly_and_through_the_tunnel_and_del_leaves_nothing()
 {
    require_root("the CNI plugins test");
    require_plugins();
    let scratch = Scratch::new("cni");
    let mut c = Cluster::new(&format!("racni{}", std::process::id())).expect("cluster");
    for (name, subnet, host, block, v6) in NODES {
        c.add_node(name, subnet, host).expect("node");
        let ns = c.node(name).unwrap().ns.clone();
        // A node routing IPv6 pods forwards IPv6: ptp turns it on at the
        // first ADD and leaves it on (the kernel then adds subnet-router
        // anycast routes); on from the start, so that the footprint
        // compared across ADD and DEL is the pods' alone.
        exec(
            &ns,
            "sh",
            &["-c", "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"],
        )
        .unwrap();
        if let Some((address, _)) = v6 {
            run(
                "ip",
                &["-n", &ns, "addr", "add", address, "dev", "eth0", "nodad"],
            )
            .unwrap();
        }
        // The cluster's expected routes (`wait_converged`) are by block.
        let node = c.nodes.iter_mut().find(|n| n.name == name).unwrap();
        node.block = Some(block.parse().unwrap());
    }
    let addresses_v4: Vec<String> = c.nodes.iter().map(|n| n.address.ip().to_string()).collect();
    for (name, _, _, block, v6) in NODES {
        let address = c.node(name).unwrap().address;
        let mesh: Vec<String> = addresses_v4
            .iter()
            .filter(|a| **a != address.ip().to_string())
            .cloned()
            .collect();
        let mut blocks = vec![block];
        blocks.extend(v6.map(|(_, b)| b));
        let config = node_config(
            name,
            &address.to_string(),
            &blocks,
            v6.map(|(a, _)| a),
            &mesh,
            &scratch.join(name),
        );
        c.start_agent(name, Path::new(AGENT), &config)
            .expect("agent");
    }
    let wrong = c.wait_converged(PROTO, POD_MTU, Duration::from_secs(30));
    assert!(
        wrong.is_empty(),
        "not converged: {wrong:#?}\nA's log:\n{}",
        c.log("node-a")
    );

    // Each agent wrote its conflist: its own blocks, the tunnel MTU.
    let mut runtimes = Vec::new();
    for (name, _, _, block, v6) in NODES {
        let path = scratch.join(name).join("net.d/10-podroute.conflist");
        let text = wait_for_file(&path, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{name} wrote no {}:\n{}", path.display(), c.log(name)));
        if name == "node-a" {
            println!("{name}'s {}:\n{text}", path.display());
        }
        let list: Value = serde_json::from_str(&text).unwrap();
        let ptp = &list["plugins"][0];
        assert_eq!(ptp["mtu"], POD_MTU, "{text}");
        let mut want = vec![serde_json::json!([{ "subnet": block }])];
        want.extend(v6.map(|(_, b)| serde_json::json!([{ "subnet": b }])));
        assert_eq!(ptp["ipam"]["ranges"], Value::Array(want), "{text}");
        runtimes.push(Runtime {
            node_ns: c.node(name).unwrap().ns.clone(),
            list,
        });
    }
    for rt in &runtimes {
        settle_ipv6(&rt.node_ns);
    }
    let before: Vec<Footprint> = runtimes.iter().map(|r| footprint(&r.node_ns)).collect();

    // ADD a pod on every node, then CHECK it, as the runtime would.
    let mut pods = Vec::new();
    for ((name, _, _, block, v6), rt) in NODES.iter().zip(&runtimes) {
        let pod = Pod::new(name);
        let result = rt.add(&pod).unwrap_or_else(|e| panic!("{name}: {e}"));
        rt.check(&pod, &result)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let ips = addresses(&result);
        let block: ipnetwork::IpNetwork = block.parse().unwrap();
        assert!(ips.iter().any(|a| block.contains(*a)), "{name}: {result}");
        if let Some((_, b6)) = v6 {
            let b6: ipnetwork::IpNetwork = b6.parse().unwrap();
            assert!(ips.iter().any(|a| b6.contains(*a)), "{name}: {result}");
        } else {
            assert!(ips.iter().all(IpAddr::is_ipv4), "{name}: {result}");
        }
        let link = pod.netns.exec("ip", &["-o", "link", "show", "eth0"]);
        let link = String::from_utf8_lossy(&link.stdout).into_owned();
        assert!(
            link.contains(&format!("mtu {POD_MTU} ")),
            "{name}'s pod: {link}"
        );
        println!("{name}: pod {} got {ips:?}", pod.netns.name());
        pods.push((name.to_string(), pod, result, ips));
    }

    // Pod to pod: direct between A and B (one subnet, IPv4 and IPv6),
    // through the tunnel to and from C; each also at the full pod MTU with
    // DF set (1480 − 28 bytes of ICMP payload over IPv4, − 48 over IPv6).
    let mut table = Vec::new();
    let mut all = true;
    for (from, from_pod, _, from_ips) in &pods {
        let from_node = c.node(from).unwrap().ns.clone();
        for (to, _, _, to_ips) in &pods {
            if from == to {
                continue;
            }
            for &dst in to_ips {
                if dst.is_ipv6() && !from_ips.iter().any(IpAddr::is_ipv6) {
                    continue;
                }
                let via = route_dev(&from_node, dst);
                let full = if dst.is_ipv4() {
                    POD_MTU - 28
                } else {
                    POD_MTU - 48
                };
                let small = ping(from_pod.netns.name(), dst, 56, false, 3);
                let big = ping(from_pod.netns.name(), dst, full, true, 3);
                all &= small && big;
                table.push(format!(
                    "pod-{from} -> pod-{to} {dst:<22} via {via:<6} 56 B: {}  {full} B DF: {}",
                    if small { "ok" } else { "FAIL" },
                    if big { "ok" } else { "FAIL" }
                ));
                // The bpf backend's tunnel routes leave by the underlay.
                let expected = if (from == "node-c" || to == "node-c")
                    && c.tunnel_encap() == route_agent::planner::TunnelEncap::Device
                {
                    "tunl0"
                } else {
                    "eth0"
                };
                assert_eq!(via, expected, "{from} routes {dst} through {via}");
            }
        }
    }
    let backend = match c.tunnel_encap() {
        route_agent::planner::TunnelEncap::Device => "the kernel's ipip",
        route_agent::planner::TunnelEncap::Bpf => "bpf (this kernel has no ipip)",
    };
    println!("tunnel: {backend}\npod-to-pod pings:\n{}", table.join("\n"));
    assert!(all, "pod-to-pod pings:\n{}", table.join("\n"));

    // DEL every pod; again (DEL must be idempotent); nothing is left.
    for ((name, pod, result, _), rt) in pods.iter().zip(&runtimes) {
        rt.del(pod, result)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        rt.del(pod, result)
            .unwrap_or_else(|e| panic!("{name}, second DEL: {e}"));
        let links = pod.netns.exec("ip", &["-o", "link", "show"]);
        let links = String::from_utf8_lossy(&links.stdout).into_owned();
        assert!(!links.contains("eth0"), "{name}'s pod keeps eth0: {links}");
    }
    for (((name, pod, _, _), rt), before) in pods.iter().zip(&runtimes).zip(&before) {
        let after = footprint(&rt.node_ns);
        assert_eq!(&after, before, "{name}: DEL left links or routes behind");
        let leases = lease_files(&scratch.join(name).join("ipam"));
        let names: Vec<&str> = leases.iter().map(|(n, _)| n.as_str()).collect();
        println!(
            "{name}: after DEL, links and routes as before ADD; lease directory holds {names:?}"
        );
        for (file, content) in &leases {
            let base = file.rsplit('/').next().unwrap_or(file);
            assert!(
                base.parse::<IpAddr>().is_err(),
                "{name}: lease {file} left behind"
            );
            assert!(
                !content.contains(&pod.id),
                "{name}: {file} still names the pod: {content}"
            );
        }
    }
}

/// (inode, mtime in ns) of `path`.
fn stamp(path: &Path) -> (u64, i128) {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).unwrap();
    (
        m.ino(),
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    )
}

fn reloads(c: &Cluster, name: &str) -> usize {
    c.log(name).matches("SIGHUP: config reloaded").count()
}

fn wait_reloads(c: &Cluster, name: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads(c, name) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reloads(c, name) >= n, "no reload:\n{}", c.log(name));
}

#[test]
fn the_agent_rewrites_its_conflist_when_its_blocks_change_on_sighup_and_leaves_it_alone_otherwise()
{
    require_root("the CNI config reload test");
    let scratch = Scratch::new("cnihup");
    let mut c = Cluster::new(&format!("racnh{}", std::process::id())).expect("cluster");
    c.add_node("node-a", 1, 10).expect("node");
    let address = c.node("node-a").unwrap().address.to_string();
    let config = |blocks: &[&str]| {
        node_config(
            "node-a",
            &address,
            blocks,
            None,
            &[],
            scratch.join("a").as_path(),
        )
    };
    c.start_agent("node-a", Path::new(AGENT), &config(&["10.244.1.0/26"]))
        .expect("agent");
    let dir = scratch.join("a").join("net.d");
    let path = dir.join("10-podroute.conflist");
    let first = wait_for_file(&path, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no conflist:\n{}", c.log("node-a")));
    assert!(first.contains("10.244.1.0/26"), "{first}");
    let stamp_first = stamp(&path);

    // The same config again: the file is not touched.
    c.signal_agent("node-a", 1).unwrap();
    wait_reloads(&c, "node-a", 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        stamp(&path),
        stamp_first,
        "an unchanged conflist was rewritten"
    );

    // A new block: the file is replaced (a new inode renamed into place)
    // and nothing else is left in the directory.
    let file = c.dir().join("node-a.yaml");
    std::fs::write(&file, config(&["10.244.1.0/26", "10.244.9.0/26"])).unwrap();
    c.signal_agent("node-a", 1).unwrap();
    wait_reloads(&c, "node-a", 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains("10.244.9.0/26")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = std::fs::read_to_string(&path).unwrap();
    assert!(
        second.contains("10.244.9.0/26"),
        "{second}\n{}",
        c.log("node-a")
    );
    assert_ne!(stamp(&path).0, stamp_first.0, "not replaced by rename");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["10-podroute.conflist"]);
    assert_eq!(
        c.log("node-a").matches("CNI config written").count(),
        2,
        "{}",
        c.log("node-a")
    );
}
