//! Builds the `bpf` backend's eBPF object (`bpf/tunnel.bpf.c`) with clang,
//! when the `bpf` feature is on.
//!
//! A machine without clang still builds the crate: the object is then
//! empty, and loading it fails with `BpfError::NotBuilt` naming the reason,
//! so `tunnel.backend: auto` moves on to the userspace data plane.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=bpf/tunnel.bpf.c");
    println!("cargo::rerun-if-env-changed=CLANG");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out.join("tunnel.bpf.o");
    let why = out.join("tunnel.bpf.why");
    if std::env::var_os("CARGO_FEATURE_BPF").is_none() {
        write(&object, b"");
        write(&why, b"ipip was built without its `bpf` feature");
        return;
    }
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // <asm/types.h> lives under the multiarch directory on Debian.
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let result = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg(format!("-I{multiarch}"))
        .args(["-c", "bpf/tunnel.bpf.c", "-o"])
        .arg(&object)
        .output();
    let failure = match result {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`{clang} -target bpf` failed on bpf/tunnel.bpf.c: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!(
            "cannot run `{clang}` to build bpf/tunnel.bpf.c ({e}): install clang (Debian: apt-get install clang libbpf-dev) and rebuild"
        )),
    };
    match failure {
        None => write(&why, b""),
        Some(text) => {
            println!("cargo::warning={text}");
            write(&object, b"");
            write(&why, text.as_bytes());
        }
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
