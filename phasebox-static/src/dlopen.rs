//! Libraries a program loads with `dlopen`: the file name argument of every reached call,
//! found by the register dataflow ([`crate::flow`]) at the call site and, while a wrapper
//! passes it on, at its callers' sites. A constant string is a library to follow; a name
//! computed at run time is a call the analysis reports as unresolved.
use std::collections::HashSet;

use iced_x86::Register;

use crate::reach::{Node, Parent, Walk, World};

/// The functions that load a library, and the register holding the file name.
const OPENERS: &[(&str, Register)] = &[
    ("dlopen", Register::RDI),
    ("__libc_dlopen_mode", Register::RDI),
    ("dlmopen", Register::RSI),
];

/// Wrappers followed up from a call site while they pass the name on.
const MAX_WRAPPERS: usize = 3;

/// A library name found at a reached call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    /// The function that names it (the call site's, or a wrapper's caller).
    pub by: Node,
}

/// A reached call whose library name is not a constant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unnamed {
    /// The function where the name was lost, and the call there.
    pub node: Node,
    pub address: u64,
    pub reason: String,
}

/// Every reached call of the dlopen family: the names found, and the calls whose name
/// could not be.
pub fn calls(world: &mut World, walk: &Walk) -> (Vec<Named>, Vec<Unnamed>) {
    let mut out = Found::default();
    for &(opener, reg) in OPENERS {
        let nodes: Vec<Node> = (0..world.objects.len())
            .flat_map(|o| world.exported(o, opener))
            .collect();
        for d in nodes {
            for &(g, site) in walk.callers.get(&d).into_iter().flatten() {
                // A function running on into dlopen's code (after a call that does not
                // return) makes no call.
                if site < world.codes[g.0].range(g.1).end {
                    out.follow(world, walk, (g, site, reg), opener, 0);
                }
            }
        }
    }
    (out.named, out.unnamed)
}

#[derive(Default)]
struct Found {
    named: Vec<Named>,
    unnamed: Vec<Unnamed>,
    seen: HashSet<(Node, usize, Register)>,
}

impl Found {
    fn lose(&mut self, u: Unnamed) {
        if !self.unnamed.contains(&u) {
            self.unnamed.push(u);
        }
    }

    /// Notes the library name at address `a` of function `g`'s object, if one is there.
    fn name_at(&mut self, world: &World, g: Node, a: u64) -> bool {
        let Some(name) = world.objects[g.0]
            .c_string_at(a)
            .filter(|n| is_file_name(n))
        else {
            return false;
        };
        let n = Named {
            name: name.to_string(),
            by: g,
        };
        if !self.named.contains(&n) {
            self.named.push(n);
        }
        true
    }

    /// What register `reg` holds at call site `site` of function `g` (a dlopen call, or a
    /// call of a wrapper that passes `reg` on to one).
    fn follow(
        &mut self,
        world: &mut World,
        walk: &Walk,
        (g, site, reg): (Node, usize, Register),
        opener: &str,
        depth: usize,
    ) {
        if !self.seen.insert((g, site, reg)) {
            return;
        }
        let v = world.value(g, site, reg);
        let address = world.address(g, site);
        let lost = |reason: String| Unnamed {
            node: g,
            address,
            reason: format!("{opener}'s file name: {reason}"),
        };
        let fixed = world.objects[g.0].fixed_address;
        let candidates = v
            .addresses
            .iter()
            .chain(v.consts.iter().filter(|_| fixed))
            .copied()
            // dlopen(NULL) opens the program itself.
            .filter(|&a| a != 0);
        for a in candidates {
            if !self.name_at(world, g, a) {
                self.lose(lost(format!("{a:#x} is no string in the file")));
            }
        }
        if let Some(why) = v.unknown {
            // A copy of the stack pointer: a buffer the caller fills at run time.
            let why = if why.starts_with("rsp ") {
                "it is built in a buffer on the stack".to_string()
            } else {
                why
            };
            self.lose(lost(why));
        }
        for r in v.params {
            let callers = walk.callers.get(&g).cloned().unwrap_or_default();
            let otherwise = !matches!(walk.parent.get(&g), Some(Parent::Edge(..)));
            if callers.is_empty() || otherwise || depth == MAX_WRAPPERS {
                self.lose(lost(format!(
                    "it comes in {} from callers the analysis cannot see",
                    format!("{r:?}").to_lowercase()
                )));
            }
            if depth < MAX_WRAPPERS {
                for (c, s) in callers {
                    self.follow(world, walk, (c, s, r), opener, depth + 1);
                }
            }
        }
    }
}

/// Whether `s` can be a library's file name (not an empty or binary string).
fn is_file_name(s: &str) -> bool {
    !s.is_empty() && s.len() < 256 && s.chars().all(|c| c.is_ascii_graphic())
}
