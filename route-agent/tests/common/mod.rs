//! What the namespace tests of `route-agent run` share: a node (a network
//! namespace with an agent in it, deleted on drop), a pair of nodes on one
//! subnet, their configs. `ROUTE_AGENT_BIN` runs the agents of these tests
//! from another build (to show a test failing before a fix).

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The agent binary of this build.
pub const AGENT: &str = env!("CARGO_BIN_EXE_route-agent");

/// The agent binary the tests run: this build's, or `ROUTE_AGENT_BIN`.
pub fn agent() -> String {
    std::env::var("ROUTE_AGENT_BIN").unwrap_or_else(|_| AGENT.to_owned())
}

pub fn require_root() {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    assert_eq!(
        uid.ok().as_deref(),
        Some("0"),
        "route-agent run tests need root (network namespaces); CI runs them as root"
    );
}

/// Kills every process left in namespace `ns` (an agent's userspace
/// tunnel outlives it on purpose), then deletes the namespace.
pub fn delete_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip").args(["netns", "delete", ns]).status();
}

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace deleted on drop; the agent in it is killed first.
pub struct Node {
    /// The namespace.
    pub ns: String,
    /// The running agent.
    pub agent: Option<Child>,
    /// Its config and log.
    pub dir: std::path::PathBuf,
}

impl Node {
    pub fn new(tag: &str) -> Node {
        let ns = format!("ra-{tag}-{}", std::process::id());
        ip(&["netns", "add", &ns]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        Node {
            ns,
            agent: None,
            dir,
        }
    }

    pub fn start(&mut self, config: &str) {
        self.start_with_logs(config, "human");
    }

    pub fn start_with_logs(&mut self, config: &str, format: &str) {
        self.start_after(config, format, &[]);
    }

    /// Starts the agent on `config` as `ip netns exec NS BEFORE... route-agent
    /// run ...`: `before` is a command that execs its arguments (`env
    /// VAR=value`, `unshare ...`).
    pub fn start_after(&mut self, config: &str, format: &str, before: &[&str]) {
        let file = self.dir.join("agent.yaml");
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(self.dir.join("agent.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns])
            .args(before)
            .args([&agent(), "run", "--log-format", format, "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        self.agent = Some(child);
    }

    /// `GET path` on the agent's admin API: [`get_in`] its namespace.
    pub fn get(&self, path: &str) -> (u16, String) {
        get_in(&self.ns, path)
    }

    /// Whether the agent process is still running.
    pub fn is_running(&mut self) -> bool {
        self.agent
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for the agent to exit; its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.agent.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` for the log to contain `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// `ip route show proto 98`, one route per line.
    pub fn routes(&self) -> Vec<String> {
        let mut lines: Vec<String> = ip(&["-n", &self.ns, "route", "show", "proto", "98"])
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        lines.sort();
        lines
    }

    pub fn wait_routes(&self, want: &[String]) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.routes();
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        delete_namespace(&self.ns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn config(name: &str, address: &str, block: &str, peer: &str) -> String {
    format!(
        "node:\n  name: {name}\n  address: {address}\npools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n\
         blocks: [{block}]\nmesh:\n  peers: [{peer}]\ngraceful-restart:\n  enabled: false\n"
    )
}

/// The configs of node A (10.96.n.1, block 10.244.1.0/26) and node B
/// (10.96.n.2, block 10.244.2.0/26) of [`pair`]`(_, n)`, each the other's
/// mesh peer.
pub fn pair_configs(n: u8) -> (String, String) {
    (
        config(
            "node-a",
            &format!("10.96.{n}.1/24"),
            "10.244.1.0/26",
            &format!("10.96.{n}.2"),
        ),
        config(
            "node-b",
            &format!("10.96.{n}.2/24"),
            "10.244.2.0/26",
            &format!("10.96.{n}.1"),
        ),
    )
}
impl Node {
    /// SIGTERM to the agent and its exit status (`None`: still running
    /// after 10 s, then killed).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut agent = self.agent.take().expect("the agent runs");
        let pid = agent.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = agent.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = agent.kill();
                let _ = agent.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes a new config and sends SIGHUP to the agent.
    pub fn reload(&self, config: &str) {
        std::fs::write(self.dir.join("agent.yaml"), config).unwrap();
        let pid = self.agent.as_ref().expect("agent runs").id().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success());
    }

    /// `route-agent status --json` inside the namespace.
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, AGENT, "status", "--json"])
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The state and uptime of peer `address` in the agent's status.
    pub fn peer(&self, address: &str) -> Option<(String, Option<u64>)> {
        let doc = self.status()?;
        let p = doc["peers"]
            .as_array()?
            .iter()
            .find(|p| p["address"] == address)?
            .clone();
        Some((
            p["state"].as_str()?.to_owned(),
            p["uptime_seconds"].as_u64(),
        ))
    }

    pub fn wait_peer_state(&self, address: &str, state: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.peer(address).is_some_and(|(s, _)| s == state) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

/// Two nodes in namespaces joined by a veth on 10.96.N.0/24; returns them
/// and the two veth names.
pub fn pair(tag: &str, n: u8) -> (Node, Node, String, String) {
    let a = Node::new(&format!("{tag}a"));
    let b = Node::new(&format!("{tag}b"));
    let (va, vb) = (
        format!("r{tag}{}a", std::process::id() % 100_000),
        format!("r{tag}{}b", std::process::id() % 100_000),
    );
    ip(&[
        "link", "add", &va, "netns", &a.ns, "type", "veth", "peer", "name", &vb, "netns", &b.ns,
    ]);
    ip(&[
        "-n",
        &a.ns,
        "addr",
        "add",
        &format!("10.96.{n}.1/24"),
        "dev",
        &va,
    ]);
    ip(&[
        "-n",
        &b.ns,
        "addr",
        "add",
        &format!("10.96.{n}.2/24"),
        "dev",
        &vb,
    ]);
    ip(&["-n", &a.ns, "link", "set", &va, "up"]);
    ip(&["-n", &b.ns, "link", "set", &vb, "up"]);
    (a, b, va, vb)
}
/// `ip -6 route show proto 98` in `ns`, whitespace-normalised, sorted.
pub fn routes6(ns: &str) -> Vec<String> {
    let mut lines: Vec<String> = ip(&["-n", ns, "-6", "route", "show", "proto", "98"])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

pub fn wait_routes6(ns: &str, want: &[String]) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = routes6(ns);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A dual-stack config: the IPv4 block and pool of [`config`] plus an
/// IPv6 pool and block, and `extra` node keys.
pub fn dual_config(name: &str, address: &str, block: &str, block6: &str, peer: &str) -> String {
    config(name, address, block, peer)
        .replace("pools:\n", "pools:\n  - cidr: fd00:244::/48\n")
        .replace(
            &format!("blocks: [{block}]"),
            &format!("blocks: [{block}, {block6}]"),
        )
}

/// `GET path` on the admin API of the agent in namespace `ns`
/// (127.0.0.1:9179 there), with bash's `/dev/tcp`: status code (0 when nothing
/// answers) and body.
pub fn get_in(ns: &str, path: &str) -> (u16, String) {
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/9179 && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
    );
    let Ok(out) = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", &script])
        .output()
    else {
        return (0, String::new());
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// `tc filter show dev eth0 ingress` in `ns`.
pub fn tc_ingress(ns: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "tc", "filter", "show", "dev", "eth0", "ingress",
        ])
        .output()
        .expect("tc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
