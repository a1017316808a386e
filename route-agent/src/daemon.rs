//! `route-agent run`: the agent and, beside it, the admin API on the
//! agent's shared state. Neither imports the other: the agent
//! ([`crate::agent`]) writes [`crate::state::AgentState`], the admin API
//! ([`crate::admin`]) reads it, and this module starts both.

use crate::admin::{self, AdminError};
use crate::agent::node::{NodeError, NodeView};
use crate::agent::{Agent, AgentError, Options};
use crate::config::Config;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The node (address, interface, MTU) could not be read.
    #[error("{0}")]
    Node(#[from] NodeError),
    /// The admin API could not listen.
    #[error("{0}")]
    Admin(#[from] AdminError),
    /// The agent could not start.
    #[error("{0}")]
    Agent(#[from] AgentError),
}

/// Runs the agent, with its admin API beside it, until SIGTERM or SIGINT.
///
/// In this order, so that each failure is reported before anything it
/// would leave half-started: the node is read (a node address that does
/// not fit this host is a config problem), the admin listener is bound (a
/// taken port fails the start before any BGP session opens), the agent
/// starts its speaker, and only then is the admin API served, from the
/// agent's state. The API stops when the agent has stopped.
pub async fn run(config: Config, options: Options) -> Result<(), DaemonError> {
    let node = NodeView::read(&config.node)?;
    tracing::info!(address = %node.address, underlay = %node.underlay, mtu = node.mtu, "node address");
    let listener = admin::bind(config.admin.listen).await?;
    let agent = Agent::start(config, node, options).await?;
    let server = tokio::spawn(admin::serve(listener, agent.state()));
    let result = agent.run().await;
    server.abort();
    Ok(result?)
}
