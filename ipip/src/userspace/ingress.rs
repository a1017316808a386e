//! Ingress: raw socket (many datagrams per `recvmmsg`) → peer check →
//! decapsulation → (coalescing of TCP segments into super-packets) → TUN.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Instant;

use socket2::Socket;
use tokio::io::unix::AsyncFd;

use super::counters::{Counters, DropReason};
use super::dataplane::{BATCH, SPIN, snapshot};
use super::routes::SharedTable;
use super::table::TunnelTable;
use crate::offload::{self, VnetHdr};
use crate::packet::{Ipv4Header, decapsulate};
use crate::sys;

/// The ingress side of one data plane.
pub(super) struct Ingress {
    pub(super) tun: Arc<AsyncFd<File>>,
    pub(super) sock: Arc<AsyncFd<Socket>>,
    pub(super) table: SharedTable,
    pub(super) offload: bool,
    pub(super) counters: Arc<Counters>,
}

impl Ingress {
    /// Forwards until the raw socket's reactor registration fails.
    pub(super) async fn run(self) -> io::Result<()> {
        // One recvmmsg fills up to BATCH buffers; each holds the largest
        // IPv4 datagram, as the kernel reassembles fragmented outer
        // datagrams. (Pages are only touched as far as datagrams reach.)
        let mut bufs = vec![vec![0u8; 65_535]; BATCH];
        let mut lens = vec![0usize; BATCH];
        let mut out = Vec::with_capacity(BATCH * 1600);
        let mut items = Vec::with_capacity(BATCH);
        let mut table = snapshot(&self.table);
        let mut last_packet = Instant::now();
        loop {
            let n = match sys::recv_batch(self.sock.get_ref(), &mut bufs, &mut lens) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if last_packet.elapsed() < SPIN {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    let mut guard = self.sock.readable().await?;
                    table = snapshot(&self.table);
                    match guard.try_io(|s| sys::recv_batch(s.get_ref(), &mut bufs, &mut lens)) {
                        Ok(Ok(n)) => n,
                        Ok(Err(_)) => {
                            Counters::add(&self.counters.socket_errors, 1);
                            continue;
                        }
                        Err(_would_block) => continue,
                    }
                }
                // One bad receive is no reason to stop forwarding.
                Err(_) => {
                    Counters::add(&self.counters.socket_errors, 1);
                    continue;
                }
            };
            last_packet = Instant::now();
            let inners = self.decapsulate_all(&bufs, &lens, n, &table);
            if self.offload {
                out.clear();
                items.clear();
                offload::coalesce(&inners, &mut out, &mut items);
                for item in &items {
                    self.write_item(out.get(item.clone()).unwrap_or_default());
                }
            } else {
                for inner in &inners {
                    match write_tun(self.tun.get_ref(), inner) {
                        Ok(_) => self.count_received(1, inner.len()),
                        Err(_) => self.counters.count_drop(DropReason::TunWriteFailed),
                    }
                }
            }
            if n == BATCH {
                table = snapshot(&self.table);
                tokio::task::yield_now().await;
            }
        }
    }

    /// The inner datagrams of the first `n` received outer datagrams that
    /// come from peers and validate; the rest are counted as drops.
    fn decapsulate_all<'a>(
        &self,
        bufs: &'a [Vec<u8>],
        lens: &[usize],
        n: usize,
        table: &TunnelTable,
    ) -> Vec<&'a [u8]> {
        let counters = &self.counters;
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

    /// Writes one vnet header + packet to the TUN device, counting the
    /// wire packets it stands for.
    fn write_item(&self, item: &[u8]) {
        let (packets, bytes) = wire_packets(item);
        match write_tun(self.tun.get_ref(), item) {
            Ok(_) => self.count_received(packets, bytes),
            Err(_) => {
                for _ in 0..packets {
                    self.counters.count_drop(DropReason::TunWriteFailed);
                }
            }
        }
    }

    fn count_received(&self, packets: usize, bytes: usize) {
        Counters::add(&self.counters.rx_packets, packets);
        Counters::add(&self.counters.rx_bytes, bytes);
    }
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
/// last one possibly less.
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
