//! Libraries the program loads at run time, followed where the program names them: the NSS
//! modules for the databases it looks up ([`nss`]) and the libraries its dlopen calls name
//! with a constant ([`dlopen`]). Each is loaded as the loader would (with what it needs), its
//! exported functions and initializers made callable from the call that loads it, and the
//! walk made again until nothing new is loaded.
use crate::loader::{self, SearchPaths};
use crate::reach::{self, Node, Walk, World};
use crate::{Error, LoadedLibrary, Site, dlopen, nss};

/// Walks made at most: a library loaded at run time may load another.
const MAX_ROUNDS: usize = 4;

/// What was loaded at run time, and the dlopen calls that could not be followed.
#[derive(Debug, Default)]
pub struct RunTime {
    pub libraries: Vec<LoadedLibrary>,
    pub unresolved: Vec<Site>,
}

/// Walks from `roots`, loading what the reached code loads at run time, until nothing new
/// is; the last walk and what was loaded.
pub fn follow(
    world: &mut World,
    roots: &[(Node, String)],
    search: &SearchPaths,
) -> Result<(Walk, RunTime), Error> {
    let config = nss::read(&search.nsswitch)?;
    let mut walk = reach::reach(world, roots);
    for _ in 0..MAX_ROUNDS {
        let mut changed = false;
        for load in loads(world, &walk, &config) {
            let Some(idx) = loader::open(&mut world.objects, load.from, &load.file, search)? else {
                continue;
            };
            world.index_new();
            // (A library that opens itself, as nss-systemd does to stay loaded, adds nothing.)
            if idx == load.from {
                continue;
            }
            for (callers, functions) in &load.links {
                let mut targets: Vec<Node> = match functions {
                    Some(names) => names.iter().flat_map(|f| world.exported(idx, f)).collect(),
                    None => world.objects[idx]
                        .exports
                        .keys()
                        .flat_map(|f| world.exported(idx, f))
                        .collect(),
                };
                targets.extend(initializers(world, idx));
                changed |= link_all(world, callers, targets);
            }
        }
        if !changed {
            break;
        }
        walk = reach::reach(world, roots);
    }
    let rt = record(world, &walk, &config, search)?;
    Ok((walk, rt))
}

/// A library the reached code loads.
struct Load {
    file: String,
    /// The object whose code loads it (whose search paths find it).
    from: usize,
    /// Functions that load it, and the functions of it they may call (None: every exported
    /// one).
    links: Vec<(Vec<Node>, Option<Vec<String>>)>,
    /// What loads it, in words.
    by: String,
}

fn loads(world: &mut World, walk: &Walk, config: &nss::Config) -> Vec<Load> {
    let mut out: Vec<Load> = nss::modules(world, walk, config)
        .into_iter()
        .map(|m| Load {
            file: m.file(),
            from: m.calls[0].0.0,
            by: format!("nsswitch.conf {}: {}", m.databases.join(", "), m.service),
            links: m
                .calls
                .into_iter()
                .map(|(caller, functions)| (vec![caller], Some(functions)))
                .collect(),
        })
        .collect();
    let (named, _) = dlopen::calls(world, walk);
    for n in named {
        out.push(Load {
            by: format!("dlopen(\"{}\") in {}", n.name, world.label(n.by)),
            file: n.name,
            from: n.by.0,
            links: vec![(vec![n.by], None)],
        });
    }
    out
}

/// The libraries the last walk loads at run time (those the loader maps at startup and those
/// that load themselves left out), and the dlopen calls it could not follow.
fn record(
    world: &mut World,
    walk: &Walk,
    config: &nss::Config,
    search: &SearchPaths,
) -> Result<RunTime, Error> {
    let mut rt = RunTime::default();
    for load in loads(world, walk, config) {
        let idx = loader::open(&mut world.objects, load.from, &load.file, search)?;
        if idx.is_some_and(|i| i < world.startup || i == load.from) {
            continue;
        }
        let path = idx.map_or(String::new(), |i| {
            world.objects[i].path.display().to_string()
        });
        match rt.libraries.iter_mut().find(|l| l.name == load.file) {
            Some(l) => l.loaded_by = format!("{}; {}", l.loaded_by, load.by),
            None => rt.libraries.push(LoadedLibrary {
                name: load.file,
                path,
                loaded_by: load.by,
            }),
        }
    }
    world.index_new();
    let (_, unnamed) = dlopen::calls(world, walk);
    rt.unresolved = unnamed
        .into_iter()
        .map(|u| Site {
            function: world.label(u.node),
            address: format!("{:#x}", u.address),
            reason: u.reason,
        })
        .collect();
    Ok(rt)
}

/// The initializers the loader runs when it loads object `o` at run time.
fn initializers(world: &World, o: usize) -> Vec<Node> {
    if o < world.startup {
        return Vec::new();
    }
    world
        .entry_functions(o, |what| what != "entry point")
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Links every one of `callers` to `targets`; whether any link is new.
fn link_all(world: &mut World, callers: &[Node], targets: Vec<Node>) -> bool {
    let mut changed = false;
    for &c in callers {
        let before = world.links.get(&c).map_or(0, Vec::len);
        world.link(c, targets.clone());
        changed |= world.links.get(&c).map_or(0, Vec::len) > before;
    }
    changed
}
