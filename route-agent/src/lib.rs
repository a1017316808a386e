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
//! - [`config`]: the daemon's YAML config, checked rule by rule, with
//!   errors that name the file, the line and the fix; it builds the BGP
//!   speaker's config and the planner's inputs.
//! - [`agent`]: the daemon itself. Its decisions (graceful-restart hold,
//!   node changes, reloads, when to plan) are a state machine without I/O
//!   ([`agent::control`]); its loop only moves messages between the
//!   speaker, the signals, the timers, the kernel monitor and the FIB
//!   thread; it also sets up the IPIP tunnel.
//! - [`cni`]: the CNI network config the agent writes for the standard
//!   plugins (`ptp` with `host-local` over this node's blocks, `portmap`),
//!   atomically and only when it changes.
//! - [`datastore`]: where the nodes come from (the config file, or the
//!   Kubernetes API's Node objects): a [`datastore::NodeSet`], turned into
//!   this node's peers and blocks by one code path for every source.
//! - [`state`]: what the agent shares with the admin API.
//! - [`admin`]: the admin HTTP API (`/healthz`, `/readyz`, Prometheus
//!   `/metrics`, JSON under `/api/v1/`) served from that state.
//! - [`daemon`]: `route-agent run`: the agent and, beside it, the admin
//!   API (neither starts or imports the other).
//! - [`status`]: `route-agent status`, the operator's view of a running
//!   agent (peers table, route summary, `--routes` for the kernel routes),
//!   read from the admin API.
//! - [`preflight`]: what the node's kernel and sysctls mean for pod
//!   routing (`route-agent preflight`, and logged at `run`).
//! - [`inspect`]: `route-agent neighbor [ADDR]` and `route-agent rib
//!   [PREFIX]`, the BGP sessions and table, from the same API.
//! - [`demo`]: `route-agent demo` and the namespace clusters of the
//!   end-to-end tests.
//! - [`netinfo`]: the node's interfaces, addresses and IPv6 underlay
//!   routes over netlink.
//!
//! The `route-agent` binary's subcommands build on these: `run`,
//! `check-config`, `preflight`, `status`, `neighbor`, `rib`, `demo` and `tunnel` (the userspace IPIP data
//! plane, with the arguments of `ipip-tunnel`: [`ipip::cli`]).

pub mod admin;
pub mod agent;
pub mod cni;
pub mod config;
pub mod daemon;
pub mod datastore;
pub mod demo;
pub mod fib;
pub mod inspect;
pub mod netinfo;
pub mod planner;
pub mod preflight;
pub mod state;
pub mod status;
mod sys;
