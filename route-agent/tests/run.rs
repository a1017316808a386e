//! `route-agent run` end to end on two nodes sharing a subnet, each in a
//! network namespace this test creates: the agents peer over the
//! node-to-node mesh, each blackholes its own block and routes the other's
//! directly (`via NH dev <underlay> onlink`), and the routes outlive a
//! SIGKILLed agent. Needs root.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENT: &str = env!("CARGO_BIN_EXE_route-agent");

fn require_root() {
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

fn ip(args: &[&str]) -> String {
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
struct Node {
    ns: String,
    agent: Option<Child>,
    dir: std::path::PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
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

    fn start(&mut self, config: &str) {
        let file = self.dir.join("agent.yaml");
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(self.dir.join("agent.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, AGENT, "run", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        self.agent = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// `ip route show proto 98`, one route per line.
    fn routes(&self) -> Vec<String> {
        let mut lines: Vec<String> = ip(&["-n", &self.ns, "route", "show", "proto", "98"])
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        lines.sort();
        lines
    }

    fn wait_routes(&self, want: &[String]) -> Vec<String> {
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
        // The agent's userspace tunnel outlives it on purpose: kill every
        // process left in the namespace.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.ns])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn config(name: &str, address: &str, block: &str, peer: &str) -> String {
    format!(
        "node:\n  name: {name}\n  address: {address}\npools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n\
         blocks: [{block}]\nmesh:\n  peers: [{peer}]\ngraceful-restart:\n  enabled: false\n"
    )
}

#[test]
fn two_agents_on_one_subnet_route_each_others_blocks_directly_restore_deleted_routes_and_keep_them_after_sigkill()
 {
    require_root();
    let mut a = Node::new("a");
    let mut b = Node::new("b");
    let (va, vb) = (
        format!("ra{}a", std::process::id() % 100_000),
        format!("ra{}b", std::process::id() % 100_000),
    );
    ip(&[
        "link", "add", &va, "netns", &a.ns, "type", "veth", "peer", "name", &vb, "netns", &b.ns,
    ]);
    ip(&["-n", &a.ns, "addr", "add", "10.95.0.1/24", "dev", &va]);
    ip(&["-n", &b.ns, "addr", "add", "10.95.0.2/24", "dev", &vb]);
    ip(&["-n", &a.ns, "link", "set", &va, "up"]);
    ip(&["-n", &b.ns, "link", "set", &vb, "up"]);

    a.start(&config(
        "node-a",
        "10.95.0.1/24",
        "10.244.1.0/26",
        "10.95.0.2",
    ));
    b.start(&config(
        "node-b",
        "10.95.0.2/24",
        "10.244.2.0/26",
        "10.95.0.1",
    ));

    let want_a = vec![
        "10.244.2.0/26 via 10.95.0.2 dev VA onlink".replace("VA", &va),
        "blackhole 10.244.1.0/26".to_owned(),
    ];
    let want_b = vec![
        "10.244.1.0/26 via 10.95.0.1 dev VB onlink".replace("VB", &vb),
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
    let back = a.wait_routes(&want_a);
    assert_eq!(
        back,
        want_a,
        "the deleted route was not restored; log:\n{}",
        a.log()
    );
    assert!(
        deleted_at.elapsed() < Duration::from_secs(1),
        "restored after {:?}",
        deleted_at.elapsed()
    );

    // SIGKILL: nothing is cleaned up, the kernel keeps forwarding.
    b.kill();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(b.routes(), want_b, "B's routes outlive its agent");
}
