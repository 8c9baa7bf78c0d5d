//! A cache of precompiled code on disk, so a restart does not recompile.
//!
//! Entries are keyed by the SHA-256 of the wasm bytes and by the engine's
//! compatibility hash (wasmtime version and compiler settings), and written to
//! a temporary file then renamed, so a reader never sees half an entry. A
//! corrupt or stale entry is ignored and rewritten.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use super::wasm::Wasm;

/// The precompiled-code cache.
#[derive(Clone)]
pub(crate) struct CodeCache {
    dir: PathBuf,
    engine: Engine,
    engine_key: String,
}

impl CodeCache {
    /// A cache in `dir` (created on first write) for code made by `engine`.
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self { dir, engine: engine.clone(), engine_key: format!("{:016x}", hasher.finish()) }
    }

    /// Where the entry for `bytes` lives.
    pub fn path_for(&self, bytes: &Wasm) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", bytes.sha256_hex(), self.engine_key))
    }

    /// The compiled component for `bytes`, from the cache when present.
    pub fn component(&self, bytes: &Wasm) -> wasmtime::Result<Component> {
        self.get_or_compile(
            bytes,
            |engine, bytes| engine.precompile_component(bytes),
            // SAFETY (both): the code comes from `precompile_component` of an
            // engine with the same compatibility hash, in a folder we own, and
            // wasmtime still checks the header and refuses incompatible code.
            |engine, path| unsafe { Component::deserialize_file(engine, path) },
            |engine, code| unsafe { Component::deserialize(engine, code) },
        )
    }

    /// The compiled core module for `bytes`, from the cache when present.
    pub fn module(&self, bytes: &Wasm) -> wasmtime::Result<Module> {
        self.get_or_compile(
            bytes,
            |engine, bytes| engine.precompile_module(bytes),
            // SAFETY: as for `component`.
            |engine, path| unsafe { Module::deserialize_file(engine, path) },
            |engine, code| unsafe { Module::deserialize(engine, code) },
        )
    }

    fn get_or_compile<T>(
        &self,
        bytes: &Wasm,
        precompile: impl FnOnce(&Engine, &[u8]) -> wasmtime::Result<Vec<u8>>,
        from_file: impl Fn(&Engine, &Path) -> wasmtime::Result<T>,
        from_code: impl FnOnce(&Engine, &[u8]) -> wasmtime::Result<T>,
    ) -> wasmtime::Result<T> {
        let path = self.path_for(bytes);
        if path.exists() {
            match from_file(&self.engine, &path) {
                Ok(code) => {
                    tracing::debug!(path = %path.display(), "loaded precompiled code from cache");
                    return Ok(code);
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry"),
            }
        }
        let compiled = precompile(&self.engine, bytes)?;
        if let Err(e) = write_atomically(&path, &compiled) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write code cache entry");
            return from_code(&self.engine, &compiled);
        }
        // From the file just written, with the compiled bytes dropped first:
        // mapping the file costs no second copy of tens of MB of code in
        // memory, which a large plugin's load would add to its peak.
        drop(compiled);
        from_file(&self.engine, &path)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a folder");
    std::fs::create_dir_all(dir)?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
