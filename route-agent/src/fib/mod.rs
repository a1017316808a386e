//! The kernel side: desired routes → the main routing table, in batches.
//!
//! Three layers, from the bytes up (style: netlink-packet-route under a
//! thin kernel handle):
//!
//! - [`messages`]: pure. A [`DesiredRoute`](crate::planner::DesiredRoute)
//!   becomes an `RTM_NEWROUTE` message, and a dumped route becomes a
//!   [`KernelRoute`] that compares with what we want.
//! - [`batch`]: one netlink socket. Many requests per `sendmsg` (up to
//!   [`batch::MAX_BATCH_MESSAGES`] or [`batch::MAX_BATCH_BYTES`]), each with
//!   its own sequence number; every error is matched back to its request by
//!   sequence number, so there is no per-route round trip.
//! - [`reconcile`]: dump the routes we own, diff against the plan, apply
//!   only the difference ([`Fib::reconcile`]).
//!
//! # Speed
//!
//! `route-agent/benches/fib_install.sh` installs 100,000 /26 routes into an
//! empty table with this module, `ip -batch` and BIRD 2 side by side. On
//! the 2-core test machine: about 0.45–0.55 s here, 1.1 s for `ip -batch`,
//! 0.75–0.8 s for BIRD (including its config parse). The kernel's own
//! insertion (`fib_table_insert`) is three quarters of our time in `perf`,
//! so batching cannot go much further; fewer per-route allocations in the
//! kernel would need nexthop objects (`RTA_NH_ID`).
//!
//! # Ownership
//!
//! The agent owns exactly the main-table routes whose protocol is its own
//! ([`DEFAULT_PROTOCOL`], 98, unless configured otherwise). It never reads
//! or writes routes of any other protocol: not BIRD's (12), not Felix's (80),
//! not `static` or `kernel` routes.

pub mod batch;
pub mod messages;
pub mod reconcile;

pub use batch::{AckMode, Netlink, RouteErrno, RouteError, RouteOp};
pub use messages::{DEFAULT_PROTOCOL, KernelRoute, Links, RouteShape};
pub use reconcile::{Fib, ReconcileStats, Reconciled};
