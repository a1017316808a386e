//! The batched sender: what makes the FIB fast.
//!
//! rtnetlink (the crate) sends one request per `sendmsg` and waits for its
//! ACK; `ip -batch` does the same. Here many requests share one `sendmsg`:
//! the buffer is filled up to [`MAX_BATCH_MESSAGES`] requests or
//! [`MAX_BATCH_BYTES`], each request carries its own sequence number, and
//! the replies are matched back to the requests by sequence number. Which
//! requests ask for an ACK is the [`AckMode`]: by default only the last of
//! each batch (the kernel reports every failure anyway). rtnetlink (the
//! kernel side) processes a whole `sendmsg` synchronously and in order, so
//! when `send` returns every reply of the batch is already queued on the
//! socket.
//!
//! Request bodies are written by the caller straight into the send buffer
//! (the route and nexthop writers in [`crate::route`] and
//! [`crate::nexthop`]): no message value is built, sized and copied per
//! route.

use std::io;

use crate::consts::{NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN};
use crate::error::Errno;
use crate::header::{Header, MessageType, Messages, align, error_code};
use crate::socket::{Netlink, malformed};

/// Most requests in one `sendmsg`.
pub const MAX_BATCH_MESSAGES: usize = 200;
/// Most bytes in one `sendmsg`.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Room kept free in a batch for the next request: more than any route
/// request takes (a route with gateway, device and MTU is about 80 bytes).
const MAX_REQUEST_BYTES: usize = 1024;
/// Where `nlmsg_flags` sits in a header.
const FLAGS_AT: usize = 6;

/// Which requests of a batch ask for an ACK (`NLM_F_ACK`).
///
/// Either way every request has its own sequence number and a failed one
/// is reported by the kernel with that number: the kernel answers an error
/// whether or not the request asked for an ACK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// Only the last request of each batch: its reply closes the batch (the
    /// kernel handles a batch in order). One reply and one `recv` per batch
    /// instead of per route (`route-agent/benches/README.md` has the
    /// measurements).
    #[default]
    LastOfBatch,
    /// Every request: one reply per route, successes included.
    EveryRequest,
}

impl Netlink {
    /// How many batches (`sendmsg` calls carrying requests) this socket has
    /// sent.
    pub fn batches_sent(&self) -> u64 {
        self.batches
    }

    /// Sets which requests ask for an ACK.
    pub fn set_ack_mode(&mut self, mode: AckMode) {
        self.ack_mode = mode;
    }

    /// Sends `requests` in batches and returns the ones the kernel refused,
    /// each with its label and errno. Each request is its message type, the
    /// flags added to `NLM_F_REQUEST` (e.g. `NLM_F_CREATE | NLM_F_REPLACE`;
    /// `NLM_F_ACK` is set as the [`AckMode`] says), a label, and a function
    /// that appends the body (the bytes after the 16-byte `nlmsghdr`) to
    /// the send buffer.
    ///
    /// Labels cost nothing until a request fails: pass an index and look
    /// the request up only for the failures.
    ///
    /// # Errors
    /// When the socket fails (including `ENOBUFS`: replies were lost, and
    /// which requests succeeded is unknown; dump and reconcile again), or a
    /// reply is malformed.
    pub fn execute<L, W>(
        &mut self,
        requests: impl IntoIterator<Item = (MessageType, u16, L, W)>,
    ) -> io::Result<Vec<(L, Errno)>>
    where
        W: FnOnce(&mut Vec<u8>),
    {
        let mut failures = Vec::new();
        let mut labels: Vec<Option<L>> = Vec::with_capacity(MAX_BATCH_MESSAGES);
        self.tx.clear();
        let mut first_seq = self.next_seq;
        for (kind, flags, label, write) in requests {
            // A body's length is known only once it is written, so a batch
            // closes while it has room for any request.
            if !labels.is_empty()
                && (labels.len() >= MAX_BATCH_MESSAGES
                    || self.tx.len().saturating_add(MAX_REQUEST_BYTES) > MAX_BATCH_BYTES)
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
            let len = self.tx.len().saturating_sub(start);
            let Ok(length) = u32::try_from(len) else {
                return Err(io::Error::other(format!("netlink request of {len} bytes")));
            };
            let sequence = self.take_seq();
            let header = Header {
                length,
                kind,
                flags: header_flags,
                sequence,
                // 0: to the kernel.
                port: 0,
            };
            if let Some(slot) = self.tx.get_mut(start..start.saturating_add(NLMSG_HDRLEN)) {
                slot.copy_from_slice(&header.to_bytes());
            }
            self.tx.resize(start.saturating_add(align(len)), 0);
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
        failures: &mut Vec<(L, Errno)>,
    ) -> io::Result<()> {
        if self.ack_mode == AckMode::LastOfBatch {
            let at = self.last_start.saturating_add(FLAGS_AT);
            if let Some(field) = self.tx.get_mut(at..at.saturating_add(2))
                && let Some(raw) = field.first_chunk::<2>()
            {
                let flags = u16::from_ne_bytes(*raw) | NLM_F_ACK;
                field.copy_from_slice(&flags.to_ne_bytes());
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
            let mut replies = Messages::new(&self.rx);
            for (header, body) in replies.by_ref() {
                if header.kind != MessageType::ERROR {
                    continue;
                }
                let index = header.sequence.wrapping_sub(first_seq) as usize;
                // A reply to an earlier, abandoned batch: not ours to count.
                let Some(label) = labels.get_mut(index).and_then(Option::take) else {
                    continue;
                };
                match error_code(body) {
                    0 => {}
                    code => failures.push((label, Errno::from_raw(code))),
                }
            }
            if replies.malformed() {
                return Err(malformed("a message length outside its datagram"));
            }
        }
        labels.clear();
        Ok(())
    }
}
