//! [`Netlink`]: one blocking `NETLINK_ROUTE` socket, for the batched
//! sender ([`crate::batch`]) and dumps ([`crate::dump`]).
//!
//! The socket is set up with `NETLINK_CAP_ACK` (an error echoes only the
//! request's header, not the whole request) and a receive buffer large
//! enough for a full batch of replies: a reply the kernel cannot queue is
//! dropped and the socket reports `ENOBUFS`, which is returned as an I/O
//! error rather than guessed around.

use std::fmt;
use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::batch::{AckMode, MAX_BATCH_BYTES};

/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`):
/// a batch's replies take about 1 KiB each of socket accounting.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;
/// Largest datagram a dump sends (the kernel caps dump skbs at 32 KiB).
pub(crate) const RECEIVE_CHUNK: usize = 64 * 1024;

/// One `NETLINK_ROUTE` socket, bound to the network namespace of the
/// thread that opened it. Verbs mirror `ip`: the batched sender
/// ([`Netlink::execute`]) and dumps ([`Netlink::routes`],
/// [`Netlink::nexthops`], [`Netlink::links`], [`Netlink::addresses`]).
pub struct Netlink {
    pub(crate) socket: Socket,
    pub(crate) next_seq: u32,
    /// The batch being written.
    pub(crate) tx: Vec<u8>,
    /// Where the last request in `tx` starts.
    pub(crate) last_start: usize,
    pub(crate) ack_mode: AckMode,
    /// The last datagram received.
    pub(crate) rx: Vec<u8>,
    /// Batches sent so far (for metrics).
    pub(crate) batches: u64,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink")
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Netlink {
    /// Opens a socket to the kernel in the current network namespace.
    ///
    /// # Errors
    /// When the socket cannot be created, bound or configured.
    pub fn open() -> io::Result<Self> {
        Self::open_protocol(NETLINK_ROUTE)
    }

    /// Opens a socket of netlink protocol `protocol` (`NETLINK_ROUTE`,
    /// `NETLINK_NETFILTER`) in the current network namespace.
    pub(crate) fn open_protocol(protocol: isize) -> io::Result<Self> {
        let mut socket = Socket::new(protocol)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_rx_buf_sz(RECEIVE_BUFFER)?;
        socket.set_cap_ack(true)?;
        Ok(Self {
            socket,
            next_seq: 1,
            tx: Vec::with_capacity(MAX_BATCH_BYTES),
            last_start: 0,
            ack_mode: AckMode::default(),
            rx: Vec::with_capacity(RECEIVE_CHUNK),
            batches: 0,
        })
    }

    /// The socket's netlink port id: the kernel's notifications of changes
    /// this socket made carry it as `nlmsg_pid`.
    ///
    /// # Errors
    /// When the socket's address cannot be read.
    pub fn port_id(&self) -> io::Result<u32> {
        let mut address = SocketAddr::new(0, 0);
        self.socket.get_address(&mut address)?;
        Ok(address.port_number())
    }

    /// A fresh sequence number.
    pub(crate) fn take_seq(&mut self) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        seq
    }

    /// Receives one datagram into `rx`. A datagram larger than the buffer
    /// is an error, not a silent cut.
    pub(crate) fn receive(&mut self) -> io::Result<()> {
        match receive(&self.socket, &mut self.rx)? {
            Received::Whole => Ok(()),
            Received::Cut { len } => Err(io::Error::other(format!(
                "netlink datagram of {len} bytes truncated to {}",
                self.rx.capacity()
            ))),
        }
    }
}

/// How much of a datagram [`receive`] got.
pub(crate) enum Received {
    /// All of it.
    Whole,
    /// The start: it was `len` bytes long.
    Cut { len: usize },
}

/// Receives one datagram from `socket` into `buf` (replacing its
/// contents).
pub(crate) fn receive(socket: &Socket, buf: &mut Vec<u8>) -> io::Result<Received> {
    receive_flags(socket, buf, 0)
}

/// [`receive`] with `recv(2)` flags (`MSG_DONTWAIT`) added.
pub(crate) fn receive_flags(
    socket: &Socket,
    buf: &mut Vec<u8>,
    flags: libc::c_int,
) -> io::Result<Received> {
    buf.clear();
    if buf.capacity() < RECEIVE_CHUNK {
        buf.reserve(RECEIVE_CHUNK);
    }
    let capacity = buf.capacity();
    // MSG_TRUNC: the datagram's real length, even when it did not fit.
    let len = socket.recv(buf, libc::MSG_TRUNC | flags)?;
    Ok(if len > capacity {
        Received::Cut { len }
    } else {
        Received::Whole
    })
}

/// An `InvalidData` error for a malformed reply.
pub(crate) fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed netlink reply: {what}"),
    )
}
