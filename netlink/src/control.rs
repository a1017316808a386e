//! [`Control`]: the control path over rtnetlink, for the few link and
//! address changes where batching does not matter (the tunnel device's
//! set-up): one request, one ACK, as `ip link` and `ip addr` do.
//!
//! rtnetlink is asynchronous (a `Connection` future drives the socket, a
//! `Handle` sends requests), while its callers here are blocking code (the
//! tunnel set-up, `ipip-tunnel kernel-setup`, tests on plain threads).
//! So each [`Control`] runs its connection on a thread of its own with a
//! single-threaded tokio runtime, and each verb hands its request to that
//! runtime and waits for the answer. Nothing here needs the caller to be
//! inside or outside a tokio runtime. The thread is spawned by the caller,
//! so its socket is in the caller's network namespace (a new thread starts
//! in its creator's), and it ends when the [`Control`] is dropped (the
//! connection ends with its last handle).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::thread::JoinHandle;

use futures_util::TryStreamExt;
use rtnetlink::{LinkIpIp, LinkUnspec};

use crate::error::{Errno, Error};
use crate::link::{self, AddressMessage, LinkMessage};
use crate::route::FAMILY_V4;

/// A handle on the kernel's links and addresses whose verbs mirror
/// `ip link` and `ip addr`; each names the equivalent command.
#[derive(Debug)]
pub struct Control {
    /// `None` only while dropping: dropping it ends the connection.
    handle: Option<rtnetlink::Handle>,
    runtime: tokio::runtime::Handle,
    thread: Option<JoinHandle<()>>,
}

impl Control {
    /// Opens a connection in the current network namespace.
    ///
    /// # Errors
    /// When the thread, its runtime or the socket cannot be made.
    pub fn open() -> Result<Self, Error> {
        let (tx, rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("rtnetlink".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                // The socket registers with the runtime's reactor as it is
                // made, so it is made inside the runtime.
                let made = {
                    let _inside = runtime.enter();
                    rtnetlink::new_connection()
                };
                match made {
                    Ok((connection, handle, unsolicited)) => {
                        // Not a multicast socket: nothing unsolicited comes.
                        drop(unsolicited);
                        let _ = tx.send(Ok((handle, runtime.handle().clone())));
                        runtime.block_on(connection);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        let (handle, runtime) = rx
            .recv()
            .map_err(|_| io::Error::other("the rtnetlink thread ended before it started"))??;
        Ok(Self {
            handle: Some(handle),
            runtime,
            thread: Some(thread),
        })
    }

    /// Runs `request` (made from a handle) on the connection's runtime and
    /// waits for its answer.
    fn run<T, F>(&self, request: impl FnOnce(rtnetlink::Handle) -> F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, rtnetlink::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let handle = self
            .handle
            .clone()
            .ok_or(Error::Rtnetlink(rtnetlink::Error::RequestFailed))?;
        let future = request(handle);
        let (tx, rx) = mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        let answer = rx
            .recv()
            .map_err(|_| Error::Rtnetlink(rtnetlink::Error::RequestFailed))?;
        answer.map_err(Error::from)
    }

    /// `ip link show dev NAME`; `None` when there is no such device.
    ///
    /// # Errors
    /// When the kernel refuses otherwise, or the connection fails.
    pub fn link(&self, name: &str) -> Result<Option<LinkMessage>, Error> {
        let name = name.to_owned();
        let found =
            self.run(|h| async move { h.link().get().match_name(name).execute().try_next().await });
        match found {
            Err(e) if e.errno() == Some(Errno::NoDevice) => Ok(None),
            other => other,
        }
    }

    /// `ip link show`: every link.
    ///
    /// # Errors
    /// When the kernel refuses, or the connection fails.
    pub fn links(&self) -> Result<Vec<LinkMessage>, Error> {
        self.run(|h| async move { h.link().get().execute().try_collect().await })
    }

    /// `ip link add NAME type ipip`: no local, no remote, like the kernel's
    /// fallback device.
    ///
    /// # Errors
    /// [`Errno::NotSupported`] when the kernel has no ipip link kind (even
    /// after trying to load the module); any other refusal.
    pub fn add_ipip(&self, name: &str) -> Result<(), Error> {
        let message = LinkIpIp::new(name).build();
        self.run(|h| async move { h.link().add(message).execute().await })
    }

    /// `ip link set dev INDEX mtu MTU up`.
    ///
    /// # Errors
    /// [`Errno::Invalid`] for an MTU the device does not take; any other
    /// refusal.
    pub fn set_mtu_up(&self, index: u32, mtu: u32) -> Result<(), Error> {
        let message = LinkUnspec::new_with_index(index).mtu(mtu).up().build();
        self.run(|h| async move { h.link().set(message).execute().await })
    }

    /// `ip -4 addr show dev INDEX`: (address, prefix length) pairs.
    ///
    /// # Errors
    /// When the kernel refuses, or the connection fails.
    pub fn ipv4_addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, Error> {
        let messages: Vec<AddressMessage> = self.run(|h| async move {
            let mut request = h.address().get().set_link_index_filter(index);
            request.message_mut().header.family = FAMILY_V4.into();
            request.execute().try_collect().await
        })?;
        Ok(messages
            .iter()
            .filter(|a| a.header.index == index)
            .filter_map(|a| match link::address(a)? {
                IpAddr::V4(v4) => Some((v4, a.header.prefix_len)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// `ip addr add ADDRESS/LEN dev INDEX`.
    ///
    /// # Errors
    /// [`Errno::Exists`] when it is there already; any other refusal.
    pub fn add_address(&self, index: u32, address: IpAddr, len: u8) -> Result<(), Error> {
        self.run(|h| async move { h.address().add(index, address, len).execute().await })
    }

    /// `ip addr del ADDRESS/LEN dev INDEX`.
    ///
    /// # Errors
    /// When the kernel refuses (`EADDRNOTAVAIL` for an address not there),
    /// or the connection fails.
    pub fn del_address(&self, index: u32, address: Ipv4Addr, len: u8) -> Result<(), Error> {
        let message = rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(address, len)
            .build();
        self.run(|h| async move { h.address().del(message).execute().await })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // The connection ends once its last handle is gone; then its
        // thread does.
        self.handle = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
