//! IPv4-in-IPv4 tunnelling (RFC 2003) for pod traffic between subnets.
//!
//! - [`packet`]: encapsulation and decapsulation on byte buffers, with the
//!   RFC 2003 rules for the outer header, TTL, DF and "fragmentation
//!   needed" replies. No input can make it panic.
//! - [`userspace`]: the data plane for kernels without the ipip module: a
//!   TUN device named like the kernel's `tunl0` plus a raw IPPROTO_IPIP
//!   socket, driven by the kernel's routes through that device (binary
//!   `ipip-tunnel`).
//! - [`sys`]: the system calls under it, and the crate's only `unsafe`.
//!
//! The kernel tunl0 backend is tracked in the ipip issue.

pub mod fuzzing;
pub mod packet;
pub mod sys;
pub mod userspace;
