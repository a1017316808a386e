//! GRO egress: the bulk path out. The segments of a TCP super-packet are
//! written, encapsulated, into a TAP device (`tunl0-gro`) that
//! runs its input through NAPI and GRO, instead of being sent one by one
//! on the raw socket.
//!
//! Why: a raw socket has no GSO, so every 1,480-byte segment crossed the
//! node's IP stack, the underlay device and the peer's IP stack on its
//! own, about 44 trips per 64 KB. Linux's IPIP GRO handler is built in,
//! module or not: segments of one flow that arrive on a NAPI device in a
//! row are merged into one super-packet marked IPv4-in-IPv4 TCP GSO
//! (`SKB_GSO_IPXIP4 | SKB_GSO_TCPV4`). The kernel then forwards that one
//! packet to the underlay device as it forwards GRO-merged IPIP from a
//! NIC: in one piece where the device can segment IPIP (veth, most NICs),
//! cut in software otherwise. The wire carries the same RFC 2003
//! datagrams either way; a kernel tunl0 or our ingress on the peer takes
//! them as they come.
//!
//! What the device needs, all set here on the device alone:
//! - `forwarding=1`: what arrives on it is forwarded to the peer node;
//! - `accept_local=1` and `rp_filter=0`: the outer source is the node's
//!   own address, a martian on input otherwise;
//! - a NAPI thread (`threaded=1`): the writer only queues, the thread
//!   merges a whole queue at a time, on the other CPU when there is one;
//! - `gro_flush_timeout` [`FLUSH_TIMEOUT_NS`]: a flow's segments are held
//!   across polls until its last segment (PSH) or the timeout, so a
//!   super-packet is rebuilt even when the writer is slower than the
//!   thread. Packets GRO does not merge (ICMP, pure ACKs) pass at once.
//!
//! Frames are written many per `io_uring_enter` (`sys::WriteRing`), one
//! `write` each where io_uring is off. A super-packet may still leave in
//! pieces: with `CONFIG_HZ` below 1000 a NAPI poll that uses its whole
//! budget (64 frames) flushes everything GRO holds (1.6 pieces per
//! super-packet in `bench/ipip.sh`).
//!
//! The host-wide `net.ipv4.conf.all.rp_filter` wins over the device's own
//! setting; when it is not 0 the kernel would drop every outer datagram
//! from the device, so the data plane stays on the raw socket instead.
//! A FORWARD chain that drops forwarded traffic (Docker sets its policy
//! to DROP) drops these datagrams too: run with GRO egress off there, or
//! accept `-i tunl0-gro`.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys;

/// How long GRO holds an unfinished flow (nanoseconds). Long enough to
/// span the writes of one super-packet on a loaded machine, short enough
/// not to matter to a flow that stops mid-packet (its last segment
/// carries PSH and is flushed at once).
pub const FLUSH_TIMEOUT_NS: u32 = 100_000;

/// The GRO device's name for the tunnel device `device`: `tunl0` →
/// `tunl0-gro`, cut to fit the 15-byte limit.
pub fn device_name(device: &str) -> String {
    let base: String = device.chars().take(libc::IFNAMSIZ - 1 - 4).collect();
    format!("{base}-gro")
}

/// Why GRO egress could not be set up (the data plane then sends every
/// datagram on the raw socket). Each variant names the step, so the
/// message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum GroError {
    /// The host-wide reverse-path filter (its mode: 1 strict, 2 loose)
    /// would drop the device's datagrams.
    #[error(
        "net.ipv4.conf.all.rp_filter is {0}: the kernel would drop outer datagrams that enter from the node's own address; set it to 0 to use GRO egress"
    )]
    RpFilter(u32),
    /// A sysctl or sysfs file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A sysctl or sysfs file holds something other than a number.
    #[error("{path} does not hold a number")]
    NotANumber {
        /// The file.
        path: PathBuf,
    },
    /// A sysctl or sysfs knob could not be set.
    #[error("writing {value} to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The value written.
        value: u32,
        /// The OS error.
        source: io::Error,
    },
    /// The TAP device could not be created.
    #[error("creating TAP {device}: {source}")]
    CreateTap {
        /// The device name.
        device: String,
        /// The OS error.
        source: io::Error,
    },
    /// The device's hardware address could not be read.
    #[error("reading the address of {device}: {source}")]
    HwAddr {
        /// The device name.
        device: String,
        /// The OS error.
        source: io::Error,
    },
    /// The device's interface index could not be read.
    #[error("looking up {device}: {source}")]
    Index {
        /// The device name.
        device: String,
        /// The OS error.
        source: io::Error,
    },
    /// `/sys` shows another network namespace's devices, so the device's
    /// knobs cannot be set through it.
    #[error("{sysfs} is not this namespace's {device}: mount sysfs in this network namespace")]
    ForeignSysfs {
        /// The device's sysfs directory.
        sysfs: PathBuf,
        /// The device name.
        device: String,
    },
    /// The device could not be set up.
    #[error("setting {device} up: {source}")]
    LinkUp {
        /// The device name.
        device: String,
        /// The OS error.
        source: io::Error,
    },
}

/// The open GRO device; writing an outer datagram to it sends it.
pub(super) struct GroDevice {
    file: File,
    name: String,
    /// The Ethernet header every frame carries: to the device's own
    /// address (so the kernel takes the frame as its own to route), type
    /// IPv4.
    eth: [u8; ETH_HLEN],
    /// Many writes per system call where io_uring works; dropped (one
    /// `write` per frame from then on) if it breaks.
    ring: Option<sys::WriteRing>,
}

/// Bytes of Ethernet header in front of every frame written to the device.
pub const ETH_HLEN: usize = 14;

fn read_knob(path: &Path) -> Result<u32, GroError> {
    let text = std::fs::read_to_string(path).map_err(|source| GroError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.trim().parse().map_err(|_| GroError::NotANumber {
        path: path.to_owned(),
    })
}

fn write_knob(path: &Path, value: u32) -> Result<(), GroError> {
    std::fs::write(path, value.to_string()).map_err(|source| GroError::Write {
        path: path.to_owned(),
        value,
        source,
    })
}

impl GroDevice {
    /// Creates the GRO device for the tunnel device `device` and sets it up
    /// (see the module docs). The device lives as long as the returned
    /// value.
    pub(super) fn open(device: &str) -> Result<GroDevice, GroError> {
        let rp_filter = read_knob(Path::new("/proc/sys/net/ipv4/conf/all/rp_filter"))?;
        if rp_filter != 0 {
            return Err(GroError::RpFilter(rp_filter));
        }
        let name = device_name(device);
        let on = |step: fn(String, io::Error) -> GroError| {
            let name = name.clone();
            move |source| step(name, source)
        };
        let file = sys::open_tap_napi(&name)
            .map_err(on(|device, source| GroError::CreateTap { device, source }))?;
        let mac = sys::hw_addr(&name)
            .map_err(on(|device, source| GroError::HwAddr { device, source }))?;
        let mut eth = [0u8; ETH_HLEN];
        eth[..6].copy_from_slice(&mac);
        eth[6..12].copy_from_slice(&mac);
        eth[12..].copy_from_slice(&[0x08, 0x00]);
        let conf = PathBuf::from(format!("/proc/sys/net/ipv4/conf/{name}"));
        write_knob(&conf.join("forwarding"), 1)?;
        write_knob(&conf.join("accept_local"), 1)?;
        write_knob(&conf.join("rp_filter"), 0)?;
        // Nothing is ever read from the device: keep the kernel from
        // queueing IPv6 router solicitations on it. (No IPv6: nothing to do.)
        let v6 = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"));
        if v6.exists() {
            write_knob(&v6, 1)?;
        }
        // sysfs shows the devices of the namespace it was mounted in; the
        // index check catches a /sys that belongs to another namespace.
        let sysfs = PathBuf::from(format!("/sys/class/net/{name}"));
        let index = sys::if_index(&name)
            .map_err(on(|device, source| GroError::Index { device, source }))?;
        if read_knob(&sysfs.join("ifindex"))? != index {
            return Err(GroError::ForeignSysfs {
                sysfs,
                device: name,
            });
        }
        write_knob(&sysfs.join("threaded"), 1)?;
        write_knob(&sysfs.join("gro_flush_timeout"), FLUSH_TIMEOUT_NS)?;
        sys::set_link_up(&name)
            .map_err(on(|device, source| GroError::LinkUp { device, source }))?;
        let ring = sys::WriteRing::new(256).ok();
        Ok(GroDevice {
            file,
            name,
            eth,
            ring,
        })
    }

    /// The Ethernet header that goes in front of every datagram written
    /// to the device.
    pub(super) fn eth_header(&self) -> &[u8; ETH_HLEN] {
        &self.eth
    }

    /// The device's name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Sends each of `frames` (Ethernet header and outer datagram), as
    /// [`GroDevice::send`] does, with one system call for many where it
    /// can; calls `done` with each one's index and result, in order.
    pub(super) fn send_all(
        &mut self,
        frames: &[&[u8]],
        wait: Duration,
        mut done: impl FnMut(usize, io::Result<()>),
    ) {
        let results = match &mut self.ring {
            Some(ring) => ring.write_all(self.file.as_fd(), frames),
            None => vec![sys::NOT_WRITTEN; frames.len()],
        };
        if self.ring.as_ref().is_some_and(sys::WriteRing::is_broken) {
            self.ring = None;
        }
        for (i, (r, f)) in results.into_iter().zip(frames).enumerate() {
            // Frames the ring did not write, and a full queue (EAGAIN),
            // go through `send`, which waits for room.
            let r = if r >= 0 {
                Ok(())
            } else if r == sys::NOT_WRITTEN || -r == libc::EAGAIN {
                self.send(f, wait)
            } else {
                Err(io::Error::from_raw_os_error(-r))
            };
            done(i, r);
        }
    }

    /// Sends one frame (Ethernet header, outer datagram): the kernel takes
    /// it in as if it arrived on the device and forwards it. Waits (up to
    /// `wait`) while the device's queue is full.
    fn send(&self, frame: &[u8], wait: Duration) -> io::Result<()> {
        loop {
            match (&self.file).write(frame) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = sys::poll(&[(self.file.as_fd(), libc::POLLOUT)], wait)?;
                    if !ready.first().copied().unwrap_or(false) {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gro_device_is_named_after_the_tunnel_and_fits_ifnamsiz() {
        assert_eq!(device_name("tunl0"), "tunl0-gro");
        let long = device_name("averylongname15");
        assert_eq!(long, "averylongna-gro");
        assert!(long.len() < libc::IFNAMSIZ);
    }

    #[test]
    fn knobs_read_as_numbers_and_the_rp_filter_error_names_the_fix() {
        let dir = std::env::temp_dir().join(format!("ipip-gro-knob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let knob = dir.join("rp_filter");
        std::fs::write(&knob, "2\n").unwrap();
        assert_eq!(read_knob(&knob).unwrap(), 2);
        std::fs::write(&knob, "loose\n").unwrap();
        assert!(matches!(read_knob(&knob), Err(GroError::NotANumber { .. })));
        assert!(matches!(
            read_knob(&dir.join("missing")),
            Err(GroError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
        let text = GroError::RpFilter(1).to_string();
        assert!(
            text.starts_with("net.ipv4.conf.all.rp_filter is 1:") && text.contains("set it to 0"),
            "{text}"
        );
    }
}
