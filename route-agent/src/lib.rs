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
//! The daemon binary and its admin API build on these; they are tracked in the route-agent issue.

pub mod fib;
pub mod planner;
