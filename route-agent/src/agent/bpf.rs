//! The `bpf` tunnel backend's programs ([`ipip::bpf`]) as the agent keeps
//! them: the set-up ([`super::tunnel`]) opens them (adopting the pinned
//! ones of an earlier run) and puts them in a [`SharedBpf`]; then
//!
//! - the FIB thread writes each plan's tunnel blocks into the block map
//!   before the routes that need them and deletes the blocks no longer
//!   planned after their routes are gone ([`tunnel_blocks`]), and gives
//!   the FIB the encapsulation program tunnel routes run;
//! - the IPIP filter's thread ([`super::ipip_filter`]) keeps the
//!   allow-list of node addresses current (the same set the nftables
//!   filter holds for the kernel backend) and reads the counters into the
//!   status ([`BpfTunnelStatus`]) every refresh;
//! - a shutdown with `persist-routes: false` removes the routes, then
//!   detaches and unpins the programs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use ipip::bpf::{BpfTunnel, GsoMode};
use ipnetwork::{IpNetwork, Ipv4Network};
use serde::{Deserialize, Serialize};

use crate::planner::{DesiredRoute, RouteKind};

/// The open programs, shared by the threads that change them; `None`
/// until the `bpf` backend is set up (and after it is removed).
pub type SharedBpf = Arc<Mutex<Option<BpfTunnel>>>;

/// Runs `f` on the programs, if they are open (a poisoned lock is taken
/// over: the programs' state lives in the kernel, not in the guard).
pub fn with_bpf<T>(shared: &SharedBpf, f: impl FnOnce(&mut BpfTunnel) -> T) -> Option<T> {
    let mut guard = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.as_mut().map(f)
}

/// The blocks of `plan`'s `bpf` tunnel routes and the node each goes to:
/// what the block map must hold.
pub fn tunnel_blocks(plan: &[DesiredRoute]) -> BTreeMap<Ipv4Network, Ipv4Addr> {
    plan.iter()
        .filter_map(|r| match (r.dst, &r.kind) {
            (
                IpNetwork::V4(block),
                RouteKind::BpfTunnel {
                    via: IpAddr::V4(node),
                    ..
                },
            ) => Some((block, *node)),
            _ => None,
        })
        .collect()
}

/// The programs as the status and `/metrics` show them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BpfTunnelStatus {
    /// The encapsulation program's id (`bpftool prog show id N`).
    pub encap_program: u32,
    /// The ingress program's id.
    pub decap_program: u32,
    /// Where they are pinned.
    pub pin_dir: String,
    /// How GSO packets get their outer header on this kernel.
    pub gso: String,
    /// Blocks in the block map.
    pub blocks: usize,
    /// Node addresses IPIP is accepted from.
    pub nodes: usize,
    /// Packet counters by direction and result (`egress`/`ingress`,
    /// `encapsulated`, `decapsulated`, `not_node`, …).
    pub packets: Vec<(String, String, u64)>,
    /// Why the last change or read failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BpfTunnelStatus {
    /// The status of `tunnel` now.
    pub fn of(tunnel: &BpfTunnel) -> BpfTunnelStatus {
        let mut status = BpfTunnelStatus {
            encap_program: tunnel.encap_program().id,
            decap_program: tunnel.decap_program_id(),
            pin_dir: tunnel.pin_dir().display().to_string(),
            blocks: tunnel.blocks().len(),
            nodes: tunnel.nodes().len(),
            ..BpfTunnelStatus::default()
        };
        match tunnel.settings() {
            Ok(settings) => {
                status.gso = settings
                    .map_or(GsoMode::IpThenIpip, |s| s.gso_mode)
                    .describe()
                    .to_owned();
            }
            Err(e) => status.error = Some(e.to_string()),
        }
        match tunnel.counters() {
            Ok(c) => {
                status.packets = c
                    .labelled()
                    .iter()
                    .map(|(d, r, n)| ((*d).to_owned(), (*r).to_owned(), *n))
                    .collect();
            }
            Err(e) => status.error = Some(e.to_string()),
        }
        status
    }

    /// The packets counted with `result` in `direction`.
    pub fn packets(&self, direction: &str, result: &str) -> u64 {
        self.packets
            .iter()
            .find(|(d, r, _)| d == direction && r == result)
            .map_or(0, |(_, _, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ipv4_bpf_tunnel_routes_give_blocks() {
        let route = |dst: &str, kind| DesiredRoute {
            dst: dst.parse().unwrap(),
            kind,
        };
        let via: IpAddr = "10.91.1.2".parse().unwrap();
        let plan = [
            route(
                "10.244.2.0/26",
                RouteKind::BpfTunnel {
                    via,
                    dev: "eth0".into(),
                },
            ),
            route(
                "10.244.3.0/26",
                RouteKind::Tunnel {
                    via,
                    dev: "tunl0".into(),
                    mtu: 1480,
                },
            ),
            route(
                "10.244.4.0/26",
                RouteKind::Direct {
                    via,
                    dev: "eth0".into(),
                },
            ),
            route("10.244.1.0/26", RouteKind::Blackhole),
        ];
        assert_eq!(
            tunnel_blocks(&plan),
            BTreeMap::from([(
                "10.244.2.0/26".parse().unwrap(),
                Ipv4Addr::new(10, 91, 1, 2)
            )])
        );
    }
}
