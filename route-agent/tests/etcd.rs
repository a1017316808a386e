//! `datastore: etcd` against a real three-member etcd cluster (Debian's
//! etcd-server) in network namespaces (`podroute_tests::etcd`): block
//! claims made by transactions.

use std::collections::{BTreeMap, BTreeSet};

use ipnetwork::IpNetwork;
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

fn net(s: &str) -> IpNetwork {
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
    let distinct: BTreeSet<IpNetwork> = blocks.values().copied().collect();
    assert_eq!(distinct.len(), 20, "two nodes got one block: {blocks:?}");
    assert!(distinct.iter().all(|b| b.prefix() == 26));
    // What etcd holds is exactly what each node was told.
    let from_etcd: BTreeMap<String, IpNetwork> =
        claims.iter().map(|(b, n)| (n.clone(), *b)).collect();
    assert_eq!(claims.len(), 20, "{claims:?}");
    assert_eq!(from_etcd, blocks);
}

#[test]
fn twenty_concurrent_claimers_of_a_dual_stack_pool_set_get_one_distinct_block_of_each_family() {
    let mut cluster = EtcdCluster::start("claim46");
    let config = settings(&cluster, "/claim46");
    let (blocks, claims) = in_client(&mut cluster, move || async move {
        // As `route-agent run` claims: one block per pool, IPv4 then IPv6,
        // twenty nodes at once.
        let mut tasks = Vec::new();
        for i in 0..20 {
            let mut etcd = Etcd::connect(&config).unwrap();
            tasks.push(tokio::spawn(async move {
                let name = format!("node-{i}");
                let v4 = etcd
                    .claim_block(&name, net("10.244.0.0/16"), 26)
                    .await
                    .unwrap();
                let v6 = etcd
                    .claim_block(&name, net("fd00:244::/48"), 122)
                    .await
                    .unwrap();
                // Asked again (a restart): the same two.
                assert_eq!(
                    etcd.claim_block(&name, net("fd00:244::/48"), 122)
                        .await
                        .unwrap(),
                    v6
                );
                (name, (v4, v6))
            }));
        }
        let mut blocks = BTreeMap::new();
        for t in tasks {
            let (name, pair) = t.await.unwrap();
            blocks.insert(name, pair);
        }
        let claims = Etcd::connect(&config).unwrap().claims().await.unwrap();
        (blocks, claims)
    });
    let v4: BTreeSet<IpNetwork> = blocks.values().map(|(b, _)| *b).collect();
    let v6: BTreeSet<IpNetwork> = blocks.values().map(|(_, b)| *b).collect();
    assert_eq!(v4.len(), 20, "two nodes got one IPv4 block: {blocks:?}");
    assert_eq!(v6.len(), 20, "two nodes got one IPv6 block: {blocks:?}");
    assert!(v4.iter().all(|b| b.is_ipv4() && b.prefix() == 26));
    assert!(
        v6.iter()
            .all(|b| b.is_ipv6() && b.prefix() == 122 && net("fd00:244::/48").contains(b.ip()))
    );
    // etcd holds exactly these forty claims, each with its node.
    assert_eq!(claims.len(), 40, "{claims:?}");
    for (name, (a, b)) in &blocks {
        assert_eq!(claims.get(a), Some(name));
        assert_eq!(claims.get(b), Some(name));
    }
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

#[test]
fn node_remove_deletes_the_record_and_releases_the_blocks() {
    use route_agent::datastore::ClusterNode;
    use route_agent::datastore::etcd::record::NodeRecord;

    let mut cluster = EtcdCluster::start("noderm");
    let config = settings(&cluster, "/rm");
    let ns = cluster.client_netns().name().to_owned();
    let scratch = podroute_tests::Scratch::new("noderm");
    let file = scratch.write(
        "node.yaml",
        &format!(
            "datastore: etcd\nnode: {{name: node-x, address: 10.199.0.100/24}}\npools: [{{cidr: 10.244.0.0/16}}]\netcd: {{endpoints: [{}], prefix: /rm}}\n",
            cluster.endpoints().join(", ")
        ),
    );
    let setup = config.clone();
    podroute_tests::in_netns(&ns, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut etcd = Etcd::connect(&setup).unwrap();
                for (i, name) in ["node-a", "node-b"].into_iter().enumerate() {
                    let block = etcd
                        .claim_block(name, net("10.244.0.0/16"), 26)
                        .await
                        .unwrap();
                    let node = ClusterNode {
                        name: name.into(),
                        address: format!("10.0.1.{}/24", 10 + i).parse().unwrap(),
                        address_v6: None,
                        blocks: vec![block],
                        tunnel_address: None,
                        reflector: None,
                    };
                    etcd.put_record(&NodeRecord::of(&node, 64512))
                        .await
                        .unwrap();
                }
            })
    });
    let agent = env!("CARGO_BIN_EXE_route-agent");
    let remove = || {
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, agent, "node", "remove", "node-a", "--config",
            ])
            .arg(&file)
            .output()
            .unwrap()
    };
    let out = remove();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("node node-a removed: record deleted, blocks released: 10.244.0.0/26"),
        "{stdout}"
    );
    let listing = podroute_tests::in_netns(&ns, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move { Etcd::connect(&config).unwrap().list().await.unwrap() })
    });
    let names: Vec<&str> = listing.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["node-b"]);
    assert_eq!(
        listing.claims.into_iter().collect::<Vec<_>>(),
        vec![(net("10.244.0.64/26"), "node-b".to_owned())]
    );
    // Again: nothing left to remove, exit code 1 naming the node.
    let out = remove();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node node-a in etcd under /rm"));
}

#[test]
fn claims_go_over_tls_with_the_client_certificate() {
    use route_agent::config::EtcdTls;

    let mut cluster = EtcdCluster::start_tls("claimtls");
    let files = cluster.tls().cloned().unwrap();
    let mut config = settings(&cluster, "/tls");
    assert!(config.endpoints.iter().all(|e| e.starts_with("https://")));
    config.tls = Some(EtcdTls {
        ca: files.ca.clone(),
        cert: Some(files.cert),
        key: Some(files.key),
    });
    // The CA alone: the members require a client certificate.
    let mut no_identity = config.clone();
    no_identity.tls = Some(EtcdTls {
        ca: files.ca,
        cert: None,
        key: None,
    });
    in_client(&mut cluster, move || async move {
        let mut etcd = Etcd::connect(&config).unwrap();
        let block = etcd
            .claim_block("node-a", net("10.244.0.0/16"), 26)
            .await
            .unwrap();
        assert_eq!(block, net("10.244.0.0/26"));
        assert_eq!(etcd.claims().await.unwrap().len(), 1);
        let refused = Etcd::connect(&no_identity).unwrap().claims().await;
        assert!(refused.is_err(), "a client without certificate was served");
    });
}
