//! Preflight, as `kubeadm init` runs it: what this node's kernel and
//! sysctls mean for pod routing, each finding with what was found, why it
//! matters and the fix.
//!
//! `route-agent preflight` prints the findings; `route-agent run` makes the
//! same checks at start, logs them, turns IPv4 forwarding on when it is off
//! (as Calico's Felix and kube-router do: a node that does not forward
//! cannot route pod traffic) and keeps them for `/metrics`.
//!
//! Everything is read from files under a root ([`Host`]), `/` on a node,
//! so the checks are tested on a made-up `/proc` and `/sys`.

use std::fmt;
use std::path::PathBuf;

use crate::config::{Config, TunnelBackend};

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing to do.
    Ok,
    /// Pod routing works, but worse than it could, or something may go
    /// wrong later (kubeadm's `[WARNING …]`).
    Warning,
    /// Pod routing cannot work as configured (kubeadm's `[ERROR …]`).
    Error,
}

impl Level {
    /// The level's name in output and in the metric's label.
    pub fn name(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The check (`ip-forward`, `rp-filter`, `tunnel-backend`, `mtu`,
    /// `tcp-congestion-control`, `conntrack`).
    pub check: &'static str,
    /// How much it matters.
    pub level: Level,
    /// What was found.
    pub found: String,
    /// Why it matters for pod routing.
    pub why: String,
    /// What to do, when something is to be done.
    pub fix: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "[ok]     ".to_owned(),
            Level::Warning => "[WARNING]".to_owned(),
            Level::Error => "[ERROR]  ".to_owned(),
        };
        write!(f, "{tag} {}: {} — {}", self.check, self.found, self.why)?;
        if let Some(fix) = &self.fix {
            write!(f, " Fix: {fix}")?;
        }
        Ok(())
    }
}

/// Whether this host's kernel has the ipip module: loaded, built in, or a
/// module file for the running release (what `tunnel.backend: auto`
/// tries first).
pub fn ipip_available() -> bool {
    Host::default().ipip() != IpipSupport::Missing
}

/// The files the checks read, under a root (`/` on a node).
#[derive(Clone, Debug)]
pub struct Host {
    root: PathBuf,
}

impl Default for Host {
    fn default() -> Self {
        Host::at("/")
    }
}

impl Host {
    /// The host whose `/proc` and `/sys` are under `root`.
    pub fn at(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    fn path(&self, absolute: &str) -> PathBuf {
        self.root.join(absolute.trim_start_matches('/'))
    }

    fn read(&self, absolute: &str) -> Option<String> {
        std::fs::read_to_string(self.path(absolute))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    fn number(&self, absolute: &str) -> Option<u64> {
        self.read(absolute)?.parse().ok()
    }

    fn exists(&self, absolute: &str) -> bool {
        self.path(absolute).exists()
    }

    /// The running kernel's release (`uname -r`).
    fn kernel_release(&self) -> Option<String> {
        self.read("/proc/sys/kernel/osrelease")
    }

    /// Whether the kernel can run the ipip module: loaded, built in, or a
    /// module file for this release.
    fn ipip(&self) -> IpipSupport {
        if self.exists("/sys/module/ipip") {
            return IpipSupport::Loaded;
        }
        let Some(release) = self.kernel_release() else {
            return IpipSupport::Missing;
        };
        let modules = format!("/lib/modules/{release}");
        let listed = |file: &str| {
            self.read(&format!("{modules}/{file}")).is_some_and(|text| {
                text.lines()
                    .any(|l| l.split(':').next().is_some_and(|m| m.contains("/ipip.ko")))
            })
        };
        if listed("modules.builtin") {
            IpipSupport::Loaded
        } else if listed("modules.dep") {
            IpipSupport::Loadable
        } else {
            IpipSupport::Missing
        }
    }

    /// The effective `rp_filter` of `device`: the larger of `all` and the
    /// device's own (the kernel uses the maximum).
    fn rp_filter(&self, device: &str) -> Option<u64> {
        let all = self.number("/proc/sys/net/ipv4/conf/all/rp_filter")?;
        let own = self
            .number(&format!("/proc/sys/net/ipv4/conf/{device}/rp_filter"))
            .unwrap_or(0);
        Some(all.max(own))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IpipSupport {
    Loaded,
    Loadable,
    Missing,
}

/// What the checks need to know of the node beyond the host's files.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// The underlay interface and its MTU, when known.
    pub underlay: Option<(String, u32)>,
    /// The tunnel backend asked for.
    pub backend: TunnelBackend,
    /// The tunnel device (`tunl0`).
    pub tunnel_device: String,
    /// The tunnel MTU configured (0: the underlay's − 20).
    pub tunnel_mtu: u32,
    /// Pod addresses this node can hand out (its blocks' sizes).
    pub pod_addresses: u64,
    /// Whether any pool uses IPIP.
    pub uses_ipip: bool,
}

impl Node {
    /// What `config` says of the node, with the underlay when it was
    /// found.
    pub fn from_config(config: &Config, underlay: Option<(String, u32)>) -> Node {
        let pod_addresses = config
            .blocks
            .iter()
            .map(|b| match b {
                ipnetwork::IpNetwork::V4(n) => 1u64 << (32 - u32::from(n.prefix())).min(63),
                // An IPv6 block's pods are bounded by IPv4's in a dual-stack
                // node; count none of its 2^64 addresses.
                ipnetwork::IpNetwork::V6(_) => 0,
            })
            .sum();
        Node {
            underlay,
            backend: config.tunnel.backend,
            tunnel_device: config.tunnel.device.clone(),
            tunnel_mtu: config.tunnel.mtu,
            pod_addresses,
            uses_ipip: config
                .pools
                .iter()
                .any(|p| p.pool().ipip_mode != crate::planner::IpipMode::Never),
        }
    }
}

/// IPIP's outer header (RFC 2003).
const IPIP_OVERHEAD: u32 = 20;
/// The smallest tunnel MTU that still carries an IPv6 packet (RFC 8200).
const MIN_TUNNEL_MTU: u32 = 1280;

/// Every check, in a fixed order.
pub fn checks(host: &Host, node: &Node) -> Vec<Finding> {
    vec![
        ip_forward(host),
        rp_filter(host, node),
        tunnel_backend(host, node),
        mtu(node),
        congestion_control(host),
        conntrack(host, node),
    ]
}

fn ip_forward(host: &Host) -> Finding {
    let why = "a node forwards every packet between its pods and the other nodes; with forwarding off, pod traffic is dropped".to_owned();
    match host.number("/proc/sys/net/ipv4/ip_forward") {
        Some(1) => Finding {
            check: "ip-forward",
            level: Level::Ok,
            found: "net.ipv4.ip_forward = 1".into(),
            why,
            fix: None,
        },
        Some(v) => Finding {
            check: "ip-forward",
            level: Level::Warning,
            found: format!("net.ipv4.ip_forward = {v}"),
            why: why + "; `route-agent run` turns it on at start, as Calico and kube-router do",
            fix: Some(
                "none needed under route-agent run; by hand: sysctl -w net.ipv4.ip_forward=1"
                    .into(),
            ),
        },
        None => Finding {
            check: "ip-forward",
            level: Level::Error,
            found: "/proc/sys/net/ipv4/ip_forward cannot be read".into(),
            why,
            fix: Some("run on Linux with /proc mounted".into()),
        },
    }
}

fn rp_filter(host: &Host, node: &Node) -> Finding {
    let mut strict = Vec::new();
    let mut seen = Vec::new();
    let mut devices: Vec<&str> = Vec::new();
    if let Some((dev, _)) = &node.underlay {
        devices.push(dev);
    }
    if node.uses_ipip {
        devices.push(&node.tunnel_device);
    }
    if devices.is_empty() {
        devices.push("all");
    }
    for dev in devices {
        match host.rp_filter(dev) {
            Some(v) => {
                seen.push(format!("{dev} {v}"));
                if v == 1 {
                    strict.push(dev.to_owned());
                }
            }
            None => seen.push(format!("{dev} unknown")),
        }
    }
    let found = format!("rp_filter (effective): {}", seen.join(", "));
    if strict.is_empty() {
        Finding {
            check: "rp-filter",
            level: Level::Ok,
            found,
            why: "loose (2) or off (0) reverse-path filtering lets pod traffic in on the device it arrives on".into(),
            fix: None,
        }
    } else {
        Finding {
            check: "rp-filter",
            level: Level::Warning,
            found,
            why: format!(
                "strict reverse-path filtering on {} drops packets whose source is routed out another device: a pod's reply that comes in directly while its block is routed through the tunnel (or the other way round), and the userspace tunnel's GRO path",
                strict.join(", ")
            ),
            fix: Some("sysctl -w net.ipv4.conf.all.rp_filter=2 and the same for the device (loose mode, as Calico sets it)".into()),
        }
    }
}

fn tunnel_backend(host: &Host, node: &Node) -> Finding {
    let ipip = host.ipip();
    let tun = host.exists("/dev/net/tun");
    let btf = host.exists("/sys/kernel/btf/vmlinux");
    // The bpffs mount point exists when the kernel has the bpf() syscall.
    let bpf = host.exists("/sys/fs/bpf");
    let release = host.kernel_release().unwrap_or_else(|| "unknown".into());
    let found = format!(
        "kernel {release}: ipip module {}; TUN {}; BTF {}; BPF {}",
        match ipip {
            IpipSupport::Loaded => "present",
            IpipSupport::Loadable => "loadable",
            IpipSupport::Missing => "absent",
        },
        if tun {
            "present (/dev/net/tun)"
        } else {
            "absent"
        },
        if btf { "present" } else { "absent" },
        if bpf {
            "present (/sys/fs/bpf)"
        } else {
            "absent"
        },
    );
    let kernel_ok = ipip != IpipSupport::Missing;
    let (level, why, fix) = match (node.backend, kernel_ok, tun) {
        _ if !node.uses_ipip => (
            Level::Ok,
            "no pool uses IPIP: no tunnel backend is needed".to_owned(),
            None,
        ),
        (TunnelBackend::Kernel | TunnelBackend::Auto, true, _) => (
            Level::Ok,
            "the kernel backend (tunl0 of the ipip module) runs here: tunnel routes are forwarded by the kernel".to_owned(),
            None,
        ),
        (TunnelBackend::Kernel, false, _) => (
            Level::Error,
            "tunnel.backend is kernel but this kernel has no ipip module: tunnel routes cannot forward".to_owned(),
            Some("set tunnel.backend: auto (or bpf, or userspace), or boot a kernel with CONFIG_NET_IPIP".to_owned()),
        ),
        (TunnelBackend::Bpf, _, _) | (TunnelBackend::Auto, false, _) if bpf => (
            Level::Ok,
            "the bpf backend runs here (an encap bpf xmit program on tunnel routes, a tc ingress program on the underlay): IPIP at the kernel's speed without the ipip module; a kernel that refuses the programs fails the start (auto: falls back to userspace)".to_owned(),
            None,
        ),
        (TunnelBackend::Bpf, _, _) => (
            Level::Error,
            "tunnel.backend is bpf but this kernel has no BPF (no /sys/fs/bpf): the programs cannot load".to_owned(),
            Some("set tunnel.backend: auto, or boot a kernel with CONFIG_BPF_SYSCALL and CONFIG_LWTUNNEL_BPF".to_owned()),
        ),
        (TunnelBackend::Auto | TunnelBackend::Userspace, false, true)
        | (TunnelBackend::Userspace, true, true) => (
            Level::Warning,
            "the userspace backend runs (TUN device and a raw socket): it works everywhere but forwards at a fraction of the kernel's speed".to_owned(),
            Some("for kernel speed, a kernel with the ipip module (modprobe ipip) and tunnel.backend: auto".to_owned()),
        ),
        (_, _, false) => (
            Level::Error,
            "no backend can run: the kernel has no ipip module and there is no /dev/net/tun for the userspace backend".to_owned(),
            Some("modprobe ipip, or modprobe tun (and give the agent /dev/net/tun)".to_owned()),
        ),
    };
    Finding {
        check: "tunnel-backend",
        level,
        found,
        why,
        fix,
    }
}

fn mtu(node: &Node) -> Finding {
    let Some((dev, underlay)) = &node.underlay else {
        return Finding {
            check: "mtu",
            level: Level::Ok,
            found: "underlay not known (no --config)".into(),
            why: "the tunnel MTU is the underlay's minus the 20-byte IPIP header".into(),
            fix: None,
        };
    };
    let tunnel = if node.tunnel_mtu == 0 {
        underlay.saturating_sub(IPIP_OVERHEAD)
    } else {
        node.tunnel_mtu
    };
    let found = format!("{dev} MTU {underlay}, tunnel routes MTU {tunnel}");
    if !node.uses_ipip {
        return Finding {
            check: "mtu",
            level: Level::Ok,
            found,
            why: "no pool uses IPIP: pods use the underlay MTU".into(),
            fix: None,
        };
    }
    if tunnel + IPIP_OVERHEAD > *underlay {
        Finding {
            check: "mtu",
            level: Level::Error,
            found,
            why: format!(
                "a full-size tunnel packet plus the 20-byte outer header exceeds the underlay's {underlay}: every large pod packet is fragmented or dropped"
            ),
            fix: Some(format!(
                "tunnel.mtu: {} (or 0 for the underlay's minus 20)",
                underlay.saturating_sub(IPIP_OVERHEAD)
            )),
        }
    } else if tunnel < MIN_TUNNEL_MTU {
        Finding {
            check: "mtu",
            level: Level::Warning,
            found,
            why: format!(
                "below {MIN_TUNNEL_MTU}, the smallest MTU IPv6 allows: pods' IPv6 through the tunnel fails"
            ),
            fix: Some("raise the underlay MTU".into()),
        }
    } else {
        Finding {
            check: "mtu",
            level: Level::Ok,
            found,
            why: "the 20-byte IPIP header fits: pods are given the tunnel MTU (the CNI config writes it)".into(),
            fix: None,
        }
    }
}

fn congestion_control(host: &Host) -> Finding {
    let current = host
        .read("/proc/sys/net/ipv4/tcp_congestion_control")
        .unwrap_or_else(|| "unknown".into());
    let available = host
        .read("/proc/sys/net/ipv4/tcp_available_congestion_control")
        .unwrap_or_default();
    let found = format!(
        "net.ipv4.tcp_congestion_control = {current} (available: {})",
        if available.is_empty() {
            "unknown"
        } else {
            &available
        }
    );
    if current == "bbr" {
        Finding {
            check: "tcp-congestion-control",
            level: Level::Ok,
            found,
            why: "BBR keeps bulk pod traffic through a tunnel near the path's rate".into(),
            fix: None,
        }
    } else {
        Finding {
            check: "tcp-congestion-control",
            level: Level::Warning,
            found,
            why: "for bulk traffic between pods across nodes the advice is BBR: loss-based control backs off on the queueing a tunnel adds (bench/ipip.sh measures both)".into(),
            fix: Some("modprobe tcp_bbr; sysctl -w net.ipv4.tcp_congestion_control=bbr net.core.default_qdisc=fq".into()),
        }
    }
}

/// Connections a pod is given room for in the conntrack table when sizing
/// it against the node's pods.
const CONNTRACK_PER_POD: u64 = 1024;
/// kube-proxy's floor for `nf_conntrack_max` (`--conntrack-min`).
const CONNTRACK_MIN: u64 = 131_072;

fn conntrack(host: &Host, node: &Node) -> Finding {
    let Some(max) = host.number("/proc/sys/net/netfilter/nf_conntrack_max") else {
        return Finding {
            check: "conntrack",
            level: Level::Ok,
            found: "nf_conntrack not loaded".into(),
            why: "without connection tracking there is no table to fill".into(),
            fix: None,
        };
    };
    let want = CONNTRACK_MIN.max(node.pod_addresses.saturating_mul(CONNTRACK_PER_POD));
    let found = format!(
        "nf_conntrack_max = {max} for up to {} pod addresses",
        node.pod_addresses
    );
    if max >= want {
        Finding {
            check: "conntrack",
            level: Level::Ok,
            found,
            why: format!(
                "room for {CONNTRACK_PER_POD} connections per pod (and kube-proxy's floor of {CONNTRACK_MIN})"
            ),
            fix: None,
        }
    } else {
        Finding {
            check: "conntrack",
            level: Level::Warning,
            found,
            why: format!(
                "a full table drops new connections (\"nf_conntrack: table full\"); {want} gives every pod {CONNTRACK_PER_POD} and meets kube-proxy's floor"
            ),
            fix: Some(format!("sysctl -w net.netfilter.nf_conntrack_max={want}")),
        }
    }
}

/// Turns IPv4 forwarding on when it is off. `Ok(true)` when it was
/// changed, `Ok(false)` when it was on already.
pub fn enable_forwarding(host: &Host) -> std::io::Result<bool> {
    let path = host.path("/proc/sys/net/ipv4/ip_forward");
    if std::fs::read_to_string(&path)?.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(&path, "1\n")?;
    Ok(true)
}

/// At `route-agent run`'s start: turns forwarding on (logged), makes every
/// check and logs it (warnings and errors as warnings: the agent still
/// starts, as the operator may know better), and returns the findings.
pub fn at_start(config: &Config, underlay: (&str, u32)) -> Vec<Finding> {
    let host = Host::default();
    match enable_forwarding(&host) {
        Ok(true) => tracing::info!(
            "net.ipv4.ip_forward was 0: turned on (this node forwards its pods' traffic, as Calico and kube-router do)"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            errno = e.raw_os_error().unwrap_or(0),
            "cannot turn on net.ipv4.ip_forward ({e}): pod traffic is not forwarded until it is on — give the agent a writable /proc/sys (privileged, or the sysctl set on the node)"
        ),
    }
    let node = Node::from_config(config, Some((underlay.0.to_owned(), underlay.1)));
    let findings = checks(&host, &node);
    for f in &findings {
        match f.level {
            Level::Ok => tracing::info!(check = f.check, "preflight: {}", f.found),
            Level::Warning | Level::Error => tracing::warn!(
                check = f.check,
                level = f.level.name(),
                fix = f.fix.as_deref().unwrap_or(""),
                "preflight: {} — {}",
                f.found,
                f.why
            ),
        }
    }
    findings
}

/// Renders findings for `route-agent preflight`, one per line.
pub fn render(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("{f}\n")).collect()
}

#[cfg(test)]
mod tests;
