//! IPv4-in-IPv4 tunnelling (RFC 2003) for pod traffic between subnets.
//!
//! - [`packet`]: encapsulation and decapsulation on byte buffers, with the
//!   RFC 2003 rules for the outer header, TTL, DF and "fragmentation
//!   needed" replies. No input can make it panic.
//! - [`userspace`]: the data plane for kernels without the ipip module: a
//!   TUN device named like the kernel's `tunl0` plus a raw IPPROTO_IPIP
//!   socket, driven by the kernel's routes through that device. Two
//!   front ends start it, with one argument definition ([`cli`], feature
//!   `cli`, on by default): the binary `ipip-tunnel` and `route-agent
//!   tunnel`.
//! - [`kernel`]: the kernel backend: the kernel's own `tunl0` managed over
//!   rtnetlink (exists, up, MTU, /32 address), with a typed error naming
//!   the userspace fallback when the kernel has no ipip module.
//! - `bpf` (feature `bpf`, on by default): IPIP in eBPF programs for
//!   kernels without the ipip module (a lightweight-tunnel xmit program
//!   on tunnel routes, a tc ingress program on the underlay), with the
//!   maps the agent keeps current, pinned so a restart adopts them.
//! - [`filter`]: the kernel backend's nftables filter: IPIP only from the
//!   cluster's nodes, drops counted (the kernel's tunl0 takes IPIP from
//!   anyone otherwise).
//! - [`offload`]: TUN offloads on byte buffers: the vnet header, TCP
//!   segmentation of the kernel's super-packets (egress) and coalescing of
//!   received segments into super-packets (ingress).
//! - [`sys`]: the system calls under it, and the crate's only `unsafe`.
//! - `cli`: the tunnel's command line (`ipip-tunnel`, `route-agent
//!   tunnel`) and `ipip-tunnel kernel-setup`'s.
//! - [`fuzzing`]: the fuzz targets' bodies, so the stable corpus replay
//!   runs the same code as the nightly fuzzers.
//!
//! # Examples
//!
//! A pod's datagram wrapped for the node that hosts its destination, and
//! taken out again on the other side (byte buffers only, no privileges):
//!
//! ```
//! use ipip::packet::{Encapsulated, Tunnel, decapsulate, encapsulate};
//!
//! # fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
//! #     let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
//! #     p.extend_from_slice(&src); p.extend_from_slice(&dst); p.extend_from_slice(payload);
//! #     let len = (p.len() as u16).to_be_bytes(); p[2] = len[0]; p[3] = len[1];
//! #     let sum = ipip::packet::checksum(&p[..20]).to_be_bytes(); p[10] = sum[0]; p[11] = sum[1];
//! #     p
//! # }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A UDP datagram from a pod on this node to a pod on node 198.51.100.2.
//! let inner = ipv4([10, 244, 1, 5], [10, 244, 2, 7], b"hello");
//! // The kernel routed it to us and already decremented its TTL.
//! let tunnel = Tunnel { local: "192.0.2.1".parse()?, mtu: 1500, ttl: 64, forwarding: false };
//! let mut outer = Vec::new();
//! let sent = encapsulate(&inner, "198.51.100.2".parse()?, &tunnel, 1, &mut outer)?;
//! assert_eq!(sent, Encapsulated::Packet);
//! assert_eq!(outer.len(), inner.len() + 20);
//!
//! // On 198.51.100.2:
//! let received = decapsulate(&outer)?;
//! assert_eq!(received.outer_src.to_string(), "192.0.2.1");
//! assert_eq!(received.inner, &inner[..]);
//! # Ok(())
//! # }
//! ```
//!
//! The kernel's own `tunl0` made ready for pod routes (`ip link add tunl0
//! type ipip`, MTU, the node's /32): as root, on a kernel with the ipip
//! module, so not run here:
//!
//! ```no_run
//! use ipip::kernel::{TunnelConfig, ensure_tunnel};
//!
//! let state = ensure_tunnel(&TunnelConfig::new("10.0.0.5".parse()?))?;
//! println!("tunl0 is device {} with MTU {}", state.index, state.mtu);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "bpf")]
pub mod bpf;
#[cfg(feature = "cli")]
pub mod cli;
pub mod filter;
pub mod fuzzing;
pub mod kernel;
pub mod offload;
pub mod packet;
pub mod sys;
pub mod userspace;

// The README's examples are doc tests too, so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
