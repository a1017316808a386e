//! Which process holds a userspace tunnel's TUN device in this network
//! namespace, and the node address (`--local`) it was started with.
//!
//! A running userspace tunnel is reused across agent restarts (it keeps
//! forwarding meanwhile), but its raw socket is bound to the node address
//! it was given, and it sends from it. After the node's address changed,
//! that process can neither receive nor send any more: the agent replaces
//! it ([`super::userspace`]). The holder is found the way `lsof` finds it:
//! a descriptor of `/dev/net/tun` whose `fdinfo` names the device
//! (`iff:\ttunl0`, Linux's tun driver), in a process of our network
//! namespace (every namespace can have its own `tunl0`).

use std::net::Ipv4Addr;
use std::path::Path;

/// The process holding a TUN device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its process ID.
    pub pid: u32,
    /// The `--local` of its command line (`None`: not a tunnel process of
    /// ours, or started without one).
    pub local: Option<Ipv4Addr>,
}

/// The process of this network namespace holding TUN device `device`,
/// if any can be read from `/proc`.
pub fn find(device: &str) -> Option<Holder> {
    let proc = Path::new("/proc");
    let ours = std::fs::read_link(proc.join("self/ns/net")).ok()?;
    for entry in std::fs::read_dir(proc).ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let base = entry.path();
        if std::fs::read_link(base.join("ns/net")).ok().as_ref() != Some(&ours) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(base.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let is_tun =
                std::fs::read_link(fd.path()).is_ok_and(|t| t == Path::new("/dev/net/tun"));
            let info = base.join("fdinfo").join(fd.file_name());
            if is_tun && std::fs::read_to_string(info).is_ok_and(|i| names(&i, device)) {
                let cmdline = std::fs::read(base.join("cmdline")).unwrap_or_default();
                return Some(Holder {
                    pid,
                    local: local_of(&cmdline),
                });
            }
        }
    }
    None
}

/// Whether a TUN descriptor's `fdinfo` names `device` (`iff:\ttunl0`).
fn names(fdinfo: &str, device: &str) -> bool {
    fdinfo
        .lines()
        .any(|l| l.strip_prefix("iff:").map(str::trim) == Some(device))
}

/// The `--local ADDRESS` (or `--local=ADDRESS`) of a NUL-separated
/// command line.
fn local_of(cmdline: &[u8]) -> Option<Ipv4Addr> {
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(|a| std::str::from_utf8(a).unwrap_or(""));
    while let Some(arg) = args.next() {
        if arg == "--local" {
            return args.next()?.parse().ok();
        }
        if let Some(value) = arg.strip_prefix("--local=") {
            return value.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tun_fdinfo_names_its_device_exactly() {
        // As Linux 6.x prints it for a TUN descriptor.
        let info = "pos:\t0\nflags:\t02004002\nmnt_id:\t25\nino:\t1033\niff:\ttunl0\n";
        assert!(names(info, "tunl0"));
        assert!(!names(info, "tunl"));
        assert!(!names("pos:\t0\niff:\ttunl0-gro\n", "tunl0"));
        assert!(!names("pos:\t0\nflags:\t02\n", "tunl0"));
    }

    #[test]
    fn the_local_address_is_read_from_the_command_line() {
        let cmdline =
            b"/usr/bin/route-agent\0tunnel\0--device\0tunl0\0--local\x0010.0.2.10\0--mtu\x001480\0";
        assert_eq!(local_of(cmdline), Some(Ipv4Addr::new(10, 0, 2, 10)));
        assert_eq!(
            local_of(b"ipip-tunnel\0--local=10.0.1.5\0"),
            Some(Ipv4Addr::new(10, 0, 1, 5))
        );
        assert_eq!(local_of(b"sleep\x00100\0"), None);
        assert_eq!(local_of(b"x\0--local\0"), None);
    }

    #[test]
    fn no_process_holds_a_device_that_does_not_exist() {
        assert_eq!(find("podroute-no-such-tun"), None);
    }
}
