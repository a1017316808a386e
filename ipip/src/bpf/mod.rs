//! The `bpf` backend: IPIP in two eBPF programs, for kernels without the
//! ipip module, at the kernel's speed (GSO super-packets cross the
//! underlay whole, which no userspace design can do).
//!
//! - Egress: a lightweight-tunnel `xmit` program on each tunnel route
//!   (`B via NH dev eth0 onlink encap bpf xmit … headroom 20`, written by
//!   the FIB through [`netlink::route::RouteShape::BpfGateway`]) pushes the
//!   outer IPv4 header towards the node owning the inner destination (map
//!   `pr_blocks`, block → node) and has the kernel route the packet again.
//!   The 20 bytes of headroom lower the route's path MTU to the underlay's
//!   − 20, so DF packets too big get "fragmentation needed" with that MTU.
//! - Ingress: a tc program on the underlay device opens IPIP addressed to
//!   this node from a known node (map `pr_nodes`) and drops, counting, IPIP
//!   from anyone else.
//!
//! The object is `bpf/tunnel.bpf.c`, built by `build.rs` with clang and
//! loaded with libbpf-rs. Programs and maps are pinned under
//! `<pin root>/net<netns inode>/<object hash>/`, so a restarted agent
//! adopts them (no reload, no packet lost) and a new build replaces them.
//! [`BpfTunnel::remove`] detaches and unpins everything.

mod maps;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;
use libbpf_rs::{MapCore, MapFlags, MapHandle, ObjectBuilder, Program, TC_INGRESS, TcHookBuilder};
use netlink::route::BpfProgram;

pub use maps::{COUNTERS, Counters, GsoMode, Settings};

/// The eBPF object `build.rs` made (empty when it could not).
const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tunnel.bpf.o"));
/// Why [`OBJECT`] is empty.
const NOT_BUILT: &str = include_str!(concat!(env!("OUT_DIR"), "/tunnel.bpf.why"));

/// The outer header's size: the room each tunnel route gives the program.
pub const HEADROOM: u16 = 20;

/// Where pins go by default (the bpffs Cilium and Calico use).
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/podroute";

/// The bpffs mount point mounted when missing.
const BPFFS: &str = "/sys/fs/bpf";

/// Our tc filter's handle ("98", our route protocol) and priority.
const TC_HANDLE: u32 = 0x62;
const TC_PRIORITY: u32 = 1;

/// Program and map names in the object (and pin file names).
const ENCAP: &str = "podroute_encap";
const DECAP: &str = "podroute_decap";
const BLOCKS: &str = "pr_blocks";
const NODES: &str = "pr_nodes";
const SETTINGS: &str = "pr_settings";
const COUNTER_MAP: &str = "pr_counters";
const PINS: [&str; 6] = [ENCAP, DECAP, BLOCKS, NODES, SETTINGS, COUNTER_MAP];

/// Where and for whom the programs run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The pin root ([`DEFAULT_PIN_ROOT`]).
    pub pin_root: PathBuf,
    /// This node's address: the outer source.
    pub local: Ipv4Addr,
}

/// Why the programs could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The object was not built (no clang where the crate was built).
    #[error("the bpf tunnel programs were not built: {0}")]
    NotBuilt(&'static str),
    /// bpffs is not mounted and could not be.
    #[error("cannot mount bpffs at {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The pin directory could not be made, read or cleared.
    #[error("pin directory {path}: {source}")]
    PinDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The kernel refused to load or pin the programs or maps.
    #[error("loading the bpf tunnel programs ({step}) failed: {source}")]
    Load {
        /// What was being done.
        step: &'static str,
        /// libbpf's error (with the errno).
        source: libbpf_rs::Error,
    },
    /// A pinned program or map could not be opened.
    #[error("cannot adopt the pinned {path}: {source}")]
    Adopt {
        /// The pin.
        path: PathBuf,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// A map operation failed.
    #[error("bpf map {map}: {op} failed: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// The operation.
        op: &'static str,
        /// libbpf's error (with the errno).
        source: libbpf_rs::Error,
    },
    /// The tc hook on the underlay could not be set or removed.
    #[error("tc ingress hook on interface {ifindex}: {op} failed: {source}")]
    Tc {
        /// The interface.
        ifindex: u32,
        /// The operation.
        op: &'static str,
        /// libbpf's error (with the errno).
        source: libbpf_rs::Error,
    },
}

/// How [`BpfTunnel::open`] found the programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// Pinned by an earlier run of this build: adopted as they are.
    Adopted,
    /// Loaded and pinned now (none pinned, or another build's, which are
    /// unpinned).
    Loaded,
}

/// How the ingress program came to be on the underlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    /// It already was (an earlier run attached it).
    Adopted,
    /// Attached now.
    Attached,
}

/// The loaded programs and their maps, with a mirror of what the agent
/// wrote to the maps (so a change writes only the difference).
#[derive(Debug)]
pub struct BpfTunnel {
    dir: PathBuf,
    encap: OwnedFd,
    encap_id: u32,
    decap: OwnedFd,
    decap_id: u32,
    blocks: MapHandle,
    nodes: MapHandle,
    settings: MapHandle,
    counters: MapHandle,
    have_blocks: BTreeMap<Ipv4Network, Ipv4Addr>,
    have_nodes: BTreeSet<Ipv4Addr>,
    ingress: Option<u32>,
    mounted: Option<PathBuf>,
}

impl BpfTunnel {
    /// Adopts the programs and maps an earlier run of this build pinned
    /// in this network namespace, or loads and pins them; then writes
    /// `config.local` as the outer source.
    ///
    /// # Errors
    /// [`BpfError::NotBuilt`] without an object; the others when bpffs,
    /// the pins or the kernel refuse.
    pub fn open(config: &Config) -> Result<(Self, Opened), BpfError> {
        if OBJECT.is_empty() {
            return Err(BpfError::NotBuilt(NOT_BUILT));
        }
        libbpf_to_tracing();
        let mounted = ensure_bpffs(&config.pin_root)?;
        let netns = netns_dir(&config.pin_root)?;
        let dir = netns.join(object_hash());
        let opened = if PINS.iter().all(|p| dir.join(p).exists()) {
            Opened::Adopted
        } else {
            remove_pins(&dir)?;
            std::fs::create_dir_all(&dir).map_err(|source| BpfError::PinDir {
                path: dir.clone(),
                source,
            })?;
            load_and_pin(&dir)?;
            Opened::Loaded
        };
        let mut tunnel = adopt(&dir)?;
        tunnel.mounted = mounted;
        if opened == Opened::Loaded {
            remove_other_builds(&netns, &dir)?;
        }
        let gso_mode = tunnel
            .settings()?
            .map_or(GsoMode::IpThenIpip, |s| s.gso_mode);
        tunnel.write_settings(Settings {
            local: config.local,
            gso_mode,
        })?;
        Ok((tunnel, opened))
    }

    /// The programs of this build pinned in this network namespace, if
    /// there are (nothing is loaded, mounted or written).
    ///
    /// # Errors
    /// As [`BpfTunnel::open`].
    pub fn open_existing(config: &Config) -> Result<(Option<Self>, Opened), BpfError> {
        let dir = netns_dir(&config.pin_root)?.join(object_hash());
        if OBJECT.is_empty() || !PINS.iter().all(|p| dir.join(p).exists()) {
            return Ok((None, Opened::Adopted));
        }
        Ok((Some(adopt(&dir)?), Opened::Adopted))
    }

    /// The encapsulation program, as tunnel routes name it.
    pub fn encap_program(&self) -> BpfProgram {
        BpfProgram {
            id: self.encap_id,
            fd: self.encap.as_raw_fd(),
        }
    }

    /// The ingress program's id.
    pub fn decap_program_id(&self) -> u32 {
        self.decap_id
    }

    /// Where the pins are.
    pub fn pin_dir(&self) -> &Path {
        &self.dir
    }

    /// The bpffs [`BpfTunnel::open`] had to mount, if it did (the pins
    /// then last as long as this process's mount namespace).
    pub fn mounted(&self) -> Option<&Path> {
        self.mounted.as_deref()
    }

    /// Puts the ingress program on the underlay `ifindex` (a clsact qdisc
    /// and a direct-action filter), unless it is there already.
    ///
    /// # Errors
    /// [`BpfError::Tc`].
    pub fn attach_ingress(&mut self, ifindex: u32) -> Result<Attached, BpfError> {
        if let Some(old) = self.ingress.filter(|old| *old != ifindex) {
            self.detach_ingress(old)?;
        }
        let tc = |op, source| BpfError::Tc {
            ifindex,
            op,
            source,
        };
        let index = i32::try_from(ifindex).map_err(|_| {
            tc(
                "interface index",
                libbpf_rs::Error::from(io::Error::from_raw_os_error(libc::ENODEV)),
            )
        })?;
        let mut hook = TcHookBuilder::new(self.decap.as_fd())
            .ifindex(index)
            .replace(true)
            .handle(TC_HANDLE)
            .priority(TC_PRIORITY)
            .hook(TC_INGRESS);
        hook.create().map_err(|e| tc("create clsact", e))?;
        self.ingress = Some(ifindex);
        if hook.query().ok() == Some(self.decap_id) {
            return Ok(Attached::Adopted);
        }
        hook.attach().map_err(|e| tc("attach", e))?;
        Ok(Attached::Attached)
    }

    /// Takes our filter off `ifindex`'s ingress (the clsact qdisc stays:
    /// others may use it). Nothing there is not an error.
    ///
    /// # Errors
    /// [`BpfError::Tc`].
    pub fn detach_ingress(&mut self, ifindex: u32) -> Result<(), BpfError> {
        let Ok(index) = i32::try_from(ifindex) else {
            return Ok(());
        };
        let mut hook = TcHookBuilder::new(self.decap.as_fd())
            .ifindex(index)
            .handle(TC_HANDLE)
            .priority(TC_PRIORITY)
            .hook(TC_INGRESS);
        if self.ingress == Some(ifindex) {
            self.ingress = None;
        }
        match hook.detach() {
            Ok(()) => Ok(()),
            Err(e) if is_gone(&e) => Ok(()),
            Err(source) => Err(BpfError::Tc {
                ifindex,
                op: "detach",
                source,
            }),
        }
    }

    /// Writes the blocks of `want` that are new or point at another node
    /// (before the routes that need them are installed).
    ///
    /// # Errors
    /// [`BpfError::Map`].
    pub fn write_blocks(&mut self, want: &BTreeMap<Ipv4Network, Ipv4Addr>) -> Result<(), BpfError> {
        for (block, node) in maps::diff(&self.have_blocks, want).write {
            self.blocks
                .update(
                    &maps::block_key(&block),
                    &maps::address(node),
                    MapFlags::ANY,
                )
                .map_err(|source| map_error(BLOCKS, "update", source))?;
            self.have_blocks.insert(block, node);
        }
        Ok(())
    }

    /// Deletes the blocks not in `want` (after their routes are gone).
    ///
    /// # Errors
    /// [`BpfError::Map`].
    pub fn delete_blocks(
        &mut self,
        want: &BTreeMap<Ipv4Network, Ipv4Addr>,
    ) -> Result<(), BpfError> {
        for block in maps::diff(&self.have_blocks, want).delete {
            match self.blocks.delete(&maps::block_key(&block)) {
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(source) => return Err(map_error(BLOCKS, "delete", source)),
            }
            self.have_blocks.remove(&block);
        }
        Ok(())
    }

    /// The blocks in the map.
    pub fn blocks(&self) -> &BTreeMap<Ipv4Network, Ipv4Addr> {
        &self.have_blocks
    }

    /// Makes the allow-list of node addresses `want`.
    ///
    /// # Errors
    /// [`BpfError::Map`].
    pub fn set_nodes(&mut self, want: &BTreeSet<Ipv4Addr>) -> Result<(), BpfError> {
        let changes = maps::diff(&maps::as_map(&self.have_nodes), &maps::as_map(want));
        for (node, ()) in changes.write {
            self.nodes
                .update(&maps::address(node), &1u32.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| map_error(NODES, "update", source))?;
            self.have_nodes.insert(node);
        }
        for node in changes.delete {
            match self.nodes.delete(&maps::address(node)) {
                Ok(()) => {}
                Err(e) if is_gone(&e) => {}
                Err(source) => return Err(map_error(NODES, "delete", source)),
            }
            self.have_nodes.remove(&node);
        }
        Ok(())
    }

    /// The allow-list.
    pub fn nodes(&self) -> &BTreeSet<Ipv4Addr> {
        &self.have_nodes
    }

    /// The settings the programs read; `None` before any were written.
    ///
    /// # Errors
    /// [`BpfError::Map`].
    pub fn settings(&self) -> Result<Option<Settings>, BpfError> {
        let value = self
            .settings
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| map_error(SETTINGS, "lookup", source))?;
        Ok(value
            .as_deref()
            .and_then(Settings::from_bytes)
            .filter(|s| !s.local.is_unspecified()))
    }

    /// Sets the outer source (an address change).
    ///
    /// # Errors
    /// [`BpfError::Map`].
    pub fn set_local(&mut self, local: Ipv4Addr) -> Result<(), BpfError> {
        let gso_mode = self.settings()?.map_or(GsoMode::IpThenIpip, |s| s.gso_mode);
        self.write_settings(Settings { local, gso_mode })
    }

    fn write_settings(&mut self, settings: Settings) -> Result<(), BpfError> {
        self.settings
            .update(&0u32.to_ne_bytes(), &settings.to_bytes(), MapFlags::ANY)
            .map_err(|source| map_error(SETTINGS, "update", source))
    }

    /// The programs' counters, summed over CPUs.
    ///
    /// # Errors
    /// [`BpfError::Map`].
    pub fn counters(&self) -> Result<Counters, BpfError> {
        let mut counters = Counters::default();
        for index in 0..COUNTERS {
            let per_cpu = self
                .counters
                .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| map_error(COUNTER_MAP, "lookup", source))?;
            for value in per_cpu.unwrap_or_default() {
                if let Some(n) = value.first_chunk::<8>() {
                    counters.add(index, u64::from_ne_bytes(*n));
                }
            }
        }
        Ok(counters)
    }

    /// Takes the ingress program off `underlay` (when given) and unpins
    /// every program and map of this network namespace: the kernel frees
    /// them once no route refers to them (remove the routes first).
    ///
    /// # Errors
    /// [`BpfError::Tc`], [`BpfError::PinDir`].
    pub fn remove(mut self, underlay: Option<u32>) -> Result<(), BpfError> {
        if let Some(ifindex) = underlay.or(self.ingress) {
            self.detach_ingress(ifindex)?;
        }
        let netns = self.dir.parent().map(Path::to_path_buf);
        remove_pins(&self.dir)?;
        if let Some(netns) = netns {
            remove_other_builds(&netns, &self.dir)?;
            // Empty now; another namespace's agent never shares it.
            let _ = std::fs::remove_dir(&netns);
        }
        Ok(())
    }
}

/// Sends libbpf's messages to `tracing` (target `libbpf`) instead of
/// stderr, at debug level: what fails comes back as a [`BpfError`], and
/// some messages are expected (asking for our tc filter before it exists
/// makes the kernel say it cannot find the filter chain). The verifier's
/// log of a refused program is there with `ROUTE_AGENT_LOG=libbpf=debug`.
fn libbpf_to_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        libbpf_rs::set_print(Some((libbpf_rs::PrintLevel::Debug, |level, message| {
            let message = message.trim_end();
            match level {
                libbpf_rs::PrintLevel::Warn | libbpf_rs::PrintLevel::Info => {
                    tracing::debug!(target: "libbpf", "{message}");
                }
                libbpf_rs::PrintLevel::Debug => tracing::trace!(target: "libbpf", "{message}"),
            }
        })));
    });
}

/// Makes sure the pins under `root` land on a bpffs: when the nearest
/// existing directory on the way to `root` is not on one, mounts one at
/// `/sys/fs/bpf` for a root below it (as Cilium and Calico's Felix do),
/// else at `root` itself. Returns where it mounted one.
///
/// A bpffs mounted here lives in this process's mount namespace: under
/// `ip netns exec`, which gives each command its own, the pins go with the
/// process, so restarts there need a bpffs mounted beforehand.
fn ensure_bpffs(root: &Path) -> Result<Option<PathBuf>, BpfError> {
    let existing = root.ancestors().find(|p| p.exists()).unwrap_or(root);
    if crate::sys::is_bpffs(existing).unwrap_or(false) {
        return Ok(None);
    }
    let sys = Path::new(BPFFS);
    let mount = if root.starts_with(sys) { sys } else { root };
    if !mount.exists() {
        std::fs::create_dir_all(mount).map_err(|source| BpfError::PinDir {
            path: mount.to_path_buf(),
            source,
        })?;
    }
    crate::sys::mount_bpffs(mount).map_err(|source| BpfError::Mount {
        path: mount.to_path_buf(),
        source,
    })?;
    Ok(Some(mount.to_path_buf()))
}

/// `<root>/net<inode>`: one directory per network namespace, so agents of
/// several namespaces on one host (tests, the demo) keep theirs apart,
/// and a restarted agent in the same namespace finds its own.
fn netns_dir(root: &Path) -> Result<PathBuf, BpfError> {
    let ns = Path::new("/proc/self/ns/net");
    let inode = std::fs::metadata(ns)
        .map_err(|source| BpfError::PinDir {
            path: ns.to_path_buf(),
            source,
        })?
        .ino();
    Ok(root.join(format!("net{inode}")))
}

/// FNV-1a of the object, so another build's pins are told apart.
fn object_hash() -> String {
    let hash = OBJECT.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Loads the object with every map pinned in `dir` (libbpf pins them at
/// load) and pins both programs there.
fn load_and_pin(dir: &Path) -> Result<(), BpfError> {
    let load = |step, source| BpfError::Load { step, source };
    let mut open = ObjectBuilder::default()
        .open_memory(OBJECT)
        .map_err(|e| load("open the object", e))?;
    for mut map in open.maps_mut() {
        let path = dir.join(map.name());
        map.set_pin_path(path)
            .map_err(|e| load("set a map's pin path", e))?;
    }
    let object = open.load().map_err(|e| load("load", e))?;
    for mut program in object.progs_mut() {
        let path = dir.join(program.name());
        program.pin(path).map_err(|e| load("pin a program", e))?;
    }
    Ok(())
}

/// Opens the pins in `dir`, and mirrors what the maps hold.
fn adopt(dir: &Path) -> Result<BpfTunnel, BpfError> {
    let program = |name: &str| {
        let path = dir.join(name);
        let fd = Program::fd_from_pinned_path(&path).map_err(|source| BpfError::Adopt {
            path: path.clone(),
            source,
        })?;
        let id =
            Program::id_from_fd(fd.as_fd()).map_err(|source| BpfError::Adopt { path, source })?;
        Ok::<_, BpfError>((fd, id))
    };
    let map = |name: &str| {
        let path = dir.join(name);
        MapHandle::from_pinned_path(&path).map_err(|source| BpfError::Adopt { path, source })
    };
    let (encap, encap_id) = program(ENCAP)?;
    let (decap, decap_id) = program(DECAP)?;
    let blocks = map(BLOCKS)?;
    let nodes = map(NODES)?;
    let have_blocks = blocks
        .keys()
        .filter_map(|key| {
            let block = maps::block_of_key(&key)?;
            let value = blocks.lookup(&key, MapFlags::ANY).ok()??;
            Some((block, maps::address_of(&value)?))
        })
        .collect();
    let have_nodes = nodes
        .keys()
        .filter_map(|key| maps::address_of(&key))
        .collect();
    Ok(BpfTunnel {
        dir: dir.to_path_buf(),
        encap,
        encap_id,
        decap,
        decap_id,
        blocks,
        nodes,
        settings: map(SETTINGS)?,
        counters: map(COUNTER_MAP)?,
        have_blocks,
        have_nodes,
        ingress: None,
        mounted: None,
    })
}

/// Unpins whatever is in `dir` and removes it; a missing `dir` is fine.
fn remove_pins(dir: &Path) -> Result<(), BpfError> {
    let pin_error = |source| BpfError::PinDir {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(pin_error(e)),
    };
    for entry in entries {
        std::fs::remove_file(entry.map_err(pin_error)?.path()).map_err(pin_error)?;
    }
    std::fs::remove_dir(dir).map_err(pin_error)
}

/// Unpins every other build's directory under `netns`.
fn remove_other_builds(netns: &Path, keep: &Path) -> Result<(), BpfError> {
    let entries = std::fs::read_dir(netns).map_err(|source| BpfError::PinDir {
        path: netns.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path != keep && path.is_dir() {
            remove_pins(&path)?;
        }
    }
    Ok(())
}

fn map_error(map: &'static str, op: &'static str, source: libbpf_rs::Error) -> BpfError {
    BpfError::Map { map, op, source }
}

/// ENOENT: what is to be removed is not there.
fn is_gone(e: &libbpf_rs::Error) -> bool {
    e.kind() == libbpf_rs::ErrorKind::NotFound
}
