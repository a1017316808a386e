//! The userspace tunnel's command line, defined once for every front end:
//! `ipip-tunnel` (this crate's binary, which the namespace tests, the VM
//! test and `bench/ipip.sh` run) and `route-agent tunnel` (which the agent
//! starts), so both take the same flags with the same meaning and
//! defaults. Behind the `cli` feature (on by default) because it brings in
//! clap.
//!
//! ```
//! use clap::Parser;
//! use ipip::cli::TunnelArgs;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     tunnel: TunnelArgs,
//! }
//!
//! let cli = Cli::parse_from(["tunnel", "--local", "10.0.0.5", "--mtu", "9000"]);
//! let config = cli.tunnel.config();
//! assert_eq!((config.device.as_str(), config.mtu), ("tunl0", 9000));
//! assert!(config.offload && config.gro_egress);
//! ```

use std::net::Ipv4Addr;

use crate::kernel::{DEFAULT_DEVICE, TunnelConfig};
use crate::userspace::Config;

/// The userspace data plane's arguments: `[--device tunl0] --local NODE_IP
/// [--underlay-mtu N] [--allow IP]... [--no-offload] [--no-gro-egress]`.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct TunnelArgs {
    /// The TUN device, named like the kernel's fallback IPIP device.
    #[arg(long, default_value = DEFAULT_DEVICE)]
    pub device: String,
    /// This node's underlay address (the outer source).
    #[arg(long)]
    pub local: Ipv4Addr,
    /// The underlay MTU: the largest outer packet (`--mtu` is the same
    /// flag, as `ipip-tunnel` first spelled it).
    #[arg(long, visible_alias = "mtu", default_value_t = 1500)]
    pub underlay_mtu: u16,
    /// Accept IPIP from this address too (besides the gateways of tunnel
    /// routes); repeatable.
    #[arg(long)]
    pub allow: Vec<Ipv4Addr>,
    /// Open the TUN device without offloads (one plain packet per read
    /// and write: slower, for comparison and old kernels).
    #[arg(long)]
    pub no_offload: bool,
    /// Send every outer packet on the raw socket, not bulk TCP through
    /// the GRO device (`tunl0-gro`).
    #[arg(long)]
    pub no_gro_egress: bool,
}

impl TunnelArgs {
    /// The data plane's configuration.
    pub fn config(&self) -> Config {
        Config {
            device: self.device.clone(),
            local: self.local,
            mtu: self.underlay_mtu,
            extra_peers: self.allow.clone(),
            offload: !self.no_offload,
            gro_egress: !self.no_gro_egress,
        }
    }
}

/// `kernel-setup`'s arguments: `--address TUNNEL_IP [--device tunl0]
/// [--mtu N] [--underlay-mtu N]`, the kernel backend's
/// [`TunnelConfig`].
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct KernelSetupArgs {
    /// The tunnel address, assigned to the device as a /32.
    #[arg(long)]
    pub address: Ipv4Addr,
    /// The kernel's IPIP device.
    #[arg(long, default_value = DEFAULT_DEVICE)]
    pub device: String,
    /// The device MTU [default: underlay MTU − 20].
    #[arg(long)]
    pub mtu: Option<u32>,
    /// The underlay MTU [default: the smallest MTU of the other up,
    /// non-loopback interfaces].
    #[arg(long)]
    pub underlay_mtu: Option<u32>,
}

impl KernelSetupArgs {
    /// The kernel backend's configuration.
    pub fn config(&self) -> TunnelConfig {
        TunnelConfig {
            device: self.device.clone(),
            address: self.address,
            mtu: self.mtu,
            underlay_mtu: self.underlay_mtu,
        }
    }
}

/// `kernel-filter`'s arguments: `[--node IP]...` installs or updates the
/// IPIP filter ([`crate::filter`]) with exactly those node addresses;
/// `--show` prints it; `--remove` deletes it.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct KernelFilterArgs {
    /// A node address IPIP is accepted from; repeatable (none: IPIP is
    /// accepted from nobody).
    #[arg(long = "node")]
    pub nodes: Vec<Ipv4Addr>,
    /// Print the node addresses and the drop counter; change nothing.
    #[arg(long, conflicts_with_all = ["nodes", "remove"])]
    pub show: bool,
    /// Delete the filter (IPIP is accepted from anyone again).
    #[arg(long, conflicts_with = "nodes")]
    pub remove: bool,
}

/// A pod block and the node it lives on, `BLOCK=NODE` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRoute {
    /// The pod block.
    pub block: std::net::Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The node (outer destination).
    pub node: Ipv4Addr,
}

/// A `--route` value that is not `BLOCK=NODE`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not BLOCK=NODE, e.g. 10.244.2.0/26=10.91.1.2")]
pub struct BadBlockRoute(pub String);

impl std::str::FromStr for BlockRoute {
    type Err = BadBlockRoute;

    /// `10.244.2.0/26=10.91.1.2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadBlockRoute(s.to_owned());
        let (block, node) = s.split_once('=').ok_or_else(bad)?;
        let (addr, prefix) = block.split_once('/').ok_or_else(bad)?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(BlockRoute {
            block: addr.parse().map_err(|_| bad())?,
            prefix,
            node: node.parse().map_err(|_| bad())?,
        })
    }
}

/// `bpf-setup`'s arguments: the `bpf` backend's programs loaded (or
/// adopted), their maps written, the ingress program on the underlay and
/// a tunnel route per block; `--show` prints it, `--remove` takes it
/// all away.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct BpfSetupArgs {
    /// The underlay device: tunnel routes go out of it, IPIP comes in on it.
    #[arg(long)]
    pub underlay: String,
    /// This node's address (the outer source).
    #[arg(long, required_unless_present_any = ["show", "remove"])]
    pub local: Option<Ipv4Addr>,
    /// A pod block of another node, `BLOCK=NODE`; repeatable.
    #[arg(long = "route")]
    pub routes: Vec<BlockRoute>,
    /// A node IPIP is accepted from, besides the routes' nodes; repeatable.
    #[arg(long = "node")]
    pub nodes: Vec<Ipv4Addr>,
    /// Where programs and maps are pinned.
    #[arg(long, default_value = "/sys/fs/bpf/podroute")]
    pub pin_root: std::path::PathBuf,
    /// Print the programs, maps and counters; change nothing.
    #[arg(long, conflicts_with_all = ["routes", "nodes", "remove", "local"])]
    pub show: bool,
    /// Delete the tunnel routes, detach and unpin everything.
    #[arg(long, conflicts_with_all = ["routes", "nodes", "local"])]
    pub remove: bool,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Tunnel {
        #[command(flatten)]
        args: TunnelArgs,
    }

    #[derive(Debug, Parser)]
    struct Kernel {
        #[command(flatten)]
        args: KernelSetupArgs,
    }

    fn tunnel(args: &[&str]) -> Result<Config, clap::Error> {
        Tunnel::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .map(|t| t.args.config())
    }

    #[test]
    fn defaults_are_tunl0_1500_offloads_and_gro_egress_on() {
        assert_eq!(
            tunnel(&["--local", "10.0.0.5"]).unwrap(),
            Config {
                device: "tunl0".into(),
                local: Ipv4Addr::new(10, 0, 0, 5),
                mtu: 1500,
                extra_peers: vec![],
                offload: true,
                gro_egress: true,
            }
        );
    }

    #[test]
    fn mtu_and_underlay_mtu_are_one_flag_and_allow_repeats() {
        let a = tunnel(&["--local", "10.0.0.5", "--mtu", "9000"]).unwrap();
        let b = tunnel(&["--local", "10.0.0.5", "--underlay-mtu", "9000"]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.mtu, 9000);
        let c = tunnel(&[
            "--device",
            "tun9",
            "--local",
            "10.0.0.5",
            "--allow",
            "10.0.0.6",
            "--allow",
            "10.0.0.7",
            "--no-offload",
            "--no-gro-egress",
        ])
        .unwrap();
        assert_eq!(c.device, "tun9");
        assert_eq!(c.extra_peers.len(), 2);
        assert!(!c.offload && !c.gro_egress);
    }

    #[test]
    fn refuses_a_missing_local_and_an_mtu_that_is_not_a_number() {
        assert_eq!(
            tunnel(&[]).unwrap_err().kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            tunnel(&["--local", "10.0.0.5", "--mtu", "jumbo"])
                .unwrap_err()
                .kind(),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[derive(Debug, Parser)]
    struct Filter {
        #[command(flatten)]
        args: KernelFilterArgs,
    }

    #[test]
    fn kernel_filter_takes_repeated_nodes_and_show_or_remove_alone() {
        let f = Filter::try_parse_from(["f", "--node", "10.0.0.2", "--node", "10.0.0.3"]).unwrap();
        assert_eq!(f.args.nodes.len(), 2);
        assert!(!f.args.show && !f.args.remove);
        assert!(Filter::try_parse_from(["f", "--show"]).unwrap().args.show);
        assert!(
            Filter::try_parse_from(["f", "--remove"])
                .unwrap()
                .args
                .remove
        );
        assert!(Filter::try_parse_from(["f", "--show", "--node", "10.0.0.2"]).is_err());
        assert!(Filter::try_parse_from(["f", "--remove", "--node", "10.0.0.2"]).is_err());
    }

    #[test]
    fn kernel_setup_needs_an_address_and_derives_the_rest() {
        let k = Kernel::try_parse_from(["k", "--address", "10.244.1.1"]).unwrap();
        assert_eq!(
            k.args.config(),
            TunnelConfig::new(Ipv4Addr::new(10, 244, 1, 1))
        );
        let k = Kernel::try_parse_from([
            "k",
            "--address",
            "10.244.1.1",
            "--mtu",
            "1400",
            "--underlay-mtu",
            "1500",
        ])
        .unwrap();
        assert_eq!(
            (k.args.config().mtu, k.args.config().underlay_mtu),
            (Some(1400), Some(1500))
        );
        assert!(Kernel::try_parse_from(["k"]).is_err());
    }

    #[derive(Debug, Parser)]
    struct Bpf {
        #[command(flatten)]
        args: BpfSetupArgs,
    }

    #[test]
    fn bpf_setup_takes_block_routes_and_needs_a_local_address_to_change_anything() {
        let b = Bpf::try_parse_from([
            "b",
            "--underlay",
            "eth0",
            "--local",
            "10.90.1.2",
            "--route",
            "10.244.2.0/26=10.91.1.2",
        ])
        .unwrap();
        assert_eq!(
            b.args.routes,
            [BlockRoute {
                block: Ipv4Addr::new(10, 244, 2, 0),
                prefix: 26,
                node: Ipv4Addr::new(10, 91, 1, 2),
            }]
        );
        assert!(Bpf::try_parse_from(["b", "--underlay", "eth0"]).is_err());
        assert!(Bpf::try_parse_from(["b", "--underlay", "eth0", "--show"]).is_ok());
        for bad in [
            "10.244.2.0/26",
            "10.244.2.0/33=10.0.0.1",
            "10.244.2.0=10.0.0.1",
        ] {
            assert!(bad.parse::<BlockRoute>().is_err(), "{bad}");
        }
    }
}
