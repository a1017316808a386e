//! Egress: TUN → (segmentation of super-packets) → longest-prefix lookup →
//! encapsulation → the GRO device (`gro.rs`) for bulk TCP, the raw socket
//! (many datagrams per `sendmmsg`) for everything else.

// Bytes from outside the process are parsed here: no panics and no
// unchecked arithmetic outside tests (the lint set of bgp-core's `wire`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::counters::{Counters, DropReason};
use super::gro::{ETH_HLEN, GroDevice};
use super::limits::BATCH;
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
/// After a super-packet to some destination, how long that destination's
/// TCP segments with payload keep taking the GRO path. A flow's small
/// segments must not overtake its big ones still queued for GRO (the
/// receiver would see reordering); a flow that has gone quiet gets the
/// raw socket's lower latency back.
const GRO_STICKY: Duration = Duration::from_millis(1);
/// Longest wait for room in the GRO device's queue before a datagram is
/// counted as dropped.
const GRO_WAIT: Duration = Duration::from_millis(100);

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

/// Outer datagrams waiting to be sent: their bytes back to back in
/// `arena`; `msgs` go on the raw socket (one `sendmmsg`), `gro` to the GRO
/// device, each list in the order read.
struct Batch {
    arena: Vec<u8>,
    msgs: Vec<(Range<usize>, Ipv4Addr, Count)>,
    gro: Vec<(Range<usize>, Count)>,
    segs: Vec<Range<usize>>,
    scratch: Vec<u8>,
}

impl Batch {
    fn empty() -> Batch {
        Batch {
            arena: Vec::new(),
            msgs: Vec::new(),
            gro: Vec::new(),
            segs: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn new() -> Batch {
        Batch {
            arena: Vec::with_capacity(SEND_BYTES + 70_000),
            msgs: Vec::with_capacity(SEND_BATCH),
            gro: Vec::with_capacity(SEND_BATCH),
            segs: Vec::new(),
            scratch: Vec::with_capacity(70_000),
        }
    }

    fn full(&self) -> bool {
        self.msgs.len() >= SEND_BATCH || self.arena.len() >= SEND_BYTES
    }

    fn is_empty(&self) -> bool {
        self.msgs.is_empty() && self.gro.is_empty()
    }

    /// Queues `eth` + `bytes` as one frame for the GRO device.
    fn push_frame(&mut self, eth: &[u8; ETH_HLEN], bytes: &[u8], count: Count) {
        let start = self.arena.len();
        self.arena.extend_from_slice(eth);
        self.arena.extend_from_slice(bytes);
        self.gro.push((start..self.arena.len(), count));
    }

    fn push(&mut self, bytes: &[u8], dst: Ipv4Addr, count: Count) {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        self.msgs.push((start..self.arena.len(), dst, count));
    }
}

/// The egress direction of one data plane.
pub(super) struct Egress {
    tun: Arc<File>,
    sock: Arc<Socket>,
    tunnel: Tunnel,
    offload: bool,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    buf: Vec<u8>,
    batch: Batch,
    id: u16,
    gro: Option<GroDevice>,
    /// Destinations (tunnel peers) that got a super-packet lately, and when.
    recent_bulk: Vec<(Ipv4Addr, Instant)>,
}

impl Egress {
    pub(super) fn new(
        tun: Arc<File>,
        sock: Arc<Socket>,
        tunnel: Tunnel,
        offload: bool,
        counters: Arc<Counters>,
        stop: Arc<AtomicBool>,
        gro: Option<GroDevice>,
    ) -> Egress {
        Egress {
            tun,
            sock,
            tunnel,
            offload,
            counters,
            stop,
            buf: vec![0u8; VNET_HDR_LEN + 65_535],
            batch: Batch::new(),
            id: 0,
            gro,
            recent_bulk: Vec::new(),
        }
    }

    /// Reads what the TUN device holds, up to one batch, and sends it.
    /// Returns whether there was anything; fails when the TUN device does.
    pub(super) fn step(&mut self, table: &TunnelTable) -> io::Result<bool> {
        let mut reads = 0usize;
        while reads < BATCH && !self.batch.full() {
            let n = match (&*self.tun).read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            reads = reads.saturating_add(1);
            let mut buf = std::mem::take(&mut self.buf);
            let mut batch = std::mem::replace(&mut self.batch, Batch::empty());
            self.packet(buf.get_mut(..n).unwrap_or_default(), table, &mut batch);
            self.buf = buf;
            self.batch = batch;
        }
        if !self.batch.is_empty() {
            self.flush()?;
        }
        Ok(reads > 0)
    }

    /// One read from the TUN device into the batch.
    fn packet(&mut self, read: &mut [u8], table: &TunnelTable, batch: &mut Batch) {
        let counters = Arc::clone(&self.counters);
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
        let via_gro = self.gro.is_some() && self.bulk(packet, &vnet, remote);
        // The kernel forwards what the GRO device takes in, which costs the
        // outer header one hop of TTL: start one higher, so both paths put
        // the same TTL on the wire.
        let tunnel = if via_gro {
            Tunnel {
                ttl: self.tunnel.ttl.saturating_add(1),
                ..self.tunnel
            }
        } else {
            self.tunnel
        };
        // A frame for the GRO device starts with its Ethernet header: room
        // for it in front of the outer header, so each frame is one buffer.
        let eth = match &self.gro {
            Some(g) if via_gro => Some(*g.eth_header()),
            _ => None,
        };
        let headroom = OUTER_HEADER_LEN.saturating_add(if eth.is_some() { ETH_HLEN } else { 0 });
        if vnet.is_gso() {
            // Cut to the tunnel: a super-packet is never "too big".
            let max_inner = usize::from(self.tunnel.mtu).saturating_sub(OUTER_HEADER_LEN);
            batch.segs.clear();
            let start = batch.arena.len();
            let r = offload::segment(
                packet,
                &vnet,
                max_inner,
                headroom,
                &mut batch.arena,
                &mut batch.segs,
            );
            if r.is_err() {
                batch.arena.truncate(start);
                counters.count_drop(DropReason::BadInner);
                return;
            }
            for seg in &batch.segs {
                self.id = self.id.wrapping_add(1);
                let outer = seg.start.saturating_sub(OUTER_HEADER_LEN)..seg.end;
                let Some(bytes) = batch.arena.get_mut(outer.clone()) else {
                    continue;
                };
                let count = Count::Packet(seg.len());
                match (encapsulate_in_place(bytes, remote, &tunnel, self.id), eth) {
                    (Ok(()), Some(eth)) => {
                        let frame = outer.start.saturating_sub(ETH_HLEN)..outer.end;
                        if let Some(head) = batch.arena.get_mut(frame.start..outer.start) {
                            head.copy_from_slice(&eth);
                        }
                        batch.gro.push((frame, count));
                    }
                    (Ok(()), None) => batch.msgs.push((outer, remote, count)),
                    (Err(_), _) => counters.count_drop(DropReason::BadInner),
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
        self.id = self.id.wrapping_add(1);
        let mut out = std::mem::take(&mut batch.scratch);
        match encapsulate(packet, remote, &tunnel, self.id, &mut out) {
            Err(_) => counters.count_drop(DropReason::BadInner),
            Ok(Encapsulated::Packet) => match &eth {
                Some(eth) => batch.push_frame(eth, &out, Count::Packet(inner_len)),
                None => batch.push(&out, remote, Count::Packet(inner_len)),
            },
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

    /// Whether a packet to `remote` takes the GRO path: a super-packet
    /// does (and marks `remote` as busy with bulk), and so does a TCP
    /// segment with payload that fits the tunnel, to a peer that got a
    /// super-packet within [`GRO_STICKY`]. The rest (ICMP, pure ACKs,
    /// quiet flows) goes on the raw socket: GRO has nothing to merge
    /// there, and the NAPI thread's wake-up would only add latency. So do
    /// packets too big for the tunnel: their fragments or ICMP answer go
    /// on the raw socket, with the raw path's outer TTL.
    fn bulk(&mut self, packet: &[u8], vnet: &VnetHdr, remote: Ipv4Addr) -> bool {
        let now = Instant::now();
        self.recent_bulk
            .retain(|(_, at)| now.duration_since(*at) < GRO_STICKY);
        if vnet.is_gso() {
            match self
                .recent_bulk
                .iter_mut()
                .find(|(peer, _)| *peer == remote)
            {
                Some(entry) => entry.1 = now,
                None => self.recent_bulk.push((remote, now)),
            }
            return true;
        }
        let fits = packet.len().saturating_add(OUTER_HEADER_LEN) <= usize::from(self.tunnel.mtu);
        fits && offload::carries_tcp_data(packet)
            && self.recent_bulk.iter().any(|(peer, _)| *peer == remote)
    }

    /// Sends everything queued: the GRO path's datagrams one write each, the
    /// rest with as few `sendmmsg` calls as the socket buffer allows;
    /// counts what went and what the kernel refused. Fails only if waiting
    /// for room fails.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(gro) = &mut self.gro {
            let batch = &self.batch;
            let frames: Vec<&[u8]> = batch
                .gro
                .iter()
                .map(|(r, _)| batch.arena.get(r.clone()).unwrap_or_default())
                .collect();
            let counters = &self.counters;
            gro.send_all(&frames, GRO_WAIT, |i, r| match r {
                Ok(()) => {
                    if let Some((_, count)) = batch.gro.get(i) {
                        count_sent(counters, *count);
                    }
                    Counters::add(&counters.tx_gro, 1);
                }
                Err(_) => counters.count_drop(DropReason::SendFailed),
            });
        }
        self.batch.gro.clear();
        let batch = &mut self.batch;
        let mut done = 0usize;
        while done < batch.msgs.len() && !self.stop.load(Ordering::Relaxed) {
            let pending = batch.msgs.get(done..).unwrap_or_default();
            let bufs: Vec<&[u8]> = pending
                .iter()
                .map(|(r, _, _)| batch.arena.get(r.clone()).unwrap_or_default())
                .collect();
            let dsts: Vec<Ipv4Addr> = pending.iter().map(|(_, d, _)| *d).collect();
            match sys::send_batch(&self.sock, &bufs, &dsts) {
                Ok(n) => {
                    for (_, _, count) in pending.iter().take(n) {
                        count_sent(&self.counters, *count);
                    }
                    if n == 0 {
                        self.counters.count_drop(DropReason::SendFailed);
                    }
                    done = done.saturating_add(n.max(1));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    sys::poll(
                        &[(self.sock.as_fd(), libc::POLLOUT)],
                        Duration::from_millis(100),
                    )?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
        Ok(())
    }
}

fn count_sent(c: &Counters, count: Count) {
    match count {
        Count::Packet(bytes) => {
            Counters::add(&c.tx_packets, 1);
            Counters::add(&c.tx_bytes, bytes);
        }
        Count::Fragment => {}
        Count::Icmp => Counters::add(&c.icmp_frag_needed, 1),
    }
}
