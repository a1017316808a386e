//! A batch writer over one `NETLINK_ROUTE` socket.
//!
//! rtnetlink (the crate) sends one request per `sendmsg` and waits for its
//! ACK; `ip -batch` does the same. Here many requests share one `sendmsg`:
//! the buffer is filled up to [`MAX_BATCH_MESSAGES`] requests or
//! [`MAX_BATCH_BYTES`], each request carries its own sequence number, and
//! the replies are matched back to the requests by sequence number. Which
//! requests ask for an ACK is the [`AckMode`]: by default only the last of
//! each batch (the kernel reports every failure anyway). rtnetlink
//! processes a whole `sendmsg` synchronously and in order, so when `send`
//! returns every reply of the batch is already queued on the socket.
//!
//! The socket is set up with `NETLINK_CAP_ACK` (an error echoes only the
//! request's header, not the whole request) and a receive buffer large
//! enough for a full batch of replies: a reply the kernel cannot queue is
//! dropped and the socket reports `ENOBUFS`, which [`Netlink::execute`]
//! returns as an I/O error rather than guessing.

// Bytes from the kernel: no panics outside tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::fmt;
use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Most requests in one `sendmsg`.
pub const MAX_BATCH_MESSAGES: usize = 200;
/// Most bytes in one `sendmsg`.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Room kept free in a batch for the next request: more than any route
/// request takes (a route with gateway, device and MTU is about 80 bytes).
const MAX_REQUEST_BYTES: usize = 1024;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`):
/// a batch's replies take about 1 KiB each of socket accounting.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;
/// Largest datagram a dump sends (the kernel caps dump skbs at 32 KiB).
const RECEIVE_CHUNK: usize = 64 * 1024;
/// How often a dump interrupted by concurrent changes is retried.
const DUMP_RETRIES: usize = 5;

/// What a failed request was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteOp {
    /// `ip route add` of a route that was missing.
    Add,
    /// `ip route replace` of a route that differed.
    Replace,
    /// `ip route del` of a route not in the plan.
    Delete,
}

impl fmt::Display for RouteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Add => "add",
            Self::Replace => "replace",
            Self::Delete => "delete",
        })
    }
}

/// The kernel's reason for refusing a route request, with the cases a
/// caller acts on named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteErrno {
    /// `EEXIST`: the route exists (an add without `NLM_F_REPLACE`).
    Exists,
    /// `ENODEV`: no such device.
    NoDevice,
    /// `ENETUNREACH`: the gateway is not reachable (not on a connected
    /// subnet, and the route is not `onlink`).
    NetworkUnreachable,
    /// `EINVAL`: the kernel found the request invalid (e.g. `onlink` on a
    /// device that is down, a gateway of the wrong family).
    Invalid,
    /// `ESRCH`: no such route (a delete of a route already gone).
    NoSuchRoute,
    /// Any other errno.
    Other(i32),
}

impl RouteErrno {
    /// From a positive errno.
    pub fn from_raw(errno: i32) -> Self {
        match errno {
            libc::EEXIST => Self::Exists,
            libc::ENODEV => Self::NoDevice,
            libc::ENETUNREACH => Self::NetworkUnreachable,
            libc::EINVAL => Self::Invalid,
            libc::ESRCH => Self::NoSuchRoute,
            other => Self::Other(other),
        }
    }

    /// The positive errno.
    pub fn raw(self) -> i32 {
        match self {
            Self::Exists => libc::EEXIST,
            Self::NoDevice => libc::ENODEV,
            Self::NetworkUnreachable => libc::ENETUNREACH,
            Self::Invalid => libc::EINVAL,
            Self::NoSuchRoute => libc::ESRCH,
            Self::Other(errno) => errno,
        }
    }
}

impl fmt::Display for RouteErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Exists => "EEXIST",
            Self::NoDevice => "ENODEV",
            Self::NetworkUnreachable => "ENETUNREACH",
            Self::Invalid => "EINVAL",
            Self::NoSuchRoute => "ESRCH",
            Self::Other(_) => "errno",
        };
        write!(
            f,
            "{} ({name} {})",
            io::Error::from_raw_os_error(self.raw()),
            self.raw()
        )
    }
}

/// One route the kernel refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {op} route `{route}`: {errno}")]
pub struct RouteError {
    /// What was tried.
    pub op: RouteOp,
    /// The route, in `ip route` syntax.
    pub route: String,
    /// Why it failed.
    pub errno: RouteErrno,
}

/// Which requests of a batch ask for an ACK (`NLM_F_ACK`).
///
/// Either way every request has its own sequence number and a failed one
/// is reported by the kernel with that number: rtnetlink answers an error
/// whether or not the request asked for an ACK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// Only the last request of each batch: its reply closes the batch (the
    /// kernel handles a batch in order). Measured here on 100,000 routes,
    /// 0.35 s against 0.45 s for [`AckMode::EveryRequest`]
    /// (`benches/README.md`): one reply and one `recv` per batch instead of
    /// per route.
    #[default]
    LastOfBatch,
    /// Every request: one reply per route, successes included.
    EveryRequest,
}

/// One `NETLINK_ROUTE` socket, bound to the network namespace of the
/// thread that opened it.
pub struct Netlink {
    socket: Socket,
    next_seq: u32,
    tx: Vec<u8>,
    /// Where the last request in `tx` starts.
    last_start: usize,
    ack_mode: AckMode,
    rx: Vec<u8>,
    /// Batches sent so far (for metrics).
    batches: u64,
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
        let mut socket = Socket::new(NETLINK_ROUTE)?;
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

    /// The socket's netlink port id: the kernel's route notifications for
    /// changes this socket made carry it as `nlmsg_pid`.
    ///
    /// # Errors
    /// When the socket's address cannot be read.
    pub fn port_id(&self) -> io::Result<u32> {
        let mut address = SocketAddr::new(0, 0);
        self.socket.get_address(&mut address)?;
        Ok(address.port_number())
    }

    /// How many batches (`sendmsg` calls carrying route requests) this
    /// socket has sent.
    pub fn batches_sent(&self) -> u64 {
        self.batches
    }

    /// Sets which requests ask for an ACK.
    pub fn set_ack_mode(&mut self, mode: AckMode) {
        self.ack_mode = mode;
    }

    /// Sends `requests` in batches and returns the ones the kernel refused,
    /// each with its label and errno. `flags` are added to `NLM_F_REQUEST`
    /// (e.g. `NLM_F_CREATE | NLM_F_REPLACE`); `NLM_F_ACK` is set as the
    /// [`AckMode`] says.
    ///
    /// Labels cost nothing until a request fails: pass an index and format
    /// the route only for the failures.
    ///
    /// # Errors
    /// When the socket fails (including `ENOBUFS`: replies were lost, and
    /// which requests succeeded is unknown; dump and reconcile again).
    pub fn execute<L>(
        &mut self,
        requests: impl IntoIterator<Item = (RouteNetlinkMessage, u16, L)>,
    ) -> io::Result<Vec<(L, RouteErrno)>> {
        self.execute_with(requests.into_iter().map(|(message, flags, label)| {
            let kind = message.message_type();
            let write = move |tx: &mut Vec<u8>| {
                let start = tx.len();
                tx.resize(start + message.buffer_len(), 0);
                if let Some(body) = tx.get_mut(start..) {
                    message.serialize(body);
                }
            };
            (kind, flags, label, write)
        }))
    }

    /// [`Netlink::execute`] for requests that write their own body: each
    /// item is the message type (`RTM_NEWROUTE`, …), the flags, the label,
    /// and a function that appends the body (the bytes after the 16-byte
    /// `nlmsghdr`) to the send buffer.
    ///
    /// This is the fast path: a route's body goes straight into the batch,
    /// with no message value built, sized and copied per route.
    ///
    /// # Errors
    /// As [`Netlink::execute`].
    pub fn execute_with<L, W>(
        &mut self,
        requests: impl IntoIterator<Item = (u16, u16, L, W)>,
    ) -> io::Result<Vec<(L, RouteErrno)>>
    where
        W: FnOnce(&mut Vec<u8>),
    {
        let mut failures = Vec::new();
        let mut labels: Vec<Option<L>> = Vec::with_capacity(MAX_BATCH_MESSAGES);
        self.tx.clear();
        let mut first_seq = self.next_seq;
        for (kind, flags, label, write) in requests {
            // A body's length is known only once it is written, so a batch
            // closes while it has room for any route request.
            if !labels.is_empty()
                && (labels.len() >= MAX_BATCH_MESSAGES
                    || self.tx.len() + MAX_REQUEST_BYTES > MAX_BATCH_BYTES)
            {
                self.flush(first_seq, &mut labels, &mut failures)?;
                first_seq = self.next_seq;
            }
            let mut header_flags = NLM_F_REQUEST | flags;
            if self.ack_mode == AckMode::EveryRequest {
                header_flags |= NLM_F_ACK;
            }
            let start = self.tx.len();
            self.last_start = start;
            self.tx.extend_from_slice(&[0; NLMSG_HDRLEN]);
            write(&mut self.tx);
            let len = self.tx.len() - start;
            let Ok(len32) = u32::try_from(len) else {
                return Err(io::Error::other(format!("netlink request of {len} bytes")));
            };
            // struct nlmsghdr: length, type, flags, sequence, port (0: the
            // kernel).
            let header = len32
                .to_ne_bytes()
                .into_iter()
                .chain(kind.to_ne_bytes())
                .chain(header_flags.to_ne_bytes())
                .chain(self.next_seq.to_ne_bytes())
                .chain([0; 4]);
            for (slot, byte) in self.tx.iter_mut().skip(start).zip(header) {
                *slot = byte;
            }
            self.tx.resize(start + align(len), 0);
            self.next_seq = self.next_seq.wrapping_add(1);
            labels.push(Some(label));
        }
        if !labels.is_empty() {
            self.flush(first_seq, &mut labels, &mut failures)?;
        }
        Ok(failures)
    }

    /// Sends the buffered batch and reads one reply per request.
    fn flush<L>(
        &mut self,
        first_seq: u32,
        labels: &mut Vec<Option<L>>,
        failures: &mut Vec<(L, RouteErrno)>,
    ) -> io::Result<()> {
        if self.ack_mode == AckMode::LastOfBatch {
            // nlmsg_flags sits at bytes 6..8 of the header.
            let at = self.last_start + 6;
            if let Some(field) = self.tx.get_mut(at..at + 2) {
                let mut raw = [0; 2];
                raw.copy_from_slice(field);
                field.copy_from_slice(&(u16::from_ne_bytes(raw) | NLM_F_ACK).to_ne_bytes());
            }
        }
        let sent = self.socket.send(&self.tx, 0)?;
        self.batches = self.batches.wrapping_add(1);
        if sent != self.tx.len() {
            return Err(io::Error::other(format!(
                "netlink send took {sent} of {} bytes",
                self.tx.len()
            )));
        }
        self.tx.clear();
        // Replies come in request order, and the last request always gets
        // one (an ACK or its error): once it is in, every error of the
        // batch has been read.
        while labels.last().is_some_and(Option::is_some) {
            self.receive()?;
            let mut offset = 0;
            while let Some((header, payload)) = next_message(&self.rx, &mut offset)? {
                let index = header.sequence_number.wrapping_sub(first_seq) as usize;
                // A reply to an earlier, abandoned batch: not ours to count.
                let Some(slot) = labels.get_mut(index) else {
                    continue;
                };
                let NetlinkPayload::Error(error) = payload else {
                    continue;
                };
                let Some(label) = slot.take() else { continue };
                if let Some(code) = error.code {
                    failures.push((label, RouteErrno::from_raw(code.get().abs())));
                }
            }
        }
        labels.clear();
        Ok(())
    }

    /// Dumps a table (`RTM_GETROUTE` or `RTM_GETLINK` with `NLM_F_DUMP`)
    /// and returns its messages. A dump the kernel marks interrupted
    /// (`NLM_F_DUMP_INTR`: the table changed meanwhile) is retried.
    ///
    /// # Errors
    /// When the socket fails, the kernel refuses the dump, or the dump
    /// stays interrupted after several tries.
    pub fn dump(&mut self, request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_RETRIES {
            let (messages, interrupted) = self.dump_once(request.clone())?;
            if !interrupted {
                return Ok(messages);
            }
        }
        Err(io::Error::other(
            "netlink dump interrupted by concurrent changes on every try",
        ))
    }

    fn dump_once(
        &mut self,
        request: RouteNetlinkMessage,
    ) -> io::Result<(Vec<RouteNetlinkMessage>, bool)> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        let mut messages = Vec::new();
        let mut interrupted = false;
        loop {
            self.receive()?;
            let mut offset = 0;
            while let Some((header, payload)) = next_message(&self.rx, &mut offset)? {
                if header.sequence_number != seq {
                    continue;
                }
                interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                match payload {
                    NetlinkPayload::Done(_) => return Ok((messages, interrupted)),
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::InnerMessage(m) => messages.push(m),
                    _ => {}
                }
            }
        }
    }

    /// Dumps a table like [`Netlink::dump`], but hands each message's raw
    /// type and body (the bytes after the `nlmsghdr`) to `each` instead of
    /// building message values: the FIB's route dump reads 100,000 routes
    /// this way without a single allocation per route. `each` folds into a
    /// state made by `init`, made afresh when an interrupted dump is
    /// retried.
    ///
    /// # Errors
    /// As [`Netlink::dump`].
    pub fn dump_with<T>(
        &mut self,
        request: RouteNetlinkMessage,
        init: impl Fn() -> T,
        mut each: impl FnMut(&mut T, u16, &[u8]),
    ) -> io::Result<T> {
        for _ in 0..DUMP_RETRIES {
            let mut state = init();
            if !self.dump_raw_once(&request, |kind, body| each(&mut state, kind, body))? {
                return Ok(state);
            }
        }
        Err(io::Error::other(
            "netlink dump interrupted by concurrent changes on every try",
        ))
    }

    /// [`Netlink::dump_with`] for a request given as its message type and
    /// body (the bytes after the `nlmsghdr`), for message families
    /// netlink-packet-route does not model (`RTM_GETNEXTHOP`).
    ///
    /// # Errors
    /// As [`Netlink::dump_with`].
    pub fn dump_bytes_with<T>(
        &mut self,
        kind: u16,
        body: &[u8],
        init: impl Fn() -> T,
        mut each: impl FnMut(&mut T, u16, &[u8]),
    ) -> io::Result<T> {
        for _ in 0..DUMP_RETRIES {
            let mut state = init();
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            let len = u32::try_from(NLMSG_HDRLEN + body.len()).unwrap_or(u32::MAX);
            let mut bytes = Vec::with_capacity(NLMSG_HDRLEN + body.len());
            bytes.extend_from_slice(&len.to_ne_bytes());
            bytes.extend_from_slice(&kind.to_ne_bytes());
            bytes.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
            bytes.extend_from_slice(&seq.to_ne_bytes());
            bytes.extend_from_slice(&0u32.to_ne_bytes());
            bytes.extend_from_slice(body);
            if !self.dump_read(&bytes, seq, |kind, body| each(&mut state, kind, body))? {
                return Ok(state);
            }
        }
        Err(io::Error::other(
            "netlink dump interrupted by concurrent changes on every try",
        ))
    }

    /// One dump; true when the kernel marked it interrupted.
    fn dump_raw_once(
        &mut self,
        request: &RouteNetlinkMessage,
        each: impl FnMut(u16, &[u8]),
    ) -> io::Result<bool> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request.clone()));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.dump_read(&bytes, seq, each)
    }

    /// Sends the dump request `bytes` (sequence number `seq`) and hands
    /// every message of the answer to `each`; true when the kernel marked
    /// the dump interrupted.
    fn dump_read(
        &mut self,
        bytes: &[u8],
        seq: u32,
        mut each: impl FnMut(u16, &[u8]),
    ) -> io::Result<bool> {
        const NLMSG_ERROR: u16 = 2;
        const NLMSG_DONE: u16 = 3;
        self.socket.send(bytes, 0)?;
        let mut interrupted = false;
        loop {
            self.receive()?;
            let mut rest: &[u8] = &self.rx;
            while let Some(header) = RawHeader::read(rest) {
                let len = header.length as usize;
                if len < NLMSG_HDRLEN || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("netlink message length {len} in a {}-byte rest", rest.len()),
                    ));
                }
                let body = rest.get(NLMSG_HDRLEN..len).unwrap_or_default();
                rest = rest.get(align(len)..).unwrap_or_default();
                if header.sequence != seq {
                    continue;
                }
                interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                match header.kind {
                    NLMSG_DONE => return Ok(interrupted),
                    NLMSG_ERROR => {
                        // struct nlmsgerr: a negative errno, then the
                        // request's header; 0 would be an ACK.
                        let code = body
                            .get(..4)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map_or(0, i32::from_ne_bytes);
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                        }
                    }
                    kind => each(kind, body),
                }
            }
        }
    }

    /// Receives one datagram into `rx`.
    fn receive(&mut self) -> io::Result<()> {
        self.rx.clear();
        if self.rx.capacity() < RECEIVE_CHUNK {
            self.rx.reserve(RECEIVE_CHUNK);
        }
        let capacity = self.rx.capacity();
        let len = self.socket.recv(&mut self.rx, libc::MSG_TRUNC)?;
        if len > capacity {
            return Err(io::Error::other(format!(
                "netlink datagram of {len} bytes truncated to {capacity}"
            )));
        }
        Ok(())
    }
}

/// The fields of a `struct nlmsghdr` (native endian).
struct RawHeader {
    length: u32,
    kind: u16,
    flags: u16,
    sequence: u32,
}

impl RawHeader {
    /// The header at the start of `bytes`, if 16 bytes are there.
    fn read(bytes: &[u8]) -> Option<Self> {
        let u32_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_ne_bytes)
        };
        let u16_at = |at: usize| {
            bytes
                .get(at..at + 2)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .map(u16::from_ne_bytes)
        };
        Some(Self {
            length: u32_at(0)?,
            kind: u16_at(4)?,
            flags: u16_at(6)?,
            sequence: u32_at(8)?,
        })
    }
}

/// NLMSG_ALIGN.
fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The next message of a datagram, advancing `offset`.
fn next_message(
    datagram: &[u8],
    offset: &mut usize,
) -> io::Result<Option<(NetlinkHeader, NetlinkPayload<RouteNetlinkMessage>)>> {
    let Some(rest) = datagram.get(*offset..) else {
        return Ok(None);
    };
    if rest.len() < 16 {
        return Ok(None);
    }
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let len = message.header.length as usize;
    if len < 16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("netlink message length {len}"),
        ));
    }
    *offset += align(len);
    Ok(Some(message.into_parts()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_errnos_round_trip_and_others_keep_their_number() {
        for errno in [
            libc::EEXIST,
            libc::ENODEV,
            libc::ENETUNREACH,
            libc::EINVAL,
            libc::ESRCH,
            libc::EPERM,
        ] {
            assert_eq!(RouteErrno::from_raw(errno).raw(), errno);
        }
        assert_eq!(RouteErrno::from_raw(libc::ENODEV), RouteErrno::NoDevice);
        assert_eq!(
            RouteErrno::from_raw(libc::EPERM),
            RouteErrno::Other(libc::EPERM)
        );
    }

    #[test]
    fn error_names_the_route_and_errno() {
        let e = RouteError {
            op: RouteOp::Add,
            route: "10.244.4.0/26 via 10.66.0.6 dev nosuch0 onlink".into(),
            errno: RouteErrno::NoDevice,
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot add route `10.244.4.0/26 via 10.66.0.6 dev nosuch0 onlink`:"),
            "{text}"
        );
        assert!(text.contains("ENODEV 19"), "{text}");
    }
}
