//! Helpers for tests that need a kernel: throwaway network namespaces that
//! are deleted on every path, including a panicking test.
//!
//! These tests run as root in CI. Without the privileges they fail with a
//! message that says so: a kernel test that silently passes proves nothing.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Fails the calling test with a clear message unless it runs as root.
pub fn require_root(what: &str) {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref() != Some("0") {
        panic!(
            "{what} needs root (network namespaces); run the test command as root \
             (CI does). uid is {uid:?}"
        );
    }
}

/// Runs a command and returns its output, failing the test with the command
/// line and stderr if it exits non-zero.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace named uniquely for this process, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `pr-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("pr-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.exec("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a command inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Joins this namespace and `other` with a veth pair and addresses each
    /// end (`ip link add ... type veth peer ...`).
    pub fn link(&self, other: &Netns, addr_here: &str, addr_there: &str) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let here = format!("v{}a{n}", std::process::id() % 100_000);
        let there = format!("v{}b{n}", std::process::id() % 100_000);
        run(
            "ip",
            &[
                "link",
                "add",
                &here,
                "netns",
                &self.name,
                "type",
                "veth",
                "peer",
                "name",
                &there,
                "netns",
                &other.name,
            ],
        );
        self.exec("ip", &["addr", "add", addr_here, "dev", &here]);
        other.exec("ip", &["addr", "add", addr_there, "dev", &there]);
        self.exec("ip", &["link", "set", &here, "up"]);
        other.exec("ip", &["link", "set", &there, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes the veth ends inside it.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Whether a namespace with this name exists.
pub fn netns_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name))
        })
        .unwrap_or(false)
}
