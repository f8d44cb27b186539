//! The reload watcher: reloads the configuration on SIGHUP and whenever the configuration file
//! or a file it names changes.
//!
//! A change is seen by comparing each file's size and modification time with what was seen
//! before, as `make` does. Alone that misses an edit that keeps the size and lands in the same
//! timestamp step as the write before it: file systems store times in steps (whole seconds on
//! some, two seconds on FAT), and the kernel moves them on its clock tick. So, as git does for
//! "racily clean" index entries, a file whose modification time is within [`TIMESTAMP_STEP`] of
//! the moment it is looked at also has its content hashed, and the hash is compared on the next
//! look. Once a file's time is older than that, any later write moves its time, so it is not read
//! again until it changes: a large key-value store file is not hashed on every check.
//!
//! The files watched are those the running configuration names (its own file, certificates,
//! CA files, function code, key-value stores) and, after a reload that failed, those the new
//! text names too: a function file it names but that was not written yet is a change once it
//! appears.
//!
//! The first look is taken by whoever loaded the configuration, right after loading it, not by
//! the watcher thread when it first runs: an edit made between the two would otherwise be taken
//! as the starting point and never reloaded.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use verge_config::Config;

use crate::state::ProxyState;

/// The coarsest step file-system timestamps are kept in (FAT's two seconds). A file modified
/// less than this before it is looked at may still change without its time moving.
pub const TIMESTAMP_STEP: Duration = Duration::from_secs(2);

/// How long the watcher sleeps when files are not watched, between looks at `stop`.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// What one look found of one file.
#[derive(Debug, Clone)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    /// The content's hash, kept only while the modification time is too recent to trust.
    digest: Option<u64>,
}

/// What one look found of every watched file (`None`: missing or unreadable); the files looked
/// at are the ones watched.
#[derive(Debug)]
pub struct Files {
    entries: Vec<(PathBuf, Option<Seen>)>,
}

fn digest_of(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(&bytes);
    Some(hasher.finish())
}

/// Whether a file modified at `modified` may still change without its time moving, looked at
/// `now`. A time in the future (a clock set back) or unknown is never trusted.
fn too_recent(modified: Option<SystemTime>, now: SystemTime) -> bool {
    modified.is_none_or(|m| {
        now.duration_since(m)
            .map_or(true, |age| age < TIMESTAMP_STEP)
    })
}

/// Look at one file at `now`; with what was seen of it before, whether it changed since.
fn look_at(path: &Path, before: Option<&Seen>, now: SystemTime) -> (Option<Seen>, bool) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (None, before.is_some());
    };
    let (len, modified) = (meta.len(), meta.modified().ok());
    let same_meta = before.is_some_and(|b| b.len == len && b.modified == modified);
    // Hash when the time is too recent to trust now, or when it was last time and the size and
    // time are still the same: only the content can tell then.
    let compare = same_meta && before.is_some_and(|b| b.digest.is_some());
    let recent = too_recent(modified, now);
    let digest = if recent || compare {
        match digest_of(path) {
            Some(d) => Some(d),
            None => return (None, before.is_some()),
        }
    } else {
        None
    };
    let changed = !same_meta || (compare && before.and_then(|b| b.digest) != digest);
    let seen = Seen {
        len,
        modified,
        digest: digest.filter(|_| recent),
    };
    (Some(seen), changed)
}

impl Files {
    /// The first look at `paths`.
    pub fn look(paths: &[PathBuf]) -> Files {
        Self::look_at(paths, SystemTime::now())
    }

    fn look_at(paths: &[PathBuf], now: SystemTime) -> Files {
        Files {
            entries: paths
                .iter()
                .map(|p| (p.clone(), look_at(p, None, now).0))
                .collect(),
        }
    }

    /// Look at the same files again: what is seen now, and whether any changed since `self`.
    pub fn look_again(&self) -> (Files, bool) {
        self.look_again_at(SystemTime::now())
    }

    fn look_again_at(&self, now: SystemTime) -> (Files, bool) {
        let mut changed = false;
        let entries = self
            .entries
            .iter()
            .map(|(path, before)| {
                let (seen, file_changed) = look_at(path, before.as_ref(), now);
                changed |= file_changed;
                (path.clone(), seen)
            })
            .collect();
        (Files { entries }, changed)
    }

    /// What was seen of `path`, if it was looked at (`Some(None)`: it was missing).
    fn entry(&self, path: &Path) -> Option<&Option<Seen>> {
        self.entries.iter().find(|(p, _)| p == path).map(|(_, s)| s)
    }

    /// These looks, with a first look at each of `paths` not covered yet (the files a reloaded
    /// configuration names for the first time), and without the files it no longer names.
    fn covering(&self, paths: &[PathBuf]) -> Files {
        let now = SystemTime::now();
        Files {
            entries: paths
                .iter()
                .map(|p| match self.entry(p) {
                    Some(seen) => (p.clone(), seen.clone()),
                    None => (p.clone(), look_at(p, None, now).0),
                })
                .collect(),
        }
    }
}

/// The files to watch after a reload: the running configuration's and, when the reload failed,
/// every file the configuration file names now too. A reload that failed on a function file not
/// written yet is then retried once the file appears, not only at the next edit of the
/// configuration.
fn watched_after(running: &Config, reloaded: bool) -> Vec<PathBuf> {
    let mut paths = running.watched_files().to_vec();
    if !reloaded {
        paths.extend(verge_config::files_named(&running.file));
        paths.sort();
        paths.dedup();
    }
    paths
}

/// Wait on the SIGHUP pipe until its read timeout: whether a signal came. The write end is
/// never closed while the process runs, so end-of-file is an error here too.
fn wait_for_sighup(pipe: &mut std::os::unix::net::UnixStream) -> std::io::Result<bool> {
    use std::io::{ErrorKind, Read};
    let mut bytes = [0u8; 64];
    match pipe.read(&mut bytes) {
        Ok(0) => Err(ErrorKind::UnexpectedEof.into()),
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Log, once, that SIGHUP can no longer be waited for.
fn lost_sighup(e: &std::io::Error) {
    tracing::error!(
        error = %e,
        "the reload watcher cannot wait for SIGHUP; reloading on file changes only"
    );
}

/// Reload on SIGHUP and, when `file_interval` is given, whenever a watched file changes from
/// what `first_look` (taken when the configuration was loaded) or a later look saw, checked that
/// often. `sighup` is the read end of a socket pair the SIGHUP handler writes a byte to, so the
/// watcher sleeps until a signal or the next file check instead of polling a flag. Runs until
/// `stop` is set (looked at on each wake). If the pipe fails, the error is logged once and the
/// watcher goes on with file checks alone.
pub fn watch(
    state: Arc<ProxyState>,
    first_look: Files,
    sighup: std::os::unix::net::UnixStream,
    file_interval: Option<Duration>,
    stop: Arc<AtomicBool>,
) {
    let tick = file_interval.unwrap_or(IDLE_TICK);
    let mut sighup = match sighup.set_read_timeout(Some(tick)) {
        Ok(()) => Some(sighup),
        Err(e) => {
            lost_sighup(&e);
            None
        }
    };
    let mut seen = first_look;
    let mut last_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let signalled = match sighup.as_mut().map(wait_for_sighup) {
            Some(Ok(signalled)) => signalled,
            Some(Err(e)) => {
                lost_sighup(&e);
                sighup = None;
                false
            }
            None => {
                std::thread::sleep(tick);
                false
            }
        };
        let files_due = file_interval.is_some_and(|every| last_check.elapsed() >= every);
        if !signalled && !files_due {
            continue;
        }
        last_check = Instant::now();
        // Looked at before reloading, so an edit made while the reload reads the files shows
        // as a change on the next check.
        let (now, changed) = seen.look_again();
        let trigger = if signalled {
            Some("SIGHUP")
        } else {
            changed.then_some("file change")
        };
        if let Some(why) = trigger {
            // The outcome is logged and counted by `reload`. What was seen is kept either way,
            // so a broken file is reported once, not on every check.
            let reloaded = state.reload(why).is_ok();
            seen = now.covering(&watched_after(&state.snapshot().config, reloaded));
        } else {
            seen = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG_AGO: Duration = Duration::from_secs(3600);

    /// Write `text` to `path` and set its modification time to `modified`.
    fn write_at(path: &Path, text: &str, modified: SystemTime) {
        std::fs::write(path, text).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }

    /// Write a file 300 ms before a first look, rewrite it at the same size and time (its step
    /// did not move), and look again `later` after the first look: whether a change is seen.
    fn same_size_edit_seen(later: Duration) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verge.toml");
        let paths = std::slice::from_ref(&path);
        let now = SystemTime::now();
        let stamp = now - Duration::from_millis(300);
        write_at(&path, "url = \"a\"", stamp);
        let first = Files::look_at(paths, now);
        write_at(&path, "url = \"b\"", stamp);
        first.look_again_at(now + later).1
    }

    #[test]
    fn a_same_size_edit_within_one_timestamp_step_is_seen() {
        assert!(same_size_edit_seen(Duration::ZERO));
    }

    #[test]
    fn an_edit_made_while_the_time_was_recent_is_seen_after_it_is_old() {
        // The time is old by the next look, but the hash taken while it was recent still has
        // to be compared.
        assert!(same_size_edit_seen(LONG_AGO));
    }

    #[test]
    fn an_unchanged_file_is_not_a_change_and_is_not_read_once_its_time_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvs.json");
        let now = SystemTime::now();
        write_at(&path, "{}", now - Duration::from_millis(300));
        let paths = std::slice::from_ref(&path);
        let first = Files::look_at(paths, now);
        assert!(
            first.entries[0].1.as_ref().unwrap().digest.is_some(),
            "a recent file is hashed"
        );
        let (second, changed) = first.look_again_at(now);
        assert!(!changed);
        let (third, changed) = second.look_again_at(now + LONG_AGO);
        assert!(!changed);
        assert_eq!(
            third.entries[0].1.as_ref().unwrap().digest,
            None,
            "the hash is dropped once the time can be trusted"
        );
    }

    #[test]
    fn a_file_that_moves_its_time_or_size_or_goes_missing_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.js");
        let paths = std::slice::from_ref(&path);
        let now = SystemTime::now();
        let old = now - LONG_AGO;
        write_at(&path, "one", old);
        let first = Files::look_at(paths, now);
        write_at(&path, "one", old + Duration::from_secs(5));
        assert!(first.look_again_at(now).1, "a moved time");
        write_at(&path, "one!", old);
        assert!(first.look_again_at(now).1, "a new size");
        std::fs::remove_file(&path).unwrap();
        let (missing, changed) = first.look_again_at(now);
        assert!(changed, "a removed file");
        assert!(!missing.look_again_at(now).1, "still missing");
        write_at(&path, "one", old);
        assert!(missing.look_again_at(now).1, "a file that came back");
    }

    #[test]
    fn a_file_a_reloaded_configuration_names_first_is_watched_and_a_dropped_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.js"), dir.path().join("b.js"));
        let now = SystemTime::now();
        write_at(&a, "a", now - LONG_AGO);
        let first = Files::look_at(std::slice::from_ref(&a), now);
        // Named by a reload that failed because it is missing: seen as missing, then as a
        // change once written.
        let both = first.covering(&[a.clone(), b.clone()]);
        assert!(!both.look_again_at(now).1);
        write_at(&b, "b", now - LONG_AGO);
        assert!(both.look_again_at(now).1, "a named file that appeared");
        // No longer named: no longer looked at.
        let only_a = both.covering(std::slice::from_ref(&a));
        std::fs::remove_file(&b).unwrap();
        assert!(!only_a.look_again_at(now).1);
        assert_eq!(only_a.entries.len(), 1);
    }
}
