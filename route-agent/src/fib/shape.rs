//! Planned routes → the kernel's terms: a [`RouteKind`] becomes the
//! [`RouteShape`] the netlink crate writes and reads (devices by index).
//! The bytes are `netlink::route`'s.
//!
//! The shapes are the ones Calico's BIRD and Felix write
//! (`shared/reference/calico-semantics.md` §2), with our own protocol:
//!
//! | [`RouteKind`] | `ip route` | [`RouteShape`] |
//! |---|---|---|
//! | `Blackhole` | `blackhole B proto 98` | `Blackhole` |
//! | `Direct` | `B via NH dev eth0 onlink proto 98` | `Gateway`, onlink |
//! | `Tunnel` | `B via NH dev tunl0 onlink mtu M proto 98` | `Gateway`, onlink, MTU |
//! | `BpfTunnel` | `B via NH dev eth0 onlink encap bpf xmit podroute-ipip-ID+20 headroom 20 proto 98` | `BpfGateway` |
//! | `Underlay` | `B via GW dev eth0 proto 98` | `Gateway` |
//!
//! A dumped route is read back into a [`netlink::route::KernelRoute`],
//! whose shape compares equal to the planned route's exactly when the
//! kernel already holds what we want.

use netlink::link::Links;
use netlink::route::{BpfProgram, RouteShape};

use crate::planner::RouteKind;

/// Our route protocol number (`proto 98` in `ip route`).
///
/// Free in iproute2's `rt_protos` (which names 0–18, 42, 99, 186–192) and
/// distinct from BIRD's 12 (`RTPROT_BIRD`) and Felix's 80, so the agent can
/// run next to either without the two fighting over routes. Configurable:
/// every [`Fib`](super::Fib) takes its protocol.
pub const DEFAULT_PROTOCOL: u8 = 98;

/// Why a planned route has no shape the kernel would take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// It names a device the kernel does not have (it would answer
    /// `ENODEV`).
    #[error("no device named {device}")]
    UnknownDevice {
        /// The device's name.
        device: String,
    },
    /// A `bpf` tunnel route while no encapsulation program is open (the
    /// kernel would answer `EBADF` for its descriptor).
    #[error("no bpf encapsulation program is loaded")]
    NoBpfProgram,
}

/// The shape of a planned route, with devices resolved in `links`; `bpf`:
/// the encapsulation program `bpf` tunnel routes run.
///
/// # Errors
/// [`ShapeError`] when the route's device does not exist, or a `bpf`
/// tunnel route has no program.
pub fn shape_of(
    kind: &RouteKind,
    links: &Links,
    bpf: Option<BpfProgram>,
) -> Result<RouteShape, ShapeError> {
    let resolve = |dev: &String| {
        links.index(dev).ok_or_else(|| ShapeError::UnknownDevice {
            device: dev.clone(),
        })
    };
    Ok(match kind {
        RouteKind::Blackhole => RouteShape::Blackhole,
        RouteKind::Direct { via, dev } => RouteShape::Gateway {
            via: *via,
            oif: resolve(dev)?,
            onlink: true,
            mtu: None,
        },
        RouteKind::Tunnel { via, dev, mtu } => RouteShape::Gateway {
            via: *via,
            oif: resolve(dev)?,
            onlink: true,
            // An MTU of 0 means "no route MTU": the kernel does not
            // store a zero RTAX_MTU, so asking for one would never
            // compare equal and would churn.
            mtu: (*mtu != 0).then_some(*mtu),
        },
        RouteKind::BpfTunnel { via, dev } => RouteShape::BpfGateway {
            via: *via,
            oif: resolve(dev)?,
            program: bpf.ok_or(ShapeError::NoBpfProgram)?,
            headroom: ipip::bpf::HEADROOM,
        },
        RouteKind::Underlay { via, dev } => RouteShape::Gateway {
            via: *via,
            oif: resolve(dev)?,
            onlink: false,
            mtu: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use netlink::route::{KernelRoute, Route, emit_new_route};

    use super::*;
    use crate::planner::DesiredRoute;

    fn links() -> Links {
        Links::from_pairs([("eth0", 2), ("tunl0", 7)])
    }

    fn desired(dst: &str, kind: RouteKind) -> DesiredRoute {
        DesiredRoute {
            dst: dst.parse().expect("prefix"),
            kind,
        }
    }

    /// Written with the FIB's writer, read back with the netlink crate's
    /// reader: the same shape, shown as the planner shows the route.
    #[test]
    fn every_kind_reads_back_as_the_shape_it_was_written_from() {
        let via: IpAddr = "10.0.0.6".parse().expect("ip");
        let routes = [
            desired("10.244.1.0/26", RouteKind::Blackhole),
            desired(
                "10.244.2.0/26",
                RouteKind::Direct {
                    via,
                    dev: "eth0".into(),
                },
            ),
            desired(
                "10.244.3.0/26",
                RouteKind::Tunnel {
                    via,
                    dev: "tunl0".into(),
                    mtu: 1440,
                },
            ),
            desired(
                "10.244.5.0/26",
                RouteKind::BpfTunnel {
                    via,
                    dev: "eth0".into(),
                },
            ),
            desired(
                "fd00:1::/122",
                RouteKind::Underlay {
                    via: "fd00::1".parse().expect("ip"),
                    dev: "eth0".into(),
                },
            ),
        ];
        for route in &routes {
            let shape = shape_of(&route.kind, &links(), Some(BpfProgram { id: 41, fd: 5 }))
                .expect("devices exist");
            let mut bytes = Vec::new();
            emit_new_route(&mut bytes, &route.dst, &shape, 98);
            let read = Route::parse(&bytes).expect("parses");
            assert_eq!(
                (read.protocol, read.table),
                (98, netlink::route::MAIN_TABLE)
            );
            let parsed = KernelRoute::from_route(&read).expect("ours");
            assert_eq!(parsed.dst, route.dst);
            assert_eq!(parsed.shape, shape, "{route}");
            let text = parsed.display(&links()).to_string();
            let planned = route.to_string();
            // The kernel's text names the program the planner does not know.
            let planned = planned.replace(
                "encap bpf",
                "encap bpf xmit podroute-ipip-41+20 headroom 20",
            );
            assert_eq!(text, planned);
        }
    }

    #[test]
    fn missing_device_is_named() {
        let route = desired(
            "10.244.2.0/26",
            RouteKind::Direct {
                via: "10.0.0.6".parse().expect("ip"),
                dev: "nosuch0".into(),
            },
        );
        assert_eq!(
            shape_of(&route.kind, &links(), None),
            Err(ShapeError::UnknownDevice {
                device: "nosuch0".to_string()
            })
        );
    }

    #[test]
    fn a_bpf_tunnel_route_without_a_program_is_refused() {
        let kind = RouteKind::BpfTunnel {
            via: "10.0.0.6".parse().expect("ip"),
            dev: "eth0".into(),
        };
        assert_eq!(
            shape_of(&kind, &links(), None),
            Err(ShapeError::NoBpfProgram)
        );
    }

    #[test]
    fn zero_tunnel_mtu_means_no_route_mtu() {
        let kind = RouteKind::Tunnel {
            via: "10.0.0.6".parse().expect("ip"),
            dev: "tunl0".into(),
            mtu: 0,
        };
        assert!(matches!(
            shape_of(&kind, &links(), None),
            Ok(RouteShape::Gateway { mtu: None, .. })
        ));
    }
}
