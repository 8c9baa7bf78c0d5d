//! Reading a file a manifest names (its `[http] ca_file`): only a regular
//! file inside the plugins folder, and not a large one.
//!
//! A manifest is not trusted to reach the rest of the host: its path must
//! stay inside the plugins folder, lexically and through symbolic links. The
//! links are followed here, one component at a time, by reading them; no
//! path outside the folder is ever looked at, so the error for one that
//! leads out is the same whether or not its target exists. The file is
//! opened without blocking (a FIFO would hang the load) and read up to a
//! limit (`/dev/zero` has no end), and must be a regular file.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Symbolic links followed for one path at most (as the kernel's `ELOOP`).
const MAX_LINKS: usize = 40;

/// Why a file could not be read.
enum Refusal {
    /// The path leads out of the folder.
    Outside,
    /// It could not be read (inside the folder).
    Io(std::io::Error),
}

impl From<std::io::Error> for Refusal {
    fn from(e: std::io::Error) -> Self {
        Refusal::Io(e)
    }
}

/// Reads `file`, a path relative to `folder`, when it is a regular file of at
/// most `limit` bytes inside `folder`. Errors say why, naming the path as
/// the manifest wrote it (joined to the folder).
pub(super) fn read_in_folder(folder: &Path, file: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let shown = folder.join(file);
    let refused = |why: Refusal| match why {
        Refusal::Outside => format!(
            "{} is not inside the plugins folder: name a file in it by a relative path (a path that leads out of it, absolute, through `..` or through a symbolic link, is refused)",
            file.display()
        ),
        Refusal::Io(e) => format!("cannot read {}: {e}", shown.display()),
    };
    let root = std::fs::canonicalize(folder)
        .map_err(|e| format!("cannot read the plugins folder {}: {e}", folder.display()))?;
    let path = resolve_inside(&root, file).map_err(refused)?;
    // Refused before opening, as well as after: opening a device may do something.
    if !std::fs::symlink_metadata(&path).map_err(|e| refused(Refusal::Io(e)))?.is_file() {
        return Err(format!("{} is not a regular file", shown.display()));
    }
    let mut opened = open_without_blocking(&path).map_err(|e| refused(Refusal::Io(e)))?;
    let meta = opened.metadata().map_err(|e| refused(Refusal::Io(e)))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", shown.display()));
    }
    let too_large = || format!("{} is larger than {} KiB", shown.display(), limit >> 10);
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut opened).take(limit + 1).read_to_end(&mut bytes).map_err(|e| refused(Refusal::Io(e)))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// One step of a path being resolved.
enum Part {
    Name(OsString),
    Up,
}

/// The parts of a relative path; `None` for an absolute one.
fn parts(path: &Path) -> Option<Vec<Part>> {
    path.components()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(Some(Part::Name(name.to_owned()))),
            Component::ParentDir => Some(Some(Part::Up)),
            Component::CurDir => None,
            Component::RootDir | Component::Prefix(_) => Some(None),
        })
        .collect()
}

/// `file` resolved inside `root` (canonical), following symbolic links by
/// reading them. Only entries inside `root` are ever looked at: a part that
/// would step out, a link to an absolute path outside, is [`Refusal::Outside`].
fn resolve_inside(root: &Path, file: &Path) -> Result<PathBuf, Refusal> {
    let pending = parts(file).ok_or(Refusal::Outside)?;
    // Leaving the folder by its own text is refused before anything is looked at.
    let mut depth = 0usize;
    for part in &pending {
        depth = match part {
            Part::Name(_) => depth + 1,
            Part::Up => depth.checked_sub(1).ok_or(Refusal::Outside)?,
        };
    }
    let mut pending: VecDeque<Part> = pending.into();
    // Inside `root`, and never a symbolic link.
    let mut resolved = root.to_path_buf();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        match part {
            Part::Up if resolved == root => return Err(Refusal::Outside),
            Part::Up => {
                resolved.pop();
            }
            Part::Name(name) => {
                let next = resolved.join(&name);
                if !std::fs::symlink_metadata(&next)?.file_type().is_symlink() {
                    resolved = next;
                    continue;
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(Refusal::Io(std::io::Error::other("too many levels of symbolic links")));
                }
                let target = std::fs::read_link(&next)?;
                let target = match target.strip_prefix(root) {
                    Ok(inside) => {
                        resolved = root.to_path_buf();
                        inside.to_owned()
                    }
                    Err(_) => target,
                };
                for part in parts(&target).ok_or(Refusal::Outside)?.into_iter().rev() {
                    pending.push_front(part);
                }
            }
        }
    }
    Ok(resolved)
}

/// Opens `path` for reading without waiting for a writer (a FIFO) and
/// without following a symbolic link put there since it was resolved.
fn open_without_blocking(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1 << 10;

    #[test]
    fn regular_files_inside_are_read_through_links_that_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("certs/v2")).unwrap();
        std::fs::write(root.join("certs/v2/ca.pem"), "pem").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("v2/ca.pem", root.join("certs/current.pem")).unwrap();
            std::os::unix::fs::symlink("certs", root.join("link")).unwrap();
            std::os::unix::fs::symlink(root.join("certs/v2/ca.pem"), root.join("absolute.pem")).unwrap();
        }
        for file in
            ["certs/v2/ca.pem", "./certs/v2/../v2/ca.pem", "certs/current.pem", "link/current.pem", "absolute.pem"]
        {
            assert_eq!(read_in_folder(root, Path::new(file), LIMIT).as_deref(), Ok(&b"pem"[..]), "{file}");
        }
    }

    #[test]
    fn paths_that_lead_out_are_refused_alike_whether_or_not_their_target_exists() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("ca.pem"), "pem").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let there = outside.path().join("ca.pem");
        let missing = outside.path().join("missing.pem");
        let mut cases =
            vec![there.clone(), missing.clone(), PathBuf::from("../x/ca.pem"), PathBuf::from("a/../../ca.pem")];
        #[cfg(unix)]
        for (link, target) in [("to-file", &there), ("to-missing", &missing), ("to-dir", &outside.path().to_owned())] {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
            cases.push(PathBuf::from(link));
        }
        cases.extend([PathBuf::from("to-dir/ca.pem"), PathBuf::from("to-dir/missing.pem")]);
        for file in cases {
            let err = read_in_folder(root, &file, LIMIT).unwrap_err();
            assert!(err.ends_with("is not inside the plugins folder: name a file in it by a relative path (a path that leads out of it, absolute, through `..` or through a symbolic link, is refused)"), "{}: {err}", file.display());
        }
    }

    #[test]
    fn special_large_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("big.pem"), vec![b'a'; LIMIT as usize + 1]).unwrap();
        std::fs::create_dir(root.join("certs")).unwrap();
        let err = read_in_folder(root, Path::new("big.pem"), LIMIT).unwrap_err();
        assert!(err.ends_with("big.pem is larger than 1 KiB"), "{err}");
        let err = read_in_folder(root, Path::new("certs"), LIMIT).unwrap_err();
        assert!(err.ends_with("certs is not a regular file"), "{err}");
        let err = read_in_folder(root, Path::new("certs/missing.pem"), LIMIT).unwrap_err();
        assert!(err.starts_with("cannot read ") && err.contains("certs/missing.pem"), "{err}");
        #[cfg(unix)]
        {
            let fifo = std::ffi::CString::new(root.join("fifo.pem").into_os_string().into_encoded_bytes()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
            let err = read_in_folder(root, Path::new("fifo.pem"), LIMIT).unwrap_err();
            assert!(err.ends_with("fifo.pem is not a regular file"), "{err}");
        }
    }
}
