//! Static analysis of x86_64 ELF programs: the system calls a program can make, from its
//! code and the shared libraries the loader maps for it, as sysfilter and Chestnut do.
//!
//! The loader's search is reproduced ([`loader`]), every executable section is disassembled
//! ([`code`]), `syscall` instructions get their numbers by following the registers that set
//! them ([`flow`]), and the function-level call graph is walked from the entry points
//! ([`reach`]). Libraries loaded at run time are followed where the program names them: NSS
//! modules ([`nss`]) and constant dlopen names ([`dlopen`], [`runtime`]). Chains say how each
//! syscall is reached from the program's entry ([`chains`]). Whatever cannot be decided is
//! resolved conservatively and counted.
pub mod chains;
pub mod code;
pub mod dlopen;
pub mod elf;
pub mod flow;
pub mod ldcache;
pub mod loader;
pub mod mapped;
pub mod names;
pub mod nss;
pub mod profile;
pub mod reach;
pub mod runtime;
pub mod summary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use phasebox_core::profile::static_section::{Library, LoadedLibrary, Provenance, Reach, Site};

pub use loader::SearchPaths;

/// Why an analysis could not be made; each reads as one sentence.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, String),
    #[error("{0} is not an ELF file")]
    NotElf(PathBuf),
    #[error("{0} is a malformed ELF file: {1}")]
    BadElf(PathBuf, String),
    #[error("{0} is an ELF file for {1}; phasebox static reads x86_64 programs only")]
    NotX86_64(PathBuf, String),
    #[error("cannot find the library {0} that {1} needs")]
    MissingLibrary(String, PathBuf),
    #[error("{0} has {1} MiB of machine code; phasebox static analyzes at most 256 MiB per object")]
    TooMuchCode(PathBuf, u64),
    /// An input refused as every input of phasebox is (not a regular file, too large).
    #[error(transparent)]
    Input(#[from] phasebox_core::file_error::FileError),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Error {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        Error::Io(path.to_path_buf(), what)
    }
}

/// The result: the reachable syscalls with where each is reachable from, and provenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    pub program: String,
    /// The program's name (its file name).
    pub name: String,
    pub syscalls: BTreeMap<String, Reach>,
    /// Every syscall found anywhere in the program and its libraries, reachable or not
    /// (Confine-style whole-image analysis).
    pub whole_image: BTreeSet<String>,
    pub provenance: Provenance,
}

/// What the analysis assumes where it cannot decide.
const ASSUMPTIONS: &[&str] = &[
    "an indirect call may reach every function whose address is taken in data or by reached code",
    "a jump table's targets belong to the function that holds it",
    "a function whose last instruction does not end its flow runs on into the next one",
    "the number of an unresolved syscall site is not guessed: the site is listed, and no syscall is added for it",
    "vDSO functions (clock_gettime, gettimeofday, time, getcpu) may fall back to their syscalls",
    "execve is allowed: it starts the program",
    "a library loaded at run time (an NSS module nsswitch.conf names for a database the program looks up, or a library a dlopen call names with a constant string) may have every exported function called, from the call that loads it",
    "a dlopen call whose file name is computed at run time is listed, and its library is not analyzed",
];

/// Analyzes the program at `path` with this machine's loader search paths and nsswitch.conf.
pub fn analyze(path: &Path) -> Result<Analysis, Error> {
    analyze_with(path, &SearchPaths::system()?)
}

/// Analyzes the program at `path`, searching libraries as `search` says.
pub fn analyze_with(path: &Path, search: &SearchPaths) -> Result<Analysis, Error> {
    let objects = loader::load(path, search)?;
    let mut world = reach::World::new(objects);
    let roots = roots(&world);
    let (walk, run_time) = runtime::follow(&mut world, &roots, search)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let chains = chains::Chains::compute(&mut world, &walk);
    let (syscalls, vdso) = reachable_syscalls(&world, &walk, &chains);
    let provenance_partial = provenance(&world, &walk, vdso, run_time);
    let (whole_image, syscall_sites_total) = whole_image(&mut world, &syscalls);
    Ok(Analysis {
        program: path.display().to_string(),
        name,
        syscalls,
        whole_image,
        provenance: Provenance {
            syscall_sites_total,
            ..provenance_partial
        },
    })
}

/// The program's entry point, and what the loader runs in every object it maps at startup.
fn roots(world: &reach::World) -> Vec<(reach::Node, String)> {
    let mut roots = Vec::new();
    for o in 0..world.startup {
        let first = o == 0 || Some(o) == world.interpreter;
        roots.extend(world.entry_functions(o, |what| first || what != "entry point"));
    }
    roots
}

/// Each syscall the walk found, with its chains (execve always: it starts the program); and
/// the syscalls found only as vDSO fallbacks.
fn reachable_syscalls(
    world: &reach::World,
    walk: &reach::Walk,
    chains: &chains::Chains,
) -> (BTreeMap<String, Reach>, Vec<String>) {
    let mut syscalls = BTreeMap::new();
    let mut vdso = Vec::new();
    for (nr, found) in &walk.found {
        let Some(sys) = names::name(*nr) else {
            continue;
        };
        let (chain, how, also) = chains.of_syscall(world, walk, found);
        if how == "vdso fallback" {
            vdso.push(sys.to_string());
        }
        syscalls.insert(
            sys.to_string(),
            Reach {
                chain,
                how: how.to_string(),
                also,
            },
        );
    }
    syscalls.entry("execve".into()).or_insert(Reach {
        chain: vec![format!("{}:execve", world.objects[0].name)],
        how: "program start".into(),
        also: Vec::new(),
    });
    (syscalls, vdso)
}

/// What the walk saw and assumed; the total of syscall sites is left to the whole-image walk.
fn provenance(
    world: &reach::World,
    walk: &reach::Walk,
    vdso: Vec<String>,
    run_time: runtime::RunTime,
) -> Provenance {
    let unresolved_sites = walk
        .unresolved
        .iter()
        .map(|u| Site {
            function: world.label(u.node),
            address: format!("{:#x}", u.address),
            reason: u.reason.clone(),
        })
        .collect();
    Provenance {
        analyzer: format!("phasebox-static {}", env!("CARGO_PKG_VERSION")),
        libraries: world.objects[1..world.startup]
            .iter()
            .map(|o| Library {
                name: o.soname.clone().unwrap_or_else(|| {
                    o.path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                }),
                path: o.path.display().to_string(),
            })
            .collect(),
        functions_total: world.codes.iter().map(code::Code::len).sum(),
        functions_reached: walk.parent.len(),
        syscall_sites_reached: walk.syscall_sites,
        unresolved_sites,
        indirect_call_sites: walk.indirect_calls,
        indirect_jump_sites: walk.indirect_jumps,
        address_taken_functions: walk.address_taken,
        vdso,
        unresolved_imports: walk.unresolved_imports.iter().cloned().collect(),
        loaded_at_run_time: run_time.libraries,
        dlopen_unresolved: run_time.unresolved,
        assumptions: ASSUMPTIONS.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Confine-style, every function a root: every syscall anywhere in the program and its
/// libraries (the reachable ones included), and how many syscall sites there are.
fn whole_image(
    world: &mut reach::World,
    reachable: &BTreeMap<String, Reach>,
) -> (BTreeSet<String>, usize) {
    let all: Vec<_> = world
        .all_functions()
        .into_iter()
        .map(|n| (n, String::new()))
        .collect();
    let whole = reach::reach(world, &all);
    let mut whole_image: BTreeSet<String> = whole
        .found
        .keys()
        .filter_map(|&nr| names::name(nr).map(str::to_string))
        .collect();
    whole_image.extend(reachable.keys().cloned());
    (whole_image, whole.syscall_sites)
}
