//! IPv4-in-IPv4 tunnelling (RFC 2003) for pod traffic between subnets.
//!
//! - [`packet`]: encapsulation and decapsulation on byte buffers, with the
//!   RFC 2003 rules for the outer header, TTL, DF and "fragmentation
//!   needed" replies. No input can make it panic.
//!
//! The kernel tunl0 backend and the userspace data plane (TUN plus a raw
//! IPPROTO_IPIP socket) build on this module; they are tracked in the ipip
//! issue.

pub mod fuzzing;
pub mod packet;
