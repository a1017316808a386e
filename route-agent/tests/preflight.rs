//! `route-agent preflight` and the same checks at `route-agent run`: a node
//! namespace with IPv4 forwarding off gets it turned on by the agent, which
//! logs every check; the command prints one line per check. Needs root
//! (network namespaces).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{AGENT, delete_namespace, ip, require_root};

/// A namespace deleted on every path out of the test.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        delete_namespace(&self.0);
    }
}

fn forwarding(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn run_turns_forwarding_on_and_logs_every_check() {
    require_root();
    let ns = Namespace(format!("rapf{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
    ip(&[
        "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ip(&["-n", &ns.0, "addr", "add", "10.99.0.5/24", "dev", "eth0"]);
    ip(&["-n", &ns.0, "link", "set", "eth0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "eth0p", "up"]);
    // A new namespace starts with forwarding off.
    assert_eq!(forwarding(&ns.0), "0");

    let dir = std::env::temp_dir().join(format!("ra-preflight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("node.yaml");
    // No IPIP pool: no tunnel to start, the checks still run.
    std::fs::write(
        &config,
        "node: {address: 10.99.0.5/24}\npools: [{cidr: 10.244.0.0/16, ipip-mode: never}]\nblocks: [10.244.1.0/26]\n",
    )
    .unwrap();
    let log = dir.join("agent.log");
    let mut agent = Command::new("ip")
        .args(["netns", "exec", &ns.0, AGENT, "run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("conntrack") && forwarding(&ns.0) == "1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let on = forwarding(&ns.0);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(on, "1", "forwarding not turned on; log:\n{text}");
    assert!(
        text.contains("net.ipv4.ip_forward was 0: turned on"),
        "the change is not said:\n{text}"
    );
    for check in [
        "ip-forward",
        "rp-filter",
        "tunnel-backend",
        "mtu",
        "tcp-congestion-control",
        "conntrack",
    ] {
        assert!(
            text.contains(&format!("check=\"{check}\""))
                || text.contains(&format!("check={check}")),
            "no {check} line in:\n{text}"
        );
    }
    assert!(text.contains("eth0 MTU 1500"), "{text}");
}

#[test]
fn preflight_prints_one_line_per_check_with_the_node_from_the_config() {
    require_root();
    let ns = Namespace(format!("rapg{}", std::process::id()));
    ip(&["netns", "add", &ns.0]);
    ip(&[
        "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ip(&["-n", &ns.0, "link", "set", "eth0", "mtu", "1400"]);
    ip(&["-n", &ns.0, "addr", "add", "10.99.1.5/24", "dev", "eth0"]);
    ip(&["-n", &ns.0, "link", "set", "eth0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "eth0p", "up"]);
    let dir = std::env::temp_dir().join(format!("ra-preflight-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("node.yaml");
    // A tunnel MTU the underlay cannot carry: a failed check, exit 1.
    std::fs::write(
        &config,
        "node: {address: 10.99.1.5/24}\npools: [{cidr: 10.244.0.0/16}]\nblocks: [10.244.1.0/26]\ntunnel: {mtu: 1480}\n",
    )
    .unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0, AGENT, "preflight", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().count(), 6, "{text}");
    let mtu = text.lines().find(|l| l.contains(" mtu: ")).unwrap();
    assert!(
        mtu.starts_with("[ERROR]   mtu: eth0 MTU 1400, tunnel routes MTU 1480")
            && mtu.contains("Fix: tunnel.mtu: 1380"),
        "{mtu}"
    );
    // Forwarding is only reported by the command, never changed.
    assert_eq!(forwarding(&ns.0), "0");
    assert!(
        text.contains("[WARNING] ip-forward: net.ipv4.ip_forward = 0"),
        "{text}"
    );
}
