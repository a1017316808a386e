//! The system calls of the userspace data plane: a TUN device by name, its
//! interface flags, and the raw IP-protocol-4 socket; plus moving a thread
//! into a fresh network namespace (for tests and tools).
//!
//! All of the crate's `unsafe` lives here, one `// SAFETY:` line per block.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::packet::PROTO_IPIP;

/// An `ifreq` whose name is `name`, the rest zeroed.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1 to 15 bytes without NUL"),
        ));
    }
    // SAFETY: `ifreq` is a plain C struct (a byte array and a union of
    // integers, addresses and a pointer); all zero bytes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Ok(req)
}

/// Opens (creating it if needed) the TUN device `name` in IFF_TUN |
/// IFF_NO_PI mode: each read yields one bare IP packet, each write takes one.
/// The file is non-blocking. Equivalent of `ip tuntap add NAME mode tun`,
/// except the device lives only as long as the file.
pub fn open_tun(name: &str) -> io::Result<File> {
    open_tun_flags(name, 0)
}

/// Opens the TUN device `name` as [`open_tun`] does, plus `IFF_VNET_HDR`
/// and offloads (`TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4`, as
/// wireguard-go does): every read and write carries a 10-byte
/// `virtio_net_hdr` ([`crate::offload::VnetHdr`]) in front of the packet,
/// reads may return TCP/IPv4 super-packets of up to 64 KB with partial
/// checksums, and writes may hand the kernel such super-packets.
pub fn open_tun_offload(name: &str) -> io::Result<File> {
    let file = open_tun_flags(name, libc::IFF_VNET_HDR)?;
    let offloads = libc::c_ulong::from(libc::TUN_F_CSUM | libc::TUN_F_TSO4);
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an integer of
    // TUN_F_* flags) and touches no memory of ours; the fd is the open TUN.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETOFFLOAD, offloads) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Opens (creating it) the TAP device `name` with IFF_NAPI: each write
/// takes one Ethernet frame, which the kernel receives through the
/// device's NAPI context and so through GRO. (A TAP device, not TUN:
/// only TAP builds the packet in a page fragment, which is cheaper to
/// allocate and which GRO merges as a fragment rather than as a chain.)
pub fn open_tap_napi(name: &str) -> io::Result<File> {
    // <linux/if_tun.h>; not in the libc crate.
    const IFF_NAPI: libc::c_int = 0x0010;
    open_tun_device(name, libc::IFF_TAP | libc::IFF_NO_PI | IFF_NAPI)
}

/// The hardware (MAC) address of the interface `name` (`ip link show`).
pub fn hw_addr(name: &str) -> io::Result<[u8; 6]> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR fills the `sockaddr` of one `struct ifreq`
    // that `req` points to; the fd is an open AF_INET socket.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR succeeded, so the union holds the address.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data) {
        *m = d as u8;
    }
    Ok(mac)
}

fn open_tun_flags(name: &str, extra: libc::c_int) -> io::Result<File> {
    open_tun_device(name, libc::IFF_TUN | libc::IFF_NO_PI | extra)
}

/// Opens /dev/net/tun, non-blocking, and attaches it (TUNSETIFF) to the
/// device `name`, created if missing, with `flags`.
fn open_tun_device(name: &str, flags: libc::c_int) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is a live,
    // initialised `ifreq` and the fd is the open /dev/net/tun file.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Moves the calling thread into a new, empty network namespace
/// (`unshare(CLONE_NEWNET)`, as `unshare --net` does). The namespace goes
/// away when the thread ends and nothing else refers to it. Needs
/// CAP_SYS_ADMIN.
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: unshare takes a flags integer and touches no memory of ours;
    // CLONE_NEWNET affects only the calling thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets IFF_UP on the interface `name` (`ip link set NAME up`).
pub fn set_link_up(name: &str) -> io::Result<()> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS fills the flags of one `struct ifreq` that `req`
    // points to; the fd is an open AF_INET socket.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS succeeded, so the union holds the flags field.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads one `struct ifreq`; `req` is initialised.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the transmit queue length of the interface `name` (`ip link set
/// NAME txqueuelen LEN`). For a TUN device this is how many packets the
/// kernel queues for the reader before it drops.
pub fn set_tx_queue_len(name: &str, len: u32) -> io::Result<()> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_metric = libc::c_int::try_from(len).unwrap_or(libc::c_int::MAX);
    // SAFETY: SIOCSIFTXQLEN reads one `struct ifreq` (`ifr_qlen`, the int
    // that shares its place with `ifru_metric`); `req` is initialised and
    // the fd is an open AF_INET socket.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFTXQLEN, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The interface index of `name` (`ip link show NAME`), or `NotFound`.
pub fn if_index(name: &str) -> io::Result<u32> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name holds NUL"))?;
    // SAFETY: `cname` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// A non-blocking raw IPv4 socket for IP protocol 4, bound to `local`, with
/// IP_HDRINCL set: it sends whole outer datagrams built by
/// [`crate::packet::encapsulate`] and receives whole ones (outer header
/// included). Works without the kernel's ipip module.
pub fn raw_ipip_socket(local: Ipv4Addr) -> io::Result<Socket> {
    let sock = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(i32::from(PROTO_IPIP))),
    )?;
    sock.set_header_included_v4(true)?;
    sock.set_nonblocking(true)?;
    sock.set_cloexec(true)?;
    // Room for bursts: the data plane drains the queue once per wake-up.
    sock.set_recv_buffer_size(4 << 20)?;
    sock.set_send_buffer_size(4 << 20)?;
    sock.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))?;
    Ok(sock)
}

/// Registers the TUN file with the tokio reactor (inside a runtime).
pub fn async_tun(file: File) -> io::Result<tokio::io::unix::AsyncFd<File>> {
    // SAFETY: a `File` owns its descriptor: it stays open and the same for
    // the file's whole life, which the `AsyncFd` now owns.
    unsafe { tokio::io::unix::AsyncFd::register(file) }.map_err(io::Error::from)
}

/// Registers the raw socket with the tokio reactor (inside a runtime).
pub fn async_socket(sock: Socket) -> io::Result<tokio::io::unix::AsyncFd<Socket>> {
    // SAFETY: a `Socket` owns its descriptor: it stays open and the same for
    // the socket's whole life, which the `AsyncFd` now owns.
    unsafe { tokio::io::unix::AsyncFd::register(sock) }.map_err(io::Error::from)
}

/// Receives up to `bufs.len()` datagrams from `sock` in one `recvmmsg`
/// call, without blocking. Datagram `i` is `bufs[i][..lens[i]]`; a datagram
/// longer than its buffer comes back truncated, with `lens[i]` set to
/// `usize::MAX` so the caller can count it. Returns how many arrived, or
/// `WouldBlock` when none were queued.
pub fn recv_batch(sock: &Socket, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> io::Result<usize> {
    let count = bufs.len().min(lens.len());
    let mut iovecs: Vec<libc::iovec> = bufs
        .iter_mut()
        .take(count)
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iov| {
            // SAFETY: `msghdr` is a plain C struct of pointers and integers;
            // all zero bytes is valid (no name, no control data).
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    let vlen = libc::c_uint::try_from(headers.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: `headers` holds `vlen` initialised `mmsghdr`s, each pointing at
    // one `iovec` in `iovecs`, which points at a live buffer of `iov_len`
    // bytes in `bufs`; all three outlive the call and nothing else touches
    // them meanwhile. A null timeout is allowed.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            headers.as_mut_ptr(),
            vlen,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    for (len, hdr) in lens.iter_mut().zip(&headers).take(n) {
        *len = if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            usize::MAX
        } else {
            usize::try_from(hdr.msg_len).unwrap_or(usize::MAX)
        };
    }
    Ok(n)
}

/// Sends each `bufs[i]` as one datagram to `dsts[i]` (port 0: a raw
/// socket) in one `sendmmsg` call, without blocking. Returns how many were
/// sent (a prefix of the batch), or `WouldBlock` when the socket buffer is
/// full before the first.
pub fn send_batch(sock: &Socket, bufs: &[&[u8]], dsts: &[Ipv4Addr]) -> io::Result<usize> {
    let count = bufs.len().min(dsts.len());
    let mut addrs: Vec<libc::sockaddr_in> = dsts
        .iter()
        .take(count)
        .map(|d| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(d.octets()),
            },
            sin_zero: [0; 8],
        })
        .collect();
    let mut iovecs: Vec<libc::iovec> = bufs
        .iter()
        .take(count)
        .map(|b| libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .zip(addrs.iter_mut())
        .map(|(iov, addr)| {
            // SAFETY: `msghdr` is a plain C struct of pointers and integers;
            // all zero bytes is valid (no control data).
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = std::ptr::from_mut(addr).cast();
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdr.msg_iov = iov;
            hdr.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            }
        })
        .collect();
    let vlen = libc::c_uint::try_from(headers.len()).unwrap_or(libc::c_uint::MAX);
    // SAFETY: `headers` holds `vlen` initialised `mmsghdr`s, each pointing at
    // one `sockaddr_in` in `addrs` and one `iovec` in `iovecs`, which points
    // at a live buffer of `iov_len` bytes in `bufs`; the kernel only reads
    // the buffers (sendmmsg writes `msg_len` alone); all of them outlive
    // the call.
    let n = unsafe {
        libc::sendmmsg(
            sock.as_raw_fd(),
            headers.as_mut_ptr(),
            vlen,
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Waits until one of `fds` (descriptor, `POLLIN`/`POLLOUT` wanted) is
/// ready or `timeout` passes; returns which are ready, as one flag per
/// entry. Interrupted waits return no ready descriptors.
pub fn poll(
    fds: &[(std::os::fd::BorrowedFd<'_>, i16)],
    timeout: std::time::Duration,
) -> io::Result<Vec<bool>> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, events)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: *events,
            revents: 0,
        })
        .collect();
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    let nfds = libc::nfds_t::try_from(polls.len()).unwrap_or(0);
    // SAFETY: `polls` holds `nfds` initialised `pollfd`s that live across
    // the call; poll writes only their `revents`.
    let rc = unsafe { libc::poll(polls.as_mut_ptr(), nfds, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; polls.len()]);
        }
        return Err(e);
    }
    Ok(polls.iter().map(|p| p.revents != 0).collect())
}

/// What [`WriteRing::write_all`] reports for a frame it did not write.
pub const NOT_WRITTEN: i32 = -libc::ECANCELED;

/// An io_uring instance for writing many frames to one non-blocking
/// descriptor with one system call (`io_uring_enter`) instead of one
/// `write` each.
pub struct WriteRing {
    ring: io_uring::IoUring,
    /// `io_uring_enter` failed: entries may sit unsubmitted in the queue,
    /// pointing at frames long gone, so the ring submits nothing more.
    broken: bool,
}

impl WriteRing {
    /// A ring with room for `entries` writes per call. Fails where
    /// io_uring is unavailable (`kernel.io_uring_disabled`, seccomp).
    pub fn new(entries: u32) -> io::Result<WriteRing> {
        Ok(WriteRing {
            ring: io_uring::IoUring::new(entries)?,
            broken: false,
        })
    }

    /// Whether a call failed; a broken ring writes nothing.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Writes each of `frames` (one write, one packet each) to `fd`, as
    /// many per call as the ring holds, and waits for them all. Returns
    /// each write's result: bytes written, `-errno`, or [`NOT_WRITTEN`]
    /// for frames it never submitted because the ring broke (or was
    /// already broken); the caller writes those itself.
    ///
    /// `fd` must be non-blocking: each write then completes (or fails with
    /// `EAGAIN`) while `io_uring_enter` runs, so none is left in flight.
    pub fn write_all(&mut self, fd: std::os::fd::BorrowedFd<'_>, frames: &[&[u8]]) -> Vec<i32> {
        let mut results = vec![NOT_WRITTEN; frames.len()];
        if self.broken {
            return results;
        }
        let cap = usize::try_from(self.ring.params().sq_entries())
            .unwrap_or(1)
            .max(1);
        let raw = io_uring::types::Fd(fd.as_raw_fd());
        for (chunk_index, chunk) in frames.chunks(cap).enumerate() {
            {
                let mut sq = self.ring.submission();
                for (i, frame) in chunk.iter().enumerate() {
                    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
                    let entry = io_uring::opcode::Write::new(raw, frame.as_ptr(), len)
                        .build()
                        .user_data(i as u64);
                    // SAFETY: each entry points at one frame of `frames`,
                    // which outlives every submission of it: entries are
                    // submitted only below, within this call, where the
                    // writes on a non-blocking descriptor complete before
                    // io_uring_enter returns; after a failure the ring is
                    // broken and never submits again. The kernel only
                    // reads the frames.
                    if unsafe { sq.push(&entry) }.is_err() {
                        self.broken = true;
                        return results;
                    }
                }
            }
            let mut done = 0usize;
            while done < chunk.len() {
                let r = self.ring.submit_and_wait(chunk.len() - done);
                for cqe in self.ring.completion() {
                    let i = usize::try_from(cqe.user_data()).unwrap_or(usize::MAX);
                    let at = chunk_index.saturating_mul(cap).saturating_add(i);
                    if let Some(slot) = results.get_mut(at) {
                        *slot = cqe.result();
                    }
                    done += 1;
                }
                match r {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                        self.broken = true;
                        return results;
                    }
                    _ => {}
                }
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn a_write_ring_writes_every_frame_in_order_across_chunks() {
        let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .is_ok_and(|v| v.trim() != "0");
        if disabled {
            // The host turned io_uring off: the data plane writes one by
            // one then (the namespace tests cover that path's results).
            return;
        }
        let mut ring = WriteRing::new(2).expect("io_uring is enabled here");
        let (mut rx, tx) = std::io::pipe().expect("pipe");
        let frames: [&[u8]; 5] = [b"a", b"bb", b"ccc", b"dddd", b"e"];
        let results = ring.write_all(tx.as_fd(), &frames);
        assert_eq!(results, vec![1, 2, 3, 4, 1]);
        drop(tx);
        let mut got = String::new();
        rx.read_to_string(&mut got).expect("read");
        assert_eq!(got, "abbcccdddde");
    }
}
