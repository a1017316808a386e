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
/// datagram on the raw socket).
#[derive(Debug, thiserror::Error)]
pub enum GroError {
    /// The host-wide reverse-path filter would drop the device's datagrams.
    #[error(
        "net.ipv4.conf.all.rp_filter is {0}: the kernel would drop outer datagrams that enter from the node's own address; set it to 0 to use GRO egress"
    )]
    RpFilter(String),
    /// A step of the set-up failed.
    #[error("{what}: {source}")]
    Setup {
        /// What was being done, with the file or device.
        what: String,
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

fn setup(what: impl Into<String>) -> impl FnOnce(io::Error) -> GroError {
    let what = what.into();
    move |source| GroError::Setup { what, source }
}

fn write_knob(path: &str, value: &str) -> Result<(), GroError> {
    std::fs::write(path, value).map_err(setup(format!("writing {value} to {path}")))
}

impl GroDevice {
    /// Creates the GRO device for the tunnel device `device` and sets it up
    /// (see the module docs). The device lives as long as the returned
    /// value.
    pub(super) fn open(device: &str) -> Result<GroDevice, GroError> {
        let all = "/proc/sys/net/ipv4/conf/all/rp_filter";
        let rp = std::fs::read_to_string(all).map_err(setup(format!("reading {all}")))?;
        if rp.trim() != "0" {
            return Err(GroError::RpFilter(rp.trim().to_string()));
        }
        let name = device_name(device);
        let file = sys::open_tap_napi(&name).map_err(setup(format!("creating TAP {name}")))?;
        let mac = sys::hw_addr(&name).map_err(setup(format!("reading the address of {name}")))?;
        let mut eth = [0u8; ETH_HLEN];
        eth[..6].copy_from_slice(&mac);
        eth[6..12].copy_from_slice(&mac);
        eth[12..].copy_from_slice(&[0x08, 0x00]);
        let conf = format!("/proc/sys/net/ipv4/conf/{name}");
        write_knob(&format!("{conf}/forwarding"), "1")?;
        write_knob(&format!("{conf}/accept_local"), "1")?;
        write_knob(&format!("{conf}/rp_filter"), "0")?;
        // Nothing is ever read from the device: keep the kernel from
        // queueing IPv6 router solicitations on it. (No IPv6: nothing to do.)
        let v6 = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        if std::path::Path::new(&v6).exists() {
            write_knob(&v6, "1")?;
        }
        // sysfs shows the devices of the namespace it was mounted in; the
        // index check catches a /sys that belongs to another namespace.
        let sysfs = format!("/sys/class/net/{name}");
        let index = sys::if_index(&name).map_err(setup(format!("looking up {name}")))?;
        let seen = std::fs::read_to_string(format!("{sysfs}/ifindex"))
            .map_err(setup(format!("reading {sysfs}/ifindex")))?;
        if seen.trim() != index.to_string() {
            return Err(GroError::Setup {
                what: format!("{sysfs} is not this namespace's {name}"),
                source: io::Error::other("mount sysfs in this network namespace"),
            });
        }
        write_knob(&format!("{sysfs}/threaded"), "1")?;
        write_knob(
            &format!("{sysfs}/gro_flush_timeout"),
            &FLUSH_TIMEOUT_NS.to_string(),
        )?;
        sys::set_link_up(&name).map_err(setup(format!("setting {name} up")))?;
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
}
