//! The kernel side: desired routes → the main routing table, in batches.
//!
//! The netlink itself (the route and nexthop codec, the batched sender,
//! dumps) is the `netlink` crate's (`netlink/`); this module is the FIB's
//! policy over it (style: netlink-packet-route under a thin kernel
//! handle):
//!
//! - [`shape`]: pure. A [`DesiredRoute`](crate::planner::DesiredRoute)'s
//!   kind becomes the [`RouteShape`] the netlink crate writes
//!   (`netlink::route::emit_new_route`) and reads back from a dump
//!   ([`KernelRoute`]).
//! - [`reconcile`]: dump the routes we own, diff against the plan, apply
//!   only the difference ([`Fib::reconcile`]) through the netlink crate's
//!   batched sender ([`Netlink::execute`]: many requests per `sendmsg`,
//!   each with its own sequence number; every error is matched back to its
//!   request by sequence number, so there is no per-route round trip).
//! - [`nexthop`]: when gateway routes go through kernel nexthop objects:
//!   for large tables (`nexthop-objects: auto`, the default) or all
//!   (`true`).
//! - [`error`]: [`RouteError`], which carries the failed route's value
//!   ([`FailedRoute`]) and the kernel's errno ([`Errno`]).
//!
//! # Speed
//!
//! `route-agent/benches/fib_install.sh` installs 100,000 /26 routes into an
//! empty table with this module, `ip -batch` and BIRD 2 side by side
//! (`route-agent/benches/README.md` has the runs). On the 2-core test
//! machine: 0.35 s here (about 280,000 routes/s), 1.0 s for `ip -batch`,
//! 0.67–1.2 s for BIRD (including its config parse). The kernel's own work
//! is about 90% of our time (3 µs per route inside `sendmsg` in `perf`), so
//! what is left is choosing what the kernel does: requests go out in a
//! spread (bit-reversed) order, which spares the kernel's trie most of its
//! resizing (0.37 → 0.30 s of CPU), grouped by next hop, which spares its
//! `fib_info` lookup when there are many (10,000 routes via 5,000 gateways:
//! 0.57 → 0.29 s), and route bodies are written straight into the batch.
//! Large tables go further ([`NexthopMode::Auto`], the default, from 1,001
//! gateway routes; `nexthop-objects: true` always): gateway routes name a
//! kernel nexthop object ([`nexthop`]) instead of carrying their gateway,
//! which the kernel finds by id rather than by comparing with every next
//! hop on the device, and without allocating a next hop per route:
//! 100,000 routes in about 0.25 s (400,000 routes/s), and a 5,000-node
//! cluster's 10,000 routes converge in 75–90 ms instead of 400 ms
//! (`benches/README.md`). Smaller tables keep Calico's shapes (`ip route`
//! shows `nhid N` with objects), where either form installs in
//! milliseconds.
//!
//! # Ownership
//!
//! The agent owns exactly the main-table routes whose protocol is its own
//! ([`DEFAULT_PROTOCOL`], 98, unless configured otherwise). It never reads
//! or writes routes of any other protocol: not BIRD's (12), not Felix's (80),
//! not `static` or `kernel` routes.

pub mod error;
pub mod nexthop;
pub mod reconcile;
pub mod shape;

pub use error::{FailedRoute, RouteError, RouteOp};
pub use netlink::link::Links;
pub use netlink::route::{KernelRoute, RouteShape};
pub use netlink::{AckMode, Errno, Netlink};
pub use nexthop::NexthopMode;
pub use reconcile::{Fib, ReconcileStats, Reconciled};
pub use shape::{DEFAULT_PROTOCOL, ShapeError, shape_of};
