//! The log lines of the control step's events ([`Event`]): what each
//! says, and at which level.

use super::control::{Event, PeerChange, PeerResult, PlanCause};

/// Logs what the control step reports.
pub(super) fn log(event: &Event) {
    match event {
        Event::Planned { routes, cause } => match cause {
            PlanCause::Changed => tracing::debug!(routes, "route changes planned"),
            PlanCause::Resync => tracing::debug!(routes, "periodic re-plan"),
        },
        Event::InSync => tracing::info!("every peer sent End-of-RIB: routes in sync"),
        Event::HoldExpired { missing } => tracing::info!(
            ?missing,
            "the first reconcile waited long enough without End-of-RIB from every peer"
        ),
        Event::Refused(r) => tracing::warn!(
            prefix = %r.route.prefix,
            next_hop = %r.route.next_hop,
            reason = ?r.reason,
            "learned route not installed"
        ),
        Event::Ipv6BlockNotAnnounced(block) => tracing::warn!(
            %block,
            "IPv6 block not announced: this node has no IPv6 address (set node.address-v6 or give the underlay interface one)"
        ),
        Event::NodeChanged { old, new } => {
            tracing::info!(address = %new.address, underlay = %new.underlay, mtu = new.mtu, "node address, interface or MTU changed: re-planning");
            if new.address.ip() != old.address.ip() {
                tracing::warn!(old = %old.address.ip(), new = %new.address.ip(), "BGP sessions keep using the old address until the agent restarts");
            }
        }
        Event::NodeUnreadable(e) => tracing::warn!("after a link or address change: {e}"),
        Event::TunnelFailed { error, retry_in } => {
            tracing::error!(retry_in_s = retry_in.as_secs(), "{error}");
        }
        Event::TunnelExited { exit, retry_in } => {
            tracing::error!(retry_in_s = retry_in.as_secs(), "{exit}");
        }
        Event::ReloadRefused(e) => {
            tracing::error!("SIGHUP: config not reloaded, the running one stays: {e}");
        }
        Event::NeedsRestart(keys) => tracing::warn!(
            ?keys,
            "SIGHUP: these settings take effect only after a restart"
        ),
        Event::Reloaded(change) => tracing::info!(?change, "SIGHUP: config reloaded"),
        Event::PeerCommandFailed(PeerResult {
            peer,
            change,
            result: Err(e),
        }) => match change {
            PeerChange::Remove => tracing::warn!("removing peer {peer}: {e}"),
            PeerChange::Add => tracing::warn!("adding peer {peer}: {e}"),
        },
        Event::PeerCommandFailed(_) => {}
        Event::NodesApplied(change) => {
            tracing::info!(?change, "nodes changed: applied");
        }
        Event::NotInNodeSet(name) => tracing::warn!(
            "this node ({name}) is not in the datastore's node set (its Node was deleted or is skipped): keeping its last known blocks"
        ),
        Event::NotFromOwner {
            prefix,
            next_hop,
            owner,
        } => tracing::warn!(
            %prefix,
            %next_hop,
            owner = %owner,
            "learned route not installed: it is inside node {owner}'s block, and its next hop is not that node"
        ),
        Event::NodeMoved {
            node,
            old,
            new,
            blocks,
        } => tracing::info!(
            %node, %old, %new, ?blocks,
            "node moved: its blocks are routed to its new address until its sessions from there bring them"
        ),
        Event::DatastoreChanged => tracing::error!(
            "config reload: `datastore` changed; that takes a restart, and nothing of the new file was applied"
        ),
    }
}
