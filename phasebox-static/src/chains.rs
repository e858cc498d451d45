//! Call chains that read as the program runs. For every reached function, the cheapest path
//! from the program's entry point (or the dynamic loader's) over direct calls and jumps,
//! calls into libraries loaded at run time, and the places where a function's address is
//! taken: the function that registers a callback (`lea`), or the code that names the table
//! holding it (tables of tables followed). An indirect call is never an edge of its own, so
//! no chain runs through whichever function made the first indirect call (`_init` calling
//! `__gmon_start__`): the walk's over-approximation decides what is reachable, these chains
//! only say how.
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use crate::elf::Target;
use crate::reach::{Found, Node, Parent, Walk, World};

/// What a step through a pointer costs more than a direct call: a chain takes the direct way
/// when there is one.
const POINTER: u32 = 3;
/// Initializers, finalizers and IFUNC resolvers the loader runs: true roots, but the
/// program's own entry is preferred.
const LOADER_ENTRY: u32 = 20;
/// A function reached only through a pointer whose origin no reached code names.
const UNATTRIBUTED: u32 = 1000;
/// A table's words belong to the closest named address below them, at most this far.
const MAX_TABLE: u64 = 64 << 10;
/// Program functions kept per syscall besides the main chain's.
const MAX_ALSO: usize = 12;
/// Bounds on the climb from a syscall's functions up to the program's.
const MAX_CLIMB_DEPTH: usize = 8;
const MAX_CLIMB_VISITS: usize = 4000;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Key {
    Func(Node),
    /// A table of one object, by the address it starts at.
    Table(usize, u64),
}

/// How a key was first reached on its cheapest path: from where, and through a pointer.
#[derive(Clone, Copy)]
struct Step {
    from: Option<Key>,
    pointer: bool,
}

/// What a data word holds.
enum Word {
    Code(Target),
    Data(u64),
}

/// One object's data as the chains see it: where tables start, and what each word holds.
#[derive(Default)]
struct Tables {
    starts: Vec<u64>,
    words: BTreeMap<u64, Word>,
}

impl Tables {
    /// The table holding address `a`.
    fn of(&self, a: u64) -> Option<u64> {
        let i = self.starts.partition_point(|&s| s <= a);
        let start = *self.starts.get(i.checked_sub(1)?)?;
        (a - start < MAX_TABLE).then_some(start)
    }

    /// The words of the table starting at `start`.
    fn words_of(&self, start: u64) -> impl Iterator<Item = &Word> {
        let i = self.starts.partition_point(|&s| s <= start);
        let end = self
            .starts
            .get(i)
            .copied()
            .unwrap_or(u64::MAX)
            .min(start.saturating_add(MAX_TABLE));
        self.words.range(start..end).map(|(_, w)| w)
    }
}

/// The cheapest chains to every reached function.
pub struct Chains {
    dist: HashMap<Key, u32>,
    step: HashMap<Key, Step>,
}

impl Chains {
    /// Computes the chains of the functions `walk` reached.
    pub fn compute(world: &mut World, walk: &Walk) -> Chains {
        let tables = tables(world, walk);
        let mut c = Chains {
            dist: HashMap::new(),
            step: HashMap::new(),
        };
        let mut heap = BinaryHeap::new();
        for (n, cost, pointer) in roots(world, walk) {
            c.relax(&mut heap, Key::Func(n), cost, None, pointer);
        }
        while let Some(Reverse((d, k))) = heap.pop() {
            if c.dist.get(&k).is_some_and(|&best| best < d) {
                continue;
            }
            for (next, cost, pointer) in edges(world, walk, &tables, k) {
                c.relax(&mut heap, next, d + cost, Some(k), pointer);
            }
        }
        c
    }

    fn relax(
        &mut self,
        heap: &mut BinaryHeap<Reverse<(u32, Key)>>,
        k: Key,
        d: u32,
        from: Option<Key>,
        pointer: bool,
    ) {
        if self.dist.get(&k).is_none_or(|&best| d < best) {
            self.dist.insert(k, d);
            self.step.insert(k, Step { from, pointer });
            heap.push(Reverse((d, k)));
        }
    }

    fn cost(&self, n: Node) -> u32 {
        self.dist.get(&Key::Func(n)).copied().unwrap_or(u32::MAX)
    }

    /// The frames from a root to `n`, PLT stubs left out; a frame reached through a pointer
    /// starts with `*`.
    pub fn chain(&self, world: &World, n: Node) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = Key::Func(n);
        loop {
            let Some(step) = self.step.get(&cur) else {
                // Not reached by the walk: only its own frame.
                out.push(world.label(n));
                break;
            };
            if let Key::Func(f) = cur {
                if step.pointer {
                    out.push(format!("*{}", world.label(f)));
                } else if step.from.is_none() || !world.is_stub(f) {
                    out.push(world.label(f));
                }
            }
            match step.from {
                Some(p) => cur = p,
                None => break,
            }
        }
        out.reverse();
        out
    }

    /// One syscall's chains: the cheapest among the functions it was found in, how its number
    /// was known there, and further chains each through another function of the program.
    pub fn of_syscall(
        &self,
        world: &World,
        walk: &Walk,
        found: &[Found],
    ) -> (Vec<String>, &'static str, Vec<Vec<String>>) {
        let best = found
            .iter()
            .min_by_key(|f| (self.cost(f.node), f.below.len()))
            .expect("a syscall is found somewhere");
        let mut main = self.chain(world, best.node);
        main.extend(world.labels_below(&best.below));
        let program = format!("{}:", world.objects[0].name);
        let last_program_frame = main
            .iter()
            .rev()
            .find(|f| f.trim_start_matches('*').starts_with(&program))
            .map(|f| f.trim_start_matches('*').to_string());
        let mut also: Vec<Vec<String>> = Vec::new();
        for (p, down, f) in program_callers(world, walk, found, self) {
            if also.len() == MAX_ALSO {
                break;
            }
            if last_program_frame.as_deref() == Some(world.label(p).as_str()) {
                continue;
            }
            let mut chain = self.chain(world, p);
            chain.extend(down);
            chain.extend(world.labels_below(&f.below));
            if chain != main && !also.contains(&chain) {
                also.push(chain);
            }
        }
        (main, best.how, also)
    }
}

/// Where chains start: the entry points of the program and of the dynamic loader; the other
/// functions the loader runs; and, last, functions reached only through a pointer.
fn roots(world: &World, walk: &Walk) -> Vec<(Node, u32, bool)> {
    let mut out = Vec::new();
    for o in 0..world.startup {
        let first = o == 0 || Some(o) == world.interpreter;
        for (n, what) in world.entry_functions(o, |_| true) {
            match (what.ends_with(":entry point"), first) {
                (true, true) => out.push((n, 0, false)),
                (false, _) => out.push((n, LOADER_ENTRY, false)),
                (true, false) => {}
            }
        }
    }
    for (n, p) in &walk.parent {
        if matches!(p, Parent::Indirect(_)) {
            out.push((*n, UNATTRIBUTED, true));
        }
    }
    out
}

/// Each object's tables: started by the data objects its symbols name, the data addresses
/// reached code names, and the data other data points to.
fn tables(world: &mut World, walk: &Walk) -> Vec<Tables> {
    let mut out: Vec<Tables> = (0..world.objects.len())
        .map(|_| Tables::default())
        .collect();
    for &n in walk.parent.keys() {
        let s = world.summary(n);
        out[n.0].starts.extend(s.data_refs.iter().copied());
    }
    for (o, obj) in world.objects.iter().enumerate() {
        let t = &mut out[o];
        t.starts.extend(obj.data_symbols.iter().copied());
        for (slot, target) in &obj.data_refs {
            t.words.insert(*slot, Word::Code(target.clone()));
        }
        for &(slot, target) in &obj.data_pointers {
            t.starts.push(target);
            t.words.insert(slot, Word::Data(target));
        }
        t.starts.sort_unstable();
        t.starts.dedup();
    }
    out
}

/// The keys `k` leads to, each with its cost and whether the step is through a pointer.
fn edges(world: &mut World, walk: &Walk, tables: &[Tables], k: Key) -> Vec<(Key, u32, bool)> {
    let reached = |m: &Node| walk.parent.contains_key(m);
    let mut out = Vec::new();
    match k {
        Key::Func(n) => {
            let s = world.summary(n);
            for e in &s.edges {
                for m in world.resolve(n.0, &e.target).iter().filter(|m| reached(m)) {
                    out.push((Key::Func(*m), 1, false));
                }
            }
            for m in world.links.get(&n).into_iter().flatten() {
                out.push((Key::Func(*m), 1, true));
            }
            for t in &s.address_taken {
                for m in world.resolve(n.0, t).iter().filter(|m| reached(m)) {
                    out.push((Key::Func(*m), POINTER, true));
                }
            }
            for &a in &s.data_refs {
                if let Some(start) = tables[n.0].of(a) {
                    out.push((Key::Table(n.0, start), 0, false));
                }
            }
        }
        Key::Table(o, start) => {
            for w in tables[o].words_of(start) {
                match w {
                    Word::Code(t) => {
                        for m in world.resolve(o, t).iter().filter(|m| reached(m)) {
                            out.push((Key::Func(*m), POINTER, true));
                        }
                    }
                    Word::Data(d) => {
                        if let Some(s) = tables[o].of(*d) {
                            out.push((Key::Table(o, s), 0, false));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Each node met climbing from the found sites: the callee it leads down to (and whether
/// through a link), and the index of the found site at the bottom.
type Down = HashMap<Node, (Option<(Node, bool)>, usize)>;

/// The program's functions from which the syscall's functions are reached through library
/// code alone, nearest first (then cheapest): each with the labels of the frames below it
/// down to the function holding the syscall (a library function called through the link of
/// a library loaded at run time starts with `*`), and where it was found.
fn program_callers<'f>(
    world: &World,
    walk: &Walk,
    found: &'f [Found],
    chains: &Chains,
) -> Vec<(Node, Vec<String>, &'f Found)> {
    let (down, mut hits) = climb(world, walk, found);
    hits.sort_by_key(|&(depth, p)| (depth, chains.cost(p)));
    hits.into_iter()
        .map(|(_, p)| (p, frames_down(world, &down, p), &found[down[&p].1]))
        .collect()
}

/// Climbs breadth first from the found sites through callers and the code that loads a
/// library, up to the program's functions: what each node leads down to, and the program's
/// functions reached with their depth.
fn climb(world: &World, walk: &Walk, found: &[Found]) -> (Down, Vec<(usize, Node)>) {
    let mut opened_by: HashMap<Node, Vec<Node>> = HashMap::new();
    for (from, to) in &world.links {
        for t in to {
            opened_by.entry(*t).or_default().push(*from);
        }
    }
    let mut down = Down::new();
    let mut queue: VecDeque<(Node, usize)> = VecDeque::new();
    for (i, f) in found.iter().enumerate() {
        if let std::collections::hash_map::Entry::Vacant(e) = down.entry(f.node) {
            e.insert((None, i));
            queue.push_back((f.node, 0));
        }
    }
    let mut hits: Vec<(usize, Node)> = Vec::new();
    let mut seen = HashSet::new();
    while let Some((n, depth)) = queue.pop_front() {
        // (A PLT stub is the program's only in name: climb on past it.)
        if n.0 == 0 && !world.is_stub(n) {
            hits.push((depth, n));
            continue;
        }
        if depth == MAX_CLIMB_DEPTH || seen.len() > MAX_CLIMB_VISITS || !seen.insert(n) {
            continue;
        }
        let site = down[&n].1;
        let callers = walk
            .callers
            .get(&n)
            .into_iter()
            .flatten()
            .map(|c| (c.0, false));
        let openers = opened_by.get(&n).into_iter().flatten().map(|&o| (o, true));
        for (c, link) in callers.chain(openers).collect::<Vec<_>>() {
            if let std::collections::hash_map::Entry::Vacant(e) = down.entry(c) {
                e.insert((Some((n, link)), site));
                queue.push_back((c, depth + 1));
            }
        }
    }
    (down, hits)
}

/// The labels of the frames below `p` down to the found site (`*` for a link; stubs left out).
fn frames_down(world: &World, down: &Down, p: Node) -> Vec<String> {
    let mut frames = Vec::new();
    let mut cur = p;
    while let Some(&(Some((next, link)), _)) = down.get(&cur) {
        if link {
            frames.push(format!("*{}", world.label(next)));
        } else if !world.is_stub(next) {
            frames.push(world.label(next));
        }
        cur = next;
    }
    frames
}
