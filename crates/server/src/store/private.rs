//! Files that hold secrets are created readable by their owner only (0600), whatever the
//! umask: the database holds password hashes and OTP hashes. The mode is set at creation, so
//! there is no moment when another user could open the file.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use countersign_core::ports::StoreError;

fn unavailable(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

/// Creates the folders above `path` that are missing, 0700.
pub fn create_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| unavailable(dir, e)),
        None => Ok(()),
    }
}

/// Creates `path` empty with mode 0600 if it does not exist; leaves an existing file alone.
pub fn create_file(path: &Path) -> Result<(), StoreError> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(unavailable(path, e)),
    }
}

/// Takes group and other permissions away from `path` and its `-wal`/`-shm` files (made
/// 0644 by earlier versions), saying so in the log.
pub fn tighten(path: &Path) -> Result<(), StoreError> {
    for file in [
        path.to_owned(),
        suffixed(path, "-wal"),
        suffixed(path, "-shm"),
    ] {
        let meta = match std::fs::metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unavailable(&file, e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o700))
                .map_err(|e| unavailable(&file, e))?;
            tracing::warn!(
                path = %file.display(),
                was = format!("{mode:o}"),
                "made readable by its owner only"
            );
        }
    }
    Ok(())
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
