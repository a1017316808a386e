//! The `etcd` section (`datastore: etcd`): where the cluster's node records
//! and block claims live ([`crate::datastore::etcd`]), and its rules.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;
use super::error::Problem;
use crate::datastore::DatastoreKind;

/// The default key prefix: records under `/podroute/nodes/`, claims under
/// `/podroute/blocks/`.
pub const DEFAULT_ETCD_PREFIX: &str = "/podroute";

fn default_prefix() -> String {
    DEFAULT_ETCD_PREFIX.to_owned()
}

/// How to reach the etcd v3 cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EtcdConfig {
    /// The members' client URLs (`https://10.0.0.1:2379`); the client
    /// spreads requests over the members that answer.
    pub endpoints: Vec<String>,
    /// Every key the agent reads or writes starts with this (`/podroute`),
    /// so several clusters can share one etcd.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// TLS to the members (with `https://` endpoints).
    #[serde(default)]
    pub tls: Option<EtcdTls>,
}

/// TLS files, PEM: the CA that signed the members' certificates and this
/// agent's client certificate and key (etcd's `--client-cert-auth`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EtcdTls {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The client certificate (with `key`).
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (with `cert`).
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// Whether an endpoint is `http://HOST:PORT` or `https://HOST:PORT`
/// (nothing after the port but an optional `/`); returns its scheme.
fn endpoint_scheme(endpoint: &str) -> Option<&'static str> {
    let (scheme, rest) = if let Some(r) = endpoint.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        ("http", r)
    } else {
        return None;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':')?;
    let host_ok = !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace);
    (host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)).then_some(scheme)
}

/// The `etcd` section's rules, and which other keys `datastore: etcd`
/// refuses (the mesh comes from the records).
pub(super) fn problems(c: &Config, out: &mut Vec<Problem>) {
    let etcd = match (c.datastore(), &c.etcd) {
        (DatastoreKind::Etcd, Some(e)) => e,
        (DatastoreKind::Etcd, None) => return out.push(Problem::EtcdMissing),
        (other, Some(_)) => {
            return out.push(Problem::EtcdWithoutEtcdDatastore {
                datastore: other.name(),
            });
        }
        (_, None) => return,
    };
    if !c.mesh.peers.is_empty() {
        out.push(Problem::MeshPeersWithEtcd);
    }
    if etcd.endpoints.is_empty() {
        out.push(Problem::EtcdNoEndpoints);
    }
    let mut schemes = Vec::new();
    for e in &etcd.endpoints {
        match endpoint_scheme(e) {
            Some(s) => schemes.push(s),
            None => out.push(Problem::EtcdBadEndpoint(e.clone())),
        }
    }
    match (
        &etcd.tls,
        schemes.contains(&"http"),
        schemes.contains(&"https"),
    ) {
        (Some(_), true, _) => out.push(Problem::EtcdTlsWithHttp),
        (None, _, true) => out.push(Problem::EtcdHttpsWithoutTls),
        _ => {}
    }
    if let Some(tls) = &etcd.tls
        && tls.cert.is_some() != tls.key.is_some()
    {
        out.push(Problem::EtcdCertWithoutKey);
    }
    let p = &etcd.prefix;
    if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains(char::is_whitespace) {
        out.push(Problem::EtcdBadPrefix(p.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ConfigError;

    const BASE: &str = "datastore: etcd\nnode: {name: node-a, address: 10.0.1.10/24}\npools: [{cidr: 10.244.0.0/16}]\n";

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse_with(
            Path::new("node.yaml"),
            &format!("{BASE}{extra}"),
            DatastoreKind::File,
        )
    }

    fn problems_of(extra: &str) -> Vec<Problem> {
        match parse(extra) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected semantic problems, got {other:?}"),
        }
    }

    #[test]
    fn etcd_datastore_with_tls_parses() {
        let c = parse(
            "etcd:\n  endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379]\n  prefix: /cluster-a\n  tls: {ca: /etc/etcd/ca.pem, cert: /etc/etcd/node.pem, key: /etc/etcd/node-key.pem}\n",
        )
        .unwrap();
        assert_eq!(c.datastore(), DatastoreKind::Etcd);
        let e = c.etcd.unwrap();
        assert_eq!(e.endpoints.len(), 2);
        assert_eq!(e.prefix, "/cluster-a");
        assert_eq!(
            e.tls.unwrap().key.unwrap(),
            Path::new("/etc/etcd/node-key.pem")
        );
    }

    #[test]
    fn prefix_defaults_to_podroute() {
        let c = parse("etcd: {endpoints: [http://10.0.0.1:2379]}\n").unwrap();
        assert_eq!(c.etcd.unwrap().prefix, DEFAULT_ETCD_PREFIX);
    }

    #[test]
    fn etcd_datastore_needs_the_etcd_section() {
        assert_eq!(problems_of(""), vec![Problem::EtcdMissing]);
    }

    #[test]
    fn etcd_section_without_etcd_datastore_is_refused() {
        let text = "node: {address: 10.0.1.10/24}\npools: [{cidr: 10.244.0.0/16}]\netcd: {endpoints: [http://10.0.0.1:2379]}\n";
        match Config::parse_with(Path::new("node.yaml"), text, DatastoreKind::File) {
            Err(ConfigError::Invalid { problems, .. }) => assert_eq!(
                problems,
                vec![Problem::EtcdWithoutEtcdDatastore { datastore: "file" }]
            ),
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn bad_endpoints_prefix_and_tls_are_named() {
        let p = problems_of(
            "etcd:\n  endpoints: [10.0.0.1:2379, 'http://10.0.0.2', http://10.0.0.3:2379]\n  prefix: podroute/\n  tls: {ca: /ca.pem, cert: /c.pem}\n",
        );
        assert_eq!(
            p,
            vec![
                Problem::EtcdBadEndpoint("10.0.0.1:2379".into()),
                Problem::EtcdBadEndpoint("http://10.0.0.2".into()),
                Problem::EtcdTlsWithHttp,
                Problem::EtcdCertWithoutKey,
                Problem::EtcdBadPrefix("podroute/".into()),
            ]
        );
        assert_eq!(
            problems_of("etcd: {endpoints: []}\n"),
            vec![Problem::EtcdNoEndpoints]
        );
        assert_eq!(
            problems_of("etcd: {endpoints: [https://e:2379]}\n"),
            vec![Problem::EtcdHttpsWithoutTls]
        );
    }

    #[test]
    fn mesh_peers_are_refused_with_etcd() {
        assert_eq!(
            problems_of("etcd: {endpoints: [http://10.0.0.1:2379]}\nmesh: {peers: [10.0.1.11]}\n"),
            vec![Problem::MeshPeersWithEtcd]
        );
    }

    #[test]
    fn the_readme_three_node_example_parses() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("### Without Kubernetes").unwrap()..];
        let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
        let yaml = &section[start..start + section[start..].find("```").unwrap()];
        let c = Config::parse_with(Path::new("README.md"), yaml, DatastoreKind::File).unwrap();
        assert_eq!(c.datastore(), DatastoreKind::Etcd);
        assert_eq!(c.etcd.unwrap().endpoints.len(), 3);
        assert!(c.blocks.is_empty() && c.mesh.peers.is_empty());
    }

    #[test]
    fn unknown_etcd_key_is_refused_with_its_line() {
        let err = parse("etcd:\n  endpoints: [http://10.0.0.1:2379]\n  prefx: /a\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("node.yaml:6"), "{text}");
        assert!(text.contains("prefx"), "{text}");
    }
}
