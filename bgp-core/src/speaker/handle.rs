//! The running speaker's handle and its stream of route changes (the
//! `speaker` feature: tokio).

use std::net::{IpAddr, SocketAddr};

use ipnetwork::IpNetwork;
use tokio::sync::{mpsc, oneshot};

use super::{
    BestRoute, BlockOwner, LocalRoute, PeerConfig, PeerSnapshot, RouteChange, SpeakerConfig,
    SpeakerError,
};

/// The stream of best-route changes, in order.
///
/// Changes travel in batches (one per UPDATE processed), so a million
/// routes cost a few thousand channel operations. The channel is bounded:
/// a consumer that stops reading eventually holds the speaker back rather
/// than letting memory grow.
#[derive(Debug)]
pub struct RouteStream {
    rx: mpsc::Receiver<Vec<RouteChange>>,
    buffered: std::collections::VecDeque<RouteChange>,
}

/// The same changes as [`RouteStream::recv`], for stream combinators.
impl futures_core::Stream for RouteStream {
    type Item = RouteChange;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<RouteChange>> {
        use std::task::Poll;
        loop {
            if let Some(c) = self.buffered.pop_front() {
                return Poll::Ready(Some(c));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.buffered.extend(batch),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl RouteStream {
    /// The next change; `None` once the speaker has shut down.
    pub async fn recv(&mut self) -> Option<RouteChange> {
        loop {
            if let Some(c) = self.buffered.pop_front() {
                return Some(c);
            }
            self.buffered.extend(self.rx.recv().await?);
        }
    }

    /// The next batch of changes (everything from one UPDATE or command).
    pub async fn recv_batch(&mut self) -> Option<Vec<RouteChange>> {
        if !self.buffered.is_empty() {
            return Some(self.buffered.drain(..).collect());
        }
        self.rx.recv().await
    }

    /// A batch that is already waiting, without waiting for one: a consumer
    /// that plans once per burst takes every waiting batch after
    /// [`RouteStream::recv_batch`] returns.
    pub fn try_recv_batch(&mut self) -> Option<Vec<RouteChange>> {
        if !self.buffered.is_empty() {
            return Some(self.buffered.drain(..).collect());
        }
        self.rx.try_recv().ok()
    }
}

/// Requests to the central task.
#[derive(Debug)]
pub(crate) enum Command {
    Announce(IpNetwork, LocalRoute),
    Withdraw(IpNetwork),
    SetBlockOwners(Vec<BlockOwner>),
    AddPeer(Box<PeerConfig>, oneshot::Sender<Result<(), SpeakerError>>),
    RemovePeer(IpAddr, oneshot::Sender<Result<(), SpeakerError>>),
    Peers(oneshot::Sender<Vec<PeerSnapshot>>),
    Routes(oneshot::Sender<Vec<BestRoute>>),
    /// Cease with this shutdown communication, or (`None`) close without
    /// a NOTIFICATION so that graceful-restart peers keep our routes.
    Shutdown(Option<String>, oneshot::Sender<()>),
}

/// A running speaker. Cloning the handle is cheap; the speaker runs until
/// [`Speaker::shutdown`] or until every handle is dropped.
#[derive(Clone, Debug)]
pub struct Speaker {
    commands: mpsc::UnboundedSender<Command>,
    listen_addr: Option<SocketAddr>,
}

impl Speaker {
    /// Starts the speaker: binds the listener (if configured), starts every
    /// peer, and returns the handle and the best-route stream.
    pub async fn start(config: SpeakerConfig) -> Result<(Speaker, RouteStream), SpeakerError> {
        Speaker::start_with_routes(config, Vec::new()).await
    }

    /// [`Speaker::start`], originating `routes` from the start: they are
    /// in the RIB before any session comes up, so every peer gets them in
    /// its initial table, before our End-of-RIB. A peer keeping our routes
    /// across our restart (RFC 4724) removes those missing from that table
    /// at our End-of-RIB, so routes announced only after a session is up
    /// would flap there.
    pub async fn start_with_routes(
        config: SpeakerConfig,
        routes: Vec<(IpNetwork, LocalRoute)>,
    ) -> Result<(Speaker, RouteStream), SpeakerError> {
        let (commands, listen_addr, rx) = crate::driver::speaker::spawn(config, routes).await?;
        let stream = RouteStream {
            rx,
            buffered: Default::default(),
        };
        Ok((
            Speaker {
                commands,
                listen_addr,
            },
            stream,
        ))
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// Originates `prefix` (replacing an earlier announcement of it).
    pub fn announce(&self, prefix: IpNetwork, route: LocalRoute) -> Result<(), SpeakerError> {
        self.send(Command::Announce(prefix, route))
    }

    fn send(&self, command: Command) -> Result<(), SpeakerError> {
        self.commands
            .send(command)
            .map_err(|_| SpeakerError::Stopped)
    }

    /// Stops originating `prefix`.
    pub fn withdraw(&self, prefix: IpNetwork) -> Result<(), SpeakerError> {
        self.send(Command::Withdraw(prefix))
    }

    /// Sets which node owns which pod block, as a datastore knows it
    /// (replacing the previous set): a route inside an owned block is
    /// accepted only with its owner's address as NEXT_HOP, checked at
    /// import, so a node announcing another's block changes no route here
    /// nor at anyone we reflect to. Routes held that break the new set are
    /// withdrawn; peers are asked to resend when an owner changed.
    pub fn set_block_owners(&self, owners: Vec<BlockOwner>) -> Result<(), SpeakerError> {
        self.send(Command::SetBlockOwners(owners))
    }

    /// Adds a neighbour at runtime; other sessions are not touched.
    pub async fn add_peer(&self, peer: PeerConfig) -> Result<(), SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::AddPeer(Box::new(peer), tx))
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)?
    }

    /// Removes a neighbour (Cease / Peer De-configured), withdrawing its
    /// routes; other sessions are not touched.
    pub async fn remove_peer(&self, address: IpAddr) -> Result<(), SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::RemovePeer(address, tx))
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)?
    }

    /// A snapshot of every peer.
    pub async fn peers(&self) -> Result<Vec<PeerSnapshot>, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Peers(tx))?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Every best route in the Loc-RIB.
    pub async fn routes(&self) -> Result<Vec<BestRoute>, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Routes(tx))?;
        rx.await.map_err(|_| SpeakerError::Stopped)
    }

    /// Sends Cease / Administrative Shutdown with `message` as the shutdown
    /// communication (RFC 9003) to every peer, closes the sessions and stops.
    pub async fn shutdown(&self, message: &str) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Shutdown(Some(message.to_owned()), tx))
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    /// Stops for a restart: closes every session without a NOTIFICATION,
    /// as a crash would, so peers that negotiated graceful restart keep our
    /// routes (stale) until we come back and send End-of-RIB, or until our
    /// restart time runs out (RFC 4724 §4.2). Use it when the forwarding
    /// state outlives the process (kernel routes that persist); peers
    /// without graceful restart drop our routes as after [`Speaker::shutdown`].
    pub async fn shutdown_for_restart(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(None, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
