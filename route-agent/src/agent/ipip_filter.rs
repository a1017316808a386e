//! The kernel tunnel's IPIP filter ([`ipip::filter`]) kept current with
//! the cluster's nodes.
//!
//! The kernel's tunl0 takes IP protocol 4 from anyone; with the kernel
//! backend the agent keeps an nftables table (`table ip podroute`) that
//! drops IPIP from addresses outside a set, and counts the drops. The set
//! holds the addresses IPIP may come from, the same peers the userspace
//! backend accepts:
//!
//! - the datastore's nodes (`datastore: kubernetes`), or the mesh peers
//!   of the file ([`node_addresses`]): Calico's `all-hosts` set;
//! - the gateways of our tunnel routes ([`tunnel_gateways`]): the nodes
//!   we send IPIP to, also where only route reflectors are configured.
//!
//! [`FilterState`] decides (pure, tested here): install once the kernel
//! backend is in use and the nodes are known, update the set by element
//! changes when either part changes, remove our table when the userspace
//! backend runs (its own check applies there; a stale set would drop new
//! nodes). [`FilterTask`] carries the decisions out on a thread of its
//! own (nftables requests and dumps block), re-reads the drop counter for
//! the status every [`COUNTER_REFRESH`], and retries after an error.
//!
//! A restarted agent adopts the table it finds (the counter keeps
//! counting); with `persist-routes: false` the agent removes it at
//! shutdown, with its routes.
//!
//! With the `bpf` backend the same set goes into its programs' allow-list
//! map instead ([`FilterAction::ApplyBpf`]; the tc ingress program drops
//! and counts IPIP from anyone else, so our nftables table goes), and the
//! thread reads the programs' counters into the status
//! ([`super::bpf::BpfTunnelStatus`]) at each refresh.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use ipip::filter::{FilterError, IpipFilter};
use serde::{Deserialize, Serialize};

use super::bpf::{BpfTunnelStatus, SharedBpf, with_bpf};
use crate::config::Config;
use crate::datastore::NodeSet;
use crate::planner::{DesiredRoute, RouteKind};
use crate::state::{AgentState, TunnelInUse};

/// How often the drop counter is re-read for the status and metrics (and
/// a failed change retried).
pub const COUNTER_REFRESH: Duration = Duration::from_secs(10);

/// The most changes made in one wake: a removal and an apply, and one to
/// spare.
const MAX_ACTIONS_PER_WAKE: usize = 3;

/// How long shutdown waits for the filter's last change.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The filter as the status and `/metrics` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct IpipFilterStatus {
    /// Addresses IPIP is accepted from.
    pub nodes: usize,
    /// Packets dropped (IPIP from anyone else), since the table was made.
    pub dropped_packets: u64,
    /// Their bytes.
    pub dropped_bytes: u64,
    /// Why the last change failed (it is retried).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The node addresses of the configuration: every node of the datastore,
/// or (from the file) the mesh peers; IPv4 only (IPIP's outer header).
pub fn node_addresses(config: &Config, nodes: Option<&NodeSet>) -> BTreeSet<Ipv4Addr> {
    let mesh = config.mesh.peers.iter().filter_map(|p| match p {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    let datastore = nodes.into_iter().flat_map(|n| n.iter().map(|n| n.ip()));
    mesh.chain(datastore).collect()
}

/// The outer destinations of the tunnel routes of `plan`.
pub fn tunnel_gateways(plan: &[DesiredRoute]) -> BTreeSet<Ipv4Addr> {
    plan.iter()
        .filter_map(|r| match r.kind {
            RouteKind::Tunnel {
                via: IpAddr::V4(via),
                ..
            }
            | RouteKind::BpfTunnel {
                via: IpAddr::V4(via),
                ..
            } => Some(via),
            _ => None,
        })
        .collect()
}

/// What the filter thread is to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterAction {
    /// Make the filter exist with exactly these addresses.
    Apply(BTreeSet<Ipv4Addr>),
    /// Delete our table.
    Remove,
    /// Make the `bpf` backend's allow-list exactly these addresses.
    ApplyBpf(BTreeSet<Ipv4Addr>),
}

/// The filter's decisions, without I/O: inputs are `handle_*`, the next
/// action is [`FilterState::poll_action`], its result goes back with
/// [`FilterState::handle_done`].
#[derive(Debug)]
pub struct FilterState {
    backend: TunnelInUse,
    nodes: Option<BTreeSet<Ipv4Addr>>,
    gateways: BTreeSet<Ipv4Addr>,
    /// What the kernel holds as far as we know: `Some(set)` after a
    /// successful apply, `None` before, after a removal or a failure.
    applied: Option<BTreeSet<Ipv4Addr>>,
    /// Our table may exist (we made it, or an earlier run may have).
    maybe_installed: bool,
    /// What the `bpf` backend's allow-list holds as far as we know.
    bpf_applied: Option<BTreeSet<Ipv4Addr>>,
}

impl Default for FilterState {
    fn default() -> Self {
        FilterState {
            backend: TunnelInUse::None,
            nodes: None,
            gateways: BTreeSet::new(),
            applied: None,
            // An earlier run with the kernel backend may have left one.
            maybe_installed: true,
            bpf_applied: None,
        }
    }
}

impl FilterState {
    /// The tunnel backend now in use. A failed set-up (`None`) changes
    /// nothing: the filter stays as it is until a backend runs.
    pub fn handle_backend(&mut self, backend: TunnelInUse) {
        if backend != TunnelInUse::None {
            self.backend = backend;
        }
    }

    /// The configuration's node addresses ([`node_addresses`]).
    pub fn handle_nodes(&mut self, nodes: BTreeSet<Ipv4Addr>) {
        self.nodes = Some(nodes);
    }

    /// The gateways of the newest plan ([`tunnel_gateways`]).
    pub fn handle_gateways(&mut self, gateways: BTreeSet<Ipv4Addr>) {
        self.gateways = gateways;
    }

    /// The addresses the set should hold, once the nodes are known.
    fn desired(&self) -> Option<BTreeSet<Ipv4Addr>> {
        let nodes = self.nodes.as_ref()?;
        Some(nodes.union(&self.gateways).copied().collect())
    }

    /// The next change to make, if any.
    pub fn poll_action(&self) -> Option<FilterAction> {
        match self.backend {
            TunnelInUse::Kernel => {
                let desired = self.desired()?;
                (self.applied.as_ref() != Some(&desired)).then_some(FilterAction::Apply(desired))
            }
            // The tc program filters: no nftables table of ours stays.
            TunnelInUse::Userspace | TunnelInUse::Bpf if self.maybe_installed => {
                Some(FilterAction::Remove)
            }
            TunnelInUse::Bpf => {
                let desired = self.desired()?;
                (self.bpf_applied.as_ref() != Some(&desired))
                    .then_some(FilterAction::ApplyBpf(desired))
            }
            TunnelInUse::Userspace | TunnelInUse::None => None,
        }
    }

    /// The outcome of `action`.
    pub fn handle_done(&mut self, action: &FilterAction, ok: bool) {
        match (action, ok) {
            (FilterAction::Apply(set), true) => {
                self.applied = Some(set.clone());
                self.maybe_installed = true;
            }
            // A removal is tried once (it fails where the kernel has no
            // nf_tables, and then there is nothing to remove).
            (FilterAction::Remove, _) => {
                self.applied = None;
                self.maybe_installed = false;
            }
            // Retried at the next input or refresh.
            (FilterAction::Apply(_), false) => self.applied = None,
            (FilterAction::ApplyBpf(set), true) => self.bpf_applied = Some(set.clone()),
            (FilterAction::ApplyBpf(_), false) => self.bpf_applied = None,
        }
    }

    /// Whether our table is (or may be) there.
    pub fn installed(&self) -> bool {
        self.maybe_installed
    }
}

/// A message to the filter thread.
enum Message {
    Backend(TunnelInUse),
    Nodes(BTreeSet<Ipv4Addr>),
    Gateways(BTreeSet<Ipv4Addr>),
    Stop { remove: bool, done: Sender<()> },
}

/// The filter thread's handle, owned by the agent loop.
#[derive(Debug)]
pub struct FilterTask {
    tx: Sender<Message>,
    thread: Option<JoinHandle<()>>,
    /// A backend that filters by node runs (kernel or bpf).
    filtering: bool,
    gateways: BTreeSet<Ipv4Addr>,
}

impl FilterTask {
    /// Starts the thread; it does nothing until the kernel or bpf backend
    /// runs (the bpf one's programs in `bpf`).
    pub fn spawn(state: Arc<AgentState>, bpf: SharedBpf) -> FilterTask {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("ipip-filter".into())
            .spawn(move || run(&rx, &state, &bpf))
            .ok();
        if thread.is_none() {
            tracing::error!("cannot start the IPIP filter thread: IPIP is not filtered");
        }
        FilterTask {
            tx,
            thread,
            filtering: false,
            gateways: BTreeSet::new(),
        }
    }

    /// The tunnel backend in use (from the tunnel's status).
    pub fn backend(&mut self, backend: TunnelInUse) {
        if backend != TunnelInUse::None {
            self.filtering = matches!(backend, TunnelInUse::Kernel | TunnelInUse::Bpf);
        }
        let _ = self.tx.send(Message::Backend(backend));
    }

    /// The configuration's node addresses changed.
    pub fn nodes(&self, nodes: BTreeSet<Ipv4Addr>) {
        let _ = self.tx.send(Message::Nodes(nodes));
    }

    /// A new plan: its tunnel gateways go to the set (read only while the
    /// kernel or bpf backend runs, and sent only when they change).
    pub fn plan(&mut self, plan: &[DesiredRoute]) {
        if !self.filtering {
            return;
        }
        let gateways = tunnel_gateways(plan);
        if gateways != self.gateways {
            self.gateways.clone_from(&gateways);
            let _ = self.tx.send(Message::Gateways(gateways));
        }
    }

    /// Stops the thread; with `remove` (`persist-routes: false`) our table
    /// goes first. Waits up to 5 s (`STOP_TIMEOUT`).
    pub fn stop(mut self, remove: bool) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Message::Stop { remove, done }).is_ok() {
            let _ = wait.recv_timeout(STOP_TIMEOUT);
        }
        if let Some(thread) = self.thread.take()
            && thread.is_finished()
        {
            let _ = thread.join();
        }
    }
}

/// The filter thread: applies [`FilterState`]'s actions and refreshes the
/// counter.
fn run(rx: &Receiver<Message>, state: &AgentState, bpf: &SharedBpf) {
    let mut decisions = FilterState::default();
    let mut filter: Option<IpipFilter> = None;
    loop {
        let first = match rx.recv_timeout(COUNTER_REFRESH) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Take every message already waiting: one change for a burst.
        for message in first.into_iter().chain(rx.try_iter()) {
            match message {
                Message::Backend(b) => decisions.handle_backend(b),
                Message::Nodes(n) => decisions.handle_nodes(n),
                Message::Gateways(g) => decisions.handle_gateways(g),
                Message::Stop { remove, done } => {
                    if remove && decisions.installed() {
                        match with_filter(&mut filter, IpipFilter::remove) {
                            Ok(_) => tracing::info!(
                                "IPIP filter removed (persist-routes: false): the kernel tunnel accepts IPIP from anyone"
                            ),
                            Err(e) => tracing::warn!("IPIP filter not removed: {e}"),
                        }
                    }
                    let _ = done.send(());
                    return;
                }
            }
        }
        // One change can lead to another (the bpf backend first removes
        // our nftables table, then fills its allow-list): carry them out
        // now, not at the next refresh; a failure waits for it.
        for _ in 0..MAX_ACTIONS_PER_WAKE {
            let Some(action) = decisions.poll_action() else {
                break;
            };
            let result = match &action {
                FilterAction::ApplyBpf(set) => apply_bpf(bpf, set),
                _ => carry_out(&mut filter, &action).map_err(AllowListError::Nftables),
            };
            match (&result, &action) {
                (Err(e), FilterAction::Apply(_)) => {
                    tracing::warn!("IPIP filter not updated (retried in {COUNTER_REFRESH:?}): {e}");
                    state.update(|s| {
                        s.ipip_filter.get_or_insert_default().error = Some(e.to_string());
                    });
                }
                (Err(e), FilterAction::ApplyBpf(_)) => {
                    tracing::warn!(
                        "bpf tunnel allow-list not updated (retried in {COUNTER_REFRESH:?}): {e}"
                    );
                    state.update(|s| {
                        s.bpf_tunnel.get_or_insert_default().error = Some(e.to_string());
                    });
                }
                (Err(e), FilterAction::Remove) => {
                    tracing::debug!("no IPIP filter of an earlier run removed: {e}");
                }
                (Ok(()), _) => {}
            }
            decisions.handle_done(&action, result.is_ok());
            if result.is_err() {
                break;
            }
        }
        if decisions.installed() {
            refresh_counter(&mut filter, &decisions, state);
        }
        if decisions.backend == TunnelInUse::Bpf {
            let status = with_bpf(bpf, |t| BpfTunnelStatus::of(t));
            state.update(|s| s.bpf_tunnel = status);
        }
    }
}

/// Why the set of nodes IPIP is accepted from was not changed.
#[derive(Debug, thiserror::Error)]
enum AllowListError {
    /// The nftables filter (kernel backend).
    #[error(transparent)]
    Nftables(#[from] FilterError),
    /// The bpf programs' map.
    #[error(transparent)]
    Bpf(#[from] ipip::bpf::BpfError),
    /// The bpf programs are not open yet (the tunnel set-up is running).
    #[error("the bpf tunnel programs are not open yet")]
    BpfNotOpen,
}

/// Makes the `bpf` backend's allow-list `set` (an error while its
/// programs are not open yet: retried at the next refresh).
fn apply_bpf(bpf: &SharedBpf, set: &BTreeSet<Ipv4Addr>) -> Result<(), AllowListError> {
    with_bpf(bpf, |t| t.set_nodes(set)).ok_or(AllowListError::BpfNotOpen)??;
    tracing::info!(
        nodes = set.len(),
        "bpf tunnel: IPIP accepted only from these nodes"
    );
    Ok(())
}

/// Runs `f` on the filter, opening it first if needed (and again after an
/// error, which may have left the socket out of step).
fn with_filter<T>(
    filter: &mut Option<IpipFilter>,
    f: impl FnOnce(&mut IpipFilter) -> Result<T, FilterError>,
) -> Result<T, FilterError> {
    let mut open = match filter.take() {
        Some(f) => f,
        None => IpipFilter::open()?,
    };
    let result = f(&mut open);
    if result.is_ok() {
        *filter = Some(open);
    }
    result
}

/// Applies or removes, logging what changed.
fn carry_out(filter: &mut Option<IpipFilter>, action: &FilterAction) -> Result<(), FilterError> {
    match action {
        FilterAction::Apply(set) => {
            let applied = with_filter(filter, |f| f.apply(set))?;
            tracing::info!(
                installed = %applied.installed,
                nodes = set.len(),
                added = applied.added,
                removed = applied.removed,
                replaced = applied.replaced.as_deref().unwrap_or(""),
                "IPIP filter: IP protocol 4 accepted only from these nodes"
            );
        }
        FilterAction::Remove => {
            if with_filter(filter, IpipFilter::remove)? {
                tracing::info!(
                    "IPIP filter removed: the userspace tunnel or the bpf programs check peers themselves"
                );
            }
        }
        FilterAction::ApplyBpf(_) => {}
    }
    Ok(())
}

/// Reads the drop counter into the status.
fn refresh_counter(filter: &mut Option<IpipFilter>, decisions: &FilterState, state: &AgentState) {
    match with_filter(filter, IpipFilter::dropped) {
        Ok(Some(dropped)) => state.update(|s| {
            let status = s.ipip_filter.get_or_insert_default();
            status.nodes = decisions.applied.as_ref().map_or(0, BTreeSet::len);
            status.dropped_packets = dropped.packets;
            status.dropped_bytes = dropped.bytes;
            if decisions.applied.is_some() {
                status.error = None;
            }
        }),
        Ok(None) => state.update(|s| s.ipip_filter = None),
        Err(e) => tracing::debug!("IPIP filter counter not read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn set(addresses: &[&str]) -> BTreeSet<Ipv4Addr> {
        addresses.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn tunnel(dst: &str, via: &str) -> DesiredRoute {
        DesiredRoute {
            dst: dst.parse().unwrap(),
            kind: RouteKind::Tunnel {
                via: via.parse().unwrap(),
                dev: "tunl0".into(),
                mtu: 1480,
            },
        }
    }

    /// With the bpf backend our nftables table goes (an earlier kernel-
    /// backend run may have left it), and the programs' allow-list gets
    /// the nodes and the gateways of bpf tunnel routes, changed when
    /// either changes.
    #[test]
    fn the_bpf_backend_removes_the_table_and_keeps_its_allow_list_current() {
        let mut f = FilterState::default();
        f.handle_backend(TunnelInUse::Bpf);
        assert_eq!(f.poll_action(), Some(FilterAction::Remove));
        f.handle_done(&FilterAction::Remove, true);
        // Nodes not known yet: nothing to apply.
        assert_eq!(f.poll_action(), None);
        f.handle_nodes(set(&["10.0.0.6"]));
        let bpf_route = DesiredRoute {
            dst: "10.244.3.0/26".parse().unwrap(),
            kind: RouteKind::BpfTunnel {
                via: "10.9.0.7".parse().unwrap(),
                dev: "eth0".into(),
            },
        };
        f.handle_gateways(tunnel_gateways(&[bpf_route]));
        let want = set(&["10.0.0.6", "10.9.0.7"]);
        assert_eq!(f.poll_action(), Some(FilterAction::ApplyBpf(want.clone())));
        // Not open yet: tried again.
        f.handle_done(&FilterAction::ApplyBpf(want.clone()), false);
        assert_eq!(f.poll_action(), Some(FilterAction::ApplyBpf(want.clone())));
        f.handle_done(&FilterAction::ApplyBpf(want), true);
        assert_eq!(f.poll_action(), None);
        f.handle_nodes(set(&["10.0.0.6", "10.0.0.8"]));
        assert_eq!(
            f.poll_action(),
            Some(FilterAction::ApplyBpf(set(&[
                "10.0.0.6", "10.0.0.8", "10.9.0.7"
            ])))
        );
    }

    #[test]
    fn nodes_are_the_mesh_peers_of_the_file() {
        let config = Config::parse(
            Path::new("t.yaml"),
            "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}]\nblocks: [10.244.1.0/26]\nmesh: {peers: [10.0.0.6, 10.0.1.6]}\n",
        )
        .unwrap();
        assert_eq!(
            node_addresses(&config, None),
            set(&["10.0.0.6", "10.0.1.6"])
        );
    }

    #[test]
    fn gateways_are_the_outer_destinations_of_tunnel_routes_only() {
        let plan = [
            tunnel("10.244.2.0/26", "10.0.1.6"),
            tunnel("10.244.3.0/26", "10.0.1.6"),
            tunnel("10.244.4.0/26", "10.0.2.7"),
            DesiredRoute {
                dst: "10.244.5.0/26".parse().unwrap(),
                kind: RouteKind::Direct {
                    via: "10.0.0.8".parse().unwrap(),
                    dev: "eth0".into(),
                },
            },
        ];
        assert_eq!(tunnel_gateways(&plan), set(&["10.0.1.6", "10.0.2.7"]));
    }

    #[test]
    fn nothing_is_installed_before_the_kernel_backend_runs_and_the_nodes_are_known() {
        let mut s = FilterState::default();
        s.handle_nodes(set(&["10.0.0.6"]));
        assert_eq!(s.poll_action(), None);
        s.handle_backend(TunnelInUse::None);
        assert_eq!(
            s.poll_action(),
            None,
            "a failed tunnel set-up installs nothing"
        );
        let mut s = FilterState::default();
        s.handle_backend(TunnelInUse::Kernel);
        assert_eq!(
            s.poll_action(),
            None,
            "nodes unknown: nothing installed yet"
        );
        s.handle_nodes(set(&["10.0.0.6"]));
        assert_eq!(
            s.poll_action(),
            Some(FilterAction::Apply(set(&["10.0.0.6"])))
        );
    }

    #[test]
    fn the_set_is_nodes_and_gateways_and_follows_both() {
        let mut s = FilterState::default();
        s.handle_backend(TunnelInUse::Kernel);
        s.handle_nodes(set(&["10.0.0.6"]));
        s.handle_gateways(set(&["10.0.1.6"]));
        let first = FilterAction::Apply(set(&["10.0.0.6", "10.0.1.6"]));
        assert_eq!(s.poll_action(), Some(first.clone()));
        s.handle_done(&first, true);
        assert_eq!(s.poll_action(), None, "applied: nothing more to do");
        // A node leaves the cluster.
        s.handle_nodes(BTreeSet::new());
        let second = FilterAction::Apply(set(&["10.0.1.6"]));
        assert_eq!(s.poll_action(), Some(second.clone()));
        s.handle_done(&second, true);
        // A failed tunnel set-up changes nothing.
        s.handle_backend(TunnelInUse::None);
        assert_eq!(s.poll_action(), None);
    }

    #[test]
    fn a_failed_change_is_retried() {
        let mut s = FilterState::default();
        s.handle_backend(TunnelInUse::Kernel);
        s.handle_nodes(set(&["10.0.0.6"]));
        let action = s.poll_action().unwrap();
        s.handle_done(&action, false);
        assert_eq!(s.poll_action(), Some(action));
    }

    #[test]
    fn the_userspace_backend_removes_a_table_an_earlier_run_may_have_left_once() {
        let mut s = FilterState::default();
        s.handle_backend(TunnelInUse::Userspace);
        assert_eq!(s.poll_action(), Some(FilterAction::Remove));
        // Failed (no nf_tables here): not tried again.
        s.handle_done(&FilterAction::Remove, false);
        assert_eq!(s.poll_action(), None);
    }

    #[test]
    fn the_userspace_backend_removes_a_table_of_ours() {
        let mut s = FilterState::default();
        s.handle_backend(TunnelInUse::Kernel);
        s.handle_nodes(set(&["10.0.0.6"]));
        let action = s.poll_action().unwrap();
        s.handle_done(&action, true);
        s.handle_backend(TunnelInUse::Userspace);
        assert_eq!(s.poll_action(), Some(FilterAction::Remove));
        s.handle_done(&FilterAction::Remove, true);
        assert_eq!(s.poll_action(), None);
        assert!(!s.installed());
    }
}
