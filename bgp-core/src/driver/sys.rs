//! Socket options that neither std, tokio nor socket2 expose: TCP-MD5
//! signatures (RFC 2385) and the minimum TTL / hop limit of GTSM (RFC 5082).
//! The only `unsafe` in the crate lives here.

#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// `TCP_MD5SIG` from linux/tcp.h.
const TCP_MD5SIG: libc::c_int = 14;
/// `IP_MINTTL` from linux/in.h.
const IP_MINTTL: libc::c_int = 21;
/// `IPV6_MINHOPCOUNT` from linux/in6.h.
const IPV6_MINHOPCOUNT: libc::c_int = 73;
/// `TCP_MD5SIG_MAXKEYLEN` from linux/tcp.h.
pub const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` from linux/tcp.h.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<T>())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option too large"))?;
    // SAFETY: `value` points to a live, initialised `T` of `len` bytes for
    // the duration of the call, and the kernel only reads it.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `TCP_MD5SIG_EXT` from linux/tcp.h (Linux 4.13): `tcp_md5sig` with flags.
const TCP_MD5SIG_EXT: libc::c_int = 32;
/// `TCP_MD5SIG_FLAG_PREFIX`: the key applies to `prefixlen` bits of `addr`.
const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;

/// Sets (or with an empty key, removes) the TCP-MD5 key a listener uses
/// with every peer whose address is in `peer`/`prefix_len` (a dynamic
/// neighbour range; the kernel picks the longest matching key).
pub fn set_tcp_md5_prefix(
    socket: &impl AsRawFd,
    peer: std::net::IpAddr,
    prefix_len: u8,
    key: &[u8],
) -> io::Result<()> {
    let mut sig = md5sig(SocketAddr::new(peer, 0), key)?;
    sig.flags = TCP_MD5SIG_FLAG_PREFIX;
    sig.prefixlen = prefix_len;
    setsockopt(socket, libc::IPPROTO_TCP, TCP_MD5SIG_EXT, &sig)
}

/// A `tcp_md5sig` for `peer` with `key`.
fn md5sig(peer: SocketAddr, key: &[u8]) -> io::Result<TcpMd5Sig> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP-MD5 key longer than 80 bytes",
        ));
    }
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let raw = socket2::SockAddr::from(peer);
    let raw_len = usize::try_from(raw.len())
        .unwrap_or(0)
        .min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: both regions are valid for `raw_len` bytes (bounded by the
    // size of sockaddr_storage) and do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(
            raw.as_ptr().cast::<u8>(),
            (&mut sig.addr as *mut libc::sockaddr_storage).cast::<u8>(),
            raw_len,
        );
    }
    sig.keylen = u16::try_from(key.len()).unwrap_or(0);
    if let Some(dst) = sig.key.get_mut(..key.len()) {
        dst.copy_from_slice(key);
    }
    Ok(sig)
}

/// Sets (or with an empty key, removes) the TCP-MD5 key used with `peer`
/// on `socket`: on a listener it applies to connections from `peer`, on a
/// connecting socket to its connection (RFC 2385; `ip tcp_metrics` shows
/// nothing of it, `ss -i` does not either; BIRD's `password`).
pub fn set_tcp_md5(socket: &impl AsRawFd, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    let sig = md5sig(SocketAddr::new(peer.ip(), 0), key)?;
    setsockopt(socket, libc::IPPROTO_TCP, TCP_MD5SIG, &sig)
}

/// Sends with TTL / hop limit 255. Set on a listener so the handshake of
/// accepted connections already passes a GTSM peer's minimum TTL.
pub fn set_max_ttl(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let max: libc::c_int = 255;
    if ipv6 {
        setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &max)
    } else {
        setsockopt(socket, libc::IPPROTO_IP, libc::IP_TTL, &max)
    }
}

/// GTSM (RFC 5082 §3): send with TTL / hop limit 255 and drop anything that
/// arrived with fewer than `256 - hops` left, so only a peer `hops` away can
/// reach the session.
pub fn set_ttl_security(socket: &impl AsRawFd, ipv6: bool, hops: u8) -> io::Result<()> {
    let min: libc::c_int = 256 - libc::c_int::from(hops.max(1));
    set_max_ttl(socket, ipv6)?;
    if ipv6 {
        setsockopt(socket, libc::IPPROTO_IPV6, IPV6_MINHOPCOUNT, &min)
    } else {
        setsockopt(socket, libc::IPPROTO_IP, IP_MINTTL, &min)
    }
}
