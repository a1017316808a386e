//! The system calls the demo makes itself, so that it needs neither
//! `kill` (procps) nor `ping` (iputils-ping) on the machine: kill(2) is
//! the crate's (`crate::sys`), setns(2) is here, the only unsafe code of
//! the demo.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

pub(super) use crate::sys::send_signal;

/// Moves the calling thread (only) into the named network namespace
/// (`/run/netns/NAME`, as `ip netns add` makes it): setns(2) with
/// CLONE_NEWNET changes the calling thread's namespace, and sockets opened
/// afterwards belong to it.
pub(super) fn enter_netns(name: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{name}"))?;
    // SAFETY: setns(2) on a valid fd, kept open by `file` for the call.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
