//! Netlink (`NETLINK_ROUTE`, and nftables over `NETLINK_NETFILTER`) for
//! the workspace: the one place that speaks it. route-agent's FIB, its
//! kernel monitor and its node lookups, ipip's tunnel-device set-up, route
//! learning and IPIP filter all go through here.
//!
//! From the bytes up:
//!
//! - [`consts`]: every code point (`RTM_*`, `RTA_*`, `NHA_*`, groups),
//!   each citing the kernel header that defines it.
//! - [`header`]: `struct nlmsghdr` and the walk over a datagram's messages;
//!   [`attr`]: the one attribute reader and writer.
//! - [`route`]: the route codec (route messages ↔ [`route::Route`],
//!   [`route::KernelRoute`]; the FIB's request writers), tested against
//!   bytes captured from the kernel and iproute2 (`tests/data/`).
//!   [`nexthop`]: nexthop objects, which netlink-packet-route does not
//!   model. [`link`]: links and addresses, as netlink-packet-route's
//!   messages.
//! - [`Netlink`]: one blocking socket: the batched sender that makes the
//!   FIB fast ([`Netlink::execute`]: many requests per `sendmsg`, replies
//!   matched by sequence number) and dumps ([`Netlink::fold_routes`],
//!   [`Netlink::nexthops`], [`Netlink::links`], [`Netlink::addresses`]).
//! - [`Monitor`]: the kernel's change notifications (multicast groups).
//! - [`Control`]: rtnetlink, for control-path link and address changes
//!   (the tunnel device), one request and ACK at a time.
//! - [`nftables`]: nftables over `NETLINK_NETFILTER` (transactions of
//!   table, set, counter, chain, rule and element requests; dumps), for
//!   the IPIP filter of the kernel tunnel.
//! - [`Errno`], [`Error`]: the kernel's refusals with the cases callers
//!   act on named.
//!
//! # Examples
//!
//! A route request written and read back (no socket needed):
//!
//! ```
//! use netlink::route::{KernelRoute, Route, RouteShape, emit_new_route};
//!
//! let dst = "10.244.3.0/26".parse().unwrap();
//! let shape = RouteShape::Gateway {
//!     via: "10.0.0.6".parse().unwrap(),
//!     oif: 7,
//!     onlink: true,
//!     mtu: Some(1440),
//! };
//! let mut body = Vec::new();
//! emit_new_route(&mut body, &dst, &shape, 98);
//! let route = Route::parse(&body).unwrap();
//! assert_eq!(route.protocol, 98);
//! assert_eq!(KernelRoute::from_route(&route).unwrap().shape, shape);
//! ```
//!
//! The main table's IPv4 routes, as `ip route show` lists them (a dump
//! needs no privileges; adding and deleting routes needs `CAP_NET_ADMIN`):
//!
//! ```
//! use netlink::Netlink;
//! use netlink::consts::RT_TABLE_MAIN;
//! use netlink::route::FAMILY_V4;
//!
//! let mut nl = Netlink::open()?;
//! for route in nl.routes(FAMILY_V4)? {
//!     if route.table == u32::from(RT_TABLE_MAIN) {
//!         let dst = route.dst.map_or("default".to_string(), |d| format!("{d}/{}", route.dst_len));
//!         println!("{dst} via {:?} dev #{:?} proto {}", route.gateway, route.oif, route.protocol);
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

// Bytes from the kernel are parsed throughout this crate: no panics and no
// unchecked arithmetic outside tests (the lint set of bgp-core's `wire`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod attr;
pub mod batch;
pub mod consts;
mod control;
mod dump;
mod error;
pub mod header;
pub mod link;
mod monitor;
pub mod nexthop;
pub mod nftables;
pub mod route;
mod socket;

pub use batch::AckMode;
pub use control::Control;
pub use error::{Errno, Error};
pub use header::MessageType;
pub use monitor::{Group, Monitor, Received};
pub use socket::Netlink;

// The README's examples are doc tests too, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
