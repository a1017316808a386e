//! What the end-to-end tests of `datastore: etcd` share: the namespace
//! cluster (`route_agent::demo::cluster`: A and B on 10.0.1.0/24, C behind
//! the router on 10.0.2.0/24) with a three-member etcd
//! (`podroute_tests::etcd`) on the router's subnet 10.0.9.0/24 (.21, .22,
//! .23), agents that claim their blocks in etcd, and the checks on etcd,
//! kernel routes and `ip monitor` traces. `ROUTE_AGENT_BIN` runs the
//! agents of another build (to show a test failing before a change).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use podroute_tests::etcd::EtcdCluster;
use podroute_tests::{RouteMonitor, in_netns};
use route_agent::config::EtcdConfig;
use route_agent::datastore::etcd::record::NodeRecord;
use route_agent::datastore::etcd::{Etcd, EtcdError};
use route_agent::demo::cluster::{Cluster, routes};

/// The agent binary the tests run: this build's, or `ROUTE_AGENT_BIN`.
pub fn agent() -> std::path::PathBuf {
    std::env::var_os("ROUTE_AGENT_BIN").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_route-agent")),
        std::path::PathBuf::from,
    )
}
pub const PROTO: u8 = 98;
pub const TUNNEL_MTU: u32 = 1480;
pub const PREFIX: &str = "/e2e";

/// A, B, C: (name, subnet, host).
pub const NODES: [(&str, u8, u8); 3] = [("node-a", 1, 10), ("node-b", 1, 11), ("node-c", 2, 10)];

pub fn agent_config(name: &str, subnet: u8, host: u8, endpoints: &[String]) -> String {
    format!(
        "datastore: etcd\nnode:\n  name: {name}\n  address: 10.0.{subnet}.{host}/24\n\
         pools:\n  - cidr: 10.244.0.0/16\n    ipip-mode: cross-subnet\n\
         tunnel:\n  backend: auto\n\
         graceful-restart:\n  enabled: true\n  restart-time: 10\n\
         admin:\n  listen: 127.0.0.1:9179\n\
         etcd:\n  endpoints: [{}]\n  prefix: {PREFIX}\n",
        endpoints.join(", ")
    )
}

/// Runs `f` against etcd from the router's namespace, again while etcd
/// fails (a leader election after a member was killed), for up to 30 s.
pub fn etcd_do<T: Send + 'static, F>(
    router: &str,
    endpoints: &[String],
    mut f: impl FnMut(Etcd) -> F + Send + 'static,
) -> T
where
    F: std::future::Future<Output = Result<T, EtcdError>>,
{
    let config = EtcdConfig {
        endpoints: endpoints.to_vec(),
        prefix: PREFIX.to_owned(),
        tls: None,
    };
    in_netns(router, move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match f(Etcd::connect(&config).unwrap()).await {
                        Ok(v) => return v,
                        Err(e) if Instant::now() > deadline => panic!("etcd: {e}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            })
    })
}

/// Every block claim in etcd, IPv4 and IPv6.
pub fn claims(router: &str, endpoints: &[String]) -> BTreeMap<IpNetwork, String> {
    etcd_do(router, endpoints, |mut e| async move { e.claims().await })
}

pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub struct Setup {
    // Field order is drop order: the etcd members (namespaces attached to
    // the cluster's router) go before the cluster.
    pub etcd: EtcdCluster,
    pub c: Cluster,
    pub router: String,
    pub endpoints: Vec<String>,
    /// Each node's IPv4 block.
    pub blocks: BTreeMap<String, Ipv4Network>,
    /// Each node's IPv6 block, with IPv6 pools.
    pub blocks_v6: BTreeMap<String, Ipv6Network>,
}

impl Setup {
    /// The cluster, etcd on its subnet 9, agents started one after the
    /// other (each claims its block), a pod in each claimed block, every
    /// node converged.
    pub fn new(tag: &str) -> Setup {
        Setup::with(tag, agent_config)
    }

    /// [`Setup::new`] with each node's config from `config` (name,
    /// subnet, host, endpoints).
    pub fn with(tag: &str, config: fn(&str, u8, u8, &[String]) -> String) -> Setup {
        Setup::build(tag, config, |_| {})
    }

    /// [`Setup::with`], and `prepare` run on the cluster once its nodes
    /// are there, before any agent starts (IPv6 addresses, say).
    pub fn build(
        tag: &str,
        config: fn(&str, u8, u8, &[String]) -> String,
        prepare: fn(&Cluster),
    ) -> Setup {
        let mut c = Cluster::new(&format!("rae{tag}{}", std::process::id())).expect("cluster");
        for (name, subnet, host) in NODES {
            c.add_node(name, subnet, host).expect("node");
        }
        prepare(&c);
        let router = c.router().to_owned();
        let etcd = EtcdCluster::start_on(&format!("e2{tag}"), |ns, i| {
            // .1 is the router's address on the subnet.
            let host = u8::try_from(i + 21).unwrap();
            c.attach(ns.name(), 9, host)
                .expect("attach etcd member")
                .ip()
        });
        let endpoints = etcd.endpoints();
        let mut s = Setup {
            etcd,
            c,
            router,
            endpoints,
            blocks: BTreeMap::new(),
            blocks_v6: BTreeMap::new(),
        };
        for (name, subnet, host) in NODES {
            let config = config(name, subnet, host, &s.endpoints);
            s.c.start_agent(name, &agent(), &config).expect("agent");
            let claimed = wait_until(Duration::from_secs(30), || {
                claims(&s.router, &s.endpoints).values().any(|n| n == name)
            });
            assert!(claimed, "{name} claimed no block:\n{}", s.c.log(name));
        }
        for (block, name) in claims(&s.router, &s.endpoints) {
            match block {
                IpNetwork::V4(block) => {
                    s.c.add_pod(&name, block).expect("pod");
                    s.blocks.insert(name, block);
                }
                IpNetwork::V6(block) => {
                    s.blocks_v6.insert(name, block);
                }
            }
        }
        s.converge(Duration::from_secs(30));
        s
    }

    pub fn converge(&mut self, within: Duration) {
        let wrong = self.c.wait_converged(PROTO, TUNNEL_MTU, within);
        let logs: String = wrong
            .iter()
            .map(|(n, want, have)| {
                format!(
                    "\n{n}: want {want:#?}\nhas {have:#?}\nlog:\n{}",
                    self.c.log(n)
                )
            })
            .collect();
        assert!(wrong.is_empty(), "cluster did not converge:{logs}");
    }

    pub fn monitors(&self) -> Vec<(String, RouteMonitor)> {
        NODES
            .iter()
            .map(|(n, _, _)| {
                let ns = self.c.node(n).unwrap().ns.clone();
                let file = self.c.dir().join(format!("{n}.{}.monitor", nanos()));
                ((*n).to_owned(), RouteMonitor::start(&ns, file))
            })
            .collect()
    }

    /// Whether node `on` has a route for `block`.
    pub fn has_route(&self, on: &str, block: Ipv4Network) -> bool {
        let ns = &self.c.node(on).unwrap().ns;
        routes(ns, PROTO)
            .unwrap_or_default()
            .iter()
            .any(|r| r.starts_with(&block.to_string()))
    }

    /// `/metrics` of node `name`'s agent.
    pub fn metrics(&self, name: &str) -> String {
        let ns = &self.c.node(name).unwrap().ns;
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "bash", "-c"])
            .arg("exec 3<>/dev/tcp/127.0.0.1/9179; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
            .output()
            .expect("metrics");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn record(&self, name: &str) -> NodeRecord {
        let name = name.to_owned();
        let listing = etcd_do(&self.router, &self.endpoints, |mut e| async move {
            e.list().await
        });
        let raw = listing
            .records
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no record of {name} in {PREFIX}/nodes/"));
        serde_json::from_slice(&raw.value).unwrap()
    }

    pub fn put(&self, record: NodeRecord) {
        etcd_do(&self.router, &self.endpoints, move |mut e| {
            let record = record.clone();
            async move { e.put_record(&record).await }
        });
    }

    pub fn delete(&self, name: &str) {
        let name = name.to_owned();
        etcd_do(&self.router, &self.endpoints, move |mut e| {
            let name = name.clone();
            async move { e.delete_record(&name).await }
        });
    }
}

pub fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn assert_no_churn(monitors: Vec<(String, RouteMonitor)>, what: &str) {
    for (n, m) in monitors {
        let lines = m.stop(PROTO);
        assert!(
            lines.is_empty(),
            "{what}: {n}'s routes changed:\n{}",
            lines.join("\n")
        );
    }
}
