//! The pod-route daemon: it turns best BGP routes into kernel routes.
//!
//! - [`planner`]: pure. From the local node, the IP pools and the best
//!   routes, the exact set of kernel routes Calico's CrossSubnet rule asks
//!   for: blackholes for local blocks, direct routes on the shared subnet,
//!   IPIP routes through tunl0 otherwise, and nothing for routes that could
//!   hijack pod traffic.
//!
//! The netlink FIB reconciler, the daemon binary and its admin API build
//! on the plan; they are tracked in the route-agent issue.

pub mod planner;
