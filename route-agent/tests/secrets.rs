//! No TCP-MD5 password leaves the agent (issue 16, item 2): two agents in
//! network namespaces peer over a mesh with a password, one of them also
//! has an explicit peer and a route-reflector client range with passwords
//! of their own; a SIGHUP changes them all. At log level `trace`, no log
//! line, no `route-agent status` output (tables and `--json`), no admin
//! document (`/api/v1/*`, `/metrics`, `/healthz`, `/readyz`) and no
//! `check-config` output holds any of the passwords. Needs root.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{AGENT, delete_namespace, ip, require_root};

/// Every password the configs use, old and new.
const MESH: &str = "mesh-Pw-4c1d";
const MESH_NEW: &str = "mesh-Pw-new-77e0";
const PEER: &str = "peer-Pw-9a2b";
const PEER_NEW: &str = "peer-Pw-new-31f4";
const RANGE: &str = "range-Pw-5e6f";
const RANGE_NEW: &str = "range-Pw-new-08c2";
const ALL: [&str; 6] = [MESH, MESH_NEW, PEER, PEER_NEW, RANGE, RANGE_NEW];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A namespace with an agent in it, deleted on drop (the agent first).
struct Node {
    ns: String,
    agent: Option<Child>,
    dir: std::path::PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        let ns = format!("rs-{tag}-{}", std::process::id());
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

    fn config_file(&self) -> std::path::PathBuf {
        self.dir.join("agent.yaml")
    }

    fn start(&mut self, config: &str) {
        std::fs::write(self.config_file(), config).unwrap();
        let log = std::fs::File::create(self.dir.join("agent.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, AGENT, "run", "--config"])
            .arg(self.config_file())
            .env("ROUTE_AGENT_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        self.agent = Some(child);
    }

    fn reload(&self, config: &str) {
        std::fs::write(self.config_file(), config).unwrap();
        let pid = self.agent.as_ref().expect("agent runs").id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// `route-agent ARGS` inside the namespace.
    fn agent(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, AGENT])
            .args(args)
            .env("ROUTE_AGENT_LOG", "trace")
            .output()
            .expect("route-agent runs")
    }

    /// A raw HTTP/1.0 GET of the admin API inside the namespace.
    fn get(&self, path: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "bash", "-c"])
            .arg(format!(
                "exec 3<>/dev/tcp/127.0.0.1/9179; printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
            ))
            .output()
            .expect("bash runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `route-agent status --json` shows `peer` Established.
    fn established(&self, peer: &str) -> bool {
        let out = self.agent(&["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|doc| {
                doc["peers"].as_array().map(|ps| {
                    ps.iter()
                        .any(|p| p["address"] == peer && p["state"] == "Established")
                })
            })
            .unwrap_or(false)
    }

    fn wait_established(&self, peer: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.established(peer) {
            assert!(
                Instant::now() < deadline,
                "{} never established with {peer}; log:\n{}",
                self.ns,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        delete_namespace(&self.ns);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Node A: the mesh with B, an explicit eBGP peer that never answers and a
/// route-reflector client range, each with its password.
fn config_a(mesh: &str, peer: &str, range: &str) -> String {
    format!(
        "node: {{name: node-a, address: 10.96.40.1/24}}\n\
         pools: [{{cidr: 10.244.0.0/16}}]\n\
         blocks: [10.244.1.0/26]\n\
         mesh: {{peers: [10.96.40.2], password: {mesh}}}\n\
         peers: [{{address: 10.96.40.9, asn: 65001, password: \"{peer}\"}}]\n\
         route-reflector: {{cluster-id: 10.96.40.1, clients: [{{prefix: 10.96.41.0/24, password: '{range}'}}]}}\n\
         graceful-restart: {{enabled: false}}\n"
    )
}

fn config_b(mesh: &str) -> String {
    format!(
        "node: {{name: node-b, address: 10.96.40.2/24}}\n\
         pools: [{{cidr: 10.244.0.0/16}}]\n\
         blocks: [10.244.2.0/26]\n\
         mesh: {{peers: [10.96.40.1], password: {mesh}}}\n\
         graceful-restart: {{enabled: false}}\n"
    )
}

fn assert_no_password(what: &str, shown: &str) {
    for p in ALL {
        assert!(
            !shown.contains(p),
            "{what} shows the password {p}:\n{shown}"
        );
    }
}

#[test]
fn no_password_reaches_a_log_line_status_output_api_document_or_check_config() {
    require_root();
    let mut a = Node::new("a");
    let mut b = Node::new("b");
    let (va, vb) = (
        format!("rs{}a", std::process::id() % 100_000),
        format!("rs{}b", std::process::id() % 100_000),
    );
    ip(&[
        "link", "add", &va, "netns", &a.ns, "type", "veth", "peer", "name", &vb, "netns", &b.ns,
    ]);
    ip(&["-n", &a.ns, "addr", "add", "10.96.40.1/24", "dev", &va]);
    ip(&["-n", &b.ns, "addr", "add", "10.96.40.2/24", "dev", &vb]);
    ip(&["-n", &a.ns, "link", "set", &va, "up"]);
    ip(&["-n", &b.ns, "link", "set", &vb, "up"]);

    a.start(&config_a(MESH, PEER, RANGE));
    b.start(&config_b(MESH));
    // The mesh password is in use: the sessions come up under TCP-MD5.
    a.wait_established("10.96.40.2");

    // A SIGHUP that changes every password: the diff is logged, and the
    // mesh comes back up with the new key on both sides.
    a.reload(&config_a(MESH_NEW, PEER_NEW, RANGE_NEW));
    b.reload(&config_b(MESH_NEW));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.log().contains("SIGHUP: config reloaded") {
        assert!(Instant::now() < deadline, "no reload; log:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    a.wait_established("10.96.40.2");
    b.wait_established("10.96.40.1");

    for node in [&a, &b] {
        let status = node.agent(&["status"]);
        assert!(status.status.success(), "{}", text(&status));
        assert_no_password("route-agent status", &text(&status));
        let json = node.agent(&["status", "--json"]);
        assert!(json.status.success(), "{}", text(&json));
        assert_no_password("route-agent status --json", &text(&json));
        for path in [
            "/api/v1/peers",
            "/api/v1/routes",
            "/api/v1/fib",
            "/api/v1/status",
            "/metrics",
            "/healthz",
            "/readyz",
        ] {
            let doc = node.get(path);
            assert!(doc.starts_with("HTTP/1."), "{path}: {doc}");
            assert_no_password(path, &doc);
        }
        let check = node.agent(&["check-config", &node.config_file().to_string_lossy()]);
        assert!(check.status.success(), "{}", text(&check));
        assert_no_password("check-config", &text(&check));
    }

    // check-config of files that hold a password says nothing of it
    // either: one YAML reads as a number (a valid password), one given as
    // a list, one next to a typo, and an overlong one.
    for (name, mesh, code) in [
        (
            "number",
            "{peers: [10.96.40.2], password: 73105}".to_owned(),
            0,
        ),
        (
            "list",
            "\n  peers: [10.96.40.2]\n  password:\n    - 73105".to_owned(),
            2,
        ),
        (
            "typo",
            format!("{{peers: [10.96.40.2], password: {MESH}, pasword: {PEER}}}"),
            2,
        ),
        (
            "overlong",
            format!("{{peers: [10.96.40.2], password: {}}}", MESH.repeat(9)),
            2,
        ),
    ] {
        let file = a.dir.join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "node: {{address: 10.96.40.1/24}}\npools: [{{cidr: 10.244.0.0/16}}]\nmesh: {mesh}\n"
            ),
        )
        .unwrap();
        let check = a.agent(&["check-config", &file.to_string_lossy()]);
        assert_eq!(check.status.code(), Some(code), "{name}: {}", text(&check));
        assert_no_password(&format!("check-config of the {name} file"), &text(&check));
        assert!(
            !text(&check).contains("73105"),
            "check-config of the {name} file: {}",
            text(&check)
        );
    }

    // Last: the logs, with everything above in them.
    for node in [&a, &b] {
        let log = node.log();
        assert!(log.contains("TRACE"), "not at trace level:\n{log}");
        assert_no_password(&format!("{}'s log", node.ns), &log);
    }
}
