//! Ingress: raw socket (many datagrams per `recvmmsg`) → peer check →
//! decapsulation → (coalescing of TCP segments into super-packets) → TUN.

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
use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use socket2::Socket;

use super::counters::{Counters, DropReason};
use super::limits::BATCH;
use super::table::TunnelTable;
use crate::offload::{self, VnetHdr};
use crate::packet::{Ipv4Header, decapsulate};
use crate::sys;

/// The ingress direction of one data plane.
pub(super) struct Ingress {
    tun: Arc<File>,
    sock: Arc<Socket>,
    offload: bool,
    /// The largest inner packet the tunnel carries (underlay MTU − 20).
    max_inner: usize,
    counters: Arc<Counters>,
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
    out: Vec<u8>,
    items: Vec<Range<usize>>,
}

impl Ingress {
    pub(super) fn new(
        tun: Arc<File>,
        sock: Arc<Socket>,
        offload: bool,
        max_inner: usize,
        counters: Arc<Counters>,
    ) -> Ingress {
        Ingress {
            tun,
            sock,
            offload,
            max_inner,
            counters,
            // One recvmmsg fills up to BATCH buffers; each holds the
            // largest IPv4 datagram, as the kernel reassembles fragmented
            // outer datagrams. (Pages are only touched as far as datagrams
            // reach.)
            bufs: vec![vec![0u8; 65_535]; BATCH],
            lens: vec![0usize; BATCH],
            out: Vec::with_capacity(BATCH * 1600),
            items: Vec::with_capacity(BATCH),
        }
    }

    /// Receives one batch from the raw socket and writes what it carries to
    /// the TUN device. Returns whether anything arrived.
    pub(super) fn step(&mut self, table: &TunnelTable) -> bool {
        let n = match sys::recv_batch(&self.sock, &mut self.bufs, &mut self.lens) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            // One bad receive is no reason to stop forwarding.
            Err(_) => {
                Counters::add(&self.counters.socket_errors, 1);
                return true;
            }
        };
        let inners = decapsulate_all(&self.counters, &self.bufs, &self.lens, n, table);
        let merged = inners.iter().filter(|i| i.len() > self.max_inner).count();
        Counters::add(&self.counters.rx_merged, merged);
        if self.offload {
            self.out.clear();
            self.items.clear();
            offload::coalesce(&inners, self.max_inner, &mut self.out, &mut self.items);
            for item in &self.items {
                let item = self.out.get(item.clone()).unwrap_or_default();
                let (packets, bytes) = wire_packets(item);
                self.write(item, packets, bytes);
            }
        } else {
            for inner in &inners {
                self.out.clear();
                self.items.clear();
                if inner.len() > self.max_inner
                    && offload::cut_oversized(inner, self.max_inner, &mut self.out, &mut self.items)
                {
                    for range in &self.items {
                        let seg = self.out.get(range.clone()).unwrap_or_default();
                        self.write(seg, 1, seg.len());
                    }
                } else {
                    self.write(inner, 1, inner.len());
                }
            }
        }
        n > 0
    }

    /// Writes one packet (with its vnet header, if offloads are on) to the
    /// TUN device, counting the wire packets it stands for.
    fn write(&self, bytes: &[u8], packets: usize, inner_bytes: usize) {
        match write_tun(&self.tun, bytes) {
            Ok(_) => {
                Counters::add(&self.counters.rx_packets, packets);
                Counters::add(&self.counters.rx_bytes, inner_bytes);
            }
            Err(_) => {
                for _ in 0..packets {
                    self.counters.count_drop(DropReason::TunWriteFailed);
                }
            }
        }
    }
}

/// The inner datagrams of the first `n` received outer datagrams that
/// come from peers and validate; the rest are counted as drops.
fn decapsulate_all<'a>(
    counters: &Counters,
    bufs: &'a [Vec<u8>],
    lens: &[usize],
    n: usize,
    table: &TunnelTable,
) -> Vec<&'a [u8]> {
    let mut inners = Vec::with_capacity(n);
    for (buf, len) in bufs.iter().zip(lens).take(n) {
        let Some(outer) = buf.get(..*len) else {
            // Truncated: longer than any IPv4 datagram can be.
            counters.count_drop(DropReason::BadOuter);
            continue;
        };
        // The peer check comes first: nothing from a stranger is parsed
        // further, and its drops are counted under their own name.
        let Ok(header) = Ipv4Header::parse(outer) else {
            counters.count_drop(DropReason::BadOuter);
            continue;
        };
        if !table.is_peer(header.src()) {
            counters.count_drop(DropReason::UnknownPeer);
            continue;
        }
        let Ok(d) = decapsulate(outer) else {
            counters.count_drop(DropReason::BadOuter);
            continue;
        };
        inners.push(d.inner);
    }
    inners
}

/// One packet into the TUN device: a TUN write takes the whole packet or
/// fails, never part of it.
fn write_tun(tun: &File, bytes: &[u8]) -> io::Result<usize> {
    let mut tun = tun;
    tun.write(bytes)
}

/// How many received inner packets, and how many of their bytes, one
/// coalesced item (vnet header + packet) stands for: every segment of a
/// super-packet carries the headers plus `gso_size` payload bytes, the
/// last one possibly less. (For a packet the kernel merged before we saw
/// it, this counts the segments it will be cut into, at most the MTU: an
/// estimate of what crossed the wire.)
fn wire_packets(item: &[u8]) -> (usize, usize) {
    let Some((vnet, packet)) = VnetHdr::parse(item) else {
        return (0, 0);
    };
    if !vnet.is_gso() || vnet.gso_size == 0 {
        return (1, packet.len());
    }
    let hdrs = usize::from(vnet.hdr_len);
    let payload = packet.len().saturating_sub(hdrs);
    let packets = payload.div_ceil(usize::from(vnet.gso_size)).max(1);
    let bytes = payload.saturating_add(hdrs.saturating_mul(packets));
    (packets, bytes)
}
