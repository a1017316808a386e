//! When the control step writes or removes the CNI config file.

use super::*;

/// [`DIRECT`] with a tunnel across subnets and CNI on.
const CNI: &str = "
node: {address: 10.0.0.5/24}
pools: [{cidr: 10.244.0.0/16, ipip-mode: cross-subnet}]
blocks: [10.244.1.0/26]
mesh: {peers: [10.0.0.6, 10.0.1.6]}
cni: {enabled: true, conf-dir: /run/test-cni}
";

const PATH: &str = "/run/test-cni/10-podroute.conflist";

/// The CNI outputs among `out`: `write PATH` with the file's ranges and
/// MTU, or `remove PATH`.
fn cni_outputs(out: &[Output]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::WriteCni(f) => {
                let doc: serde_json::Value = serde_json::from_str(&f.contents).unwrap();
                let ptp = &doc["plugins"][0];
                Some(format!(
                    "write {} mtu {} ranges {}",
                    f.path.display(),
                    ptp["mtu"],
                    ptp["ipam"]["ranges"]
                ))
            }
            Output::RemoveCni(p) => Some(format!("remove {}", p.display())),
            _ => None,
        })
        .collect()
}

const WRITE_1480: &str =
    r#"write /run/test-cni/10-podroute.conflist mtu 1480 ranges [[{"subnet":"10.244.1.0/26"}]]"#;

#[test]
fn the_cni_file_is_written_at_start_when_enabled_and_never_when_off() {
    let (_, _, out) = start(CNI, false);
    assert_eq!(cni_outputs(&out), [WRITE_1480]);
    let (_, _, out) = start(TUNNEL, false);
    assert!(cni_outputs(&out).is_empty());
}

#[test]
fn a_reload_with_the_same_blocks_writes_nothing_and_a_new_block_rewrites_the_file() {
    let (mut c, t0, _) = start(CNI, false);
    c.handle_reload(t0, Ok(config(CNI)));
    assert!(cni_outputs(&drain(&mut c)).is_empty());
    c.handle_reload(
        t0,
        Ok(config(&CNI.replace(
            "[10.244.1.0/26]",
            "[10.244.1.0/26, 10.244.7.0/26]",
        ))),
    );
    assert_eq!(
        cni_outputs(&drain(&mut c)),
        [
            r#"write /run/test-cni/10-podroute.conflist mtu 1480 ranges [[{"subnet":"10.244.1.0/26"},{"subnet":"10.244.7.0/26"}]]"#
        ]
    );
}

#[test]
fn an_underlay_mtu_change_rewrites_the_file_with_the_new_pod_mtu() {
    let (mut c, t0, _) = start(CNI, false);
    c.handle_node(t0, Ok(node(9000)));
    assert_eq!(
        cni_outputs(&drain(&mut c)),
        [WRITE_1480.replace("1480", "8980")]
    );
    // Read again, unchanged: nothing.
    c.handle_node(t0, Ok(node(9000)));
    assert!(cni_outputs(&drain(&mut c)).is_empty());
}

#[test]
fn a_reload_that_turns_cni_off_moves_it_or_removes_every_block_removes_the_file() {
    let (mut c, t0, _) = start(CNI, false);
    let moved = CNI.replace("/run/test-cni", "/run/other-cni");
    c.handle_reload(t0, Ok(config(&moved)));
    assert_eq!(
        cni_outputs(&drain(&mut c)),
        [
            format!("remove {PATH}"),
            WRITE_1480.replace("test-cni", "other-cni")
        ]
    );
    let no_blocks = moved.replace("blocks: [10.244.1.0/26]\n", "");
    c.handle_reload(t0, Ok(config(&no_blocks)));
    assert_eq!(
        cni_outputs(&drain(&mut c)),
        ["remove /run/other-cni/10-podroute.conflist"]
    );
    c.handle_reload(t0, Ok(config(CNI)));
    assert_eq!(cni_outputs(&drain(&mut c)), [WRITE_1480]);
    let off = CNI.replace("enabled: true", "enabled: false");
    c.handle_reload(t0, Ok(config(&off)));
    assert_eq!(cni_outputs(&drain(&mut c)), [format!("remove {PATH}")]);
}

#[test]
fn the_periodic_resync_hands_the_file_out_again_so_a_deleted_file_comes_back() {
    let (mut c, t0, _) = start(CNI, false);
    c.handle_timeout(t0 + RESYNC);
    assert_eq!(cni_outputs(&drain(&mut c)), [WRITE_1480]);
    assert!(cni_outputs(&drain(&mut c)).is_empty());
}
