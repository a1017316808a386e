//! kill(2), for the demo's agents and for a stale userspace tunnel the
//! agent replaces (`agent::tunnel`): with `demo/sys.rs`, the crate's only
//! unsafe code.
#![allow(unsafe_code)]

use std::io;

/// kill(2) `pid` with `signal`.
pub(crate) fn send_signal(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) takes any pid and signal number and reports errors.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
