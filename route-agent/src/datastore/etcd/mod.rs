//! `datastore: etcd`: the cluster without Kubernetes. Each agent claims
//! its pod blocks in etcd ([`blocks`], Calico's IPAM block affinity) and
//! the nodes come from records under the configured prefix:
//!
//! | key | value |
//! |---|---|
//! | `PREFIX/blocks/10.244.0.64-26`, `PREFIX/blocks/fd00:244::40-122` | the name of the node that holds the block |
//! | `PREFIX/nodes/node-a` | node-a's record ([`record`]) |
//!
//! A claim is one transaction: "if the key was never created, create it
//! with my name", so of any number of nodes racing for a block exactly
//! one wins; the others see it taken and go for the next. Claims are
//! durable (no lease): an agent that restarts, or loses etcd for a while,
//! keeps its blocks until the node is removed explicitly.
//!
//! The client is etcdv3client over a tonic channel we build (TLS with the
//! configured CA and client certificate, several endpoints balanced).

pub mod blocks;
pub mod record;
pub mod source;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use etcdv3client::grpc::{CredentialInterceptor, TonicClient};
use etcdv3client::pb;
use futures_util::StreamExt;
use ipnetwork::IpNetwork;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::EtcdConfig;

/// How long a connection attempt to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may take before it fails (and is retried by the
/// caller): a member that lost quorum holds requests, it does not refuse.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// A TLS file cannot be read.
    #[error("etcd.tls: cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An endpoint tonic refuses (or its TLS settings).
    #[error("etcd endpoint {endpoint}: {source}")]
    Endpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A request failed (no member reachable, no quorum, timeout, ...).
    #[error("etcd request failed: {0}")]
    Request(#[from] etcdv3client::Error),
    /// A configured block is another node's.
    #[error(
        "block {block} (in `blocks`) is claimed by node {holder} — give this node another block, or remove the other node (`route-agent node remove {holder}`)"
    )]
    BlockTaken {
        /// The block.
        block: IpNetwork,
        /// Who holds it.
        holder: String,
    },
    /// Every block of a pool is claimed.
    #[error(
        "pool {pool} is full: every /{size} block in it is claimed by a node — add a pool, use a smaller block-size, or remove nodes that are gone (`route-agent node remove NAME`)"
    )]
    PoolFull {
        /// The pool.
        pool: IpNetwork,
        /// Its block size.
        size: u8,
    },
}

/// A connection to the etcd cluster under one key prefix.
#[derive(Clone, Debug)]
pub struct Etcd {
    client: etcdv3client::Client<CredentialInterceptor<TonicClient>>,
    prefix: String,
}

impl Etcd {
    /// A client for `config`'s endpoints. Connects lazily: this fails only
    /// on bad settings or unreadable TLS files, never because etcd is down
    /// (requests fail then, and are retried by their callers). Must run
    /// inside a tokio runtime.
    pub fn connect(config: &EtcdConfig) -> Result<Etcd, EtcdError> {
        let tls = match &config.tls {
            None => None,
            Some(t) => {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|source| EtcdError::TlsFile {
                        path: path.clone(),
                        source,
                    })
                };
                let mut tls =
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&t.ca)?));
                if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
                    tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
                }
                Some(tls)
            }
        };
        let mut endpoints = Vec::new();
        for e in &config.endpoints {
            let bad = |source| EtcdError::Endpoint {
                endpoint: e.clone(),
                source,
            };
            let mut ep = Endpoint::from_shared(e.clone())
                .map_err(bad)?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5))
                .keep_alive_while_idle(true);
            if let Some(tls) = &tls {
                ep = ep.tls_config(tls.clone()).map_err(bad)?;
            }
            endpoints.push(ep);
        }
        let channel = Channel::balance_list(endpoints.into_iter());
        let service = CredentialInterceptor::new(None, None, TonicClient::new(channel));
        Ok(Etcd {
            client: etcdv3client::Client::with_service(service),
            prefix: config.prefix.clone(),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every key under `folder` with its value and revisions.
    async fn range_prefix(&mut self, folder: &str) -> Result<Vec<pb::KeyValue>, EtcdError> {
        let request = pb::RangeRequest {
            key: folder.as_bytes().to_vec(),
            range_end: prefix_end(folder.as_bytes()),
            ..Default::default()
        };
        Ok(self.client.kv.range(request).await?.kvs)
    }

    /// Every block claim under the prefix, by block. Keys that are not
    /// block keys, or values that are not UTF-8, are left out (logged).
    pub async fn claims(&mut self) -> Result<Claims, EtcdError> {
        let folder = blocks::blocks_folder(&self.prefix);
        let mut out = BTreeMap::new();
        for kv in self.range_prefix(&folder).await? {
            let key = String::from_utf8_lossy(&kv.key);
            match (
                blocks::parse_block_key(&self.prefix, &key),
                String::from_utf8(kv.value),
            ) {
                (Some(block), Ok(node)) => {
                    out.insert(block, node);
                }
                _ => tracing::warn!(%key, "skipping a block claim that does not parse"),
            }
        }
        Ok(out)
    }

    /// Claims one block of `size` in `pool` for `node`, or returns the one
    /// it holds there already (so a restarted agent keeps its block).
    ///
    /// The next free block is read, then claimed with a transaction that
    /// creates its key only if it was never created; when another node
    /// won that block in between, the next free one is tried. Each lost
    /// race means one more block claimed by someone, so this ends: with a
    /// block, or [`EtcdError::PoolFull`] naming the pool.
    pub async fn claim_block(
        &mut self,
        node: &str,
        pool: IpNetwork,
        size: u8,
    ) -> Result<IpNetwork, EtcdError> {
        loop {
            let claimed = self.claims().await?;
            if let Some(held) = blocks::held_by(pool, node, &claimed).first() {
                return Ok(*held);
            }
            let block = blocks::next_free(pool, size, &claimed)
                .ok_or(EtcdError::PoolFull { pool, size })?;
            let key = blocks::block_key(&self.prefix, block).into_bytes();
            let request = claim_if_unclaimed(key, node, Vec::new());
            if self.client.kv.txn(request).await?.succeeded {
                tracing::info!(%node, %block, %pool, "claimed block");
                return Ok(block);
            }
            tracing::debug!(%node, %block, "block claimed by another node in between; trying the next");
        }
    }

    /// Releases every block `node` holds: each key is deleted only if it
    /// still names `node` (a transaction per block). Returns the blocks
    /// released.
    pub async fn release_blocks(&mut self, node: &str) -> Result<Vec<IpNetwork>, EtcdError> {
        let mut released = Vec::new();
        for (block, holder) in self.claims().await? {
            if holder != node {
                continue;
            }
            let key = blocks::block_key(&self.prefix, block).into_bytes();
            let request = pb::TxnRequest {
                compare: vec![pb::Compare {
                    result: pb::compare::CompareResult::Equal as i32,
                    target: pb::compare::CompareTarget::Value as i32,
                    key: key.clone(),
                    range_end: Vec::new(),
                    target_union: Some(pb::compare::TargetUnion::Value(node.as_bytes().to_vec())),
                }],
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestDeleteRange(
                        pb::DeleteRangeRequest {
                            key,
                            ..Default::default()
                        },
                    )),
                }],
                failure: Vec::new(),
            };
            if self.client.kv.txn(request).await?.succeeded {
                released.push(block);
            }
        }
        Ok(released)
    }
}

/// Block claims: each claimed block and the name of the node holding it.
pub type Claims = BTreeMap<IpNetwork, String>;

/// Everything under the prefix at one revision: the records, the claims
/// and that revision (a watch from the next one misses nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Every node record.
    pub records: Vec<record::RawRecord>,
    /// Every block claim, by block.
    pub claims: Claims,
    /// The store's revision of this listing.
    pub revision: i64,
}

impl Listing {
    /// Applies one key change (a put with its value and create revision,
    /// or a delete) of a watch or a listing; keys that are neither records
    /// nor claims are ignored, claims that do not parse are logged.
    pub fn apply(&mut self, prefix: &str, key: &[u8], change: Option<(&[u8], i64)>) {
        let key = String::from_utf8_lossy(key);
        if let Some(name) = record::parse_node_key(prefix, &key) {
            self.records.retain(|r| r.name != name);
            if let Some((value, created)) = change {
                self.records.push(record::RawRecord {
                    name: name.to_owned(),
                    value: value.to_vec(),
                    created,
                });
            }
        } else if let Some(block) = blocks::parse_block_key(prefix, &key) {
            match change {
                None => {
                    self.claims.remove(&block);
                }
                Some((value, _)) => match std::str::from_utf8(value) {
                    Ok(node) => {
                        self.claims.insert(block, node.to_owned());
                    }
                    Err(_) => {
                        tracing::warn!(%key, "skipping a block claim whose value is not a node name");
                        self.claims.remove(&block);
                    }
                },
            }
        }
    }
}

impl Etcd {
    /// Every record and claim under the prefix, in one read.
    pub async fn list(&mut self) -> Result<Listing, EtcdError> {
        let folder = format!("{}/", self.prefix);
        let request = pb::RangeRequest {
            key: folder.as_bytes().to_vec(),
            range_end: prefix_end(folder.as_bytes()),
            ..Default::default()
        };
        let response = self.client.kv.range(request).await?;
        let mut listing = Listing {
            revision: response.header.map_or(0, |h| h.revision),
            ..Listing::default()
        };
        for kv in &response.kvs {
            listing.apply(&self.prefix, &kv.key, Some((&kv.value, kv.create_revision)));
        }
        Ok(listing)
    }

    /// Writes `record` as its node's record (a plain put: the agent owns
    /// its record).
    pub async fn put_record(&mut self, record: &record::NodeRecord) -> Result<(), EtcdError> {
        let request = pb::PutRequest {
            key: record::node_key(&self.prefix, &record.name).into_bytes(),
            value: record.to_json(),
            ..Default::default()
        };
        self.client.kv.put(request).await?;
        Ok(())
    }

    /// Writes `value` as `name`'s record, whatever it holds: for tools
    /// that write records themselves (and tests of records that do not
    /// parse).
    pub async fn put_raw_record(&mut self, name: &str, value: Vec<u8>) -> Result<(), EtcdError> {
        let request = pb::PutRequest {
            key: record::node_key(&self.prefix, name).into_bytes(),
            value,
            ..Default::default()
        };
        self.client.kv.put(request).await?;
        Ok(())
    }

    /// Deletes `name`'s record; true when there was one.
    pub async fn delete_record(&mut self, name: &str) -> Result<bool, EtcdError> {
        let request = pb::DeleteRangeRequest {
            key: record::node_key(&self.prefix, name).into_bytes(),
            ..Default::default()
        };
        Ok(self.client.kv.delete_range(request).await?.deleted > 0)
    }

    /// Claims exactly `block` for `node` (a configured block): succeeds
    /// when the block is free (the claim is made) or already `node`'s;
    /// fails with [`EtcdError::BlockTaken`] when another node holds it.
    pub async fn claim_exact(&mut self, node: &str, block: IpNetwork) -> Result<(), EtcdError> {
        let key = blocks::block_key(&self.prefix, block).into_bytes();
        // On failure, read who holds it.
        let read_holder = vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                key: key.clone(),
                ..Default::default()
            })),
        }];
        let request = claim_if_unclaimed(key, node, read_holder);
        let response = self.client.kv.txn(request).await?;
        if response.succeeded {
            return Ok(());
        }
        let holder = response
            .responses
            .into_iter()
            .find_map(|r| match r.response {
                Some(pb::response_op::Response::ResponseRange(r)) => r.kvs.into_iter().next(),
                _ => None,
            })
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
            .unwrap_or_default();
        if holder == node {
            Ok(())
        } else {
            Err(EtcdError::BlockTaken { block, holder })
        }
    }

    /// A watch of every key under the prefix from `revision` on, with the
    /// stream of its responses.
    pub async fn watch_from(
        &mut self,
        revision: i64,
    ) -> Result<tonic::codec::Streaming<pb::WatchResponse>, EtcdError> {
        let folder = format!("{}/", self.prefix);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: folder.as_bytes().to_vec(),
                    range_end: prefix_end(folder.as_bytes()),
                    start_revision: revision,
                    ..Default::default()
                },
            )),
        };
        // The request stream stays open: etcd ends a watch whose client
        // closed its side.
        let requests = futures_util::stream::once(async move { create })
            .chain(futures_util::stream::pending());
        Ok(self.client.watch.watch(requests).await?)
    }
}

/// What [`Etcd::remove_node`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Whether there was a record.
    pub record: bool,
    /// The blocks released.
    pub blocks: Vec<IpNetwork>,
}

impl Etcd {
    /// Removes node `name` for good (`route-agent node remove`): its record
    /// first, so that no record lists a released block, then its block
    /// claims. Every agent drops the node's sessions and routes when the
    /// record goes; its blocks are free for the next node that claims one.
    pub async fn remove_node(&mut self, name: &str) -> Result<Removed, EtcdError> {
        let record = self.delete_record(name).await?;
        let blocks = self.release_blocks(name).await?;
        Ok(Removed { record, blocks })
    }
}

/// How long to wait before asking etcd again after a request failed
/// more than [`QUICK_RETRIES`] times in a row.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Failures in a row retried after [`QUICK_RETRY`].
pub const QUICK_RETRIES: u32 = 5;
/// The delay of the first retries.
pub const QUICK_RETRY: Duration = Duration::from_millis(100);

/// The delay before asking again after `failures` failed requests in a
/// row: [`QUICK_RETRY`] for the first [`QUICK_RETRIES`], then
/// [`RETRY_EVERY`]. Quick first: the client spreads requests over every
/// endpoint, so with a member down (or just restarted and not yet in the
/// cluster) some are refused at once while the next goes to a member that
/// answers.
pub fn retry_delay(failures: u32) -> Duration {
    if failures <= QUICK_RETRIES {
        QUICK_RETRY
    } else {
        RETRY_EVERY
    }
}

/// Runs `attempt` until it succeeds or fails for good: request failures
/// (etcd unreachable, no quorum) are retried after [`retry_delay`], logged
/// once every 10 s as "cannot `what` yet"; other errors (a full pool, a
/// block held by another node, unreadable TLS files) are returned.
pub async fn retry<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, EtcdError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, EtcdError>>,
{
    let mut last_log: Option<tokio::time::Instant> = None;
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Err(EtcdError::Request(e)) => {
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!("etcd: cannot {what} yet ({e}); retrying");
                    last_log = Some(tokio::time::Instant::now());
                }
                failures = failures.saturating_add(1);
                tokio::time::sleep(retry_delay(failures)).await;
            }
            done => return done,
        }
    }
}

/// The range end that makes a range request cover every key starting
/// with `prefix` (etcd's `clientv3.GetPrefixRangeEnd`): the prefix with its
/// last byte below 0xff incremented and the rest cut.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}

/// The claim transaction: `key` is written with `node` as its value only
/// if it was never created (create revision 0), so two nodes racing for
/// one block cannot both succeed; `failure` runs otherwise.
fn claim_if_unclaimed(key: Vec<u8>, node: &str, failure: Vec<pb::RequestOp>) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: vec![pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Create as i32,
            key: key.clone(),
            range_end: Vec::new(),
            target_union: Some(pb::compare::TargetUnion::CreateRevision(0)),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key,
                value: node.as_bytes().to_vec(),
                ..Default::default()
            })),
        }],
        failure,
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn requests_are_retried_quickly_five_times_then_every_second() {
        let delays: Vec<u128> = (1..=7).map(|n| super::retry_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 100, 100, 100, 100, 1000, 1000]);
        assert_eq!(super::retry_delay(u32::MAX), super::RETRY_EVERY);
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/p/blocks/"), b"/p/blocks0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }
}
