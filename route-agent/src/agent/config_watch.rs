//! The config file, watched (inotify) and reloaded on change, not only on
//! SIGHUP.
//!
//! The file's directory is watched rather than the file: a Kubernetes
//! ConfigMap volume replaces its files by swapping a `..data` symlink, and
//! an editor may write a new file and rename it over the old one; both
//! leave a watch on the old inode silent. Any event in the directory
//! makes the file be read again after a short settle time
//! ([`SETTLE`]), and a reload is asked for only when its content changed.
//! The reload itself is SIGHUP's: the same checks as `check-config`, and
//! a bad edit is reported while the running config stays.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long a burst of file events must be quiet before the file is read.
pub const SETTLE: Duration = Duration::from_millis(100);

/// Watches `file`; a `()` arrives on the returned channel each time its
/// content changed. Without inotify (or for a file in no directory), the
/// channel stays silent and SIGHUP still works (logged).
pub fn spawn(file: &Path) -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let Some(dir) = file.parent().map(|d| {
        if d.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            d.to_owned()
        }
    }) else {
        return rx;
    };
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = raw_tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch the config file (reload with SIGHUP instead): {e}");
            return rx;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(
            dir = %dir.display(),
            "cannot watch the config file's directory (reload with SIGHUP instead): {e}"
        );
        return rx;
    }
    let file = file.to_owned();
    tokio::spawn(follow(watcher, file, raw_rx, tx));
    rx
}

/// Reads the file after each settled burst of events; sends when its
/// content differs from the last read. Owns the watcher (dropping it stops
/// the watch).
async fn follow(
    _watcher: notify::RecommendedWatcher,
    file: PathBuf,
    mut raw: mpsc::UnboundedReceiver<()>,
    changed: mpsc::UnboundedSender<()>,
) {
    let mut last = std::fs::read(&file).ok();
    while raw.recv().await.is_some() {
        // Settle: take every event of the burst.
        loop {
            match tokio::time::timeout(SETTLE, raw.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let now = std::fs::read(&file).ok();
        // A file that is gone for a moment (replaced) is not a change;
        // its new content is.
        if now.is_some() && now != last {
            last = now;
            if changed.send(()).is_err() {
                return;
            }
        }
    }
}
