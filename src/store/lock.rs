//! Cross-process locks on files in the state directory: one sync at a time, one token refresh
//! at a time. The OS releases a lock when its holder exits, even after `kill -9`, so a crash
//! never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StoreError;

/// The lock file that serializes syncs (daemon ticks, `--once`, `push`, `backfill`).
pub const RUN_LOCK: &str = "run.lock";
/// The lock file that serializes token refreshes across processes.
pub const TOKEN_LOCK: &str = "token.lock";

/// An exclusive lock on a file; released when dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock at `path`, waiting up to `wait` for another holder. `on_wait` is called once,
    /// with the holder's pid, if we have to wait (so the user sees why nothing happens).
    pub fn acquire(
        path: &Path,
        wait: Duration,
        on_wait: impl FnOnce(&str),
    ) -> Result<FileLock, StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| open_error(path, source))?;
        let started = Instant::now();
        let mut on_wait = Some(on_wait);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let holder = read_pid(&mut file);
                    if started.elapsed() >= wait {
                        return Err(StoreError::Busy {
                            path: path.to_owned(),
                            pid: holder,
                            waited: wait,
                        });
                    }
                    if let Some(f) = on_wait.take() {
                        f(&holder);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::Error(source)) => {
                    return Err(StoreError::Dir {
                        path: path.to_owned(),
                        source,
                    })
                }
            }
        }
        // Best effort: the pid only improves the message another process shows.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        Ok(FileLock {
            _file: file,
            path: path.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A read-only or full disk is the same trouble as for the database: nothing is lost, the next
/// run retries; other failures are about the directory itself.
fn open_error(path: &Path, source: std::io::Error) -> StoreError {
    use std::io::ErrorKind as K;
    match source.kind() {
        K::ReadOnlyFilesystem | K::StorageFull | K::QuotaExceeded => StoreError::Write {
            path: path.to_owned(),
            detail: source.to_string(),
        },
        _ => StoreError::Dir {
            path: path.to_owned(),
            source,
        },
    }
}

fn read_pid(file: &mut File) -> String {
    let mut pid = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut pid));
    match pid.trim() {
        "" => "unknown".to_owned(),
        p => p.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_gives_up_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RUN_LOCK);
        let first = FileLock::acquire(&path, Duration::ZERO, |_| {}).unwrap();
        let mut waited_on = None;
        let err = FileLock::acquire(&path, Duration::from_millis(120), |pid| {
            waited_on = Some(pid.to_owned())
        })
        .unwrap_err();
        assert_eq!(
            waited_on.as_deref(),
            Some(std::process::id().to_string().as_str())
        );
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
        assert!(err.to_string().contains(&std::process::id().to_string()));
        drop(first);
        assert!(FileLock::acquire(&path, Duration::ZERO, |_| {}).is_ok());
    }
}
