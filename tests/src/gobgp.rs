//! GoBGP 3 as an interop peer: a TOML config builder, a [`Gobgp`] guard that
//! runs `gobgpd` in the foreground inside a namespace (SIGKILLed on drop),
//! and its CLI (`gobgp -j ...`) read back as JSON.
//!
//! Also the namespace plumbing the GoBGP tests share: a veth pair carrying
//! IPv4 and IPv6 ([`crate::Link`]), and a bridge joining three namespaces on
//! one segment ([`attach_to_bridge`]).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::{Daemon, Netns, Scratch, SpeakerProc, wait_for};

/// The gRPC port `gobgpd` serves its API on. Loopback is per namespace, so
/// every test can use the same one.
pub const API_PORT: u16 = 50051;

/// `session_state` of an Established neighbour in `gobgp neighbor -j`
/// (apipb `PeerState.SessionState.ESTABLISHED`).
pub const ESTABLISHED: i64 = 6;

/// One `[[neighbors]]` entry.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// `neighbor-address`.
    pub address: String,
    /// `peer-as`.
    pub asn: u32,
    /// Advertise graceful restart (RFC 4724) for both unicast families.
    pub graceful_restart: bool,
    /// Start administratively down (`gobgp neighbor ADDR enable` brings it up).
    pub admin_down: bool,
}

impl Neighbor {
    /// An active neighbour with IPv4 and IPv6 unicast and nothing else.
    pub fn new(address: &str, asn: u32) -> Neighbor {
        Neighbor {
            address: address.to_owned(),
            asn,
            graceful_restart: false,
            admin_down: false,
        }
    }
}

/// A whole `gobgpd` config.
#[derive(Clone, Debug)]
pub struct Config {
    /// `global.config.as`.
    pub asn: u32,
    /// `global.config.router-id`.
    pub router_id: String,
    /// Addresses `gobgpd` listens on.
    pub listen: Vec<String>,
    /// Neighbours.
    pub neighbors: Vec<Neighbor>,
}

impl Config {
    /// Renders the TOML `gobgpd -f` reads.
    pub fn to_toml(&self) -> String {
        let listen: Vec<String> = self.listen.iter().map(|a| format!("{a:?}")).collect();
        let mut t = format!(
            "[global.config]\n  as = {}\n  router-id = {:?}\n  port = 179\n  local-address-list = [{}]\n",
            self.asn,
            self.router_id,
            listen.join(", ")
        );
        for n in &self.neighbors {
            t += &format!(
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = {:?}\n    peer-as = {}\n",
                n.address, n.asn
            );
            if n.admin_down {
                t += "    admin-down = true\n";
            }
            // GoBGP clamps this to its 5 s minimum; the first attempt comes
            // 5-10 s after start either way.
            t += "  [neighbors.timers.config]\n    connect-retry = 1\n";
            if n.graceful_restart {
                t += "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 60\n";
            }
            for family in ["ipv4-unicast", "ipv6-unicast"] {
                t += &format!(
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = {family:?}\n"
                );
                if n.graceful_restart {
                    t += "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n";
                }
            }
        }
        t
    }
}

/// `gobgpd` running in a namespace; killed with SIGKILL on drop.
#[derive(Debug)]
pub struct Gobgp {
    ns: String,
    daemon: Option<Daemon>,
    log: std::path::PathBuf,
}

impl Gobgp {
    /// Writes `config` to `scratch`, starts `gobgpd -f CONFIG --api-hosts=...
    /// EXTRA...` in `ns` and waits until its API answers.
    pub fn start(ns: &Netns, scratch: &Scratch, config: &Config, extra: &[&str]) -> Gobgp {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let conf = scratch.write(&format!("gobgpd-{n}.toml"), &config.to_toml());
        let log = scratch.join(&format!("gobgpd-{n}.log"));
        let conf = conf.to_string_lossy().into_owned();
        let api = format!("--api-hosts=127.0.0.1:{API_PORT}");
        let mut args = vec!["-f", conf.as_str(), api.as_str()];
        args.extend_from_slice(extra);
        let daemon = Daemon::spawn(Some(ns), "gobgpd", &args, &log);
        let g = Gobgp {
            ns: ns.name().to_owned(),
            daemon: Some(daemon),
            log,
        };
        if wait_for(Duration::from_secs(10), || g.try_cli(&["global"]).ok()).is_none() {
            panic!("gobgpd API did not come up; log:\n{}", g.log_tail());
        }
        g
    }

    /// Runs `gobgp ARGS` against this daemon; its stdout.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, CliError> {
        let port = API_PORT.to_string();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "gobgp",
                "-u",
                "127.0.0.1",
                "-p",
                &port,
            ])
            .args(args)
            .output()
            .map_err(CliError::Spawn)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(CliError::Failed {
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Runs `gobgp ARGS`, failing the test if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("`gobgp {}` failed: {e}", args.join(" ")))
    }

    /// Runs `gobgp ARGS -j` and parses the output (`Null` on any failure,
    /// which callers polling a starting daemon treat as "not yet").
    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.push("-j");
        self.try_cli(&full)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null)
    }

    /// The neighbour's entry in `gobgp neighbor -j`.
    pub fn neighbor(&self, address: &str) -> Option<Value> {
        self.json(&["neighbor"])
            .as_array()?
            .iter()
            .find(|n| n["state"]["neighbor_address"] == address)
            .cloned()
    }

    /// The neighbour's `session_state` (6 is Established).
    pub fn session_state(&self, address: &str) -> Option<i64> {
        self.neighbor(address)?["state"]["session_state"].as_i64()
    }

    /// Waits until the neighbour is Established.
    pub fn wait_established(&self, address: &str, timeout: Duration) -> bool {
        wait_for(timeout, || {
            (self.session_state(address) == Some(ESTABLISHED)).then_some(())
        })
        .is_some()
    }

    /// The global RIB for `family` (`ipv4` or `ipv6`): prefix → paths.
    pub fn rib(&self, family: &str) -> serde_json::Map<String, Value> {
        match self.json(&["global", "rib", "-a", family]) {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// The best path to `prefix` learned from `neighbor`, if GoBGP has one.
    pub fn learned(&self, family: &str, prefix: &str, neighbor: &str) -> Option<Value> {
        self.rib(family)
            .get(prefix)?
            .as_array()?
            .iter()
            .find(|p| p["neighbor-ip"] == neighbor)
            .cloned()
    }

    /// Kills `gobgpd` with SIGKILL: its peers see the TCP connection close
    /// without a NOTIFICATION.
    pub fn kill(&mut self) {
        drop(self.daemon.take());
    }

    /// The end of `gobgpd`'s log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// The attribute of type `code` in a GoBGP JSON path.
pub fn attr(path: &Value, code: u64) -> Option<&Value> {
    path["attrs"].as_array()?.iter().find(|a| a["type"] == code)
}

/// The next hop of a GoBGP JSON path (NEXT_HOP for IPv4, MP_REACH_NLRI's
/// for IPv6).
pub fn next_hop(path: &Value) -> Option<String> {
    attr(path, 3)
        .or_else(|| attr(path, 14))
        .and_then(|a| a["nexthop"].as_str())
        .map(str::to_owned)
}

/// Joins `leaf` to the bridge `bridge` in `hub` with a veth pair and gives
/// the leaf's end `addr` (`ip link add ... type veth`, `ip link set ...
/// master BRIDGE`).
pub fn attach_to_bridge(leaf: &Netns, hub: &Netns, bridge: &str, addr: &str) {
    let (here, there) = leaf.veth_pair(hub);
    hub.exec("ip", &["link", "set", &there, "master", bridge, "up"]);
    leaf.exec("ip", &["addr", "add", addr, "dev", &here]);
    leaf.exec("ip", &["link", "set", &here, "up"]);
}

/// Waits until our speaker reports `address` in `state` (asks with `peers`
/// first, so a state reached earlier is seen too).
pub fn wait_peer_state(
    sp: &mut SpeakerProc,
    address: &str,
    state: &str,
    timeout: Duration,
) -> bool {
    sp.send("peers");
    sp.wait_event(timeout, |v| {
        v["event"] == "peer" && v["address"] == address && v["state"] == state
    })
    .is_some()
}

/// Polls our speaker's `routes` until `check` accepts them; returns the last
/// table either way.
pub fn wait_routes(
    sp: &mut SpeakerProc,
    timeout: Duration,
    mut check: impl FnMut(&std::collections::BTreeMap<String, Value>) -> bool,
) -> (bool, std::collections::BTreeMap<String, Value>) {
    let mut last = std::collections::BTreeMap::new();
    let ok = wait_for(timeout, || {
        last = sp.routes();
        check(&last).then_some(())
    })
    .is_some();
    (ok, last)
}

/// Why a `gobgp` command gave no output.
#[derive(Debug)]
pub enum CliError {
    /// `ip netns exec gobgp` could not be started.
    Spawn(std::io::Error),
    /// `gobgp` ran and failed; what it said on stderr.
    Failed {
        /// Its stderr.
        stderr: String,
    },
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Spawn(e) => write!(f, "cannot run gobgp: {e}"),
            CliError::Failed { stderr } => write!(f, "{}", stderr.trim_end()),
        }
    }
}
