//! The JSON documents of `/api/v1/*`, shared by the server and by
//! `route-agent status` (which reads them back, hence `Deserialize`).
//!
//! They are our own types rather than serde on the speaker's and the
//! agent's: the API's field names and shapes stay stable when those
//! internals change, and every key is `snake_case`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::UNIX_EPOCH;

use bgp_core::session::{Negotiated, State};
use bgp_core::speaker::{BestRoute, PeerSnapshot};
use bgp_core::wire::{AsPath, Family, Origin, SegmentKind};
use ipnetwork::{IpNetwork, Ipv4Network};
use serde::{Deserialize, Serialize};

use super::ready::Readiness;
use crate::agent::ipip_filter::IpipFilterStatus;
use crate::planner::{DesiredRoute, RejectReason, RouteKind};
use crate::state::{FibStatus, NodeStatus, Status, TunnelInUse, TunnelStatus};

/// iBGP or eBGP.
///
/// Whether an iBGP peer is part of the node-to-node mesh or a global peer
/// is not known to the speaker, so this is all `status` can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerType {
    /// Same AS.
    Ibgp,
    /// Another AS.
    Ebgp,
}

impl std::fmt::Display for PeerType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PeerType::Ibgp => "iBGP",
            PeerType::Ebgp => "eBGP",
        })
    }
}

/// One peer (`/api/v1/peers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDoc {
    /// The neighbour's address.
    pub address: IpAddr,
    /// Its AS.
    pub asn: u32,
    /// iBGP or eBGP.
    #[serde(rename = "type")]
    pub peer_type: PeerType,
    /// Accepted from a route-reflector client range rather than
    /// configured; forgotten when its session ends.
    #[serde(default)]
    pub dynamic: bool,
    /// Session state as RFC 4271 names it (`Established`, `Active`, …).
    pub state: String,
    /// Seconds since the session came up; `null` when it is not up.
    pub uptime_seconds: Option<u64>,
    /// Prefixes the peer announced, before import policy, since it was
    /// configured (a running total across sessions).
    pub prefixes_received: u64,
    /// Prefixes from this peer now in the Loc-RIB.
    pub prefixes_accepted: u64,
    /// Prefixes we advertise to it.
    pub prefixes_advertised: u64,
    /// The last error, in words.
    pub last_error: Option<String>,
    /// The last NOTIFICATION sent or received (`NOTIFICATION 6/2 "text"`).
    pub last_notification: Option<String>,
    /// What the OPEN exchange agreed on; `null` while the session is not
    /// up.
    #[serde(default)]
    pub negotiated: Option<NegotiatedDoc>,
}

/// What a session's OPEN exchange agreed on (`route-agent neighbor ADDR`,
/// like `gobgp neighbor ADDR` and `birdc show protocols all`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NegotiatedDoc {
    /// The peer's BGP identifier.
    pub router_id: std::net::Ipv4Addr,
    /// The hold time in use, in seconds (0: none).
    pub hold_time: u16,
    /// The keepalive interval we send at, in seconds; `null` with no hold
    /// time.
    pub keepalive: Option<u64>,
    /// The address families both sides enabled (`ipv4-unicast`, …).
    pub families: Vec<String>,
    /// 4-octet AS numbers (RFC 6793).
    pub four_octet_as: bool,
    /// Messages up to 65,535 bytes (RFC 8654).
    pub extended_message: bool,
    /// Families whose routes we receive with ADD-PATH identifiers (RFC 7911).
    pub add_path_receive: Vec<String>,
    /// Families whose routes we send with ADD-PATH identifiers.
    pub add_path_send: Vec<String>,
    /// Route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// The peer's graceful-restart capability (RFC 4724), when it sent one.
    pub graceful_restart: Option<GracefulRestartDoc>,
}

/// A peer's graceful-restart capability.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulRestartDoc {
    /// How long its routes are kept when the session drops, in seconds.
    pub restart_time: u64,
    /// It had just restarted when it sent the OPEN (Restart State bit).
    pub restarting: bool,
    /// The families it preserves, each with whether forwarding was
    /// preserved across its restart.
    pub families: BTreeMap<String, bool>,
}

/// A family as GoBGP and BIRD name it in their output.
pub fn family_name(family: Family) -> &'static str {
    match family {
        Family::Ipv4Unicast => "ipv4-unicast",
        Family::Ipv6Unicast => "ipv6-unicast",
    }
}

impl NegotiatedDoc {
    /// The document for what a session negotiated.
    pub fn new(n: &Negotiated) -> NegotiatedDoc {
        let names = |fs: &mut dyn Iterator<Item = Family>| -> Vec<String> {
            fs.map(|f| family_name(f).to_owned()).collect()
        };
        let add_path = |ctx: &bgp_core::wire::DecodeContext| {
            names(
                &mut [Family::Ipv4Unicast, Family::Ipv6Unicast]
                    .into_iter()
                    .filter(|f| ctx.add_path.enabled(*f)),
            )
        };
        NegotiatedDoc {
            router_id: n.peer_id,
            hold_time: n.hold_time,
            keepalive: n.keepalive().map(|k| k.as_secs()),
            families: names(&mut n.families.iter().copied()),
            four_octet_as: n.rx.four_octet_as,
            extended_message: n.rx.extended_message,
            add_path_receive: add_path(&n.rx),
            add_path_send: add_path(&n.tx),
            route_refresh: n.route_refresh,
            enhanced_route_refresh: n.enhanced_route_refresh,
            graceful_restart: n
                .peer_graceful_restart
                .as_ref()
                .map(|gr| GracefulRestartDoc {
                    restart_time: gr.restart_time.as_secs(),
                    restarting: gr.restarting,
                    families: gr
                        .families
                        .iter()
                        .map(|(f, kept)| (family_name(*f).to_owned(), *kept))
                        .collect(),
                }),
        }
    }
}

impl PeerDoc {
    /// The document for one speaker snapshot.
    pub fn from_snapshot(p: &PeerSnapshot) -> PeerDoc {
        PeerDoc {
            address: p.address,
            asn: p.asn,
            peer_type: if p.ibgp {
                PeerType::Ibgp
            } else {
                PeerType::Ebgp
            },
            dynamic: p.dynamic,
            state: p.state.to_string(),
            uptime_seconds: p.uptime.map(|d| d.as_secs()),
            prefixes_received: p.received,
            prefixes_accepted: u64::try_from(p.accepted).unwrap_or(u64::MAX),
            prefixes_advertised: u64::try_from(p.advertised).unwrap_or(u64::MAX),
            last_error: p.last_error.clone(),
            last_notification: p.last_notification.as_ref().map(ToString::to_string),
            negotiated: p.negotiated.as_ref().map(NegotiatedDoc::new),
        }
    }

    /// True when the session is up.
    pub fn is_established(&self) -> bool {
        self.state == State::Established.to_string()
    }
}

/// One Loc-RIB best route (`/api/v1/routes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BestRouteDoc {
    /// The prefix.
    pub prefix: IpNetwork,
    /// The next hop to forward to.
    pub next_hop: IpAddr,
    /// The peer it was learned from; `null` for our own routes.
    pub peer: Option<IpAddr>,
    /// AS_PATH as text: sequences space-separated, `{…}` an AS_SET,
    /// `(…)` a confederation sequence, `[…]` a confederation set.
    pub as_path: String,
    /// LOCAL_PREF, when present.
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC, when present.
    pub med: Option<u32>,
    /// ORIGIN: `igp`, `egp` or `incomplete`.
    pub origin: String,
    /// Kept across the peer's restart and not yet refreshed (RFC 4724).
    pub stale: bool,
}

impl BestRouteDoc {
    /// The document for one best route.
    pub fn from_route(r: &BestRoute) -> BestRouteDoc {
        BestRouteDoc {
            prefix: r.prefix,
            next_hop: r.next_hop,
            peer: r.peer,
            as_path: as_path_text(&r.attrs.as_path),
            local_pref: r.attrs.local_pref,
            med: r.attrs.med,
            origin: origin_text(r.attrs.origin).to_owned(),
            stale: r.stale,
        }
    }
}

/// AS_PATH the way `show ip bgp` prints it.
pub fn as_path_text(path: &AsPath) -> String {
    let mut parts = Vec::with_capacity(path.segments.len());
    for seg in &path.segments {
        let asns: Vec<String> = seg.asns.iter().map(u32::to_string).collect();
        let asns = asns.join(" ");
        parts.push(match seg.kind {
            SegmentKind::Sequence => asns,
            SegmentKind::Set => format!("{{{asns}}}"),
            SegmentKind::ConfedSequence => format!("({asns})"),
            SegmentKind::ConfedSet => format!("[{asns}]"),
        });
    }
    parts.join(" ")
}

fn origin_text(origin: Origin) -> &'static str {
    match origin {
        Origin::Igp => "igp",
        Origin::Egp => "egp",
        Origin::Incomplete => "incomplete",
    }
}

/// This node (`node` in `/api/v1/fib` and `/api/v1/status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDoc {
    /// The node name.
    pub name: Option<String>,
    /// The node address with its prefix length.
    pub address: Option<Ipv4Network>,
    /// The interface holding it.
    pub underlay: String,
    /// That interface's MTU.
    pub underlay_mtu: u32,
}

impl From<&NodeStatus> for NodeDoc {
    fn from(n: &NodeStatus) -> NodeDoc {
        NodeDoc {
            name: n.name.clone(),
            address: n.address,
            underlay: n.underlay.clone(),
            underlay_mtu: n.underlay_mtu,
        }
    }
}

/// The IPIP tunnel (`tunnel` in `/api/v1/fib` and `/api/v1/status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelDoc {
    /// `none`, `kernel` or `userspace`.
    pub backend: String,
    /// The device (`tunl0`).
    pub device: String,
    /// Why the configured backend is not the one in use, or why setup
    /// failed.
    pub note: Option<String>,
    /// Set-ups that failed and userspace tunnel processes that exited
    /// since the agent started.
    #[serde(default)]
    pub failures: u64,
}

/// The label of a tunnel backend (JSON and the metrics' `backend` label).
pub fn backend_name(backend: TunnelInUse) -> &'static str {
    match backend {
        TunnelInUse::None => "none",
        TunnelInUse::Kernel => "kernel",
        TunnelInUse::Userspace => "userspace",
        TunnelInUse::Bpf => "bpf",
    }
}

impl From<&TunnelStatus> for TunnelDoc {
    fn from(t: &TunnelStatus) -> TunnelDoc {
        TunnelDoc {
            backend: backend_name(t.backend).to_owned(),
            device: t.device.clone(),
            note: t.note.clone(),
            failures: t.failures,
        }
    }
}

/// The kind of a kernel route, as the metrics' `kind` label and JSON name
/// it.
pub fn route_kind_name(kind: &RouteKind) -> &'static str {
    match kind {
        RouteKind::Blackhole => "blackhole",
        RouteKind::Direct { .. } => "direct",
        RouteKind::Tunnel { .. } | RouteKind::BpfTunnel { .. } => "tunnel",
        RouteKind::Underlay { .. } => "underlay",
    }
}

/// Every route kind, in the order status output lists them.
pub const ROUTE_KINDS: [&str; 4] = ["blackhole", "direct", "tunnel", "underlay"];

/// One kernel route of ours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRouteDoc {
    /// The destination.
    pub dst: IpNetwork,
    /// `blackhole`, `direct`, `tunnel` or `underlay`.
    pub kind: String,
    /// The next hop (none for a blackhole).
    pub via: Option<IpAddr>,
    /// The device (none for a blackhole).
    pub dev: Option<String>,
    /// The route MTU (tunnel routes).
    pub mtu: Option<u32>,
    /// The whole route in `ip route` syntax.
    pub route: String,
}

impl From<&DesiredRoute> for KernelRouteDoc {
    fn from(r: &DesiredRoute) -> KernelRouteDoc {
        let (via, dev, mtu) = match &r.kind {
            RouteKind::Blackhole => (None, None, None),
            RouteKind::Direct { via, dev }
            | RouteKind::Underlay { via, dev }
            | RouteKind::BpfTunnel { via, dev } => (Some(*via), Some(dev.clone()), None),
            RouteKind::Tunnel { via, dev, mtu } => (Some(*via), Some(dev.clone()), Some(*mtu)),
        };
        KernelRouteDoc {
            dst: r.dst,
            kind: route_kind_name(&r.kind).to_owned(),
            via,
            dev,
            mtu,
            route: r.to_string(),
        }
    }
}

/// The label of a reject reason (JSON keys and the metrics' `reason`
/// label); the same words as the agent's state serializes.
pub fn reject_reason_name(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::OverlapsLocalBlock => "overlaps-local-block",
        RejectReason::DefaultRoute => "default-route",
        RejectReason::OutsidePools => "outside-pools",
        RejectReason::NextHopIsThisNode => "next-hop-is-this-node",
        RejectReason::NextHopFamily => "next-hop-family",
        RejectReason::NoUnderlayRoute => "no-underlay-route",
    }
}

/// Every reject reason, so the metrics show zeros too.
pub const REJECT_REASONS: [RejectReason; 6] = [
    RejectReason::OverlapsLocalBlock,
    RejectReason::DefaultRoute,
    RejectReason::OutsidePools,
    RejectReason::NextHopIsThisNode,
    RejectReason::NextHopFamily,
    RejectReason::NoUnderlayRoute,
];

/// The kernel side (`/api/v1/fib` without node and tunnel).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibDoc {
    /// True once the first plan was applied.
    pub started: bool,
    /// True when the newest plan is applied with no route failing.
    pub in_sync: bool,
    /// Whether gateway routes go through kernel nexthop objects.
    #[serde(default)]
    pub nexthop_objects: bool,
    /// Installed routes by kind (every kind present).
    pub installed_by_kind: BTreeMap<String, u64>,
    /// The routes of our protocol as last applied.
    pub installed: Vec<KernelRouteDoc>,
    /// Learned routes refused by the planner, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Reconcile passes run.
    pub reconciles: u64,
    /// Netlink batches sent.
    pub netlink_batches: u64,
    /// Routes the kernel refused, in total.
    pub errors: u64,
    /// Routes added, in total.
    pub added: u64,
    /// Routes replaced, in total.
    pub replaced: u64,
    /// Routes deleted, in total.
    pub deleted: u64,
    /// The newest error.
    pub last_error: Option<String>,
    /// When the last reconcile finished, in seconds since the Unix epoch.
    pub last_reconcile_unix_seconds: Option<u64>,
}

impl FibDoc {
    /// The document for the agent's FIB status and its rejections.
    pub fn new(fib: &FibStatus, rejected: &BTreeMap<RejectReason, u64>) -> FibDoc {
        let mut by_kind: BTreeMap<String, u64> =
            ROUTE_KINDS.iter().map(|k| ((*k).to_owned(), 0)).collect();
        for r in &fib.installed {
            *by_kind
                .entry(route_kind_name(&r.kind).to_owned())
                .or_default() += 1;
        }
        FibDoc {
            started: fib.started,
            in_sync: fib.in_sync,
            nexthop_objects: fib.nexthop_objects,
            installed_by_kind: by_kind,
            installed: fib.installed.iter().map(KernelRouteDoc::from).collect(),
            rejected: rejected
                .iter()
                .map(|(r, n)| (reject_reason_name(*r).to_owned(), *n))
                .collect(),
            reconciles: fib.reconciles,
            netlink_batches: fib.batches,
            errors: fib.errors,
            added: fib.added,
            replaced: fib.replaced,
            deleted: fib.deleted,
            last_error: fib.last_error.clone(),
            last_reconcile_unix_seconds: fib
                .last_reconcile
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        }
    }

    /// Learned routes refused, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// `/api/v1/fib`: the kernel side with the node and the tunnel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibWithNodeDoc {
    /// This node.
    pub node: NodeDoc,
    /// The tunnel.
    pub tunnel: TunnelDoc,
    /// The kernel routes and counters.
    #[serde(flatten)]
    pub fib: FibDoc,
}

impl FibWithNodeDoc {
    /// The document for a status snapshot.
    pub fn new(status: &Status) -> FibWithNodeDoc {
        FibWithNodeDoc {
            node: NodeDoc::from(&status.node),
            tunnel: TunnelDoc::from(&status.tunnel),
            fib: FibDoc::new(&status.fib, &status.rejected),
        }
    }
}

/// `/api/v1/status`: everything `route-agent status` shows, in one
/// request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDoc {
    /// The agent's version.
    pub version: String,
    /// This node.
    pub node: NodeDoc,
    /// True when `/readyz` answers 200.
    pub ready: bool,
    /// What keeps it from being ready (the `/readyz` lines).
    pub unmet: Vec<String>,
    /// The configured peers.
    pub configured_peers: Vec<IpAddr>,
    /// The speaker's peers.
    pub peers: Vec<PeerDoc>,
    /// The kernel side.
    pub fib: FibDoc,
    /// The tunnel.
    pub tunnel: TunnelDoc,
    /// The kernel tunnel's IPIP filter, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_filter: Option<IpipFilterStatus>,
    /// The bpf tunnel programs, with the bpf backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_tunnel: Option<crate::agent::bpf::BpfTunnelStatus>,
}

impl StatusDoc {
    /// The document for a status snapshot, the speaker's peers and the
    /// readiness verdict on them.
    pub fn new(status: &Status, peers: &[PeerSnapshot], readiness: &Readiness) -> StatusDoc {
        let unmet = readiness.unmet();
        StatusDoc {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            node: NodeDoc::from(&status.node),
            ready: unmet.is_empty(),
            unmet,
            configured_peers: status.configured_peers.clone(),
            peers: {
                let mut docs: Vec<PeerDoc> = peers.iter().map(PeerDoc::from_snapshot).collect();
                docs.sort_by_key(|p| p.address);
                docs
            },
            fib: FibDoc::new(&status.fib, &status.rejected),
            tunnel: TunnelDoc::from(&status.tunnel),
            ipip_filter: status.ipip_filter.clone(),
            bpf_tunnel: status.bpf_tunnel.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_core::wire::Segment;

    #[test]
    fn as_path_text_marks_sets_and_confederations() {
        let path = AsPath {
            segments: vec![
                Segment {
                    kind: SegmentKind::ConfedSequence,
                    asns: vec![65001, 65002],
                },
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: vec![64512, 64513],
                },
                Segment {
                    kind: SegmentKind::Set,
                    asns: vec![1, 2],
                },
            ],
        };
        assert_eq!(as_path_text(&path), "(65001 65002) 64512 64513 {1 2}");
        assert_eq!(as_path_text(&AsPath::default()), "");
    }

    #[test]
    fn reject_reason_names_match_the_state_serialization() {
        for r in REJECT_REASONS {
            let json = serde_json::to_value(r).unwrap();
            assert_eq!(json.as_str(), Some(reject_reason_name(r)));
        }
    }
}
