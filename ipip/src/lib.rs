//! IPv4-in-IPv4 tunnelling (RFC 2003) for pod traffic between subnets.
//!
//! Not built yet: the packet codec, the kernel tunl0 backend and the
//! userspace data plane are tracked in the ipip issue. The crate exists so
//! the workspace has the shape the design fixes.
