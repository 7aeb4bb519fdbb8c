//! Writing key and certificate files, with the permissions rule both sides
//! follow: private keys are created mode 0600 and never overwritten.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `path` with mode 0600 holding `contents`, and syncs it to disk.
/// Fails if the file already exists, so a key is never silently replaced.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_new(path, contents, 0o600)
}

/// Creates `path` with mode 0644 holding `contents`, and syncs it to disk.
/// Fails if the file already exists.
pub fn write_public(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_new(path, contents, 0o644)
}

/// Atomically replaces `path` with `contents` (write to a temporary file
/// beside it, sync, rename), keeping `mode`.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, contents, mode)?;
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("create {}: {e}", path.display())))?;
    // The umask may have narrowed the mode; make it exact.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::File::open(parent)?.sync_all(),
        _ => Ok(()),
    }
}
