//! How much the data plane takes per turn and how much the kernel queues
//! for it. A leaf module: the forwarding paths (`egress.rs`, `ingress.rs`)
//! and their owner (`dataplane.rs`) all read it, and it reads none of them.

/// Outer datagrams received per `recvmmsg` (ingress), and reads from the
/// TUN device per wake-up (egress), before yielding.
pub const BATCH: usize = 128;

/// Transmit queue of the TUN device: packets the kernel holds for the
/// data plane to read. The kernel's default for TUN (500) overflowed
/// under one TCP stream without offloads, and each drop is a TCP
/// retransmit.
pub const TUN_TX_QUEUE_LEN: u32 = 2000;
