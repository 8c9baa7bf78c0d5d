//! The plugins folder and how one plugin is loaded from it.
//!
//! This is the one place that knows what a plugin folder holds: `NAME.wasm`,
//! its optional manifest `NAME.toml` beside it, and the files a manifest
//! names (an `[http] ca_file`). Loading reads the manifest, resolves its
//! grants, compiles the code in the sandbox, asks it for its tools and
//! compiles their schemas: everything a [`Plugin`] needs before it serves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::manifest::Manifest;
use super::schema::ArgumentValidator;
use super::snapshot::{LoadFailure, Plugin};
use crate::sandbox::capabilities::Capabilities;
use crate::sandbox::{Guest, Loaded, Runtime, Wasm, is_component};
use crate::types::Limits;

/// A folder of plugins.
#[derive(Debug, Clone)]
pub(crate) struct PluginFolder {
    dir: PathBuf,
}

impl PluginFolder {
    /// The folder at `dir`.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where plugin `name`'s code is.
    pub fn wasm(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.wasm"))
    }

    /// Where plugin `name`'s manifest is (when it has one).
    pub fn manifest(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// Names of the plugins in the folder: stems of visible `*.wasm` files, sorted.
    pub fn names(&self) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if let Some(name) = plugin_name(&path)
                && path.extension().is_some_and(|e| e == "wasm")
                && path.is_file()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The plugin whose own file (`NAME.wasm` or `NAME.toml`) `path` is: in
    /// this folder, by path or canonically (a watcher may report canonical
    /// paths), and neither hidden nor temporary.
    pub fn plugin_of(&self, path: &Path) -> Option<String> {
        let name = plugin_name(path)?;
        path.parent().is_some_and(|folder| same_folder(folder, &self.dir)).then_some(name)
    }

    /// Reads plugin `name`'s code (and hashes it).
    pub fn read(&self, name: &str) -> std::io::Result<Wasm> {
        std::fs::read(self.wasm(name)).map(Wasm::new)
    }

    /// Reads, compiles and describes plugin `name` with its manifest.
    pub async fn load(&self, runtime: &Runtime, name: &str, defaults: Limits) -> Result<Plugin, LoadFailure> {
        self.load_read(runtime, name, self.read(name), defaults).await
    }

    /// Compiles and describes plugin `name`, whose code `read` gave, with its manifest.
    pub async fn load_read(
        &self,
        runtime: &Runtime,
        name: &str,
        read: std::io::Result<Wasm>,
        defaults: Limits,
    ) -> Result<Plugin, LoadFailure> {
        let path = self.wasm(name);
        let manifest_path = self.manifest(name);
        let failure = |error: String, files_read: &[PathBuf]| LoadFailure {
            path: path.clone(),
            error,
            files_read: files_read.to_vec(),
        };
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => {
                Manifest::parse(&text).map_err(|e| failure(format!("{}: {e}", manifest_path.display()), &[]))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(failure(format!("cannot read {}: {e}", manifest_path.display()), &[])),
        };
        let files_read = manifest.files_read(&self.dir);
        let fail = |error: String| failure(error, &files_read);
        let in_manifest = |e: &dyn std::fmt::Display| fail(format!("{}: {e}", manifest_path.display()));
        if manifest.fuel.is_some() && !runtime.fuel_metering() {
            return Err(in_manifest(
                &"`fuel` is set, but fuel metering is off; set `plugin_fuel` in the Switchboard config to turn it on, or rely on timeout_ms",
            ));
        }
        let grants = manifest.grants(&self.dir, &|var| std::env::var(var).ok()).map_err(|e| in_manifest(&e))?;
        let capabilities = Arc::new(Capabilities::new(name, grants));
        let bytes = read.map_err(|e| fail(format!("cannot read: {e}")))?;
        if !is_component(&bytes) {
            manifest.check_command_tools(name).map_err(|e| match manifest.tools.is_empty() {
                true => fail(e),
                false => in_manifest(&e),
            })?;
        }
        let version = bytes.version();
        let Loaded { guest, described, tier } = runtime
            .load(bytes, manifest.command_tools(name), capabilities.clone(), manifest.reuse())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (mut tools, subscriptions) = (described.tools, described.subscriptions);
        let http_keys = manifest.http.keys_set();
        if matches!(guest, Guest::Command(_)) && !http_keys.is_empty() {
            return Err(in_manifest(&format!(
                "[http] {} set, but a command plugin (WASI preview 1) cannot make HTTP requests; remove the [http] table, or build a component to use outbound HTTP",
                match http_keys.as_slice() {
                    [one] => format!("{one} is"),
                    many => format!("{} are", many.join(", ")),
                }
            )));
        }
        if matches!(guest, Guest::Command(_)) && manifest.reuse().enabled() {
            return Err(in_manifest(
                &"max_instance_reuse is above 1, but a command plugin's instance ends when its program exits, so every call runs in a fresh one; remove the key, or build a component to reuse instances",
            ));
        }
        if tools.is_empty() && subscriptions.is_empty() {
            return Err(fail("it offers no tools and handles no events".into()));
        }
        if matches!(guest, Guest::Component(_)) {
            manifest.apply_to_component_tools(&mut tools).map_err(|e| in_manifest(&e))?;
        }
        let validators = tools
            .iter()
            .map(|tool| {
                ArgumentValidator::new(&tool.parameters_schema)
                    .map(|v| (tool.name.clone(), v))
                    .map_err(|e| fail(format!("tool {:?}: parameters {e}", tool.name)))
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        // At most a quarter of the instance pool unless the manifest or the
        // configuration says otherwise, so no one plugin takes it all.
        let mut limits = manifest.limits(defaults);
        let max_calls = *limits.max_concurrent_calls.get_or_insert_with(|| guest.default_max_concurrent_calls());
        if max_calls == 0 {
            return Err(in_manifest(&"max_concurrent_calls must be at least 1"));
        }
        let max_calls = max_calls.min(tokio::sync::Semaphore::MAX_PERMITS);
        Ok(Plugin {
            name: name.to_owned(),
            path,
            version,
            loaded_at: SystemTime::now(),
            tools,
            subscriptions,
            validators: Arc::new(validators),
            limits,
            calls: tokio::sync::Semaphore::new(max_calls),
            capabilities,
            files_read,
            guest,
            tier,
            reuse: manifest.reuse(),
        })
    }
}

/// The plugin a path belongs to (`NAME.wasm` or `NAME.toml`), or `None` for
/// hidden, temporary and unrelated files.
fn plugin_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') || file.starts_with('#') || file.ends_with('~') {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    (matches!(ext, "wasm" | "toml") && !stem.is_empty() && !stem.contains('.')).then(|| stem.to_owned())
}

/// Size and modification time, to tell whether a file changed under us.
pub(super) fn file_stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
}

/// Whether two paths name the same folder: equal, or equal once canonical
/// (a watcher may report events under the canonical path).
pub(super) fn same_folder(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).is_ok_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_ignore_hidden_and_temporary_files() {
        assert_eq!(plugin_name(Path::new("/p/echo.wasm")).as_deref(), Some("echo"));
        assert_eq!(plugin_name(Path::new("/p/echo.toml")).as_deref(), Some("echo"));
        for ignored in [".echo.wasm", "echo.wasm.tmp", "echo.wasm~", "#echo.wasm", "echo.txt", ".wasm", "a.b.wasm"] {
            assert_eq!(plugin_name(&Path::new("/p").join(ignored)), None, "{ignored}");
        }
    }

    #[test]
    fn a_plugin_file_counts_only_in_the_folder_itself_however_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        let folder = PluginFolder::new(dir.path());
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(folder.plugin_of(&canonical.join("a.toml")).as_deref(), Some("a"));
        assert_eq!(folder.plugin_of(&dir.path().join("a.wasm")).as_deref(), Some("a"));
        assert_eq!(folder.plugin_of(&dir.path().join("certs/a.toml")), None);
    }
}
