//! The userspace IPIP data plane, for kernels without the ipip module.
//!
//! A TUN device named like the kernel's fallback device (`tunl0`) takes the
//! place of the kernel tunnel, so routes read the same: `B via NODE dev
//! tunl0 onlink`. The kernel hands the TUN device bare inner packets
//! without the gateway, so the data plane keeps its own tunnel table
//! ([`table`]) learned from those routes ([`routes`]).
//!
//! - Egress: TUN → longest-prefix lookup → [`crate::packet::encapsulate`]
//!   with the node address as outer source → raw IP-protocol-4 socket. A
//!   too-big datagram with DF gets an ICMP fragmentation-needed, sent back
//!   to its source from the node address. With offloads (the default) one
//!   read may return a TCP super-packet of up to 64 KB, which
//!   [`crate::offload::segment`] cuts to the tunnel MTU first. Those
//!   segments go into a TAP device whose input runs through GRO
//!   ([`gro`]): the kernel merges them back into one IPIP super-packet
//!   and forwards it whole. The rest goes out many per `sendmmsg`.
//! - Ingress: raw socket (many datagrams per `recvmmsg`) → peer check
//!   (route gateways plus configured extras; Calico drops IPIP from
//!   non-cluster hosts, so do we) → [`crate::packet::decapsulate`] →
//!   [`crate::offload::coalesce`] (consecutive TCP segments of a flow
//!   become one super-packet) → TUN.
//!
//! One thread forwards both directions: up to [`BATCH`] reads or datagrams
//! per turn, a short spin after traffic, then `poll(2)`. Counters
//! ([`counters`]) are shared atomics and count packets as they cross the
//! underlay.

pub mod counters;
mod dataplane;
mod egress;
pub mod gro;
mod ingress;
mod limits;
mod park;
pub mod routes;
pub mod table;

pub use counters::{Counters, DropReason};
pub use dataplane::{Config, Dataplane, EgressPath, Error};
pub use limits::{BATCH, TUN_TX_QUEUE_LEN};
