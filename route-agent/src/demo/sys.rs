//! The two system calls the demo makes itself, so that it needs neither
//! `kill` (procps) nor `ping` (iputils-ping) on the machine: the only
//! unsafe code of the demo, kept here.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// kill(2) `pid` with `signal`.
pub(super) fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) takes any pid and signal number and reports errors.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

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
