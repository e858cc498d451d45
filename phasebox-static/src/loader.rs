//! The objects the dynamic loader would map for a program, found the way it finds them:
//! DT_NEEDED breadth first; for each name DT_RPATH (when there is no DT_RUNPATH, the
//! loading object's and then the program's), LD_LIBRARY_PATH, DT_RUNPATH, /etc/ld.so.cache,
//! and the default directories; `$ORIGIN`, `$LIB` and `$PLATFORM` expanded.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::elf::Object;
use crate::ldcache::LdCache;

/// The default directories of Debian's x86_64 loader, in its order.
const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where libraries are searched for besides each object's own paths, and where the NSS
/// modules loaded at run time are named.
#[derive(Clone, Debug, Default)]
pub struct SearchPaths {
    pub cache: LdCache,
    /// LD_LIBRARY_PATH's directories.
    pub library_path: Vec<String>,
    /// nsswitch.conf (a missing file names no module).
    pub nsswitch: PathBuf,
}

impl SearchPaths {
    /// This machine's: /etc/ld.so.cache, the LD_LIBRARY_PATH of the environment and
    /// /etc/nsswitch.conf.
    pub fn system() -> Result<SearchPaths, Error> {
        let cache = LdCache::load(Path::new("/etc/ld.so.cache"))?;
        let library_path = std::env::var("LD_LIBRARY_PATH")
            .unwrap_or_default()
            .split([':', ';'])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Ok(SearchPaths {
            cache,
            library_path,
            nsswitch: PathBuf::from("/etc/nsswitch.conf"),
        })
    }
}

/// Loads the program and every object it needs, in the loader's symbol lookup order (the
/// program first, the interpreter last).
pub fn load(program: &Path, search: &SearchPaths) -> Result<Vec<Object>, Error> {
    let exe = Object::load(program)?;
    let mut objects = vec![exe];
    let interp = match &objects[0].interpreter {
        Some(i) => Some(Object::load(Path::new(i)).map_err(|e| match e {
            Error::Io(..) => Error::MissingLibrary(i.clone(), program.to_path_buf()),
            e => e,
        })?),
        None => None,
    };
    load_needed(&mut objects, 0, interp.as_slice(), search)?;
    if let Some(i) = interp {
        let idx = objects.len();
        // The interpreter's own needs (none for glibc's) come after it.
        let needed = i.needed.clone();
        objects.push(i);
        for n in needed {
            if !objects
                .iter()
                .any(|o| o.soname.as_deref() == Some(n.as_str()))
            {
                let obj = find(&objects, idx, &n, search)?;
                objects.push(obj);
            }
        }
    }
    Ok(objects)
}

/// What `dlopen(name)` called from `objects[from]` maps: the index of the object, which is
/// appended with what it needs unless it is loaded already; None when it cannot be found.
pub fn open(
    objects: &mut Vec<Object>,
    from: usize,
    name: &str,
    search: &SearchPaths,
) -> Result<Option<usize>, Error> {
    if let Some(i) = objects.iter().position(|o| known(o, name)) {
        return Ok(Some(i));
    }
    let obj = match find(objects, from, name, search) {
        Ok(o) => o,
        Err(Error::MissingLibrary(..)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let real = canonical(&obj.path);
    if let Some(i) = objects.iter().position(|o| canonical(&o.path) == real) {
        return Ok(Some(i));
    }
    let idx = objects.len();
    objects.push(obj);
    load_needed(objects, idx, &[], search)?;
    Ok(Some(idx))
}

/// Whether `o` is the library the loader knows as `name`.
fn known(o: &Object, name: &str) -> bool {
    o.soname.as_deref() == Some(name) || o.path.file_name().is_some_and(|f| f == name)
}

/// The file `path` names, through any link.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or(path.to_path_buf())
}

/// Loads, breadth first, what `objects[first..]` need and neither `objects` nor `also` hold.
fn load_needed(
    objects: &mut Vec<Object>,
    first: usize,
    also: &[Object],
    search: &SearchPaths,
) -> Result<(), Error> {
    let mut queue: VecDeque<(usize, String)> = (first..objects.len())
        .flat_map(|i| objects[i].needed.iter().map(move |n| (i, n.clone())))
        .collect();
    while let Some((from, name)) = queue.pop_front() {
        if objects.iter().chain(also).any(|o| known(o, &name)) {
            continue;
        }
        let obj = find(objects, from, &name, search)?;
        let real = canonical(&obj.path);
        if objects
            .iter()
            .chain(also)
            .any(|o| canonical(&o.path) == real)
        {
            continue;
        }
        let idx = objects.len();
        queue.extend(obj.needed.iter().map(|n| (idx, n.clone())));
        objects.push(obj);
    }
    Ok(())
}

/// Finds and loads library `name` needed by `objects[from]`.
fn find(
    objects: &[Object],
    from: usize,
    name: &str,
    search: &SearchPaths,
) -> Result<Object, Error> {
    let requester = &objects[from];
    let missing = || Error::MissingLibrary(name.to_string(), requester.path.clone());
    if name.contains('/') {
        return Object::load(Path::new(name)).map_err(|_| missing());
    }
    let mut dirs: Vec<String> = Vec::new();
    if requester.runpath.is_empty() {
        dirs.extend(expand(&requester.rpath, requester));
        if from != 0 && objects[0].runpath.is_empty() {
            dirs.extend(expand(&objects[0].rpath, &objects[0]));
        }
    }
    dirs.extend(search.library_path.iter().cloned());
    dirs.extend(expand(&requester.runpath, requester));
    let mut candidates: Vec<PathBuf> = dirs.iter().map(|d| Path::new(d).join(name)).collect();
    if let Some(p) = search.cache.lookup(name) {
        candidates.push(p.to_path_buf());
    }
    candidates.extend(DEFAULT_DIRS.iter().map(|d| Path::new(d).join(name)));
    for c in candidates {
        if !c.is_file() {
            continue;
        }
        match Object::load(&c) {
            Ok(o) => return Ok(o),
            // The loader skips files of another architecture and goes on searching.
            Err(Error::NotX86_64(..)) | Err(Error::NotElf(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(missing())
}

fn expand(paths: &[String], obj: &Object) -> Vec<String> {
    let origin = std::fs::canonicalize(&obj.path)
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_else(|| ".".into());
    paths
        .iter()
        .map(|p| {
            p.replace("${ORIGIN}", &origin)
                .replace("$ORIGIN", &origin)
                .replace("${LIB}", "lib/x86_64-linux-gnu")
                .replace("$LIB", "lib/x86_64-linux-gnu")
                .replace("${PLATFORM}", "x86_64")
                .replace("$PLATFORM", "x86_64")
        })
        .collect()
}
