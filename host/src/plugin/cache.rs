//! The two compilation caches local runs use (the CLI, fixtures, tests;
//! never Lambda, which deploys precompiled artifacts), side by side under
//! the cache folder ([`super::RuntimeOptions::cache_dir`]):
//!
//! - `wasmtime/`: wasmtime's module cache, which it manages (and trims past
//!   its size limit). A component compiled before, byte for byte the same,
//!   loads without compiling.
//! - `functions/<wasmtime version>/`: Cranelift's incremental cache, one file
//!   per compiled function, keyed by a hash of the function's IR, the target
//!   and the compiler settings. A component that differs from one compiled
//!   before compiles only the functions that differ. Every JavaScript plugin
//!   carries the same StarlingMonkey engine, and every Python plugin the same
//!   CPython, so a second plugin, or a rebuild of an edited one, compiles in
//!   a fraction of the first's time. It grows with every distinct function
//!   compiled: deleting it any time only costs a slower next compile.
//!   Opening it removes the folders of other wasmtime versions, whose
//!   entries can never hit.
//!
//! Either cache failing only costs time: a read that fails is a miss, a
//! write that fails is skipped. Entries are written to a temporary file and
//! renamed into place, so processes compiling at once never read half an
//! entry.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::{CacheStore, Config};

/// Turns on both caches in `config`, under `dir`, and returns the function
/// cache. A cache that cannot be set up is logged and left off.
pub fn enable(config: &mut Config, dir: &Path) -> Option<Arc<FunctionCache>> {
    remove_old_module_cache(dir);
    let mut modules = wasmtime::CacheConfig::new();
    modules.with_directory(dir.join("wasmtime"));
    match wasmtime::Cache::new(modules) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(e) => tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "cannot use the compilation cache; plugins are compiled at every start"
        ),
    }
    match FunctionCache::open(&dir.join("functions")) {
        Ok(functions) => {
            let functions = Arc::new(functions);
            config
                .enable_incremental_compilation(functions.clone())
                .expect("the compiler is enabled");
            Some(functions)
        }
        Err(e) => {
            tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot use the function cache; every function of a new component is compiled"
            );
            None
        }
    }
}

/// Before the function cache, wasmtime's modules were kept in
/// `<dir>/modules`, which nothing trims any more: removed when it holds
/// nothing but wasmtime's folders (`wasmtime-<version>`), so a folder that
/// is someone else's is never touched.
fn remove_old_module_cache(dir: &Path) {
    let old = dir.join("modules");
    let Ok(entries) = std::fs::read_dir(&old) else {
        return;
    };
    let wasmtimes = entries.flatten().all(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("wasmtime-"))
            && e.file_type().is_ok_and(|t| t.is_dir())
    });
    if wasmtimes {
        let _ = std::fs::remove_dir_all(&old);
    }
}

/// Cranelift's incremental cache as files: `<version>/<2 hex>/<62 hex>`.
#[derive(Debug)]
pub struct FunctionCache {
    /// This wasmtime version's folder.
    dir: PathBuf,
    /// Functions compiled and stored.
    writes: AtomicU64,
    /// Functions found in the cache.
    hits: AtomicU64,
}

impl FunctionCache {
    /// The cache in `root`, in a folder for this wasmtime version; the
    /// folders of other versions (`wasmtime-<version>`) are removed: their
    /// entries can never hit.
    pub fn open(root: &Path) -> std::io::Result<FunctionCache> {
        let version = concat!("wasmtime-", env!("SLUICE_WASMTIME_VERSION"));
        let dir = root.join(version);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(root)?.flatten() {
            let name = entry.file_name();
            let other_version = name
                .to_str()
                .is_some_and(|n| n.starts_with("wasmtime-") && n != version);
            if other_version {
                // Another process may be removing it too: best effort.
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(FunctionCache {
            dir,
            writes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        })
    }

    /// How many functions were found in the cache, and how many were
    /// compiled and stored, since it was opened.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.writes.load(Ordering::Relaxed),
        )
    }

    /// Where the entry for `key` lives.
    fn path(&self, key: &[u8]) -> PathBuf {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let (shard, rest) = hex.split_at(2.min(hex.len()));
        self.dir.join(shard).join(rest)
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let entry = std::fs::read(self.path(key)).ok()?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(Cow::Owned(entry))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path(key);
        let Some(shard) = path.parent() else {
            return false;
        };
        self.writes.fetch_add(1, Ordering::Relaxed);
        // Unique across the process (several engines may share the folder)
        // and, with the process id, across processes.
        static TEMPS: AtomicU64 = AtomicU64::new(0);
        let n = TEMPS.fetch_add(1, Ordering::Relaxed);
        let temp = shard.join(format!(".{}-{n}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            if let Err(e) = std::fs::write(&temp, &value) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(e);
                }
                std::fs::create_dir_all(shard)?;
                std::fs::write(&temp, &value)?;
            }
            std::fs::rename(&temp, &path)
        };
        let written = write().is_ok();
        if !written {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_other_versions_are_removed() {
        let root = std::env::temp_dir().join(format!("sluice-fn-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("wasmtime-0.0.1/ab")).unwrap();
        std::fs::create_dir_all(root.join("notes")).unwrap();
        let cache = FunctionCache::open(&root).unwrap();
        assert!(!root.join("wasmtime-0.0.1").exists());
        assert!(
            root.join("notes").exists(),
            "a folder not ours is left alone"
        );
        let key = [0xab; 32];
        assert!(cache.get(&key).is_none());
        assert!(cache.insert(&key, b"compiled".to_vec()));
        assert_eq!(cache.get(&key).as_deref(), Some(&b"compiled"[..]));
        // Rewriting an entry replaces it whole.
        assert!(cache.insert(&key, b"again".to_vec()));
        assert_eq!(cache.get(&key).as_deref(), Some(&b"again"[..]));
        let shard = cache.path(&key).parent().unwrap().to_owned();
        let names: Vec<_> = std::fs::read_dir(shard).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn only_an_old_module_cache_of_wasmtime_folders_is_removed() {
        let dir = std::env::temp_dir().join(format!("sluice-old-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("modules/wasmtime-48.0.8")).unwrap();
        remove_old_module_cache(&dir);
        assert!(!dir.join("modules").exists());
        std::fs::create_dir_all(dir.join("modules/wasmtime-48.0.8")).unwrap();
        std::fs::write(dir.join("modules/notes.txt"), "mine").unwrap();
        remove_old_module_cache(&dir);
        assert!(dir.join("modules/notes.txt").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Two modules with the same functions and different data: the second
    /// misses the module cache and compiles every function from the
    /// function cache.
    #[test]
    fn a_module_with_known_functions_compiles_them_from_the_cache() {
        let dir = std::env::temp_dir().join(format!("sluice-caches-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let module = |data: &str| {
            format!(
                r#"(module (memory 1) (data (i32.const 0) "{data}")
                     (func (export "sum") (param i32 i32) (result i32)
                       local.get 0 local.get 1 i32.add)
                     (func (export "load") (param i32) (result i32)
                       local.get 0 i32.load))"#
            )
        };
        let compile = |wat: &str| {
            let mut config = Config::new();
            let functions = enable(&mut config, &dir).expect("a writable folder");
            let engine = wasmtime::Engine::new(&config).unwrap();
            wasmtime::Module::new(&engine, wat).unwrap();
            functions.stats()
        };
        let (_, first) = compile(&module("first"));
        assert!(first >= 2, "both functions are stored: {first}");
        // Wasmtime's IR for a function is not always the same from one
        // engine to the next (seen: 1 function in 9 now and then), so a
        // function may miss; a miss is only compiled again.
        let (hits, stored) = compile(&module("second"));
        assert!(hits >= 2 && hits > stored, "{hits} hits, {stored} compiled");
        // wasmtime's cache worker may still be writing its statistics.
        let _ = std::fs::remove_dir_all(&dir);
    }
}
