//! The system calls of the userspace data plane: a TUN device by name, its
//! interface flags, and the raw IP-protocol-4 socket; plus moving a thread
//! into a fresh network namespace (for tests and tools); bpffs mounts for
//! the `bpf` backend's pins.
//!
//! All of the crate's `unsafe` lives here, one `// SAFETY:` line per block.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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

/// `BPF_FS_MAGIC` (<linux/magic.h>): `statfs`'s type of a bpffs mount.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// True when `path` is on a bpffs mount (`statfs`).
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: an all-zero `statfs` is valid; statfs fills it from a
    // NUL-terminated path that outlives the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(cpath.as_ptr(), &mut st) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs by arch
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Mounts a bpffs at `path` (`mount -t bpf bpf PATH`), where pinned BPF
/// programs and maps outlive the process that loaded them.
pub fn mount_bpffs(path: &Path) -> io::Result<()> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the
    // call; no mount data is passed.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            cpath.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmounts `path` lazily (`umount -l PATH`: detached now, gone once
/// nothing uses it).
pub fn unmount(path: &Path) -> io::Result<()> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: a NUL-terminated path that outlives the call, and a flag.
    let rc = unsafe { libc::umount2(cpath.as_ptr(), libc::MNT_DETACH) };
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

/// `IORING_ENTER_GETEVENTS` (<linux/io_uring.h>): wait for completions.
const IORING_ENTER_GETEVENTS: u32 = 1;

/// How often a wait for writes still in flight is retried after errors
/// other than `EINTR` before the process aborts (see
/// [`WriteRing::wait_in_flight`]).
const IN_FLIGHT_WAIT_TRIES: u32 = 100;

/// An io_uring instance for writing many frames to one non-blocking
/// descriptor with one system call (`io_uring_enter`) instead of one
/// `write` each.
///
/// The kernel reads each frame when its write runs, which may be after
/// `io_uring_enter` returns (a write the file cannot take at once is
/// parked on a poll, or handed to an io-wq worker), and a failed
/// `io_uring_enter` does not cancel writes it already submitted. So
/// [`WriteRing::write_all`] returns only once every write it submitted has
/// completed, on every path: the frames it borrows are never read by the
/// kernel after it returns.
pub struct WriteRing {
    ring: io_uring::IoUring,
    /// `io_uring_enter` failed: entries may sit unsubmitted in the queue,
    /// pointing at frames long gone, so the ring submits nothing more.
    broken: bool,
    /// Test hook: the next `io_uring_enter` submits, then reports this
    /// error without waiting, as a kernel error after submission would.
    #[cfg(test)]
    fail_after_submit: Option<i32>,
}

impl WriteRing {
    /// A ring with room for `entries` writes per call. Fails where
    /// io_uring is unavailable (`kernel.io_uring_disabled`, seccomp).
    pub fn new(entries: u32) -> io::Result<WriteRing> {
        Ok(WriteRing {
            ring: io_uring::IoUring::new(entries)?,
            broken: false,
            #[cfg(test)]
            fail_after_submit: None,
        })
    }

    /// Whether a call failed; a broken ring writes nothing.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Submits what is queued and waits for `want` completions.
    fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(errno) = self.fail_after_submit.take() {
            self.ring.submit()?;
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.ring.submit_and_wait(want)
    }

    /// Moves the completions that arrived into `results` (chunk `base` on)
    /// and returns how many there were.
    fn reap(&mut self, base: usize, results: &mut [i32]) -> usize {
        let mut n = 0usize;
        for cqe in self.ring.completion() {
            let i = usize::try_from(cqe.user_data()).unwrap_or(usize::MAX);
            if let Some(slot) = results.get_mut(base.saturating_add(i)) {
                *slot = cqe.result();
            }
            n = n.saturating_add(1);
        }
        n
    }

    /// After a failed `io_uring_enter`: waits until every write of the
    /// chunk the kernel took has completed, submitting nothing more.
    ///
    /// An error return of `io_uring_enter` does not cancel the writes it
    /// (or an earlier call) already submitted: they still run, and read
    /// the caller's frames when they do. The frames are only borrowed for
    /// this call, so returning before those writes complete would let the
    /// kernel read memory the caller has reused or freed (and write a
    /// stale packet). Waiting with `to_submit` 0 leaves the entries the
    /// kernel did not take in the queue, never to be submitted (the ring
    /// is broken). If even that wait keeps failing, the process cannot
    /// know when the kernel stops reading the frames and aborts.
    fn wait_in_flight(
        &mut self,
        chunk_len: usize,
        base: usize,
        done: &mut usize,
        results: &mut [i32],
    ) {
        let unsubmitted = self.ring.submission().len();
        let submitted = chunk_len.saturating_sub(unsubmitted);
        let mut failures = 0u32;
        while *done < submitted {
            let want = u32::try_from(submitted.saturating_sub(*done)).unwrap_or(u32::MAX);
            // SAFETY: `to_submit` is 0, so no queued entry goes to the
            // kernel; GETEVENTS with no argument pointer only waits for
            // completions of writes already submitted, whose frames are
            // still borrowed by the running `write_all`.
            let r = unsafe {
                self.ring
                    .submitter()
                    .enter::<libc::sigset_t>(0, want, IORING_ENTER_GETEVENTS, None)
            };
            *done = done.saturating_add(self.reap(base, results));
            match r {
                Ok(_) => failures = 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures >= IN_FLIGHT_WAIT_TRIES {
                        eprintln!(
                            "ipip: io_uring_enter keeps failing ({e}) with {} writes in flight \
                             that read frames about to be freed: aborting",
                            submitted.saturating_sub(*done)
                        );
                        std::process::abort();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }

    /// Writes each of `frames` (one write, one packet each) to `fd`, as
    /// many per call as the ring holds, and waits for them all. Returns
    /// each write's result: bytes written, `-errno`, or [`NOT_WRITTEN`]
    /// for frames it never submitted because the ring broke (or was
    /// already broken); the caller writes those itself.
    ///
    /// `fd` should be non-blocking: each write then completes (or fails
    /// with `EAGAIN`) at once. On a blocking descriptor a write that must
    /// wait makes this call wait too: it never returns while a write it
    /// submitted is still in flight, even when `io_uring_enter` fails.
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
            let base = chunk_index.saturating_mul(cap);
            {
                let mut sq = self.ring.submission();
                for (i, frame) in chunk.iter().enumerate() {
                    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
                    let entry = io_uring::opcode::Write::new(raw, frame.as_ptr(), len)
                        .build()
                        .user_data(i as u64);
                    // SAFETY: each entry points at one frame of `frames`,
                    // which outlives every submission of it: entries are
                    // submitted only below, within this call, and this call
                    // returns only after every submitted write completed
                    // (`wait_in_flight` on the error path); after a failure
                    // the ring is broken and never submits the entries
                    // left in its queue. The kernel only reads the frames.
                    if unsafe { sq.push(&entry) }.is_err() {
                        self.broken = true;
                        return results;
                    }
                }
            }
            let mut done = 0usize;
            while done < chunk.len() {
                let r = self.submit_and_wait(chunk.len().saturating_sub(done));
                done = done.saturating_add(self.reap(base, &mut results));
                match r {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                        self.broken = true;
                        self.wait_in_flight(chunk.len(), base, &mut done, &mut results);
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
        let Ok(mut ring) = WriteRing::new(2) else {
            // The host turned io_uring off: the data plane writes one by
            // one then (the namespace tests cover that path's results).
            // Any other reason for no ring is a failure.
            let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .is_ok_and(|v| v.trim() != "0");
            assert!(disabled, "io_uring is enabled, yet no ring could be made");
            return;
        };
        let (mut rx, tx) = std::io::pipe().expect("pipe");
        let frames: [&[u8]; 5] = [b"a", b"bb", b"ccc", b"dddd", b"e"];
        let results = ring.write_all(tx.as_fd(), &frames);
        assert_eq!(results, vec![1, 2, 3, 4, 1]);
        drop(tx);
        let mut got = String::new();
        rx.read_to_string(&mut got).expect("read");
        assert_eq!(got, "abbcccdddde");
    }

    /// A pipe whose buffer is full, so that a write to it waits.
    fn full_pipe() -> (std::io::PipeReader, std::io::PipeWriter) {
        use std::io::Write;
        let (rx, mut tx) = std::io::pipe().expect("pipe");
        // SAFETY (test): F_GETPIPE_SZ reads the pipe's capacity.
        let size = unsafe { libc::fcntl(tx.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let size = usize::try_from(size).expect("F_GETPIPE_SZ");
        tx.write_all(&vec![b'.'; size]).expect("fill the pipe");
        (rx, tx)
    }

    #[test]
    fn a_failed_enter_returns_only_after_the_writes_it_submitted_completed() {
        let Ok(mut ring) = WriteRing::new(4) else {
            // No ring, so none can leave writes in flight (the data plane
            // writes frame by frame then). That must be io_uring turned
            // off, not a ring that fails for another reason.
            let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .is_ok_and(|v| v.trim() != "0");
            assert!(disabled, "io_uring is enabled, yet no ring could be made");
            return;
        };
        let (mut rx, tx) = full_pipe();
        // The write is submitted, cannot complete while the pipe is full,
        // and io_uring_enter then fails: the frame must still be borrowed
        // until the kernel is done with it.
        ring.fail_after_submit = Some(libc::EBUSY);
        let delay = std::time::Duration::from_millis(300);
        let reader = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let mut all = Vec::new();
            let mut buf = [0u8; 4096];
            while !all.ends_with(b"z") {
                let n = rx.read(&mut buf).expect("read");
                assert!(n > 0, "pipe closed before the frame arrived");
                all.extend_from_slice(&buf[..n]);
            }
            all.len()
        });
        let frame = b"z".to_vec();
        let started = std::time::Instant::now();
        let results = ring.write_all(tx.as_fd(), &[&frame]);
        let took = started.elapsed();
        drop(frame);
        assert!(ring.is_broken());
        assert!(
            took >= delay,
            "write_all returned after {took:?}, while its write was still in flight"
        );
        assert_eq!(
            results,
            vec![1],
            "the submitted write completed and is reported"
        );
        assert!(reader.join().expect("reader") > 1);
        // A broken ring submits nothing more.
        assert_eq!(ring.write_all(tx.as_fd(), &[b"x"]), vec![NOT_WRITTEN]);
    }
}
