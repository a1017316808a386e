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
//! - [`offload`]: TUN offloads on byte buffers: the vnet header, TCP
//!   segmentation of the kernel's super-packets (egress) and coalescing of
//!   received segments into super-packets (ingress).
//! - [`sys`]: the system calls under it, and the crate's only `unsafe`.
//! - `cli`: the tunnel's command line (`ipip-tunnel`, `route-agent
//!   tunnel`) and `ipip-tunnel kernel-setup`'s.
//! - [`fuzzing`]: the fuzz targets' bodies, so the stable corpus replay
//!   runs the same code as the nightly fuzzers.

#[cfg(feature = "cli")]
pub mod cli;
pub mod fuzzing;
pub mod kernel;
pub mod offload;
pub mod packet;
pub mod sys;
pub mod userspace;
