//! Root filesystems for server images made without a registry (`docker import`): the host's
//! programs with the libraries `ldd` lists for them (and for the modules they load at run
//! time), the NSS files module, passwd and group with the users servers switch to, and empty
//! run, tmp and log directories. A server's configuration and data are not in the image: the
//! tests and benchmarks mount a host directory at the same path inside the container, so the
//! same command line runs in Docker and on the host.
use std::path::{Path, PathBuf};

use crate::image::{copy_into, shared_libraries};

/// Users and groups servers switch to (nginx: www-data, memcached: memcache, nobody).
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
    www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
    memcache:x:101:101:memcache:/nonexistent:/usr/sbin/nologin\n\
    nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nwww-data:x:33:\nmemcache:x:101:\nnogroup:x:65534:\n";

/// Writes into `root` every file of `programs` and `files` with the shared libraries of each
/// program and of each shared object among `files` (modules a server loads at run time), and
/// the basics every server image has.
pub fn server_root(root: &Path, programs: &[&str], files: &[PathBuf]) -> anyhow::Result<()> {
    let mut all: Vec<PathBuf> = programs.iter().map(PathBuf::from).collect();
    all.extend(files.iter().cloned());
    all.push(PathBuf::from("/lib/x86_64-linux-gnu/libnss_files.so.2"));
    let mut libs = Vec::new();
    for f in &all {
        if is_shared_object(f) || programs.iter().any(|p| Path::new(p) == f) {
            libs.extend(shared_libraries(f)?);
        }
    }
    libs.sort();
    libs.dedup();
    all.extend(libs);
    copy_into(root, all)?;
    let io = |what: &str, e: std::io::Error| anyhow::anyhow!("{what}: {e}");
    for d in ["run", "tmp", "var/log", "etc"] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| io(d, e))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| io("tmp", e))?;
    for (path, text) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/nsswitch.conf", "passwd: files\ngroup: files\n"),
    ] {
        std::fs::write(root.join(path), text).map_err(|e| io(path, e))?;
    }
    Ok(())
}

/// Every regular file under `dir` (a module or language library directory), recursively.
pub fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
        for e in entries.flatten() {
            let t = e.file_type()?;
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `path` names a shared object (`.so` or `.so.N`).
fn is_shared_object(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".so") || name.contains(".so.")
}
