//! A cluster of nodes in network namespaces, for `route-agent demo` and
//! the end-to-end tests.
//!
//! ```text
//!                      router namespace
//!          br1 10.0.1.1/24 ─┬─ ... ─┐     br2 10.0.2.1/24 ─┬─ ...
//!                           │       │                      │
//!   node ns: eth0 10.0.1.10/24  10.0.1.11/24        eth0 10.0.2.10/24
//!                caliN ── eth0 (pod namespace, 10.244.N.2/32)
//! ```
//!
//! Each subnet is a bridge in the router namespace; a node is a namespace
//! with `eth0` on one subnet and a default route via the router. A pod is a
//! namespace wired as Calico wires one: `eth0` with a /32 from the node's
//! block and a default route via 169.254.1.1, answered by proxy ARP on the
//! node's `caliN`, which has a /32 route to the pod.
//!
//! Everything is created with `ip` and torn down on drop: every process
//! left in a namespace is killed (the agents' userspace tunnels outlive the
//! agents on purpose), then the namespaces are deleted.

use std::fmt::Write as _;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipnetwork::Ipv4Network;

use crate::planner::TunnelEncap;

/// A command that failed while building or running the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `ip ...` (or another tool) ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A program could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A node's address (10.0.SUBNET.HOST/24) is not an address.
    #[error("10.0.{subnet}.{host}/24 is not a node address: {source}")]
    Address {
        /// The subnet's third octet.
        subnet: u8,
        /// The host's last octet.
        host: u8,
        /// Why.
        source: ipnetwork::IpNetworkError,
    },
    /// A file in the cluster's directory.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A pod block of the demo is not a CIDR.
    #[error("pod block {block} is not a CIDR: {source}")]
    Block {
        /// The block as written.
        block: &'static str,
        /// Why.
        source: ipnetwork::IpNetworkError,
    },
    /// The running executable (started as each node's agent) cannot be
    /// found.
    #[error("cannot find this executable to start the agents: {0}")]
    NoExecutable(std::io::Error),
    /// No node of that name.
    #[error("no node named {0}")]
    NoNode(String),
    /// A pod's ICMP echo could not be sent.
    #[error(transparent)]
    Echo(#[from] super::echo::EchoError),
}

/// One node of the cluster.
#[derive(Debug)]
pub struct Node {
    /// Its name (`node-a`).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its address with the subnet's prefix length.
    pub address: Ipv4Network,
    /// Its pod block, once a pod was added.
    pub block: Option<Ipv4Network>,
    /// The pod's namespace and address, once added.
    pub pod: Option<(String, Ipv4Addr)>,
    agent: Option<Child>,
}

/// The cluster; dropping it removes everything.
#[derive(Debug)]
pub struct Cluster {
    prefix: String,
    router: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    /// The nodes, in the order added.
    pub nodes: Vec<Node>,
    pods: u8,
    /// How the agents' tunnel routes look ([`Cluster::expected_routes`]).
    tunnel: TunnelEncap,
    /// A bpffs of the cluster's own, for the `bpf` backend's pins.
    bpf_pins: Option<PathBuf>,
}

/// Whether this kernel has the ipip module, loaded, built in or loadable
/// (preflight's reading of `/sys/module` and `/lib/modules`): what
/// `tunnel.backend: auto` uses first.
pub fn kernel_has_ipip() -> bool {
    crate::preflight::ipip_available()
}

/// Runs a command, returning its output or an error naming it.
pub fn run(program: &str, args: &[&str]) -> Result<Output, ClusterError> {
    let command = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ClusterError::Spawn {
            command: command(),
            source,
        })?;
    if !out.status.success() {
        return Err(ClusterError::Command {
            command: command(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

fn ip(args: &[&str]) -> Result<(), ClusterError> {
    run("ip", args).map(drop)
}

/// Runs `program args` inside namespace `ns`.
pub fn exec(ns: &str, program: &str, args: &[&str]) -> Result<Output, ClusterError> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

/// Sets a per-namespace sysctl (`net.ipv4...`) by writing its /proc file
/// from inside the namespace (no procps needed).
fn sysctl(ns: &str, key: &str, value: &str) -> Result<(), ClusterError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    exec(ns, "sh", &["-c", &format!("echo {value} > {path}")]).map(drop)
}

/// The tools the cluster runs, each with the Debian package that has it,
/// that are not on `PATH`.
pub fn missing_tools() -> Vec<(&'static str, &'static str)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    [("ip", "iproute2")]
        .into_iter()
        .filter(|(tool, _)| !std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
        .collect()
}

/// The routes of protocol `proto` in namespace `ns`, one `ip route` line
/// each, sorted.
pub fn routes(ns: &str, proto: u8) -> Result<Vec<String>, ClusterError> {
    let out = run(
        "ip",
        &["-n", ns, "route", "show", "proto", &proto.to_string()],
    )?;
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(bpf_route_as_planned)
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    Ok(lines)
}

/// An `ip route` line with single spaces; a route running a BPF xmit
/// program (`B encap bpf xmit NAME via …`, NAME carrying the program's
/// id) as the planner writes it (`B via … encap bpf`).
fn bpf_route_as_planned(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [dst, "encap", "bpf", "xmit", _name, rest @ ..] => {
            let rest = match rest {
                ["headroom", _, rest @ ..] => rest,
                rest => rest,
            };
            format!("{dst} {} encap bpf", rest.join(" "))
        }
        _ => words.join(" "),
    }
}

impl Cluster {
    /// An empty cluster whose namespaces are named `PREFIX-...`; creates
    /// the router namespace. `prefix` must be unique on the host (put the
    /// process id in it).
    pub fn new(prefix: &str) -> Result<Cluster, ClusterError> {
        let dir = std::env::temp_dir().join(prefix);
        std::fs::create_dir_all(&dir).map_err(|source| ClusterError::File {
            path: dir.clone(),
            source,
        })?;
        let mut cluster = Cluster {
            prefix: prefix.to_owned(),
            router: format!("{prefix}-router"),
            dir,
            namespaces: Vec::new(),
            nodes: Vec::new(),
            pods: 0,
            tunnel: if kernel_has_ipip() {
                TunnelEncap::Device
            } else {
                TunnelEncap::Bpf
            },
            bpf_pins: None,
        };
        // `ip netns exec` gives each agent a /sys of its own: pins under
        // /sys/fs/bpf would go with each agent process. A bpffs mounted
        // here, before the agents start, is shared by all and outlives
        // them, so a restarted agent adopts its programs.
        let pins = cluster.dir.join("bpffs");
        if std::fs::create_dir_all(&pins).is_ok() && ipip::sys::mount_bpffs(&pins).is_ok() {
            cluster.bpf_pins = Some(pins);
        }
        let router = cluster.router.clone();
        cluster.add_namespace(&router)?;
        sysctl(&router, "net.ipv4.ip_forward", "1")?;
        Ok(cluster)
    }

    /// The directory for configs and logs (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The router's namespace.
    pub fn router(&self) -> &str {
        &self.router
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), ClusterError> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    /// Subnet `n` is 10.0.n.0/24 with the router at .1 on bridge `brN`,
    /// created on first use.
    fn ensure_subnet(&mut self, n: u8) -> Result<String, ClusterError> {
        let bridge = format!("br{n}");
        let exists = run("ip", &["-n", &self.router, "link", "show", &bridge]).is_ok();
        if !exists {
            // A bridge whose address is not set takes the lowest of its
            // ports' and changes it as ports come and go; a node then
            // sends to a stale router MAC until its ARP entry fails
            // (seconds of loss, seen when D joined the four-node test's
            // subnet). A set address stays (`NET_ADDR_SET`).
            let mac = format!("02:00:0a:00:{n:02x}:01");
            ip(&[
                "-n",
                &self.router,
                "link",
                "add",
                &bridge,
                "address",
                &mac,
                "type",
                "bridge",
            ])?;
            ip(&[
                "-n",
                &self.router,
                "addr",
                "add",
                &format!("10.0.{n}.1/24"),
                "dev",
                &bridge,
            ])?;
            ip(&["-n", &self.router, "link", "set", &bridge, "up"])?;
        }
        Ok(bridge)
    }

    /// Plugs namespace `ns` into subnet `n` as host `host`: `eth0` with
    /// 10.0.n.host/24 and a default route via the router. For namespaces
    /// made elsewhere (a BIRD peer) as well as for nodes.
    pub fn attach(&mut self, ns: &str, subnet: u8, host: u8) -> Result<Ipv4Network, ClusterError> {
        let bridge = self.ensure_subnet(subnet)?;
        let port = format!("p{subnet}-{host}");
        ip(&[
            "link",
            "add",
            "eth0",
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            &self.router,
        ])?;
        ip(&[
            "-n",
            &self.router,
            "link",
            "set",
            &port,
            "master",
            &bridge,
            "up",
        ])?;
        let address =
            Ipv4Network::new(Ipv4Addr::new(10, 0, subnet, host), 24).map_err(|source| {
                ClusterError::Address {
                    subnet,
                    host,
                    source,
                }
            })?;
        ip(&["-n", ns, "addr", "add", &address.to_string(), "dev", "eth0"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &format!("10.0.{subnet}.1"),
        ])?;
        Ok(address)
    }

    /// Adds node `name` on subnet `subnet` as host `host`, forwarding on.
    pub fn add_node(&mut self, name: &str, subnet: u8, host: u8) -> Result<(), ClusterError> {
        let ns = format!("{}-{name}", self.prefix);
        self.add_namespace(&ns)?;
        let address = self.attach(&ns, subnet, host)?;
        sysctl(&ns, "net.ipv4.ip_forward", "1")?;
        self.nodes.push(Node {
            name: name.to_owned(),
            ns,
            address,
            block: None,
            pod: None,
            agent: None,
        });
        Ok(())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&Node, ClusterError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| ClusterError::NoNode(name.to_owned()))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut Node, ClusterError> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| ClusterError::NoNode(name.to_owned()))
    }

    /// Gives node `name` the pod block `block` and one pod in it at the
    /// block's address + 2, wired as Calico wires pods.
    pub fn add_pod(&mut self, name: &str, block: Ipv4Network) -> Result<(), ClusterError> {
        let node_ns = self.node(name)?.ns.clone();
        self.pods += 1;
        let pod_ns = format!("{}-pod-{name}", self.prefix);
        self.add_namespace(&pod_ns)?;
        let cali = format!("cali{}", self.pods);
        let pod_ip = Ipv4Addr::from(u32::from(block.network()) + 2);
        ip(&[
            "link", "add", "eth0", "netns", &pod_ns, "type", "veth", "peer", "name", &cali,
            "netns", &node_ns,
        ])?;
        ip(&[
            "-n",
            &pod_ns,
            "addr",
            "add",
            &format!("{pod_ip}/32"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &pod_ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &pod_ns,
            "route",
            "add",
            "169.254.1.1",
            "dev",
            "eth0",
            "scope",
            "link",
        ])?;
        ip(&[
            "-n",
            &pod_ns,
            "route",
            "add",
            "default",
            "via",
            "169.254.1.1",
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &node_ns, "link", "set", &cali, "up"])?;
        sysctl(&node_ns, &format!("net.ipv4.conf.{cali}.proxy_arp"), "1")?;
        ip(&[
            "-n",
            &node_ns,
            "route",
            "add",
            &format!("{pod_ip}/32"),
            "dev",
            &cali,
            "scope",
            "link",
        ])?;
        let node = self.node_mut(name)?;
        node.block = Some(block);
        node.pod = Some((pod_ns, pod_ip));
        Ok(())
    }

    /// Writes `config` and starts `agent run --config FILE` in the node's
    /// namespace, its log in the cluster directory.
    pub fn start_agent(
        &mut self,
        name: &str,
        agent: &Path,
        config: &str,
    ) -> Result<(), ClusterError> {
        self.start_agent_with_env(name, agent, config, &[])
    }

    /// [`Cluster::start_agent`] with extra environment variables (e.g.
    /// `KUBECONFIG` for `datastore: kubernetes`).
    pub fn start_agent_with_env(
        &mut self,
        name: &str,
        agent: &Path,
        config: &str,
        env: &[(&str, &str)],
    ) -> Result<(), ClusterError> {
        let file = self.dir.join(format!("{name}.yaml"));
        let log_path = self.dir.join(format!("{name}.log"));
        let config = self.with_pin_root(config);
        std::fs::write(&file, config).map_err(|source| ClusterError::File {
            path: file.clone(),
            source,
        })?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| ClusterError::File {
                path: log_path.clone(),
                source,
            })?;
        let node = self.node_mut(name)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &node.ns])
            .arg(agent)
            .arg("run")
            .arg("--config")
            .arg(&file)
            .env("ROUTE_AGENT_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| ClusterError::Spawn {
                command: format!("ip netns exec {} {} run", node.ns, agent.display()),
                source,
            })?;
        node.agent = Some(child);
        Ok(())
    }

    /// `config` with the cluster's bpffs as the `bpf` backend's pin root,
    /// unless it names one (the line goes first under `tunnel:`).
    fn with_pin_root(&self, config: &str) -> String {
        match &self.bpf_pins {
            Some(pins) if !config.contains("bpf-pin-root") && config.contains("\ntunnel:\n") => {
                config.replacen(
                    "\ntunnel:\n",
                    &format!(
                        "\ntunnel:\n  bpf-pin-root: {}\n",
                        pins.join("podroute").display()
                    ),
                    1,
                )
            }
            _ => config.to_owned(),
        }
    }

    /// How the agents' tunnel routes are expected to look: through
    /// tunl0 where the kernel has ipip, else with the `bpf` backend's
    /// program (what `tunnel.backend: auto` picks); a test that sets
    /// another backend says so here.
    pub fn set_tunnel_encap(&mut self, encap: TunnelEncap) {
        self.tunnel = encap;
    }

    /// See [`Cluster::set_tunnel_encap`].
    pub fn tunnel_encap(&self) -> TunnelEncap {
        self.tunnel
    }

    /// Node `name`'s agent's exit code, once it has exited.
    pub fn agent_exit_code(&mut self, name: &str) -> Option<i32> {
        let node = self.node_mut(name).ok()?;
        let status = node.agent.as_mut()?.try_wait().ok()??;
        node.agent = None;
        status.code()
    }

    /// Sends `signal` to node `name`'s agent (`ip netns exec` execs it, so
    /// the child is the agent).
    pub fn signal_agent(&mut self, name: &str, signal: i32) -> Result<(), ClusterError> {
        let node = self.node_mut(name)?;
        if let Some(child) = &node.agent {
            super::sys::send_signal(child.id(), signal).map_err(|source| ClusterError::Spawn {
                command: format!("kill -{signal} {}", child.id()),
                source,
            })?;
        }
        Ok(())
    }

    /// SIGKILLs node `name`'s agent and reaps it; its routes and tunnel stay.
    pub fn kill_agent(&mut self, name: &str) -> Result<(), ClusterError> {
        let node = self.node_mut(name)?;
        if let Some(mut child) = node.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        Ok(())
    }

    /// Node `name`'s agent log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The agent routes each node should hold, as `ip route show proto P`
    /// prints them ([`routes`]): a blackhole for its block, direct routes
    /// to nodes on its subnet and tunnel routes (`tunnel_mtu`, or the
    /// `bpf` backend's, see [`Cluster::set_tunnel_encap`]) to the others.
    pub fn expected_routes(
        &self,
        name: &str,
        tunnel_mtu: u32,
    ) -> Result<Vec<String>, ClusterError> {
        let me = self.node(name)?;
        let mut want = Vec::new();
        for n in &self.nodes {
            let Some(block) = n.block else { continue };
            if n.name == me.name {
                want.push(format!("blackhole {block}"));
            } else if me.address.contains(n.address.ip()) {
                want.push(format!("{block} via {} dev eth0 onlink", n.address.ip()));
            } else if self.tunnel == TunnelEncap::Bpf {
                want.push(format!(
                    "{block} via {} dev eth0 onlink encap bpf",
                    n.address.ip()
                ));
            } else {
                want.push(format!(
                    "{block} via {} dev tunl0 onlink mtu {tunnel_mtu}",
                    n.address.ip()
                ));
            }
        }
        want.sort();
        Ok(want)
    }

    /// Waits until every node holds exactly its expected routes, or
    /// `timeout`, or an agent exits; returns the nodes that do not, with
    /// what they should hold and what they hold.
    pub fn wait_converged(
        &mut self,
        proto: u8,
        tunnel_mtu: u32,
        timeout: Duration,
    ) -> Vec<(String, Vec<String>, Vec<String>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut wrong = Vec::new();
            for n in &self.nodes {
                let want = self
                    .expected_routes(&n.name, tunnel_mtu)
                    .unwrap_or_default();
                let have = routes(&n.ns, proto).unwrap_or_default();
                if want != have {
                    wrong.push((n.name.clone(), want, have));
                }
            }
            let exited = self.nodes.iter_mut().any(|n| {
                n.agent
                    .as_mut()
                    .is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
            });
            if wrong.is_empty() || exited || Instant::now() > deadline {
                return wrong;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Cluster::wait_converged`], and when some node is wrong, what it
    /// should hold, what it holds and its agent's log, for a failure
    /// message; `None` once every node holds its routes.
    pub fn convergence_report(
        &mut self,
        proto: u8,
        tunnel_mtu: u32,
        timeout: Duration,
    ) -> Option<String> {
        let wrong = self.wait_converged(proto, tunnel_mtu, timeout);
        if wrong.is_empty() {
            return None;
        }
        Some(
            wrong
                .iter()
                .map(|(n, want, have)| {
                    format!(
                        "\n{n}: want {want:#?}\nhas {have:#?}\nlog:\n{}",
                        self.log(n)
                    )
                })
                .collect(),
        )
    }

    /// Pings from `from`'s pod to `to`'s pod (up to `tries` single ICMP
    /// echoes, 1 s each, sent by [`super::echo`] from a socket in the pod's
    /// namespace: no `ping` binary needed).
    pub fn pod_ping(&self, from: &str, to: &str, tries: u32) -> Result<bool, ClusterError> {
        let (src_ns, _) = self
            .node(from)?
            .pod
            .clone()
            .ok_or_else(|| ClusterError::NoNode(format!("{from}'s pod")))?;
        let (_, dst) = self
            .node(to)?
            .pod
            .clone()
            .ok_or_else(|| ClusterError::NoNode(format!("{to}'s pod")))?;
        for _ in 0..tries {
            if super::echo::echo(&src_ns, dst, Duration::from_secs(1))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The pod-to-pod ping matrix as a table, and whether every pair
    /// passed.
    pub fn ping_matrix(&self, tries: u32) -> (String, bool) {
        let with_pods: Vec<&Node> = self.nodes.iter().filter(|n| n.pod.is_some()).collect();
        let mut table = format!("{:<14}", "from \\ to");
        for n in &with_pods {
            let _ = write!(table, "{:<14}", format!("pod-{}", n.name));
        }
        table.push('\n');
        let mut all = true;
        for from in &with_pods {
            let _ = write!(table, "{:<14}", format!("pod-{}", from.name));
            for to in &with_pods {
                let cell = if from.name == to.name {
                    "-"
                } else if self.pod_ping(&from.name, &to.name, tries).unwrap_or(false) {
                    "ok"
                } else {
                    all = false;
                    "FAIL"
                };
                let _ = write!(table, "{cell:<14}");
            }
            table.push('\n');
        }
        (table, all)
    }
}

/// Kills every process in `ns` (`ip netns pids`).
pub fn kill_all(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse() {
                let _ = super::sys::send_signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Removes every namespace whose name starts with `prefix-` and the
/// processes in it (cleanup when the [`Cluster`] itself is out of reach).
pub fn remove_by_prefix(prefix: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let start = format!("{prefix}-");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        if ns.starts_with(&start) {
            kill_all(ns);
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(prefix));
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.agent.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for ns in self.namespaces.iter().rev() {
            kill_all(ns);
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
        if let Some(pins) = &self.bpf_pins {
            let _ = ipip::sys::unmount(pins);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
