//! The IPIP tunnel the agent's tunnel routes go through.
//!
//! Backends (`tunnel.backend`):
//!
//! - `kernel`: the kernel's fallback device `tunl0` (ipip module), made to
//!   match the config by [`ipip::kernel::ensure_tunnel`]: up, MTU = underlay
//!   MTU − 20 unless configured, the /32 tunnel address.
//! - `userspace`: our data plane ([`ipip::userspace`]) in a process of its
//!   own, `route-agent tunnel`, holding a TUN device of the same name. It
//!   learns its tunnel table from the kernel's routes through the device,
//!   so it needs nothing from the agent after start, and it is started in
//!   its own process group so that it keeps forwarding while the agent
//!   restarts or is killed. A running one is recognised by its device (a
//!   TUN device vanishes with the process that holds it) and reused,
//!   unless it was started with another node address than ours (the node
//!   moved: it can neither send from nor receive at that address any
//!   more), which is stopped and replaced (`tunnel/holder.rs`). One
//!   the agent starts is watched: an exit before its device appears fails
//!   the set-up at once with its exit status ([`TunnelError::ExitedAtStart`];
//!   a refused command line is [permanent](TunnelError::is_permanent)),
//!   a later exit is reported as a [`TunnelExit`]; the control step
//!   restarts it with a backoff.
//! - `bpf`: the eBPF programs of [`ipip::bpf`] (an `encap bpf xmit`
//!   program on tunnel routes, a tc ingress program on the underlay),
//!   opened by `bpf` here: the ones an earlier run pinned are adopted, not
//!   reloaded, so a restart loses no packet. They go into the agent's
//!   [`SharedBpf`] for the FIB and filter threads.
//! - `auto` (default): `kernel`; on a kernel without ipip support `bpf`;
//!   when the kernel refuses the programs too, `userspace` (each fallback
//!   with a warning, its reason in the status).
//!
//! The tunnel is set up only when an IPv4 pool uses IPIP (Calico creates
//! tunl0 only then).

mod holder;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipip::kernel::{
    Handle, InfoKind, KernelError, TunnelConfig, configure_device, ensure_tunnel, link_kind,
};

use super::bpf::SharedBpf;
use crate::config::{Config, TunnelBackend};
use crate::planner::IpipMode;
use crate::state::TunnelInUse;

/// How long a freshly started userspace tunnel may take to create its
/// device.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the tunnel needs, resolved from the config and the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelSetup {
    /// The configured backend.
    pub backend: TunnelBackend,
    /// The device name (`tunl0`).
    pub device: String,
    /// The tunnel's /32 address.
    pub address: Ipv4Addr,
    /// The device MTU (underlay MTU − 20 unless configured).
    pub mtu: u32,
    /// The underlay MTU (the largest outer packet).
    pub underlay_mtu: u32,
    /// The node address: the outer source.
    pub local: Ipv4Addr,
    /// Addresses IPIP is accepted from besides the gateways of tunnel
    /// routes (the mesh peers, so a peer's packets are taken before our
    /// route to it exists).
    pub allow: Vec<Ipv4Addr>,
    /// The userspace process's log format (`human` or `json`, as the
    /// agent's).
    pub log_format: String,
    /// Whether the userspace process sends bulk TCP through its GRO device.
    pub gro_egress: bool,
    /// The underlay device (the `bpf` backend's ingress hook).
    pub underlay: String,
    /// Where the `bpf` backend pins its programs and maps.
    pub bpf_pin_root: PathBuf,
}

/// Why the tunnel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The kernel backend failed (or the kernel has no ipip and the
    /// backend is `kernel`).
    #[error("kernel IPIP tunnel: {0}")]
    Kernel(#[from] KernelError),
    /// The userspace tunnel process could not be started.
    #[error("cannot start the userspace tunnel `{program} tunnel --device {device}`: {source}")]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// The device.
        device: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The set-up thread panicked (or was cancelled).
    #[error("tunnel setup panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
    /// It started but its device did not appear.
    #[error(
        "the userspace tunnel did not create {device} within {START_TIMEOUT:?} (see its log lines above)"
    )]
    NoDevice {
        /// The device.
        device: String,
    },
    /// The `bpf` backend's programs could not be set up.
    #[error("bpf tunnel: {0}")]
    Bpf(#[from] ipip::bpf::BpfError),
    /// The underlay device the `bpf` backend hooks into is not there.
    #[error("bpf tunnel: no underlay device {device}: {source}")]
    NoUnderlay {
        /// The device.
        device: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A userspace tunnel started on another node address did not stop
    /// (its device stayed after SIGTERM and SIGKILL).
    #[error(
        "the userspace tunnel holding {device} (pid {pid}) was started on another node address and did not stop — stop it, and the agent starts one on this address"
    )]
    StaleNotStopped {
        /// The device.
        device: String,
        /// The process.
        pid: u32,
    },
    /// The userspace tunnel process ended before its device appeared.
    #[error(
        "the userspace tunnel `{command}` exited ({status}) before creating {device} (its error is in the log above)"
    )]
    ExitedAtStart {
        /// The device.
        device: String,
        /// The command line it was started with.
        command: String,
        /// How it ended.
        status: std::process::ExitStatus,
    },
}

impl TunnelError {
    /// True when trying again cannot help: the userspace tunnel refused
    /// the command line the agent gave it (exit code [`USAGE_EXIT`]), so
    /// the same set-up fails the same way every time.
    pub fn is_permanent(&self) -> bool {
        matches!(self, TunnelError::ExitedAtStart { status, .. } if status.code() == Some(USAGE_EXIT))
    }
}

/// The exit code of `route-agent tunnel` when its arguments are refused
/// (clap's usage error).
pub const USAGE_EXIT: i32 = 2;

/// A userspace tunnel process the agent started has ended after it had
/// created its device.
#[derive(Debug)]
pub struct TunnelExit {
    /// The device it held (gone with it).
    pub device: String,
    /// Its process ID.
    pub pid: u32,
    /// How it ended.
    pub status: std::process::ExitStatus,
}

impl std::fmt::Display for TunnelExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the userspace tunnel holding {} (pid {}) exited ({})",
            self.device, self.pid, self.status
        )
    }
}

/// Where the exit of a userspace tunnel process the agent started is
/// reported (to the agent's loop, which restarts it).
pub type ExitSink = tokio::sync::mpsc::UnboundedSender<TunnelExit>;

impl TunnelSetup {
    /// The tunnel for `config` on a node with address `local` on device
    /// `underlay` of MTU `underlay_mtu`; `None` when no IPv4 pool uses
    /// IPIP.
    pub fn from_config(
        config: &Config,
        local: Ipv4Addr,
        underlay: &str,
        underlay_mtu: u32,
    ) -> Option<Self> {
        let uses_ipip = config
            .pools()
            .iter()
            .any(|p| p.cidr.is_ipv4() && p.ipip_mode != IpipMode::Never);
        if !uses_ipip {
            return None;
        }
        let address = config.tunnel.address.or_else(|| {
            // Calico gives tunl0 an address from the node's block; its IPAM
            // hands out the block's first address. Without a block, the
            // node address keeps the device addressed.
            config.blocks.iter().find_map(|b| match b {
                ipnetwork::IpNetwork::V4(b) => Some(b.network()),
                ipnetwork::IpNetwork::V6(_) => None,
            })
        });
        let mut allow: Vec<Ipv4Addr> = config
            .mesh
            .peers
            .iter()
            .filter_map(|p| match p {
                std::net::IpAddr::V4(a) if *a != local => Some(*a),
                _ => None,
            })
            .collect();
        allow.sort_unstable();
        Some(TunnelSetup {
            backend: config.tunnel.backend,
            device: config.tunnel.device.clone(),
            address: address.unwrap_or(local),
            mtu: config.tunnel.effective_mtu(underlay_mtu),
            underlay_mtu,
            local,
            allow,
            log_format: "human".to_owned(),
            gro_egress: config.tunnel.gro_egress,
            underlay: underlay.to_owned(),
            bpf_pin_root: config.tunnel.bpf_pin_root.clone(),
        })
    }

    fn kernel_config(&self) -> TunnelConfig {
        TunnelConfig {
            device: self.device.clone(),
            address: self.address,
            mtu: Some(self.mtu),
            underlay_mtu: Some(self.underlay_mtu),
        }
    }
}

/// Makes the tunnel exist as configured and says which backend runs. With
/// `auto`, a kernel without ipip falls back to the `bpf` backend, and one
/// that refuses its programs too to userspace, with a warning (also
/// returned, for the status). A userspace tunnel process started here
/// reports its exit to `exits`; `bpf` programs opened here go to `shared`.
pub fn ensure(
    setup: &TunnelSetup,
    exits: &ExitSink,
    shared: &SharedBpf,
) -> Result<(TunnelInUse, Option<String>), TunnelError> {
    match setup.backend {
        TunnelBackend::Kernel => {
            ensure_tunnel(&setup.kernel_config())?;
            Ok((TunnelInUse::Kernel, None))
        }
        TunnelBackend::Bpf => {
            let note = bpf(setup, shared)?;
            Ok((TunnelInUse::Bpf, note))
        }
        TunnelBackend::Userspace => {
            userspace(setup, exits)?;
            Ok((TunnelInUse::Userspace, None))
        }
        TunnelBackend::Auto => match ensure_tunnel(&setup.kernel_config()) {
            Ok(_) => Ok((TunnelInUse::Kernel, None)),
            // Our bpf programs from an earlier run (no tunl0 then) or a
            // kernel without ipip: the bpf backend, else userspace.
            Err(KernelError::NoIpipSupport { device, source }) => {
                // What failed, from the error's fields; its advice (load
                // the module or use another backend) is what we do next.
                let why = format!(
                    "this kernel has no IPIP support (creating {device} of type ipip failed: {source})"
                );
                match bpf(setup, shared) {
                    Ok(more) => {
                        let note = format!("{why}: using the bpf data plane (eBPF programs)");
                        tracing::warn!(device = %setup.device, "{note}");
                        let note = match more {
                            Some(more) => format!("{note}; {more}"),
                            None => note,
                        };
                        Ok((TunnelInUse::Bpf, Some(note)))
                    }
                    Err(e) => {
                        let note = format!(
                            "{why}, and the bpf programs cannot run ({e}): using the userspace data plane"
                        );
                        tracing::warn!(device = %setup.device, "{note}");
                        userspace(setup, exits)?;
                        Ok((TunnelInUse::Userspace, Some(note)))
                    }
                }
            }
            // Our userspace tunnel from an earlier run is still forwarding.
            Err(KernelError::NotIpip {
                kind: Some(InfoKind::Tun),
                ..
            }) => {
                userspace(setup, exits)?;
                Ok((TunnelInUse::Userspace, None))
            }
            Err(e) => Err(e.into()),
        },
    }
}

/// Opens the `bpf` backend's programs (adopting pinned ones), sets this
/// node's address as the outer source, puts the ingress program on the
/// underlay and hands them to `shared`. Returns a note for the status
/// when the pins live only as long as this process (a bpffs it mounted
/// itself in a mount namespace of its own).
fn bpf(setup: &TunnelSetup, shared: &SharedBpf) -> Result<Option<String>, TunnelError> {
    let config = ipip::bpf::Config {
        pin_root: setup.bpf_pin_root.clone(),
        local: setup.local,
    };
    let (mut tunnel, opened) = ipip::bpf::BpfTunnel::open(&config)?;
    let ifindex =
        ipip::sys::if_index(&setup.underlay).map_err(|source| TunnelError::NoUnderlay {
            device: setup.underlay.clone(),
            source,
        })?;
    let attached = tunnel.attach_ingress(ifindex)?;
    tracing::info!(
        encap = tunnel.encap_program().id,
        decap = tunnel.decap_program_id(),
        ?opened,
        ?attached,
        pins = %tunnel.pin_dir().display(),
        underlay = %setup.underlay,
        "bpf tunnel programs ready"
    );
    let note = tunnel.mounted().map(|m| {
        format!(
            "bpffs mounted by the agent at {}: the pins last as long as its mount namespace",
            m.display()
        )
    });
    if let Some(note) = &note {
        tracing::warn!("{note}");
    }
    *shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tunnel);
    Ok(note)
}

/// True when `device` exists as a TUN device.
fn tun_exists(nl: &mut Handle, device: &str) -> Result<bool, KernelError> {
    Ok(nl
        .link_get(device)?
        .is_some_and(|l| link_kind(&l) == Some(InfoKind::Tun)))
}

/// Stops the userspace tunnel holding `setup.device` when it was started
/// with another node address than `setup.local`, and waits for its device
/// to go (SIGTERM, then SIGKILL after [`START_TIMEOUT`]). True when it
/// was stopped: a new one is to be started.
fn replace_stale(nl: &mut Handle, setup: &TunnelSetup) -> Result<bool, TunnelError> {
    let Some(h) = holder::find(&setup.device) else {
        return Ok(false);
    };
    let Some(old) = h.local.filter(|l| *l != setup.local) else {
        return Ok(false);
    };
    tracing::warn!(
        device = %setup.device,
        pid = h.pid,
        %old,
        new = %setup.local,
        "the running userspace tunnel was started on another node address: replacing it"
    );
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        // ESRCH: it is gone already, which the device shows.
        let _ = crate::sys::send_signal(h.pid, signal);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !tun_exists(nl, &setup.device)? {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(TunnelError::StaleNotStopped {
        device: setup.device.clone(),
        pid: h.pid,
    })
}

/// Starts `route-agent tunnel` unless one runs already, then sets the
/// device's MTU and address as the kernel backend would. A process that
/// ends before its device appears is an error at once (with its exit
/// status), not after [`START_TIMEOUT`]; one that ends later is reported
/// to `exits`.
fn userspace(setup: &TunnelSetup, exits: &ExitSink) -> Result<(), TunnelError> {
    let mut nl = Handle::open()?;
    if tun_exists(&mut nl, &setup.device)? && !replace_stale(&mut nl, setup)? {
        tracing::info!(device = %setup.device, "userspace tunnel already running");
    } else {
        let mut child = spawn_userspace(setup)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let up = loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                return Err(TunnelError::ExitedAtStart {
                    device: setup.device.clone(),
                    command: format!("route-agent tunnel {}", userspace_args(setup).join(" ")),
                    status,
                });
            }
            match tun_exists(&mut nl, &setup.device) {
                Ok(true) => break Ok(()),
                Ok(false) if Instant::now() > deadline => {
                    break Err(TunnelError::NoDevice {
                        device: setup.device.clone(),
                    });
                }
                Ok(false) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => break Err(TunnelError::from(e)),
            }
        };
        // From here on it is watched either way: a process that did not
        // come up in time may still, and its exit is worth knowing.
        supervise(child, setup.device.clone(), exits.clone());
        up?;
    }
    let link = nl
        .link_get(&setup.device)?
        .ok_or_else(|| TunnelError::NoDevice {
            device: setup.device.clone(),
        })?;
    configure_device(
        &mut nl,
        &setup.device,
        link.header.index,
        setup.mtu,
        setup.address,
    )?;
    Ok(())
}

/// Every `route-agent tunnel` argument for `setup` ([`ipip::cli::TunnelArgs`]
/// and the log format).
fn userspace_args(setup: &TunnelSetup) -> Vec<String> {
    let mut args: Vec<String> = [
        "--device",
        &setup.device,
        "--local",
        &setup.local.to_string(),
        "--underlay-mtu",
        &userspace_underlay_mtu(setup.underlay_mtu).to_string(),
        "--log-format",
        &setup.log_format,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    args.extend(userspace_extra_args(setup));
    args
}

/// The underlay MTU the userspace tunnel is given: no IPv4 packet is
/// larger than 65,535 bytes, so an interface MTU above that (loopback's is
/// 65,536) means the same as 65,535, and the tunnel's argument is a `u16`.
fn userspace_underlay_mtu(mtu: u32) -> u16 {
    u16::try_from(mtu).unwrap_or(u16::MAX)
}

/// The `route-agent tunnel` arguments that depend on the configuration
/// beyond device, addresses, MTU and log format.
fn userspace_extra_args(setup: &TunnelSetup) -> Vec<String> {
    let mut args = Vec::new();
    for a in &setup.allow {
        args.extend(["--allow".to_owned(), a.to_string()]);
    }
    if !setup.gro_egress {
        args.push("--no-gro-egress".to_owned());
    }
    args
}

/// Starts `route-agent tunnel` for `setup`.
fn spawn_userspace(setup: &TunnelSetup) -> Result<std::process::Child, TunnelError> {
    use std::os::unix::process::CommandExt;
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("route-agent"));
    let mut command = std::process::Command::new(&program);
    command.arg("tunnel").args(userspace_args(setup));
    // Its own process group: a Ctrl-C or a signal to the agent's group
    // does not stop forwarding. Its log goes where the agent's goes.
    command
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let child = command.spawn().map_err(|source| TunnelError::Spawn {
        program: program.clone(),
        device: setup.device.clone(),
        source,
    })?;
    tracing::info!(device = %setup.device, pid = child.id(), "userspace tunnel started");
    Ok(child)
}

/// Reaps `child` when it exits and reports that to `exits` (the agent's
/// loop restarts it, with a backoff). A thread of its own: `wait` blocks,
/// and there is at most one such process at a time.
fn supervise(mut child: std::process::Child, device: String, exits: ExitSink) {
    let pid = child.id();
    let spawned = std::thread::Builder::new()
        .name("tunnel-wait".into())
        .spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exits.send(TunnelExit {
                    device,
                    pid,
                    status,
                });
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(pid, "cannot watch the userspace tunnel process: {e}");
    }
}

/// `route-agent tunnel`: runs the userspace data plane until SIGTERM or
/// SIGINT; SIGUSR1 prints the counters (also printed at exit).
pub async fn run_userspace(config: ipip::userspace::Config) -> Result<(), ipip::userspace::Error> {
    let mut dataplane = ipip::userspace::Dataplane::start(config.clone())?;
    tracing::info!(device = %config.device, local = %config.local, offload = config.offload, egress = %dataplane.egress(), "userspace tunnel forwarding");
    if let ipip::userspace::EgressPath::Raw(why) = dataplane.egress()
        && config.offload
        && config.gro_egress
    {
        tracing::warn!(reason = %why, "bulk TCP leaves segment by segment on the raw socket");
    }
    dataplane
        .run_until_signal(|counters| eprintln!("{counters}"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(gro_egress: bool) -> TunnelSetup {
        TunnelSetup {
            backend: TunnelBackend::Userspace,
            device: "tunl0".into(),
            address: Ipv4Addr::new(10, 244, 1, 1),
            mtu: 1480,
            underlay_mtu: 1500,
            local: Ipv4Addr::new(10, 0, 0, 1),
            allow: vec![Ipv4Addr::new(10, 0, 0, 2)],
            log_format: "human".into(),
            gro_egress,
            underlay: "eth0".into(),
            bpf_pin_root: PathBuf::from("/sys/fs/bpf/podroute"),
        }
    }

    #[test]
    fn the_userspace_tunnel_gets_no_gro_egress_only_when_configured_off() {
        assert_eq!(userspace_extra_args(&setup(true)), ["--allow", "10.0.0.2"]);
        assert_eq!(
            userspace_extra_args(&setup(false)),
            ["--allow", "10.0.0.2", "--no-gro-egress"]
        );
    }

    /// `route-agent tunnel` as `main.rs` defines it: the shared
    /// [`ipip::cli::TunnelArgs`] and the log format.
    #[derive(clap::Parser)]
    struct TunnelCommand {
        #[command(flatten)]
        args: ipip::cli::TunnelArgs,
        #[arg(long)]
        log_format: String,
    }

    #[test]
    fn the_command_line_the_agent_starts_parses_as_the_shared_tunnel_arguments() {
        use clap::Parser;
        let setup = setup(false);
        let argv = std::iter::once("tunnel".to_owned()).chain(userspace_args(&setup));
        let parsed = TunnelCommand::try_parse_from(argv).unwrap();
        assert_eq!(parsed.log_format, "human");
        assert_eq!(
            parsed.args.config(),
            ipip::userspace::Config {
                device: "tunl0".into(),
                local: setup.local,
                mtu: 1500,
                extra_peers: setup.allow.clone(),
                offload: true,
                gro_egress: false,
            }
        );
    }

    #[test]
    fn a_loopback_underlay_of_mtu_65536_gives_the_tunnel_a_command_line_it_accepts() {
        use clap::Parser;
        // `lo` has MTU 65,536: the tunnel's argument parser refused it,
        // the process exited at start and the agent ran on without it.
        let setup = TunnelSetup {
            underlay_mtu: 65_536,
            ..setup(true)
        };
        let argv = std::iter::once("tunnel".to_owned()).chain(userspace_args(&setup));
        let parsed = TunnelCommand::try_parse_from(argv).unwrap();
        assert_eq!(parsed.args.config().mtu, 65_535);
    }

    #[test]
    fn only_a_refused_command_line_is_a_permanent_failure() {
        use std::os::unix::process::ExitStatusExt;
        let exited = |raw| TunnelError::ExitedAtStart {
            device: "tunl0".into(),
            command: "route-agent tunnel".into(),
            status: std::process::ExitStatus::from_raw(raw),
        };
        assert!(exited(USAGE_EXIT << 8).is_permanent());
        assert!(!exited(1 << 8).is_permanent(), "a run-time failure");
        assert!(!exited(libc::SIGKILL).is_permanent(), "killed");
        let no_device = TunnelError::NoDevice {
            device: "tunl0".into(),
        };
        assert!(!no_device.is_permanent());
    }
}
