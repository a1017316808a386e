//! Helpers for tests that need a kernel: throwaway network namespaces that
//! are deleted on every path, including a panicking test.
//!
//! These tests run as root in CI. Without the privileges they fail with a
//! message that says so: a kernel test that silently passes proves nothing.

pub mod bird;
pub mod etcd;
pub mod gobgp;
pub mod kube_api;

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

    /// Creates a veth pair with one end here and one in `other`, both down
    /// (`ip link add A netns X type veth peer name B netns Y`); returns the
    /// names of this end and the other.
    pub fn veth_pair(&self, other: &Netns) -> (String, String) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let here = format!("v{}a{n}", std::process::id() % 100_000);
        let there = format!("v{}b{n}", std::process::id() % 100_000);
        let args = [
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
        ];
        run("ip", &args);
        (here, there)
    }

    /// Joins this namespace and `other` with a veth pair and addresses each
    /// end (`ip link add ... type veth peer ...`).
    pub fn link(&self, other: &Netns, addr_here: &str, addr_there: &str) {
        let (here, there) = self.veth_pair(other);
        self.exec("ip", &["addr", "add", addr_here, "dev", &here]);
        other.exec("ip", &["addr", "add", addr_there, "dev", &there]);
        self.exec("ip", &["link", "set", &here, "up"]);
        other.exec("ip", &["link", "set", &there, "up"]);
    }
}

impl Netns {
    /// The one veth device in this namespace (`ip -o link show type veth`).
    pub fn veth(&self) -> String {
        let out = self.exec("ip", &["-o", "link", "show", "type", "veth"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
            .collect();
        assert_eq!(names.len(), 1, "expected one veth in {}: {text}", self.name);
        names[0].to_owned()
    }
}

/// Two namespaces joined by a veth pair carrying IPv4 and IPv6: a peer
/// daemon's (`10.NET.N.1/24`, `fdNET:N::1/64`) and our speaker's
/// (`10.NET.N.2/24`, `fdNET:N::2/64`). Each test file takes its own NET and
/// each test its own N, so tests run in parallel.
#[derive(Debug)]
pub struct Link {
    /// Where the peer daemon runs.
    pub peer: Netns,
    /// Where our speaker runs.
    pub ours: Netns,
    net: u8,
    n: u8,
}

impl Link {
    /// Creates both namespaces, the veth pair and all four addresses.
    pub fn new(tag: &str, net: u8, n: u8) -> Link {
        let peer = Netns::new(&format!("{tag}p"));
        let ours = Netns::new(&format!("{tag}o"));
        peer.link(
            &ours,
            &format!("10.{net}.{n}.1/24"),
            &format!("10.{net}.{n}.2/24"),
        );
        // `nodad`: otherwise the addresses stay tentative for a second or
        // two and the first IPv6 connect or bind fails (EADDRNOTAVAIL).
        for (ns, addr) in [
            (&peer, format!("fd{net}:{n}::1/64")),
            (&ours, format!("fd{net}:{n}::2/64")),
        ] {
            let dev = ns.veth();
            ns.exec("ip", &["addr", "add", &addr, "dev", &dev, "nodad"]);
        }
        Link { peer, ours, net, n }
    }

    /// The peer's IPv4 address, `10.NET.N.1`.
    pub fn peer_v4(&self) -> String {
        format!("10.{}.{}.1", self.net, self.n)
    }

    /// Our IPv4 address, `10.NET.N.2`.
    pub fn our_v4(&self) -> String {
        format!("10.{}.{}.2", self.net, self.n)
    }

    /// The peer's IPv6 address, `fdNET:N::1`.
    pub fn peer_v6(&self) -> String {
        format!("fd{}:{}::1", self.net, self.n)
    }

    /// Our IPv6 address, `fdNET:N::2`.
    pub fn our_v6(&self) -> String {
        format!("fd{}:{}::2", self.net, self.n)
    }

    /// The name of our end of the veth pair (for `tcpdump -i`).
    pub fn our_dev(&self) -> String {
        self.ours.veth()
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

/// Runs `f` on a thread inside the network namespace `ns` (`ip netns add`
/// made it) and returns its result: sockets `f` opens, and threads it
/// starts (a tokio runtime's), live in that namespace. Fails the test when
/// the namespace cannot be entered.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        kube_api::enter_netns(&file).unwrap_or_else(|e| panic!("setns {path}: {e}"));
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
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

/// A scratch directory for configs and sockets, removed on drop.
#[derive(Debug)]
pub struct Scratch {
    path: std::path::PathBuf,
}

impl Scratch {
    /// Creates `/tmp/podroute-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("podroute-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Scratch { path }
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.path.join(name)
    }

    /// Writes `contents` to `name` and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> std::path::PathBuf {
        let p = self.join(name);
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A child process killed (SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct Daemon {
    child: std::process::Child,
    name: String,
}

impl Daemon {
    /// Starts `program args` inside `ns` (or outside with `None`), with its
    /// output going to `log`.
    pub fn spawn(
        ns: Option<&Netns>,
        program: &str,
        args: &[&str],
        log: &std::path::Path,
    ) -> Daemon {
        let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name(), program]);
                c
            }
            None => Command::new(program),
        };
        let child = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Daemon {
            child,
            name: program.to_owned(),
        }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        let _ = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = &self.name;
    }
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Our speaker (the `bgp-speaker` binary, i.e. `examples/speaker.rs`) run
/// in a namespace: JSON config in, JSON event lines out, commands on stdin.
/// Killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct SpeakerProc {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    events: std::sync::mpsc::Receiver<serde_json::Value>,
    /// Every event seen so far, oldest first.
    pub seen: Vec<serde_json::Value>,
}

impl SpeakerProc {
    /// Starts the speaker in `ns` with `config` (a JSON `SpeakerConfig`)
    /// and `announce` (`PREFIX` or `PREFIX,NEXT_HOP`) arguments.
    pub fn start(
        ns: &Netns,
        binary: &str,
        config: &std::path::Path,
        announce: &[&str],
    ) -> SpeakerProc {
        let mut args = vec!["netns", "exec", ns.name(), binary];
        let config = config.to_string_lossy().into_owned();
        args.push(&config);
        args.extend_from_slice(announce);
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stdin = child.stdin.take().unwrap_or_else(|| panic!("no stdin"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        SpeakerProc {
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
        }
    }

    /// Sends one command line (`announce P [NH]`, `withdraw P`, `peers`,
    /// `routes`, `shutdown MSG`).
    pub fn send(&mut self, command: &str) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "{command}");
        let _ = self.stdin.flush();
    }

    /// Waits for an event matching `want`, returning it; events before it
    /// are kept in `seen`.
    pub fn wait_event(
        &mut self,
        timeout: std::time::Duration,
        mut want: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let v = self.events.recv_timeout(left).ok()?;
            self.seen.push(v.clone());
            if want(&v) {
                return Some(v);
            }
        }
    }

    /// The current best routes (the `routes` command), prefix → event.
    pub fn routes(&mut self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.send("routes");
        let mut out = std::collections::BTreeMap::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while let Ok(v) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            if v["event"] == "routes-end" {
                break;
            }
            if v["event"] == "route"
                && let Some(p) = v["prefix"].as_str()
            {
                out.insert(p.to_owned(), v.clone());
            }
            self.seen.push(v);
        }
        out
    }

    /// The OS process ID of `ip netns exec`, which execs the speaker.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the speaker with SIGKILL (no NOTIFICATION is sent).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SpeakerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ip monitor route` in a namespace, writing to a file: what changed in
/// the kernel's routes while it ran (route churn). Killed on drop.
#[derive(Debug)]
pub struct RouteMonitor {
    child: std::process::Child,
    file: std::path::PathBuf,
}

impl RouteMonitor {
    /// Starts `ip -n NS monitor route` writing to `file`.
    pub fn start(ns: &str, file: std::path::PathBuf) -> RouteMonitor {
        let out = std::fs::File::create(&file).expect("monitor output file");
        let child = std::process::Command::new("ip")
            .args(["-n", ns, "monitor", "route"])
            .stdout(out)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ip monitor route");
        RouteMonitor { child, file }
    }

    /// Stops it and returns the lines about routes of protocol `proto`.
    pub fn stop(mut self, proto: u8) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("proto {proto}")))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Held by a test that builds a cluster of namespace nodes and times what
/// crosses it (ping loss, route churn): one such test at a time per test
/// binary, so two clusters' userspace tunnels and agents do not starve each
/// other of the machine's two cores and turn into lost pings.
pub fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
