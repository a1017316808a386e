//! The pod-route daemon: it turns best BGP routes into kernel routes.
//!
//! - [`planner`]: pure. From the local node, the IP pools and the best
//!   routes, the exact set of kernel routes Calico's CrossSubnet rule asks
//!   for: blackholes for local blocks, direct routes on the shared subnet,
//!   IPIP routes through tunl0 otherwise, and nothing for routes that could
//!   hijack pod traffic.
//! - [`fib`]: the kernel side. Dumps the routes of our protocol, diffs
//!   them against the plan and applies only the difference, many netlink
//!   requests per send, errors matched back to routes by sequence number.
//!
//! - [`config`]: the daemon's YAML config, checked rule by rule, with
//!   errors that name the file, the line and the fix; it builds the BGP
//!   speaker's config and the planner's inputs.
//!
//! - [`admin`]: the admin HTTP API (`/healthz`, `/readyz`, Prometheus
//!   `/metrics`, JSON under `/api/v1/`) served from the agent's state.
//! - [`status`]: `route-agent status`, the operator's view of a running
//!   agent (peers table, kernel routes), read from the admin API.
//!
//! The `route-agent` binary (`check-config` so far) builds on these; the
//! rest of the daemon and its admin API are tracked in the route-agent issue.

pub mod admin;
pub mod agent;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod fib;
pub mod netinfo;
pub mod planner;
pub mod state;
pub mod status;
