//! [`Monitor`]: a socket subscribed to the kernel's change notifications
//! (`ip monitor route link address nexthop`).

use std::io;

use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

use crate::consts::{
    RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK, RTNLGRP_NEXTHOP,
};
use crate::header::Messages;
use crate::socket::{self, RECEIVE_CHUNK, receive};

/// A multicast group of `NETLINK_ROUTE` (`enum rtnetlink_groups`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Group {
    /// Links created, changed or removed.
    Link,
    /// IPv4 addresses added or removed.
    Ipv4Address,
    /// IPv4 routes.
    Ipv4Route,
    /// IPv6 routes.
    Ipv6Route,
    /// Nexthop objects (Linux ≥ 5.3; on older kernels joining it is
    /// skipped, as there is nothing to watch).
    Nexthop,
}

impl Group {
    fn number(self) -> u32 {
        match self {
            Self::Link => RTNLGRP_LINK,
            Self::Ipv4Address => RTNLGRP_IPV4_IFADDR,
            Self::Ipv4Route => RTNLGRP_IPV4_ROUTE,
            Self::Ipv6Route => RTNLGRP_IPV6_ROUTE,
            Self::Nexthop => RTNLGRP_NEXTHOP,
        }
    }
}

/// What one receive got.
#[derive(Debug)]
pub enum Received<'a> {
    /// A datagram of notifications.
    Messages(Messages<'a>),
    /// Notifications were lost (`ENOBUFS`: the socket's buffer overflowed,
    /// or a datagram was larger than the receive buffer): anything may have
    /// changed. Until every datagram still queued has been read (or
    /// [drained](Monitor::drain)), the kernel drops each new notification
    /// without reporting it again (the socket stays "congested"), so read
    /// the state again (a dump) only after the queue is empty: a dump made
    /// before misses the changes made between it and the end of the
    /// congestion.
    Overrun,
}

/// A `NETLINK_ROUTE` socket joined to some multicast groups, in the
/// network namespace of the thread that opened it.
#[derive(Debug)]
pub struct Monitor {
    socket: Socket,
    buf: Vec<u8>,
}

impl Monitor {
    /// Joins `groups`.
    ///
    /// # Errors
    /// When the socket cannot be created or bound, or a group other than
    /// [`Group::Nexthop`] cannot be joined.
    pub fn open(groups: &[Group]) -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        for group in groups {
            match socket.add_membership(group.number()) {
                Ok(()) => {}
                // A kernel without nexthop objects has no such group.
                Err(_) if *group == Group::Nexthop => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            socket,
            buf: Vec::with_capacity(RECEIVE_CHUNK),
        })
    }

    /// Asks for a receive buffer of `bytes` (the kernel caps it at
    /// `net.core.rmem_max`): room for a burst of notifications.
    ///
    /// # Errors
    /// When the socket refuses.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        self.socket.set_rx_buf_sz(bytes)
    }

    /// Waits for the next datagram of notifications.
    ///
    /// # Errors
    /// When the socket fails other than by losing notifications.
    pub fn recv(&mut self) -> io::Result<Received<'_>> {
        match receive(&self.socket, &mut self.buf) {
            Ok(socket::Received::Whole) => Ok(Received::Messages(Messages::new(&self.buf))),
            Ok(socket::Received::Cut { .. }) => Ok(Received::Overrun),
            Err(e) if is_overrun(&e) => Ok(Received::Overrun),
            Err(e) => Err(e),
        }
    }

    /// The next datagram of notifications if one is queued, without
    /// waiting (`None`: none is).
    ///
    /// # Errors
    /// When the socket fails other than by losing notifications.
    pub fn try_recv(&mut self) -> io::Result<Option<Received<'_>>> {
        self.socket.set_non_blocking(true)?;
        let got = receive(&self.socket, &mut self.buf);
        self.socket.set_non_blocking(false)?;
        match got {
            Ok(socket::Received::Whole) => Ok(Some(Received::Messages(Messages::new(&self.buf)))),
            Ok(socket::Received::Cut { .. }) => Ok(Some(Received::Overrun)),
            Err(e) if is_overrun(&e) => Ok(Some(Received::Overrun)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Discards every datagram already queued, without waiting: after
    /// [`Monitor::recv`], what makes a burst of changes cost one look.
    ///
    /// # Errors
    /// When the socket fails other than by losing notifications.
    pub fn drain(&mut self) -> io::Result<()> {
        self.socket.set_non_blocking(true)?;
        let drained = loop {
            match receive(&self.socket, &mut self.buf) {
                Ok(_) => {}
                Err(e) if is_overrun(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.socket.set_non_blocking(false)?;
        drained
    }
}

/// `ENOBUFS`: the kernel dropped notifications it could not queue.
fn is_overrun(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOBUFS)
}
