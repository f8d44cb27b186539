//! KeyValueStore: read-only data for functions, loaded from CloudFront's import format
//! `{"data":[{"key":…,"value":…}, …]}` with CloudFront's limits, and swapped whole when its file
//! changes (a new configuration snapshot carries the new store).
//!
//! The store of the invocation running on a worker thread is published in a thread-local slot
//! for the host functions of `cf.kvs()`; it holds plain Rust data only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

/// Longest key (the quota page says 512 bytes).
pub const MAX_KEY_BYTES: usize = 512;
/// Longest value (1 KB).
pub const MAX_VALUE_BYTES: usize = 1024;
/// Largest store (5 MB).
pub const MAX_STORE_BYTES: usize = 5 * 1024 * 1024;

/// A loaded store.
#[derive(Debug)]
pub struct KvStore {
    entries: HashMap<String, String>,
    /// When this version of the store was loaded (reported as both meta dates).
    pub loaded_at: SystemTime,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportFile {
    data: Vec<ImportEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportEntry {
    key: String,
    value: String,
}

impl KvStore {
    /// Load and check an import file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if text.len() > MAX_STORE_BYTES {
            return Err(format!(
                "{} is {} bytes; a KeyValueStore holds at most {MAX_STORE_BYTES}",
                path.display(),
                text.len()
            ));
        }
        let file: ImportFile = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "{} is not a CloudFront import file ({{\"data\":[{{\"key\":…,\"value\":…}}]}}): {e}",
                path.display()
            )
        })?;
        let mut entries = HashMap::with_capacity(file.data.len());
        for (i, entry) in file.data.into_iter().enumerate() {
            if entry.key.is_empty() || entry.key.len() > MAX_KEY_BYTES {
                return Err(format!(
                    "data[{i}]: keys must be 1 to {MAX_KEY_BYTES} bytes (this one is {})",
                    entry.key.len()
                ));
            }
            if entry.value.len() > MAX_VALUE_BYTES {
                return Err(format!(
                    "data[{i}] (`{}`): values are at most {MAX_VALUE_BYTES} bytes (this one is {})",
                    entry.key,
                    entry.value.len()
                ));
            }
            if entries.insert(entry.key.clone(), entry.value).is_some() {
                return Err(format!("data[{i}]: the key `{}` appears twice", entry.key));
            }
        }
        Ok(KvStore {
            entries,
            loaded_at: SystemTime::now(),
        })
    }

    /// A value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<KvStore>>> = const { RefCell::new(None) };
}

/// Publish the store of the invocation about to run on this thread (or none).
pub fn set_current(store: Option<Arc<KvStore>>) {
    CURRENT.with(|c| *c.borrow_mut() = store);
}

/// The store of the invocation running on this thread.
pub fn current() -> Option<Arc<KvStore>> {
    CURRENT.with(|c| c.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<KvStore, String> {
        // Removed when it drops, so test runs leave nothing in the temp folder.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvs.json");
        std::fs::write(&path, text).unwrap();
        KvStore::load(&path)
    }

    #[test]
    fn import_files_load_with_cloudfront_limits() {
        let s =
            load(r#"{"data":[{"key":"secret","value":"s3cr3t"},{"key":"k","value":"{\"a\":1}"}]}"#)
                .unwrap();
        assert_eq!(s.get("secret"), Some("s3cr3t"));
        assert_eq!(s.len(), 2);
        assert!(
            load(r#"{"data":[{"key":"a","value":"1"},{"key":"a","value":"2"}]}"#)
                .unwrap_err()
                .contains("twice")
        );
        let long_value = format!(
            r#"{{"data":[{{"key":"a","value":"{}"}}]}}"#,
            "v".repeat(1025)
        );
        assert!(load(&long_value).unwrap_err().contains("at most 1024"));
        let long_key = format!(
            r#"{{"data":[{{"key":"{}","value":"v"}}]}}"#,
            "k".repeat(513)
        );
        assert!(load(&long_key).unwrap_err().contains("1 to 512"));
        assert!(
            load(r#"{"entries":[]}"#)
                .unwrap_err()
                .contains("import file")
        );
    }
}
