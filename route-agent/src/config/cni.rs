//! The `cni` section: where and how the agent writes the CNI network
//! configuration for the standard plugins ([`crate::cni`]), and its rules.

use std::path::PathBuf;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use super::Config;
use super::error::Problem;

/// Where container runtimes (containerd, CRI-O) look for network configs.
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// The file's default name: `10-` sorts it before most other configs
/// (runtimes take the first file in lexical order).
pub const DEFAULT_CNI_FILE: &str = "10-podroute.conflist";
/// The network's default name (the conflist's `name`).
pub const DEFAULT_CNI_NETWORK: &str = "podroute";
/// IPv6's minimum link MTU (RFC 8200 §5).
pub const IPV6_MIN_MTU: u32 = 1280;

fn default_conf_dir() -> PathBuf {
    PathBuf::from(DEFAULT_CNI_CONF_DIR)
}
fn default_file() -> String {
    DEFAULT_CNI_FILE.to_owned()
}
fn default_network() -> String {
    DEFAULT_CNI_NETWORK.to_owned()
}

/// The CNI configuration the agent keeps written: the `ptp` plugin with
/// `host-local` IPAM over this node's blocks, then `portmap`. On by default
/// with `datastore: kubernetes` (a Kubernetes node needs a pod network
/// config, as calico-node's install-cni writes one); off with the file
/// datastore: a host that is not a Kubernetes node has no use for it, and
/// the file is read by every container runtime on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CniConfig {
    /// Write the file (and keep it current as blocks and MTU change);
    /// unset: on with `datastore: kubernetes` ([`Config::parse`] resolves
    /// it), else off. Read it with [`CniConfig::enabled`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The directory container runtimes read (`/etc/cni/net.d`).
    #[serde(default = "default_conf_dir")]
    pub conf_dir: PathBuf,
    /// The file's name in `conf-dir`, ending in `.conflist`.
    #[serde(default = "default_file")]
    pub file: String,
    /// The network name in the file (runtimes key IPAM state and cached
    /// results by it).
    #[serde(default = "default_network")]
    pub name: String,
    /// The pods' MTU; 0: the underlay MTU, less the 20-byte outer header
    /// when an IPv4 pool uses IPIP (the tunnel MTU), as Calico sizes
    /// `veth_mtu`.
    #[serde(default)]
    pub mtu: u32,
    /// Where `host-local` keeps its leases (default: its own,
    /// `/var/lib/cni/networks`).
    #[serde(default)]
    pub ipam_data_dir: Option<PathBuf>,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            enabled: None,
            conf_dir: default_conf_dir(),
            file: default_file(),
            name: default_network(),
            mtu: 0,
            ipam_data_dir: None,
        }
    }
}

impl CniConfig {
    /// Whether the file is written (unset reads as off; a parsed config has
    /// it resolved by datastore).
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(false)
    }

    /// The file written: `conf-dir/file`.
    ///
    /// ```
    /// let c = route_agent::config::CniConfig::default();
    /// assert_eq!(c.path(), std::path::Path::new("/etc/cni/net.d/10-podroute.conflist"));
    /// ```
    pub fn path(&self) -> PathBuf {
        self.conf_dir.join(&self.file)
    }
}

/// CNI's rule for network names (the spec's `name`: letters, digits,
/// `_`, `.` and `-`, starting with a letter or digit).
fn valid_network_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A plain file name that libcni loads as a list: no directory part, not
/// hidden, ending in `.conflist`.
fn valid_file_name(file: &str) -> bool {
    !file.contains('/')
        && !file.starts_with('.')
        && file
            .strip_suffix(".conflist")
            .is_some_and(|stem| !stem.is_empty())
}

/// Whether `host-local` can hand out an address from `block`: it never
/// gives out the network address, the gateway (the first address) or an
/// IPv4 broadcast address, and refuses smaller subnets.
pub fn has_pod_addresses(block: &IpNetwork) -> bool {
    match block {
        IpNetwork::V4(b) => b.prefix() <= 30,
        IpNetwork::V6(b) => b.prefix() <= 126,
    }
}

/// The problems of the `cni` section of `c`.
pub(super) fn problems(c: &Config, out: &mut Vec<Problem>) {
    let cni = &c.cni;
    if !cni.conf_dir.is_absolute() {
        out.push(Problem::CniPathNotAbsolute {
            what: "cni.conf-dir",
            path: cni.conf_dir.clone(),
        });
    }
    if let Some(dir) = &cni.ipam_data_dir
        && !dir.is_absolute()
    {
        out.push(Problem::CniPathNotAbsolute {
            what: "cni.ipam-data-dir",
            path: dir.clone(),
        });
    }
    if !valid_file_name(&cni.file) {
        out.push(Problem::CniBadFileName(cni.file.clone()));
    }
    if !valid_network_name(&cni.name) {
        out.push(Problem::CniBadNetworkName(cni.name.clone()));
    }
    if cni.mtu != 0 && !(68..=65535).contains(&cni.mtu) {
        out.push(Problem::CniMtuOutOfRange(cni.mtu));
    } else if cni.mtu != 0 && cni.mtu < IPV6_MIN_MTU && c.blocks.iter().any(IpNetwork::is_ipv6) {
        out.push(Problem::CniMtuBelowIpv6Minimum(cni.mtu));
    }
    if cni.enabled() {
        for block in c.blocks.iter().filter(|b| !has_pod_addresses(b)) {
            out.push(Problem::CniBlockTooSmall(*block));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ConfigError;

    const BASE: &str = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16}, {cidr: 'fd00:244::/48'}]
blocks: [10.244.1.0/26, 'fd00:244:0:1::/122']
";

    fn parse(cni: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("node.yaml"), &format!("{BASE}cni: {cni}\n"))
    }

    fn problems_of(cni: &str) -> Vec<Problem> {
        match parse(cni) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected semantic problems, got {other:?}"),
        }
    }

    #[test]
    fn cni_is_on_by_default_with_the_kubernetes_datastore() {
        let k8s = "datastore: kubernetes\nnode: {}\npools: [{cidr: 10.244.0.0/16}]\n";
        let c = Config::parse(Path::new("node.yaml"), k8s).unwrap();
        assert!(c.cni.enabled());
        let off = format!("{k8s}cni: {{enabled: false}}\n");
        let c = Config::parse(Path::new("node.yaml"), &off).unwrap();
        assert!(!c.cni.enabled());
    }

    #[test]
    fn cni_is_off_by_default_and_writes_the_standard_path_when_on() {
        let c = Config::parse(Path::new("node.yaml"), BASE).unwrap();
        assert_eq!(
            c.cni,
            CniConfig {
                enabled: Some(false),
                ..CniConfig::default()
            }
        );
        assert!(!c.cni.enabled(), "off with the file datastore");
        let c = parse("{enabled: true}").unwrap();
        assert!(c.cni.enabled());
        assert_eq!(
            c.cni.path(),
            Path::new("/etc/cni/net.d/10-podroute.conflist")
        );
        assert_eq!(c.cni.name, "podroute");
    }

    #[test]
    fn every_cni_key_is_read() {
        let c = parse(
            "{enabled: true, conf-dir: /run/cni, file: 05-pods.conflist, name: pods, mtu: 1400, ipam-data-dir: /var/lib/pods}",
        )
        .unwrap();
        assert_eq!(
            c.cni,
            CniConfig {
                enabled: Some(true),
                conf_dir: "/run/cni".into(),
                file: "05-pods.conflist".into(),
                name: "pods".into(),
                mtu: 1400,
                ipam_data_dir: Some("/var/lib/pods".into()),
            }
        );
    }

    #[test]
    fn an_unknown_cni_key_is_refused_with_its_line() {
        let e = parse("{enabled: true, confdir: /etc/cni}").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("node.yaml:5:"), "{text}");
        assert!(text.contains("unknown field `confdir`"), "{text}");
    }

    #[test]
    fn relative_paths_bad_file_and_network_names_are_refused() {
        let p = problems_of(
            "{conf-dir: etc/cni, ipam-data-dir: leases, file: podroute.conf, name: '-pods'}",
        );
        assert_eq!(
            p,
            vec![
                Problem::CniPathNotAbsolute {
                    what: "cni.conf-dir",
                    path: "etc/cni".into()
                },
                Problem::CniPathNotAbsolute {
                    what: "cni.ipam-data-dir",
                    path: "leases".into()
                },
                Problem::CniBadFileName("podroute.conf".into()),
                Problem::CniBadNetworkName("-pods".into()),
            ]
        );
        for file in ["a/b.conflist", ".hidden.conflist", ".conflist"] {
            assert_eq!(
                problems_of(&format!("{{file: '{file}'}}")),
                vec![Problem::CniBadFileName(file.into())]
            );
        }
    }

    #[test]
    fn an_mtu_outside_ipv4_range_or_below_ipv6_minimum_with_ipv6_blocks_is_refused() {
        assert_eq!(
            problems_of("{mtu: 60}"),
            vec![Problem::CniMtuOutOfRange(60)]
        );
        assert_eq!(
            problems_of("{mtu: 1200}"),
            vec![Problem::CniMtuBelowIpv6Minimum(1200)]
        );
        let v4_only = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16}]
blocks: [10.244.1.0/26]
cni: {mtu: 1200}
";
        assert!(Config::parse(Path::new("node.yaml"), v4_only).is_ok());
    }

    #[test]
    fn blocks_too_small_for_host_local_are_refused_only_when_cni_is_on() {
        let text = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16}]
blocks: [10.244.1.0/31, 10.244.2.0/30]
cni: {enabled: ON}
";
        let on = Config::parse(Path::new("node.yaml"), &text.replace("ON", "true"));
        match on {
            Err(ConfigError::Invalid { problems, .. }) => assert_eq!(
                problems,
                vec![Problem::CniBlockTooSmall("10.244.1.0/31".parse().unwrap())]
            ),
            other => panic!("{other:?}"),
        }
        assert!(Config::parse(Path::new("node.yaml"), &text.replace("ON", "false")).is_ok());
    }

    #[test]
    fn problems_name_the_key_and_the_fix() {
        let e = parse("{conf-dir: net.d}").unwrap_err().to_string();
        assert!(
            e.starts_with("node.yaml: cni.conf-dir `net.d` is not an absolute path — "),
            "{e}"
        );
    }
}
