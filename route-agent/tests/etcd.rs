//! `datastore: etcd` against a real three-member etcd cluster (Debian's
//! etcd-server) in network namespaces (`podroute_tests::etcd`): block
//! claims made by transactions.

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::Ipv4Network;
use podroute_tests::etcd::EtcdCluster;
use route_agent::config::EtcdConfig;
use route_agent::datastore::etcd::{Etcd, EtcdError};

fn settings(cluster: &EtcdCluster, prefix: &str) -> EtcdConfig {
    EtcdConfig {
        endpoints: cluster.endpoints(),
        prefix: prefix.to_owned(),
        tls: None,
    }
}

fn net(s: &str) -> Ipv4Network {
    s.parse().unwrap()
}

/// Runs `f` on a current-thread runtime inside a client namespace of
/// `cluster`.
fn in_client<T: Send + 'static, F>(
    cluster: &mut EtcdCluster,
    f: impl FnOnce() -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = T>,
{
    let ns = cluster.client_netns().name().to_owned();
    podroute_tests::in_netns(&ns, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
}

#[test]
fn twenty_concurrent_claimers_get_twenty_distinct_blocks() {
    let mut cluster = EtcdCluster::start("claim20");
    let config = settings(&cluster, "/claim20");
    let (blocks, claims) = in_client(&mut cluster, move || async move {
        // Twenty clients, each on its own connection, all reading the same
        // free block first: only the transactions keep them apart.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let mut etcd = Etcd::connect(&config).unwrap();
            tasks.push(tokio::spawn(async move {
                let name = format!("node-{i}");
                let block = etcd
                    .claim_block(&name, net("10.244.0.0/16"), 26)
                    .await
                    .unwrap();
                (name, block)
            }));
        }
        let mut blocks = BTreeMap::new();
        for t in tasks {
            let (name, block) = t.await.unwrap();
            blocks.insert(name, block);
        }
        let claims = Etcd::connect(&config).unwrap().claims().await.unwrap();
        (blocks, claims)
    });
    let distinct: BTreeSet<Ipv4Network> = blocks.values().copied().collect();
    assert_eq!(distinct.len(), 20, "two nodes got one block: {blocks:?}");
    assert!(distinct.iter().all(|b| b.prefix() == 26));
    // What etcd holds is exactly what each node was told.
    let from_etcd: BTreeMap<String, Ipv4Network> =
        claims.iter().map(|(b, n)| (n.clone(), *b)).collect();
    assert_eq!(claims.len(), 20, "{claims:?}");
    assert_eq!(from_etcd, blocks);
}

#[test]
fn a_restarted_node_keeps_its_block_and_a_full_pool_names_the_pool() {
    let mut cluster = EtcdCluster::start("claimkeep");
    let config = settings(&cluster, "/keep");
    in_client(&mut cluster, move || async move {
        let pool = net("10.250.0.0/25");
        let first = Etcd::connect(&config)
            .unwrap()
            .claim_block("node-a", pool, 26)
            .await
            .unwrap();
        // A new client (the agent restarted) gets the same block back.
        let again = Etcd::connect(&config)
            .unwrap()
            .claim_block("node-a", pool, 26)
            .await
            .unwrap();
        assert_eq!(first, again);
        let mut etcd = Etcd::connect(&config).unwrap();
        let second = etcd.claim_block("node-b", pool, 26).await.unwrap();
        assert_ne!(first, second);
        // Two /26 in a /25: the third node finds the pool full.
        let err = etcd.claim_block("node-c", pool, 26).await.unwrap_err();
        assert!(matches!(err, EtcdError::PoolFull { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("pool 10.250.0.0/25 is full"), "{text}");
        // A configured block held by another node is refused, naming it.
        let err = etcd.claim_exact("node-c", first).await.unwrap_err();
        assert!(err.to_string().contains("claimed by node node-a"), "{err}");
        etcd.claim_exact("node-a", first).await.unwrap();
        // Released blocks are free again, for the next node.
        assert_eq!(etcd.release_blocks("node-a").await.unwrap(), vec![first]);
        assert_eq!(etcd.claim_block("node-c", pool, 26).await.unwrap(), first);
    });
}
