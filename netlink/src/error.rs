//! Kernel errors, with the errno cases callers act on named (rtnetlink
//! leaves callers to dig numbers out of an `ErrorMessage`).

use std::fmt;
use std::io;

/// The kernel's reason for refusing a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `EEXIST`: it exists (a route added without `NLM_F_REPLACE`, an
    /// address added twice).
    Exists,
    /// `ENODEV`: no such device.
    NoDevice,
    /// `ENETUNREACH`: the gateway is not reachable (not on a connected
    /// subnet, and the route is not `onlink`).
    NetworkUnreachable,
    /// `EINVAL`: the kernel found the request invalid (e.g. `onlink` on a
    /// device that is down, a gateway of the wrong family, an MTU out of
    /// range).
    Invalid,
    /// `ESRCH`: no such route (a delete of a route already gone).
    NoSuchRoute,
    /// `EOPNOTSUPP`: not supported (a link kind whose module is missing,
    /// nexthop objects before Linux 5.3).
    NotSupported,
    /// Any other errno.
    Other(i32),
}

impl Errno {
    /// From a positive errno.
    pub fn from_raw(errno: i32) -> Self {
        match errno {
            libc::EEXIST => Self::Exists,
            libc::ENODEV => Self::NoDevice,
            libc::ENETUNREACH => Self::NetworkUnreachable,
            libc::EINVAL => Self::Invalid,
            libc::ESRCH => Self::NoSuchRoute,
            libc::EOPNOTSUPP => Self::NotSupported,
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
            Self::NotSupported => libc::EOPNOTSUPP,
            Self::Other(errno) => errno,
        }
    }

    /// The errno of an I/O error that carries one.
    pub fn of(error: &io::Error) -> Option<Self> {
        error.raw_os_error().map(Self::from_raw)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Exists => "EEXIST",
            Self::NoDevice => "ENODEV",
            Self::NetworkUnreachable => "ENETUNREACH",
            Self::Invalid => "EINVAL",
            Self::NoSuchRoute => "ESRCH",
            Self::NotSupported => "EOPNOTSUPP",
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

impl From<Errno> for io::Error {
    fn from(errno: Errno) -> Self {
        io::Error::from_raw_os_error(errno.raw())
    }
}

/// Why a request on the control handle ([`crate::Control`]) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused it.
    #[error("{0}")]
    Kernel(Errno),
    /// The socket could not be opened, or the connection's thread could
    /// not start.
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// rtnetlink failed other than by a kernel refusal (a reply it did not
    /// expect, a connection that closed).
    #[error("rtnetlink: {0}")]
    Rtnetlink(rtnetlink::Error),
}

impl Error {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Kernel(errno) => Some(*errno),
            Self::Io(_) | Self::Rtnetlink(_) => None,
        }
    }
}

impl From<rtnetlink::Error> for Error {
    fn from(error: rtnetlink::Error) -> Self {
        match error {
            rtnetlink::Error::NetlinkError(message) => match message.code {
                Some(code) => Self::Kernel(Errno::from_raw(code.get().saturating_neg())),
                None => Self::Rtnetlink(rtnetlink::Error::NetlinkError(message)),
            },
            other => Self::Rtnetlink(other),
        }
    }
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
            libc::EOPNOTSUPP,
            libc::EPERM,
        ] {
            assert_eq!(Errno::from_raw(errno).raw(), errno);
        }
        assert_eq!(Errno::from_raw(libc::ENODEV), Errno::NoDevice);
        assert_eq!(Errno::from_raw(libc::EPERM), Errno::Other(libc::EPERM));
    }

    #[test]
    fn an_errno_names_itself_and_its_number() {
        let text = Errno::NoDevice.to_string();
        assert!(text.contains("ENODEV 19"), "{text}");
        assert!(text.starts_with("No such device"), "{text}");
    }

    #[test]
    fn an_rtnetlink_refusal_becomes_the_kernel_errno() {
        let mut message = netlink_packet_core::ErrorMessage::default();
        message.code = std::num::NonZeroI32::new(-libc::EOPNOTSUPP);
        let e = Error::from(rtnetlink::Error::NetlinkError(message));
        assert_eq!(e.errno(), Some(Errno::NotSupported));
        assert_eq!(Error::from(rtnetlink::Error::RequestFailed).errno(), None);
    }
}
