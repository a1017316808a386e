//! The speaker task: a thin tokio shell around the [`Engine`]. It moves
//! commands, session events and accepted connections into the engine,
//! carries out what the engine asks (spawn a peer task, tell one what to
//! do), delivers route batches to the stream and arms one timer for the
//! engine's next deadline. Every decision is the engine's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::listener;
use super::peer::{PeerCommand, PeerEvent, UpdateSource, run_peer};
use crate::engine::{Action, Control, Engine};
use crate::rib::PeerId;
use ipnetwork::IpNetwork;

use crate::speaker::{Command, LocalRoute, Password, RouteChange, SpeakerConfig, SpeakerError};

/// Route-stream batches buffered before the speaker waits for its reader.
const ROUTE_QUEUE: usize = 1024;
/// Peer events buffered before peer tasks wait (and stop reading sockets).
const EVENT_QUEUE: usize = 256;
/// How long a connection from an address that is no neighbour (yet) is
/// held: when nodes learn of each other from a datastore, the new node may
/// connect a moment before we add it as a peer, and refusing it would cost
/// it a whole connect-retry interval (seconds).
const UNKNOWN_HOLD: Duration = Duration::from_secs(2);
/// The most such connections held at once (the rest are refused at once).
const UNKNOWN_MAX: usize = 64;

/// The engine's clock on tokio's (so tests can pause time): a
/// `std::time::Instant` that advances with `tokio::time::Instant`.
#[derive(Clone, Copy, Debug)]
struct Clock {
    std: std::time::Instant,
    tokio: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            std: std::time::Instant::now(),
            tokio: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> std::time::Instant {
        self.std + self.tokio.elapsed()
    }

    fn to_tokio(self, at: std::time::Instant) -> tokio::time::Instant {
        self.tokio + at.saturating_duration_since(self.std)
    }
}

struct PeerTask {
    commands: mpsc::UnboundedSender<PeerCommand>,
    handle: JoinHandle<()>,
}

struct Shell {
    engine: Engine,
    clock: Clock,
    listener: Option<Arc<TcpListener>>,
    tasks: HashMap<PeerId, PeerTask>,
    /// Tasks told to end, awaited at shutdown.
    ending: Vec<JoinHandle<()>>,
    routes: mpsc::Sender<Vec<RouteChange>>,
    events: mpsc::Sender<PeerEvent<PeerId>>,
    /// Connections from addresses that were no neighbour when they came,
    /// held until [`UNKNOWN_HOLD`] has passed.
    unknown: Vec<(TcpStream, SocketAddr, tokio::time::Instant)>,
}

/// What [`spawn`] returns: the command sender, the bound address and the
/// route stream's receiving end.
pub(crate) type Started = (
    mpsc::UnboundedSender<Command>,
    Option<SocketAddr>,
    mpsc::Receiver<Vec<RouteChange>>,
);

/// Binds the listener, builds the engine and starts the speaker task.
pub(crate) async fn spawn(
    config: SpeakerConfig,
    routes: Vec<(IpNetwork, LocalRoute)>,
) -> Result<Started, SpeakerError> {
    let listener = match &config.listen {
        Some(l) => {
            let addr = SocketAddr::new(l.address, l.port);
            let listener =
                listener::bind(addr).map_err(|source| SpeakerError::Listen { addr, source })?;
            Some(Arc::new(listener))
        }
        None => None,
    };
    if let Some(l) = &listener {
        for p in config.peers.iter().filter(|p| p.password.is_some()) {
            listener::set_key(l, p.address, p.password.as_ref().map(Password::expose)).map_err(
                |source| SpeakerError::Md5 {
                    peer: p.address,
                    source,
                },
            )?;
        }
        for r in &config.dynamic_neighbors {
            if let Some(key) = &r.password {
                listener::set_range_key(l, r.prefix, key.expose()).map_err(|source| {
                    SpeakerError::Md5 {
                        peer: r.prefix.network(),
                        source,
                    }
                })?;
            }
        }
    }
    let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let mut engine = Engine::new(config)?;
    // Before any session: in every peer's initial table.
    for (prefix, route) in &routes {
        engine.announce(*prefix, route);
    }
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (route_tx, route_rx) = mpsc::channel(ROUTE_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (in_tx, in_rx) = mpsc::channel(16);
    if let Some(l) = &listener {
        tokio::spawn(listener::accept_loop(l.clone(), in_tx));
    }
    let shell = Shell {
        engine,
        clock: Clock::new(),
        listener,
        tasks: HashMap::new(),
        ending: Vec::new(),
        routes: route_tx,
        events: ev_tx,
        unknown: Vec::new(),
    };
    tokio::spawn(shell.run(cmd_rx, ev_rx, in_rx));
    Ok((cmd_tx, listen_addr, route_rx))
}

impl Shell {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::Receiver<PeerEvent<PeerId>>,
        mut inbound: mpsc::Receiver<(TcpStream, SocketAddr)>,
    ) {
        loop {
            self.act();
            while let Some(batch) = self.engine.poll_routes() {
                // Bounded: a reader that falls behind holds the engine back.
                let _ = self.routes.send(batch).await;
            }
            let deadline = self
                .engine
                .poll_timeout()
                .map(|t| self.clock.to_tokio(t))
                .into_iter()
                .chain(self.unknown.iter().map(|(.., until)| *until))
                .min();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => {
                        self.shutdown(Some("speaker stopped")).await;
                        return;
                    }
                    Some(Command::Shutdown(message, reply)) => {
                        self.shutdown(message.as_deref()).await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                },
                Some(ev) = events.recv() => {
                    self.engine.handle_event(self.clock.now(), ev.peer, ev.local, ev.event);
                }
                Some((stream, from)) = inbound.recv() => {
                    if let Err(stream) = self.hand_over(stream, from)
                        && self.unknown.len() < UNKNOWN_MAX
                    {
                        let until = tokio::time::Instant::now() + UNKNOWN_HOLD;
                        self.unknown.push((stream, from, until));
                    }
                }
                () = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                    let now = tokio::time::Instant::now();
                    self.unknown.retain(|(_, from, until)| {
                        if *until <= now {
                            tracing::info!(%from, "refused a connection from an address that is no neighbour");
                        }
                        *until > now
                    });
                    self.engine.handle_timeout(self.clock.now());
                }
            }
        }
    }

    /// Carries out the engine's actions.
    fn act(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Spawn(setup) => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let source: Arc<dyn UpdateSource> = setup.outbox;
                    let handle = tokio::spawn(run_peer(
                        setup.id,
                        setup.session,
                        setup.transport,
                        rx,
                        self.events.clone(),
                        source,
                    ));
                    self.tasks.insert(
                        setup.id,
                        PeerTask {
                            commands: tx,
                            handle,
                        },
                    );
                }
                Action::Control(id, control) => {
                    let ends = matches!(control, Control::Shutdown(_) | Control::Abandon);
                    let command = match control {
                        Control::Start => PeerCommand::Start,
                        Control::Stop(n) => PeerCommand::Stop(n),
                        Control::Shutdown(n) => PeerCommand::Shutdown(n),
                        Control::Abandon => PeerCommand::Abandon,
                        Control::ClearRestartState => PeerCommand::ClearRestartState,
                        Control::RouteRefresh(r) => PeerCommand::RouteRefresh(r),
                    };
                    if ends {
                        if let Some(t) = self.tasks.remove(&id) {
                            let _ = t.commands.send(command);
                            self.ending.push(t.handle);
                        }
                    } else if let Some(t) = self.tasks.get(&id) {
                        let _ = t.commands.send(command);
                    }
                }
            }
        }
        self.ending.retain(|h| !h.is_finished());
    }

    fn command(&mut self, cmd: Command) {
        let now = self.clock.now();
        match cmd {
            Command::Announce(prefix, route) => self.engine.announce(prefix, &route),
            Command::Withdraw(prefix) => self.engine.withdraw(prefix),
            Command::SetBlockOwners(owners) => self.engine.set_block_owners(&owners),
            Command::AddPeer(config, reply) => {
                // A held connection came without TCP-MD5: one for a peer
                // with a password would dodge it, so it goes.
                let address = crate::engine::canonical(config.address);
                if config.password.is_some() {
                    self.unknown
                        .retain(|(_, from, _)| crate::engine::canonical(from.ip()) != address);
                }
                let _ = reply.send(self.add_peer(*config));
                // A connection held from that address is its now.
                for (stream, from, until) in std::mem::take(&mut self.unknown) {
                    if let Err(stream) = self.hand_over(stream, from) {
                        self.unknown.push((stream, from, until));
                    }
                }
            }
            Command::RemovePeer(address, reply) => {
                let password = self
                    .engine
                    .peer_id(address)
                    .and_then(|id| self.engine.peer_config(id))
                    .is_some_and(|c| c.password.is_some());
                let result = self.engine.remove_peer(address);
                if result.is_ok()
                    && password
                    && let Some(l) = &self.listener
                {
                    let _ = listener::set_key(l, address, None);
                }
                let _ = reply.send(result);
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.engine.peers(now));
            }
            Command::Routes(reply) => {
                let _ = reply.send(self.engine.routes());
            }
            Command::Shutdown(..) => {}
        }
    }

    /// Gives an accepted connection to its peer's task; gives it back when
    /// `from` is no neighbour and no range takes it.
    fn hand_over(&mut self, stream: TcpStream, from: SocketAddr) -> Result<(), TcpStream> {
        let Some(id) = self.engine.handle_inbound(self.clock.now(), from.ip()) else {
            return Err(stream);
        };
        // A new dynamic neighbour's task must exist first.
        self.act();
        if let Some(t) = self.tasks.get(&id) {
            let _ = t.commands.send(PeerCommand::Inbound(stream));
        }
        Ok(())
    }

    fn add_peer(&mut self, config: crate::speaker::PeerConfig) -> Result<(), SpeakerError> {
        if self.engine.peer_id(config.address).is_some() {
            return Err(SpeakerError::DuplicatePeer(config.address));
        }
        if let (Some(key), Some(l)) = (&config.password, &self.listener) {
            listener::set_key(l, config.address, Some(key.expose())).map_err(|source| {
                SpeakerError::Md5 {
                    peer: config.address,
                    source,
                }
            })?;
        }
        self.engine.add_peer(config).map(|_| ())
    }

    /// Ends every peer task (with a Cease carrying `message`, or without a
    /// NOTIFICATION) and waits a little for each.
    async fn shutdown(&mut self, message: Option<&str>) {
        self.engine.shutdown(message);
        self.act();
        let ending = std::mem::take(&mut self.ending);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            for h in ending {
                let _ = h.await;
            }
        })
        .await;
    }
}
