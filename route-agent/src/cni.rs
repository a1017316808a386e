//! The CNI network configuration for this node's pods (`cni` in the
//! config): a network list for the standard plugins of the
//! containernetworking project, which every distribution packages.
//!
//! ```text
//! ptp        a veth pair per pod; the pod's default route goes to the
//!            host end, which holds the gateway address; a /32 (/128)
//!            host route to the pod; no masquerading (pod addresses are
//!            routed, by BGP)
//!   ipam:    host-local over this node's blocks: one range set per
//!            family (so a pod gets one address of each), one range per
//!            block; default routes for each family
//! portmap    hostPort mappings, when the runtime passes them
//! ```
//!
//! This is the network kube-router and Calico's `host-local` mode give
//! pods: the blocks the agent announces are the addresses pods get, and
//! the pod's /32 route on the host is more specific than the block's
//! blackhole. The tunnel's own address, when it lies inside a block, is
//! cut out of that block's range so that no pod gets it.
//!
//! The pods' MTU ([`pod_mtu`]) is Calico's `veth_mtu`: the underlay MTU,
//! or the tunnel MTU (underlay − 20) when an IPv4 pool uses IPIP, since a
//! pod cannot know which of its packets will be encapsulated. A change
//! reaches new pods only, as with Calico.
//!
//! [`conflist`] is pure; [`CniTracker`] decides, inside the agent's
//! control step, when the file is to be written or removed; [`write()`] and
//! [`remove`] do it: the file is written to a temporary name in the same
//! directory and renamed over the old one, so a runtime never reads half
//! a file, and not at all when the content on disk is already the same.

use std::fs;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::config::{Config, has_pod_addresses};
use crate::planner::IpipMode;

/// The CNI spec version of the file. Debian's containernetworking-plugins
/// (1.1) speak up to 1.0.0.
pub const CNI_VERSION: &str = "1.0.0";

/// Everything the file depends on. The control step compares these on
/// every step and builds the document only when they change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniInputs {
    /// Where the file goes (`conf-dir/file`).
    pub path: PathBuf,
    /// The network name.
    pub name: String,
    /// This node's blocks, in config order.
    pub blocks: Vec<IpNetwork>,
    /// The pods' MTU.
    pub mtu: u32,
    /// An address inside a block that no pod may get (the tunnel's).
    pub reserved: Option<Ipv4Addr>,
    /// host-local's lease directory, if not its default.
    pub data_dir: Option<PathBuf>,
}

impl CniInputs {
    /// The inputs under `config` on a node whose underlay MTU is
    /// `underlay_mtu`; `None` when `cni.enabled` is off.
    pub fn from_config(config: &Config, underlay_mtu: u32) -> Option<CniInputs> {
        let cni = &config.cni;
        cni.enabled().then(|| CniInputs {
            path: cni.path(),
            name: cni.name.clone(),
            blocks: config.blocks.clone(),
            mtu: pod_mtu(config, underlay_mtu),
            reserved: config.tunnel.address,
            data_dir: cni.ipam_data_dir.clone(),
        })
    }
}

/// The pods' MTU: `cni.mtu` when set; else the tunnel MTU when an IPv4
/// pool uses IPIP (never above the underlay's); else the underlay MTU.
///
/// ```
/// use route_agent::config::Config;
/// let c = Config::parse("n.yaml".as_ref(), "node: {address: 10.0.0.5/24}\npools: [{cidr: 10.244.0.0/16}]\n").unwrap();
/// assert_eq!(route_agent::cni::pod_mtu(&c, 1500), 1480); // cross-subnet: IPIP
/// ```
pub fn pod_mtu(config: &Config, underlay_mtu: u32) -> u32 {
    if config.cni.mtu != 0 {
        return config.cni.mtu;
    }
    let ipip = config
        .pools()
        .iter()
        .any(|p| p.cidr.is_ipv4() && p.ipip_mode != IpipMode::Never);
    if ipip {
        config.tunnel.effective_mtu(underlay_mtu).min(underlay_mtu)
    } else {
        underlay_mtu
    }
}

/// The conflist as written, `None` when no block has an address for a
/// pod (then there is no usable network, and no file should say there
/// is). Blocks too small for host-local ([`has_pod_addresses`]) are left
/// out.
pub fn conflist(inputs: &CniInputs) -> Option<String> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for block in inputs.blocks.iter().filter(|b| has_pod_addresses(b)) {
        let ranges = block_ranges(block, inputs.reserved.map(IpAddr::V4));
        match block {
            IpNetwork::V4(_) => v4.extend(ranges),
            IpNetwork::V6(_) => v6.extend(ranges),
        }
    }
    let mut routes = Vec::new();
    if !v4.is_empty() {
        routes.push(Route { dst: "0.0.0.0/0" });
    }
    if !v6.is_empty() {
        routes.push(Route { dst: "::/0" });
    }
    let ranges: Vec<Vec<Range>> = [v4, v6].into_iter().filter(|r| !r.is_empty()).collect();
    if ranges.is_empty() {
        return None;
    }
    let document = Document {
        cni_version: CNI_VERSION,
        name: &inputs.name,
        plugins: (
            Ptp {
                kind: "ptp",
                ip_masq: false,
                mtu: inputs.mtu,
                ipam: HostLocal {
                    kind: "host-local",
                    ranges,
                    routes,
                    data_dir: inputs.data_dir.as_deref().map(Path::to_string_lossy),
                },
            },
            Portmap {
                kind: "portmap",
                capabilities: Capabilities {
                    port_mappings: true,
                },
            },
        ),
    };
    // Plain structs of strings and numbers always serialise.
    let mut text = serde_json::to_string_pretty(&document).ok()?;
    text.push('\n');
    Some(text)
}

/// The network list (CNI spec, "Configuration format").
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    cni_version: &'static str,
    name: &'a str,
    plugins: (Ptp<'a>, Portmap),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ptp<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ip_masq: bool,
    mtu: u32,
    ipam: HostLocal<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HostLocal<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    ranges: Vec<Vec<Range>>,
    routes: Vec<Route>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<std::borrow::Cow<'a, str>>,
}

/// One host-local range: a block, or part of one.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
struct Range {
    subnet: IpNetwork,
    #[serde(skip_serializing_if = "Option::is_none")]
    range_start: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range_end: Option<IpAddr>,
}

#[derive(Serialize)]
struct Route {
    dst: &'static str,
}

#[derive(Serialize)]
struct Portmap {
    #[serde(rename = "type")]
    kind: &'static str,
    capabilities: Capabilities,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Capabilities {
    port_mappings: bool,
}

/// host-local's ranges for `block`: the whole block, or, when `reserved`
/// is one of the addresses host-local would hand out, the parts before
/// and after it. host-local's own defaults: the gateway is the first
/// address after the network address and is never handed out; the range
/// ends before an IPv4 broadcast address.
fn block_ranges(block: &IpNetwork, reserved: Option<IpAddr>) -> Vec<Range> {
    let whole = Range {
        subnet: *block,
        range_start: None,
        range_end: None,
    };
    let (network, last) = match block {
        IpNetwork::V4(b) => (
            u128::from(u32::from(b.network())),
            u128::from(u32::from(b.broadcast())).saturating_sub(1),
        ),
        IpNetwork::V6(b) => (
            u128::from(b.network()),
            u128::from(b.network()) | u128::MAX.checked_shr(u32::from(b.prefix())).unwrap_or(0),
        ),
    };
    let reserved = match (block, reserved) {
        (IpNetwork::V4(_), Some(IpAddr::V4(a))) => u128::from(u32::from(a)),
        (IpNetwork::V6(_), Some(IpAddr::V6(a))) => u128::from(a),
        _ => return vec![whole],
    };
    let gateway = network + 1;
    // Outside what host-local hands out anyway (the network address, the
    // gateway, the broadcast address, or not in the block at all).
    if reserved <= gateway || reserved > last {
        return vec![whole];
    }
    let address = |n: u128| -> IpAddr {
        match block {
            // In range: the block is IPv4.
            IpNetwork::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(0))),
            IpNetwork::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        }
    };
    let mut parts = Vec::new();
    // Before it: from the address after the gateway (the gateway alone
    // would be an empty range).
    if reserved > gateway + 1 {
        parts.push(Range {
            subnet: *block,
            range_start: Some(address(gateway + 1)),
            range_end: Some(address(reserved - 1)),
        });
    }
    if reserved < last {
        parts.push(Range {
            subnet: *block,
            range_start: Some(address(reserved + 1)),
            range_end: Some(address(last)),
        });
    }
    parts
}

/// The file to write: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniFile {
    /// `conf-dir/file`.
    pub path: PathBuf,
    /// The conflist ([`conflist`]).
    pub contents: String,
}

/// What the control step asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CniAction {
    /// Write this file ([`write()`]).
    Write(CniFile),
    /// Remove this file ([`remove`]): CNI was turned off or moved, or no
    /// block has room for a pod.
    Remove(PathBuf),
}

/// Decides when the file changes: on every control step the current
/// [`CniInputs`] go in; actions come out only when they differ from the
/// last ones (or a re-check was asked for). The file exists exactly while
/// CNI is on and a block has room for a pod.
#[derive(Clone, Debug, Default)]
pub struct CniTracker {
    last: Option<CniInputs>,
    /// The file this tracker had written, if it is still there.
    written: Option<PathBuf>,
    recheck: bool,
}

impl CniTracker {
    /// The actions that take the file from the last inputs to `next`
    /// (`None`: CNI is off). Turning CNI off, or moving the file, removes
    /// the file written before; nothing is removed for a config that
    /// never had CNI on. With no block to allocate from, the file is
    /// removed (also one left by an earlier run).
    pub fn update(&mut self, next: Option<CniInputs>) -> Vec<CniAction> {
        if next == self.last && !std::mem::take(&mut self.recheck) {
            return Vec::new();
        }
        self.last.clone_from(&next);
        let (write, unusable) = match next {
            Some(n) => match conflist(&n) {
                Some(contents) => (
                    Some(CniFile {
                        path: n.path,
                        contents,
                    }),
                    None,
                ),
                None => (None, Some(n.path)),
            },
            None => (None, None),
        };
        let mut actions = Vec::new();
        if let Some(old) = self.written.take() {
            let kept = write.as_ref().is_some_and(|f| f.path == old);
            if !kept && unusable.as_ref() != Some(&old) {
                actions.push(CniAction::Remove(old));
            }
        }
        if let Some(path) = unusable {
            actions.push(CniAction::Remove(path));
        }
        if let Some(file) = write {
            self.written = Some(file.path.clone());
            actions.push(CniAction::Write(file));
        }
        actions
    }

    /// Asks for the current state again at the next [`CniTracker::update`]
    /// (the periodic resync): a file deleted or edited by hand is put
    /// back; an unchanged one is only read.
    pub fn recheck(&mut self) {
        self.recheck = true;
    }
}

/// What [`write()`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// The file on disk already had this content: not touched.
    Unchanged,
    /// The file was replaced (or created).
    Replaced,
}

/// The step of a write or removal that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileStep {
    /// Creating the directory.
    CreateDir,
    /// Creating or writing the temporary file.
    WriteTemp,
    /// Renaming the temporary file onto the file.
    Rename,
    /// Flushing the directory entry to disk.
    SyncDir,
    /// Removing the file.
    Remove,
}

impl std::fmt::Display for FileStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileStep::CreateDir => "create the directory",
            FileStep::WriteTemp => "write the temporary file",
            FileStep::Rename => "rename the temporary file onto",
            FileStep::SyncDir => "flush the directory of",
            FileStep::Remove => "remove",
        })
    }
}

/// A write or removal of the CNI file that failed, with the file and the
/// OS error (whose text carries the errno).
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", path.display())]
pub struct CniFileError {
    /// What failed.
    pub step: FileStep,
    /// The path it failed on.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

impl CniFileError {
    /// The errno, when the OS gave one.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

/// The temporary file next to `path`: hidden and ending in `.tmp`, so a
/// runtime listing the directory never loads it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `contents` to `path` unless the file already holds exactly
/// that: to [`temp_path`] first (mode 0644, flushed to disk), then renamed
/// over `path`, so that a reader sees the old file or the new one, never
/// part of one. Creates the directory if needed.
pub fn write(path: &Path, contents: &str) -> Result<Written, CniFileError> {
    if fs::read(path).is_ok_and(|old| old == contents.as_bytes()) {
        return Ok(Written::Unchanged);
    }
    let fail = |step, path: &Path| {
        let path = path.to_owned();
        move |source| CniFileError { step, path, source }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(fail(FileStep::CreateDir, dir))?;
    let temp = temp_path(path);
    let written = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temp)
        .and_then(|mut f| {
            f.write_all(contents.as_bytes())?;
            f.sync_all()
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(fail(FileStep::WriteTemp, &temp)(e));
    }
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(fail(FileStep::Rename, path)(e));
    }
    // The rename itself reaches the disk with the directory.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail(FileStep::SyncDir, path))?;
    Ok(Written::Replaced)
}

/// Removes `path`; `Ok(false)` when it was not there.
pub fn remove(path: &Path) -> Result<bool, CniFileError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CniFileError {
            step: FileStep::Remove,
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
