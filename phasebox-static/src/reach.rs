//! Reachability over the function-level call graph of all loaded objects, from a set of
//! roots: direct calls and jumps, PLT stubs and GOT calls resolved through the global scope,
//! and, once any reached function makes an indirect call, every function whose address is
//! taken (in data, or by reached code). Syscall numbers are resolved per site; numbers a
//! function receives in a register are resolved at its callers' call sites.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::rc::Rc;

use iced_x86::Register;

use crate::code::Code;
use crate::elf::{Object, Target};
use crate::flow::{Preds, Value, branch_preds, value_before};
use crate::summary::{EdgeKind, Summary, summarize};

/// A function: (object index, function index in its code).
pub type Node = (usize, usize);

/// The loaded objects, their code, and memoized per-function analysis (so every library is
/// analyzed once per run, whatever the number of walks).
pub struct World {
    pub objects: Vec<Object>,
    pub codes: Vec<Code>,
    summaries: HashMap<Node, Rc<Summary>>,
    preds: HashMap<Node, Rc<Preds>>,
    /// Exported name → the first object, in lookup order, that defines it.
    exports: HashMap<String, usize>,
}

/// How a function was first reached.
#[derive(Clone, Debug)]
pub enum Parent {
    Root(String),
    Edge(Node, EdgeKind),
    /// Through an indirect call in this function: its address is taken somewhere.
    Indirect(Node),
}

/// A syscall found reachable: the function its chain ends in, then the frames below it
/// down to the function holding the `syscall` instruction, and how the number was known.
#[derive(Clone, Debug)]
pub struct Found {
    pub node: Node,
    pub below: Vec<Node>,
    pub how: &'static str,
}

/// A reachable `syscall` whose number is (partly) unknown.
#[derive(Clone, Debug)]
pub struct Unresolved {
    pub node: Node,
    pub address: u64,
    pub reason: String,
}

/// The result of one reachability walk.
#[derive(Default)]
pub struct Walk {
    pub parent: HashMap<Node, Parent>,
    pub found: BTreeMap<u32, Found>,
    pub unresolved: Vec<Unresolved>,
    pub syscall_sites: usize,
    pub indirect_calls: usize,
    pub indirect_jumps: usize,
    /// Functions with their address taken that the walk made reachable.
    pub address_taken: usize,
    /// Imports no loaded object defines (weak references such as `__gmon_start__`).
    pub unresolved_imports: BTreeSet<String>,
}

/// vDSO functions: the libc functions that call them, and the syscall each falls back to.
const VDSO: &[(&str, &str)] = &[
    ("clock_gettime", "clock_gettime"),
    ("__clock_gettime", "clock_gettime"),
    ("__clock_gettime64", "clock_gettime"),
    ("clock_getres", "clock_getres"),
    ("gettimeofday", "gettimeofday"),
    ("__gettimeofday", "gettimeofday"),
    ("time", "time"),
    ("sched_getcpu", "getcpu"),
    ("getcpu", "getcpu"),
];

impl World {
    /// Disassembles every object.
    pub fn new(objects: Vec<Object>) -> World {
        let codes = objects.iter().map(Code::build).collect();
        let mut exports = HashMap::new();
        for (i, o) in objects.iter().enumerate() {
            for name in o.exports.keys() {
                exports.entry(name.clone()).or_insert(i);
            }
        }
        World {
            objects,
            codes,
            summaries: HashMap::new(),
            preds: HashMap::new(),
            exports,
        }
    }

    fn summary(&mut self, n: Node) -> Rc<Summary> {
        if let Some(s) = self.summaries.get(&n) {
            return s.clone();
        }
        let s = Rc::new(summarize(&self.objects[n.0], &self.codes[n.0], n.1));
        self.summaries.insert(n, s.clone());
        s
    }

    fn value(&mut self, n: Node, pos: usize, reg: Register) -> Value {
        let preds = match self.preds.get(&n) {
            Some(p) => p.clone(),
            None => {
                let p = Rc::new(branch_preds(&self.codes[n.0], n.1));
                self.preds.insert(n, p.clone());
                p
            }
        };
        value_before(&self.codes[n.0], n.1, &preds, pos, reg)
    }

    /// The functions `t`, named in object `from`, resolves to.
    pub fn resolve(&self, from: usize, t: &Target) -> Vec<Node> {
        match t {
            Target::Local(a) => self.codes[from]
                .function_at(*a)
                .map(|f| vec![(from, f)])
                .unwrap_or_default(),
            Target::Import(name) => match self.exports.get(name) {
                Some(&o) => self.objects[o].exports[name]
                    .iter()
                    .filter_map(|a| self.codes[o].function_at(*a).map(|f| (o, f)))
                    .collect(),
                None => Vec::new(),
            },
        }
    }

    /// `object:function` (or `object:sub_ADDR` without a symbol).
    pub fn label(&self, n: Node) -> String {
        let o = &self.objects[n.0];
        let addr = self.codes[n.0].starts[n.1];
        // Without a symbol, the loader's own entries still have names.
        let entry = || {
            o.entries
                .iter()
                .find(|e| e.0 == addr)
                .map(|e| match e.1.as_str() {
                    "DT_INIT" => "_init",
                    "DT_FINI" => "_fini",
                    "entry point" => "_start",
                    _ => "",
                })
        };
        match o
            .name_at(addr)
            .or_else(|| entry().filter(|n| !n.is_empty()))
        {
            Some(name) => format!("{}:{name}", o.name),
            None => format!("{}:sub_{addr:x}", o.name),
        }
    }

    /// The address of function `n`'s instruction `idx`.
    pub fn address(&self, n: Node, idx: usize) -> u64 {
        self.codes[n.0].instrs.get(idx).map(|i| i.ip()).unwrap_or(0)
    }

    /// Every function of every object.
    pub fn all_functions(&self) -> Vec<Node> {
        (0..self.codes.len())
            .flat_map(|o| (0..self.codes[o].len()).map(move |f| (o, f)))
            .collect()
    }

    /// Labels of frames below a chain's end, PLT stubs left out.
    pub fn labels_below(&self, below: &[Node]) -> Vec<String> {
        below
            .iter()
            .filter(|&&n| !self.is_stub(n))
            .map(|&n| self.label(n))
            .collect()
    }

    /// Whether function `n` is a PLT stub (a jump through a GOT slot a relocation names).
    fn is_stub(&self, n: Node) -> bool {
        self.summaries.get(&n).is_some_and(|s| {
            s.edges.len() == 1
                && s.edges[0].kind == EdgeKind::Jump
                && matches!(s.edges[0].target, Target::Import(_))
                && s.syscalls.is_empty()
                && self.objects[n.0]
                    .name_at(self.codes[n.0].starts[n.1])
                    .is_none()
        })
    }

    /// The frames from a root to `n`, PLT stubs left out; a frame reached through an
    /// indirect call starts with `*`.
    pub fn chain(&self, walk: &Walk, n: Node) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = n;
        loop {
            let label = self.label(cur);
            match walk.parent.get(&cur) {
                Some(Parent::Edge(p, _)) => {
                    if !self.is_stub(cur) {
                        out.push(label);
                    }
                    cur = *p;
                }
                Some(Parent::Indirect(p)) => {
                    out.push(format!("*{label}"));
                    cur = *p;
                }
                Some(Parent::Root(_)) | None => {
                    out.push(label);
                    break;
                }
            }
        }
        out.reverse();
        out
    }
}

/// Walks from `roots` (function, why it is a root).
pub fn reach(world: &mut World, roots: &[(Node, String)]) -> Walk {
    let mut w = Walk::default();
    let mut queue = VecDeque::new();
    for (n, why) in roots {
        if !w.parent.contains_key(n) {
            w.parent.insert(*n, Parent::Root(why.clone()));
            queue.push_back(*n);
        }
    }
    let mut taken: Vec<Node> = Vec::new();
    // The first reached function that took each address: the chain's story for it.
    let mut taken_by: HashMap<Node, Node> = HashMap::new();
    let mut taken_seen: HashSet<Node> = HashSet::new();
    for o in 0..world.objects.len() {
        for t in world.objects[o].data_refs.clone() {
            for m in world.resolve(o, &t) {
                if taken_seen.insert(m) {
                    taken.push(m);
                }
            }
        }
    }
    let mut indirect_from: Option<Node> = None;
    let mut callers: HashMap<Node, Vec<(Node, usize)>> = HashMap::new();
    let mut demands: Vec<(Node, Register, Vec<Node>, Node, u64)> = Vec::new();
    let enqueue = |w: &mut Walk, queue: &mut VecDeque<Node>, m: Node, p: Parent| {
        if let std::collections::hash_map::Entry::Vacant(e) = w.parent.entry(m) {
            e.insert(p);
            queue.push_back(m);
        }
    };
    while let Some(n) = queue.pop_front() {
        let s = world.summary(n);
        for e in &s.edges {
            let targets = world.resolve(n.0, &e.target);
            if targets.is_empty()
                && let Target::Import(name) = &e.target
            {
                w.unresolved_imports.insert(name.clone());
            }
            for m in targets {
                callers.entry(m).or_default().push((n, e.site));
                enqueue(&mut w, &mut queue, m, Parent::Edge(n, e.kind));
            }
        }
        for t in &s.address_taken {
            for m in world.resolve(n.0, t) {
                taken_by.entry(m).or_insert(n);
                if taken_seen.insert(m) {
                    taken.push(m);
                    if indirect_from.is_some() {
                        enqueue(&mut w, &mut queue, m, Parent::Indirect(n));
                    }
                }
            }
        }
        w.indirect_calls += s.indirect_calls.len();
        w.indirect_jumps += s.indirect_jumps.len();
        if !s.indirect_calls.is_empty() && indirect_from.is_none() {
            indirect_from = Some(n);
            for &m in &taken {
                let by = taken_by.get(&m).copied().unwrap_or(n);
                enqueue(&mut w, &mut queue, m, Parent::Indirect(by));
            }
        }
        for &site in &s.syscalls {
            w.syscall_sites += 1;
            let v = world.value(n, site, Register::RAX);
            let addr = world.address(n, site);
            record(&mut w, &mut demands, v, n, Vec::new(), n, addr);
        }
        for &site in &s.int80 {
            w.syscall_sites += 1;
            w.unresolved.push(Unresolved {
                node: n,
                address: world.address(n, site),
                reason: "int 0x80 uses the 32-bit syscall table".into(),
            });
        }
    }
    w.address_taken = taken
        .iter()
        .filter(|m| matches!(w.parent.get(m), Some(Parent::Indirect(_))))
        .count();
    // Numbers passed in a register: resolve them at each caller's call site, and further up
    // while callers pass them on (libc's syscall(), glibc's internal wrappers, PLT stubs).
    let mut seen: HashSet<(Node, Register)> = HashSet::new();
    while let Some((f, reg, below, origin, addr)) = demands.pop() {
        if !seen.insert((f, reg)) {
            continue;
        }
        let sites = callers.get(&f).cloned().unwrap_or_default();
        let entered_otherwise = matches!(w.parent.get(&f), Some(Parent::Root(_)))
            || (indirect_from.is_some() && taken_seen.contains(&f));
        if sites.is_empty() || entered_otherwise {
            w.unresolved.push(Unresolved {
                node: origin,
                address: addr,
                reason: format!(
                    "the number comes in {} from callers the analysis cannot see ({} is {})",
                    format!("{reg:?}").to_lowercase(),
                    world.label(f),
                    if sites.is_empty() && !entered_otherwise {
                        "never called directly"
                    } else {
                        "an entry point or address-taken"
                    }
                ),
            });
        }
        let mut frames = vec![f];
        frames.extend(below.iter().copied());
        for (g, site) in sites {
            let v = world.value(g, site, reg);
            record(&mut w, &mut demands, v, g, frames.clone(), origin, addr);
        }
    }
    // vDSO calls make no syscall, but fall back to one when the vDSO is absent.
    let reached: Vec<Node> = w.parent.keys().copied().collect();
    for n in reached {
        let label = world.label(n);
        let name = label.split_once(':').map(|x| x.1).unwrap_or("");
        if let Some((_, sys)) = VDSO.iter().find(|(f, _)| *f == name)
            && let Some(nr) = crate::names::number(sys)
        {
            w.found.entry(nr).or_insert(Found {
                node: n,
                below: Vec::new(),
                how: "vdso fallback",
            });
        }
    }
    w
}

fn record(
    w: &mut Walk,
    demands: &mut Vec<(Node, Register, Vec<Node>, Node, u64)>,
    v: Value,
    node: Node,
    below: Vec<Node>,
    origin: Node,
    addr: u64,
) {
    let how = if below.is_empty() {
        "syscall instruction"
    } else {
        "number passed by a caller"
    };
    for c in &v.consts {
        match u32::try_from(*c)
            .ok()
            .filter(|&c| crate::names::name(c).is_some())
        {
            Some(nr) => {
                w.found.entry(nr).or_insert(Found {
                    node,
                    below: below.clone(),
                    how,
                });
            }
            None => w.unresolved.push(Unresolved {
                node: origin,
                address: addr,
                reason: format!("{c:#x} is not an x86_64 syscall number"),
            }),
        }
    }
    for r in &v.params {
        demands.push((node, *r, below.clone(), origin, addr));
    }
    if let Some(why) = v.unknown {
        w.unresolved.push(Unresolved {
            node: origin,
            address: addr,
            reason: why,
        });
    }
}
