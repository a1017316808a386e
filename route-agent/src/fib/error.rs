//! The FIB's typed errors: which request failed, on what, and the kernel's
//! errno ([`Errno`], with the cases a caller acts on named).

use std::fmt;

use netlink::Errno;
use netlink::nexthop::NexthopKey;
use netlink::route::KernelRoute;

use crate::planner::DesiredRoute;

/// What a failed request was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteOp {
    /// `ip route add` of a route that was missing.
    Add,
    /// `ip route replace` of a route that differed.
    Replace,
    /// `ip route del` of a route not in the plan.
    Delete,
}

impl fmt::Display for RouteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Add => "add",
            Self::Replace => "replace",
            Self::Delete => "delete",
        })
    }
}

/// What a failed request was about: the value itself, not its text, so a
/// caller can tell which planned routes are installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailedRoute {
    /// A route of the plan (added or replaced, or refused before it was
    /// sent: its device is missing, or another protocol holds its key).
    Planned(DesiredRoute),
    /// A route of ours the kernel holds (a delete).
    Installed {
        /// The route.
        route: KernelRoute,
        /// The name of its gateway's device, when the link dump had it.
        device: Option<String>,
    },
    /// A nexthop object of ours (created for, or no longer used by, the
    /// plan's routes).
    Nexthop {
        /// Its id.
        id: u32,
        /// Gateway, device and flag, for an object being created.
        key: Option<NexthopKey>,
        /// The name of the key's device, when the link dump had it.
        device: Option<String>,
    },
}

impl FailedRoute {
    /// The planned route, if this is one.
    pub fn planned(&self) -> Option<&DesiredRoute> {
        match self {
            Self::Planned(route) => Some(route),
            Self::Installed { .. } | Self::Nexthop { .. } => None,
        }
    }
}

/// In `ip route` / `ip nexthop` syntax.
impl fmt::Display for FailedRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Planned(route) => write!(f, "{route}"),
            Self::Installed { route, device } => {
                write!(f, "{}", route.display_with_device(device.as_deref()))
            }
            Self::Nexthop { id, key, device } => {
                write!(f, "nexthop id {id}")?;
                if let Some(key) = key {
                    write!(
                        f,
                        " via {} dev {}{}",
                        key.via,
                        device.as_deref().unwrap_or("?"),
                        if key.onlink { " onlink" } else { "" }
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// One request the kernel refused (or that was refused for it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {op} route `{route}`: {errno}")]
pub struct RouteError {
    /// What was tried.
    pub op: RouteOp,
    /// On what.
    pub route: FailedRoute,
    /// Why it failed.
    pub errno: Errno,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::RouteKind;

    #[test]
    fn error_names_the_route_and_errno() {
        let e = RouteError {
            op: RouteOp::Add,
            route: FailedRoute::Planned(DesiredRoute {
                dst: "10.244.4.0/26".parse().unwrap(),
                kind: RouteKind::Direct {
                    via: "10.66.0.6".parse().unwrap(),
                    dev: "nosuch0".into(),
                },
            }),
            errno: Errno::NoDevice,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot add route `10.244.4.0/26 via 10.66.0.6 dev nosuch0 onlink`:"),
            "{text}"
        );
        assert!(text.contains("ENODEV 19"), "{text}");
    }

    #[test]
    fn installed_routes_and_nexthop_objects_read_as_ip_shows_them() {
        let route = KernelRoute {
            dst: "10.244.9.0/26".parse().unwrap(),
            priority: 0,
            tos: 0,
            shape: netlink::route::RouteShape::Gateway {
                via: "10.66.0.9".parse().unwrap(),
                oif: 2,
                onlink: true,
                mtu: None,
            },
        };
        let installed = FailedRoute::Installed {
            route,
            device: Some("eth0".into()),
        };
        assert_eq!(
            installed.to_string(),
            "10.244.9.0/26 via 10.66.0.9 dev eth0 onlink"
        );
        assert_eq!(installed.planned(), None);
        let key = NexthopKey {
            via: "10.67.0.7".parse().unwrap(),
            oif: 7,
            onlink: true,
        };
        let created = FailedRoute::Nexthop {
            id: 9,
            key: Some(key),
            device: Some("tunl0".into()),
        };
        assert_eq!(
            created.to_string(),
            "nexthop id 9 via 10.67.0.7 dev tunl0 onlink"
        );
        let removed = FailedRoute::Nexthop {
            id: 9,
            key: None,
            device: None,
        };
        assert_eq!(removed.to_string(), "nexthop id 9");
    }
}
