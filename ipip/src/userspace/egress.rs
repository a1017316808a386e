//! Egress: TUN → (segmentation of super-packets) → longest-prefix lookup →
//! encapsulation → raw socket, many datagrams per `sendmmsg`.

use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use socket2::Socket;
use tokio::io::unix::AsyncFd;

use super::counters::{Counters, DropReason};
use super::dataplane::{BATCH, SPIN, snapshot};
use super::routes::SharedTable;
use super::table::TunnelTable;
use crate::offload::{self, VNET_HDR_LEN, VnetHdr};
use crate::packet::{
    Encapsulated, Ipv4Header, OUTER_HEADER_LEN, Tunnel, encapsulate, encapsulate_in_place,
};
use crate::sys;

/// Outer datagrams collected for one `sendmmsg` at most (the kernel caps a
/// call at 1024).
const SEND_BATCH: usize = 256;
/// Bytes of outer datagrams collected before a `sendmmsg` at most.
const SEND_BYTES: usize = 512 * 1024;

/// What one queued datagram counts for once it is sent.
#[derive(Clone, Copy, Debug)]
enum Count {
    /// An inner packet (or the first fragment of one) of this many bytes.
    Packet(usize),
    /// A further fragment of an inner packet already counted.
    Fragment,
    /// An ICMP fragmentation-needed back to an inner source.
    Icmp,
}

/// Outer datagrams waiting for one `sendmmsg`: their bytes back to back
/// in `arena`.
struct Batch {
    arena: Vec<u8>,
    msgs: Vec<(Range<usize>, Ipv4Addr, Count)>,
    segs: Vec<Range<usize>>,
    scratch: Vec<u8>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            arena: Vec::with_capacity(SEND_BYTES + 70_000),
            msgs: Vec::with_capacity(SEND_BATCH),
            segs: Vec::new(),
            scratch: Vec::with_capacity(70_000),
        }
    }

    fn full(&self) -> bool {
        self.msgs.len() >= SEND_BATCH || self.arena.len() >= SEND_BYTES
    }

    fn push(&mut self, bytes: &[u8], dst: Ipv4Addr, count: Count) {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.msgs.push((start..self.arena.len(), dst, count));
    }
}

/// The egress side of one data plane.
pub(super) struct Egress {
    pub(super) tun: Arc<AsyncFd<File>>,
    pub(super) sock: Arc<AsyncFd<Socket>>,
    pub(super) table: SharedTable,
    pub(super) tunnel: Tunnel,
    pub(super) offload: bool,
    pub(super) counters: Arc<Counters>,
}

impl Egress {
    /// Forwards until the TUN device fails.
    pub(super) async fn run(self) -> io::Result<()> {
        let mut buf = vec![0u8; VNET_HDR_LEN + 65_535];
        let mut batch = Batch::new();
        let mut id: u16 = 0;
        let mut table = snapshot(&self.table);
        let mut last_packet = Instant::now();
        let mut reads = 0usize;
        loop {
            let n = match self.tun.get_ref().read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush(&mut batch).await;
                    reads = 0;
                    if last_packet.elapsed() < SPIN {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    // Park until the device is readable; a read through
                    // the guard clears the readiness when it would block.
                    let mut guard = self.tun.readable().await?;
                    table = snapshot(&self.table);
                    match guard.try_io(|t| t.get_ref().read(&mut buf)) {
                        Ok(r) => r?,
                        Err(_would_block) => continue,
                    }
                }
                Err(e) => return Err(e),
            };
            last_packet = Instant::now();
            let read = buf.get_mut(..n).unwrap_or_default();
            self.packet(read, &table, &mut id, &mut batch);
            if batch.full() {
                self.flush(&mut batch).await;
            }
            reads += 1;
            if reads >= BATCH {
                self.flush(&mut batch).await;
                reads = 0;
                table = snapshot(&self.table);
                tokio::task::yield_now().await;
            }
        }
    }

    /// One read from the TUN device into the batch.
    fn packet(&self, read: &mut [u8], table: &TunnelTable, id: &mut u16, batch: &mut Batch) {
        let counters = &self.counters;
        let (vnet, packet) = if self.offload {
            let Some((vnet, _)) = VnetHdr::parse(read) else {
                counters.count_drop(DropReason::BadInner);
                return;
            };
            (vnet, read.get_mut(VNET_HDR_LEN..).unwrap_or_default())
        } else {
            (VnetHdr::default(), read)
        };
        if packet.first().is_none_or(|b| b >> 4 != 4) {
            counters.count_drop(DropReason::NotIpv4);
            return;
        }
        let Some(dst) = packet
            .get(16..20)
            .and_then(|a| <[u8; 4]>::try_from(a).ok())
            .map(Ipv4Addr::from)
        else {
            counters.count_drop(DropReason::BadInner);
            return;
        };
        let Some(remote) = table.lookup(dst) else {
            counters.count_drop(DropReason::NoRoute);
            return;
        };
        if vnet.is_gso() {
            // Cut to the tunnel: a super-packet is never "too big".
            let max_inner = usize::from(self.tunnel.mtu).saturating_sub(OUTER_HEADER_LEN);
            batch.segs.clear();
            let start = batch.arena.len();
            let r = offload::segment(
                packet,
                &vnet,
                max_inner,
                OUTER_HEADER_LEN,
                &mut batch.arena,
                &mut batch.segs,
            );
            if r.is_err() {
                batch.arena.truncate(start);
                counters.count_drop(DropReason::BadInner);
                return;
            }
            for seg in &batch.segs {
                *id = id.wrapping_add(1);
                let outer = seg.start.saturating_sub(OUTER_HEADER_LEN)..seg.end;
                let Some(bytes) = batch.arena.get_mut(outer.clone()) else {
                    continue;
                };
                match encapsulate_in_place(bytes, remote, &self.tunnel, *id) {
                    Ok(()) => batch.msgs.push((outer, remote, Count::Packet(seg.len()))),
                    Err(_) => counters.count_drop(DropReason::BadInner),
                }
            }
            return;
        }
        if offload::complete_checksum(packet, &vnet).is_err() {
            counters.count_drop(DropReason::BadInner);
            return;
        }
        let Ok(header) = Ipv4Header::parse(packet) else {
            counters.count_drop(DropReason::BadInner);
            return;
        };
        let inner_src = header.src();
        let inner_len = header.total_len();
        *id = id.wrapping_add(1);
        let mut out = std::mem::take(&mut batch.scratch);
        match encapsulate(packet, remote, &self.tunnel, *id, &mut out) {
            Err(_) => counters.count_drop(DropReason::BadInner),
            Ok(Encapsulated::Packet) => batch.push(&out, remote, Count::Packet(inner_len)),
            Ok(Encapsulated::Fragments(ranges)) => {
                for (i, r) in ranges.into_iter().enumerate() {
                    let count = if i == 0 {
                        Count::Packet(inner_len)
                    } else {
                        Count::Fragment
                    };
                    batch.push(out.get(r).unwrap_or_default(), remote, count);
                }
            }
            // RFC 2003 §5.1: the reply goes back to the inner source. It
            // is sent as a locally originated datagram (the raw socket
            // takes whole headers, whatever the protocol), not written
            // into the TUN device: arriving there from the node's own
            // address it would be dropped as a martian unless
            // accept_local were set.
            Ok(Encapsulated::FragmentationNeeded | Encapsulated::TimeExceeded) => {
                batch.push(&out, inner_src, Count::Icmp);
            }
        }
        batch.scratch = out;
    }

    /// Sends everything queued, with as few `sendmmsg` calls as the socket
    /// buffer allows; counts what went and what the kernel refused.
    async fn flush(&self, batch: &mut Batch) {
        let mut done = 0usize;
        while done < batch.msgs.len() {
            let pending = batch.msgs.get(done..).unwrap_or_default();
            let bufs: Vec<&[u8]> = pending
                .iter()
                .map(|(r, _, _)| batch.arena.get(r.clone()).unwrap_or_default())
                .collect();
            let dsts: Vec<Ipv4Addr> = pending.iter().map(|(_, d, _)| *d).collect();
            let sent = match sys::send_batch(self.sock.get_ref(), &bufs, &dsts) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.sock.writable().await {
                        Ok(mut guard) => {
                            guard.clear_ready();
                            continue;
                        }
                        Err(_) => Err(e),
                    }
                }
                r => r,
            };
            match sent {
                Ok(n) => {
                    for (_, _, count) in pending.iter().take(n) {
                        self.count_sent(*count);
                    }
                    done = done.saturating_add(n.max(1));
                    if n == 0 {
                        self.counters.count_drop(DropReason::SendFailed);
                    }
                }
                // The first datagram was refused (no route to the peer,
                // too big): count it and go on with the rest.
                Err(_) => {
                    self.counters.count_drop(DropReason::SendFailed);
                    done = done.saturating_add(1);
                }
            }
        }
        batch.msgs.clear();
        batch.arena.clear();
    }

    fn count_sent(&self, count: Count) {
        let c = &self.counters;
        match count {
            Count::Packet(bytes) => {
                Counters::add(&c.tx_packets, 1);
                Counters::add(&c.tx_bytes, bytes);
            }
            Count::Fragment => {}
            Count::Icmp => Counters::add(&c.icmp_frag_needed, 1),
        }
    }
}
