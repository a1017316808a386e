//! The document, the tracker and the writer.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use serde_json::{Value, json};

use super::*;

fn inputs(blocks: &[&str]) -> CniInputs {
    CniInputs {
        path: "/etc/cni/net.d/10-podroute.conflist".into(),
        name: "podroute".into(),
        blocks: blocks.iter().map(|b| b.parse().unwrap()).collect(),
        mtu: 1480,
        reserved: None,
        data_dir: None,
    }
}

fn doc(inputs: &CniInputs) -> Value {
    serde_json::from_str(&conflist(inputs).expect("a document")).unwrap()
}

fn config(text: &str) -> Config {
    Config::parse(Path::new("node.yaml"), text).unwrap()
}

#[test]
fn a_dual_stack_node_gets_ptp_with_one_range_set_per_family_and_portmap() {
    let text = conflist(&inputs(&["10.244.1.0/26", "fd00:244:0:1::/122"])).unwrap();
    assert!(text.ends_with("}\n"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({
            "cniVersion": "1.0.0",
            "name": "podroute",
            "plugins": [
                {
                    "type": "ptp",
                    "ipMasq": false,
                    "mtu": 1480,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [
                            [{"subnet": "10.244.1.0/26"}],
                            [{"subnet": "fd00:244:0:1::/122"}]
                        ],
                        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        })
    );
}

#[test]
fn several_blocks_of_one_family_are_ranges_of_one_set_so_a_pod_gets_one_address() {
    let mut i = inputs(&["10.244.1.0/26", "10.244.9.64/26"]);
    i.data_dir = Some("/var/lib/podroute/ipam".into());
    let v = doc(&i);
    let ipam = &v["plugins"][0]["ipam"];
    assert_eq!(
        ipam["ranges"],
        json!([[{"subnet": "10.244.1.0/26"}, {"subnet": "10.244.9.64/26"}]])
    );
    assert_eq!(ipam["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(ipam["dataDir"], "/var/lib/podroute/ipam");
}

#[test]
fn an_ipv6_only_node_gets_only_an_ipv6_default_route() {
    let v = doc(&inputs(&["fd00:244:0:1::/122"]));
    assert_eq!(v["plugins"][0]["ipam"]["routes"], json!([{"dst": "::/0"}]));
}

#[test]
fn the_tunnel_address_inside_a_block_is_cut_out_of_its_range() {
    let mut i = inputs(&["10.244.1.0/26"]);
    i.reserved = Some("10.244.1.10".parse().unwrap());
    assert_eq!(
        doc(&i)["plugins"][0]["ipam"]["ranges"],
        json!([[
            {"subnet": "10.244.1.0/26", "rangeStart": "10.244.1.2", "rangeEnd": "10.244.1.9"},
            {"subnet": "10.244.1.0/26", "rangeStart": "10.244.1.11", "rangeEnd": "10.244.1.62"}
        ]])
    );
    // Right after the gateway: only the part after it is left.
    i.reserved = Some("10.244.1.2".parse().unwrap());
    assert_eq!(
        doc(&i)["plugins"][0]["ipam"]["ranges"],
        json!([[{"subnet": "10.244.1.0/26", "rangeStart": "10.244.1.3", "rangeEnd": "10.244.1.62"}]])
    );
    // The last address host-local would give.
    i.reserved = Some("10.244.1.62".parse().unwrap());
    assert_eq!(
        doc(&i)["plugins"][0]["ipam"]["ranges"],
        json!([[{"subnet": "10.244.1.0/26", "rangeStart": "10.244.1.2", "rangeEnd": "10.244.1.61"}]])
    );
}

#[test]
fn a_tunnel_address_host_local_never_hands_out_leaves_the_block_whole() {
    // The network address (the default tunnel address), the gateway, the
    // broadcast address, another block's address.
    for reserved in ["10.244.1.0", "10.244.1.1", "10.244.1.63", "10.244.2.5"] {
        let mut i = inputs(&["10.244.1.0/26"]);
        i.reserved = Some(reserved.parse().unwrap());
        assert_eq!(
            doc(&i)["plugins"][0]["ipam"]["ranges"],
            json!([[{"subnet": "10.244.1.0/26"}]]),
            "{reserved}"
        );
    }
}

#[test]
fn blocks_without_room_for_a_pod_are_left_out_and_none_at_all_means_no_file() {
    let v = doc(&inputs(&["10.244.1.0/31", "10.244.2.0/30"]));
    assert_eq!(
        v["plugins"][0]["ipam"]["ranges"],
        json!([[{"subnet": "10.244.2.0/30"}]])
    );
    assert_eq!(conflist(&inputs(&["10.244.1.4/32", "fd00::/127"])), None);
    assert_eq!(conflist(&inputs(&[])), None);
    // A /30 whose one pod address is the tunnel's.
    let mut i = inputs(&["10.244.2.0/30"]);
    i.reserved = Some("10.244.2.2".parse().unwrap());
    assert_eq!(conflist(&i), None);
}

const TUNNELLED: &str = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16, ipip-mode: cross-subnet}]
blocks: [10.244.1.0/26]
cni: {enabled: true}
";

#[test]
fn pods_get_the_tunnel_mtu_with_ipip_and_the_underlay_mtu_without() {
    assert_eq!(pod_mtu(&config(TUNNELLED), 1500), 1480);
    assert_eq!(pod_mtu(&config(TUNNELLED), 9000), 8980);
    let never = TUNNELLED.replace("cross-subnet", "never");
    assert_eq!(pod_mtu(&config(&never), 1500), 1500);
    let tunnel_mtu = format!("{TUNNELLED}tunnel: {{mtu: 1400}}\n");
    assert_eq!(pod_mtu(&config(&tunnel_mtu), 1500), 1400);
    let too_big = format!("{TUNNELLED}tunnel: {{mtu: 1600}}\n");
    assert_eq!(pod_mtu(&config(&too_big), 1500), 1500);
    let set = TUNNELLED.replace("{enabled: true}", "{enabled: true, mtu: 1300}");
    assert_eq!(pod_mtu(&config(&set), 1500), 1300);
}

#[test]
fn inputs_follow_the_config_and_are_none_when_cni_is_off() {
    let c = config(&format!("{TUNNELLED}tunnel: {{address: 10.244.1.1}}\n"));
    let i = CniInputs::from_config(&c, 1500).unwrap();
    assert_eq!(i.path, Path::new("/etc/cni/net.d/10-podroute.conflist"));
    assert_eq!(i.blocks, c.blocks);
    assert_eq!(
        (i.mtu, i.reserved),
        (1480, Some("10.244.1.1".parse().unwrap()))
    );
    let off = config(&TUNNELLED.replace("{enabled: true}", "{enabled: false}"));
    assert_eq!(CniInputs::from_config(&off, 1500), None);
}

fn write_action(actions: &[CniAction]) -> Option<&CniFile> {
    actions.iter().find_map(|a| match a {
        CniAction::Write(f) => Some(f),
        CniAction::Remove(_) => None,
    })
}

#[test]
fn the_tracker_writes_once_and_again_only_when_an_input_changes() {
    let mut t = CniTracker::default();
    let first = t.update(Some(inputs(&["10.244.1.0/26"])));
    assert_eq!(first.len(), 1);
    assert!(write_action(&first).is_some());
    assert!(t.update(Some(inputs(&["10.244.1.0/26"]))).is_empty());
    let mut mtu = inputs(&["10.244.1.0/26"]);
    mtu.mtu = 1430;
    let again = t.update(Some(mtu.clone()));
    assert!(
        write_action(&again)
            .unwrap()
            .contents
            .contains("\"mtu\": 1430")
    );
    // The periodic re-check hands the same file out again (the writer
    // leaves it alone when it is unchanged on disk).
    t.recheck();
    assert_eq!(t.update(Some(mtu.clone())).len(), 1);
    assert!(t.update(Some(mtu)).is_empty());
}

#[test]
fn the_tracker_removes_the_file_when_cni_is_turned_off_moved_or_left_without_blocks() {
    let mut t = CniTracker::default();
    assert!(t.update(None).is_empty(), "never on: nothing to remove");
    t.update(Some(inputs(&["10.244.1.0/26"])));
    let mut moved = inputs(&["10.244.1.0/26"]);
    moved.path = "/run/cni/10-podroute.conflist".into();
    let actions = t.update(Some(moved.clone()));
    assert_eq!(
        actions[0],
        CniAction::Remove("/etc/cni/net.d/10-podroute.conflist".into())
    );
    assert_eq!(write_action(&actions).unwrap().path, moved.path);
    moved.blocks.clear();
    assert_eq!(
        t.update(Some(moved.clone())),
        vec![CniAction::Remove(moved.path.clone())],
        "no block left: removed once"
    );
    // Already removed: turning CNI off has nothing left to remove.
    assert!(t.update(None).is_empty());
    moved.blocks = vec!["10.244.1.0/26".parse().unwrap()];
    t.update(Some(moved.clone()));
    assert_eq!(t.update(None), vec![CniAction::Remove(moved.path)]);
}

/// A directory of its own under the system's temporary directory, removed
/// on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("podroute-cni-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_creates_the_directory_and_leaves_no_temporary_file() {
    let tmp = TempDir::new("create");
    let path = tmp.0.join("net.d/10-podroute.conflist");
    assert_eq!(write(&path, "{}\n").unwrap(), Written::Replaced);
    assert_eq!(fs::read_to_string(&path).unwrap(), "{}\n");
    assert_eq!(entries(&tmp.0.join("net.d")), vec!["10-podroute.conflist"]);
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
}

#[test]
fn unchanged_content_is_not_rewritten_same_inode_and_mtime() {
    let tmp = TempDir::new("same");
    let path = tmp.0.join("10-podroute.conflist");
    write(&path, "one\n").unwrap();
    let before = fs::metadata(&path).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(write(&path, "one\n").unwrap(), Written::Unchanged);
    let after = fs::metadata(&path).unwrap();
    assert_eq!(before.ino(), after.ino());
    assert_eq!(
        (before.mtime(), before.mtime_nsec()),
        (after.mtime(), after.mtime_nsec())
    );
}

#[test]
fn changed_content_replaces_the_file_by_rename_so_readers_never_see_part_of_it() {
    let tmp = TempDir::new("change");
    let path = tmp.0.join("10-podroute.conflist");
    write(&path, "one\n").unwrap();
    // A reader holding the old file keeps reading the old content: the
    // new one is a new inode renamed into place, not a rewrite in place.
    let held = fs::File::open(&path).unwrap();
    let old_inode = fs::metadata(&path).unwrap().ino();
    assert_eq!(write(&path, "two\n").unwrap(), Written::Replaced);
    assert_ne!(fs::metadata(&path).unwrap().ino(), old_inode);
    assert_eq!(io::read_to_string(held).unwrap(), "one\n");
    assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
    assert_eq!(entries(&tmp.0), vec!["10-podroute.conflist"]);
}

#[test]
fn a_stale_temporary_file_from_a_crash_is_overwritten() {
    let tmp = TempDir::new("stale");
    let path = tmp.0.join("10-podroute.conflist");
    fs::create_dir_all(&tmp.0).unwrap();
    fs::write(temp_path(&path), "half a fi").unwrap();
    write(&path, "whole\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "whole\n");
    assert_eq!(entries(&tmp.0), vec!["10-podroute.conflist"]);
}

#[test]
fn a_failed_write_names_the_path_and_the_errno() {
    let tmp = TempDir::new("fail");
    fs::create_dir_all(&tmp.0).unwrap();
    // conf-dir is a regular file: mkdir says EEXIST.
    let blocker = tmp.0.join("net.d");
    fs::write(&blocker, "").unwrap();
    let path = blocker.join("10-podroute.conflist");
    let e = write(&path, "x").unwrap_err();
    assert_eq!(e.step, FileStep::CreateDir);
    assert_eq!(e.errno(), Some(libc::EEXIST));
    let text = e.to_string();
    assert!(text.contains(&blocker.display().to_string()), "{text}");
    assert!(text.contains("os error"), "{text}");
    // The target is a directory: the rename fails (EISDIR), nothing is
    // left behind.
    let dir_target = tmp.0.join("10-podroute.conflist");
    fs::create_dir_all(dir_target.join("inside")).unwrap();
    let e = write(&dir_target, "x").unwrap_err();
    assert_eq!(e.step, FileStep::Rename);
    assert_eq!(e.errno(), Some(libc::EISDIR));
    assert!(!temp_path(&dir_target).exists());
}

#[test]
fn remove_reports_whether_the_file_was_there() {
    let tmp = TempDir::new("remove");
    let path = tmp.0.join("10-podroute.conflist");
    write(&path, "x").unwrap();
    assert!(remove(&path).unwrap());
    assert!(!remove(&path).unwrap());
}
