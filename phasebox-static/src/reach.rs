//! Reachability over the function-level call graph of all loaded objects, from a set of
//! roots: direct calls and jumps, PLT stubs and GOT calls resolved through the global scope,
//! and, once any reached function makes an indirect call, every function whose address is
//! taken (in data, or by reached code). Syscall numbers are resolved per site; numbers a
//! function receives in a register are resolved at its callers' call sites.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
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
    /// How many objects the loader maps at startup; those after are loaded at run time.
    pub startup: usize,
    /// The interpreter (the dynamic loader), when the program has one.
    pub interpreter: Option<usize>,
    /// Functions that load a library at run time → the library's functions they make
    /// callable (its exported functions and initializers).
    pub links: HashMap<Node, Vec<Node>>,
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
    /// A function of a library this function loads at run time ([`World::links`]).
    Loaded(Node),
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
    /// Each syscall found, with every function it was found in.
    pub found: BTreeMap<u32, Vec<Found>>,
    /// Each reached function's direct callers, with their call sites.
    pub callers: HashMap<Node, Vec<(Node, usize)>>,
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
    /// Disassembles every object; all of them are mapped at startup.
    pub fn new(objects: Vec<Object>) -> World {
        let interpreter = objects.first().and_then(|p| {
            let interp = Path::new(p.interpreter.as_deref()?);
            objects.iter().position(|o| o.path == interp)
        });
        let mut world = World {
            startup: objects.len(),
            objects,
            codes: Vec::new(),
            interpreter,
            links: HashMap::new(),
            summaries: HashMap::new(),
            preds: HashMap::new(),
            exports: HashMap::new(),
        };
        world.index_new();
        world
    }

    /// Disassembles the objects appended to `objects` since the last call, and adds their
    /// exports behind those of the objects before them (lookup order).
    pub fn index_new(&mut self) {
        for i in self.codes.len()..self.objects.len() {
            self.codes.push(Code::build(&self.objects[i]));
            for name in self.objects[i].exports.keys() {
                self.exports.entry(name.clone()).or_insert(i);
            }
        }
    }

    /// The functions object `o` exports under `name` (its own definitions, whichever object
    /// the global lookup would pick).
    pub fn exported(&self, o: usize, name: &str) -> Vec<Node> {
        self.objects[o]
            .exports
            .get(name)
            .into_iter()
            .flatten()
            .filter_map(|a| self.codes[o].function_at(*a).map(|f| (o, f)))
            .collect()
    }

    /// The functions of the loader's entries of object `o` that `keep` accepts, each with
    /// what it is.
    pub fn entry_functions(&self, o: usize, keep: impl Fn(&str) -> bool) -> Vec<(Node, String)> {
        self.objects[o]
            .entries
            .iter()
            .filter(|(_, what)| keep(what))
            .filter_map(|(addr, what)| {
                let f = self.codes[o].function_at(*addr)?;
                Some(((o, f), format!("{}:{what}", self.objects[o].name)))
            })
            .collect()
    }

    /// Makes `to` callable from `from` (a library `from` loads at run time).
    pub fn link(&mut self, from: Node, to: Vec<Node>) {
        let links = self.links.entry(from).or_default();
        for n in to {
            if !links.contains(&n) {
                links.push(n);
            }
        }
    }

    /// The summary of function `n` (analyzed once).
    pub fn summary(&mut self, n: Node) -> Rc<Summary> {
        if let Some(s) = self.summaries.get(&n) {
            return s.clone();
        }
        let s = Rc::new(summarize(&self.objects[n.0], &self.codes[n.0], n.1));
        self.summaries.insert(n, s.clone());
        s
    }

    /// What register `reg` may hold just before instruction `pos` of function `n`.
    pub fn value(&mut self, n: Node, pos: usize, reg: Register) -> Value {
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
                Some(&o) => self.exported(o, name),
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
    pub fn is_stub(&self, n: Node) -> bool {
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
}

/// Walks from `roots` (function, why it is a root).
pub fn reach(world: &mut World, roots: &[(Node, String)]) -> Walk {
    let mut walker = Walker::start(world, roots);
    while let Some(n) = walker.queue.pop_front() {
        walker.visit(world, n);
    }
    walker.w.address_taken = walker
        .taken
        .iter()
        .filter(|m| matches!(walker.w.parent.get(m), Some(Parent::Indirect(_))))
        .count();
    walker.resolve_passed_numbers(world);
    let mut w = walker.w;
    w.callers = walker.callers;
    add_vdso_fallbacks(world, &mut w);
    w
}

/// A syscall number that function `function` receives in `reg`, to be resolved at its
/// callers' call sites.
struct Demand {
    function: Node,
    reg: Register,
    /// The frames below `function`, down to the one holding the `syscall` instruction.
    below: Vec<Node>,
    /// The function holding the `syscall` instruction, and its address.
    origin: Node,
    address: u64,
}

/// One reachability walk under way.
#[derive(Default)]
struct Walker {
    w: Walk,
    queue: VecDeque<Node>,
    /// Every function whose address is taken, in the order found.
    taken: Vec<Node>,
    /// The first reached function that took each address: the chain's story for it.
    taken_by: HashMap<Node, Node>,
    taken_seen: HashSet<Node>,
    /// The first reached function with an indirect call: from then on, every function whose
    /// address is taken is reachable.
    indirect_from: Option<Node>,
    /// Each function's direct callers, with their call sites.
    callers: HashMap<Node, Vec<(Node, usize)>>,
    demands: Vec<Demand>,
}

/// Queues `m`, reached as `p`, unless it was reached before.
fn enqueue(w: &mut Walk, queue: &mut VecDeque<Node>, m: Node, p: Parent) {
    if let std::collections::hash_map::Entry::Vacant(e) = w.parent.entry(m) {
        e.insert(p);
        queue.push_back(m);
    }
}

impl Walker {
    /// The roots queued, and the functions whose address is taken in data.
    fn start(world: &World, roots: &[(Node, String)]) -> Walker {
        let mut walker = Walker::default();
        for (n, why) in roots {
            enqueue(
                &mut walker.w,
                &mut walker.queue,
                *n,
                Parent::Root(why.clone()),
            );
        }
        for (o, obj) in world.objects.iter().enumerate() {
            for (_, t) in &obj.data_refs {
                for m in world.resolve(o, t) {
                    if walker.taken_seen.insert(m) {
                        walker.taken.push(m);
                    }
                }
            }
        }
        walker
    }

    /// Follows one reached function: its calls and jumps, the addresses it takes, its
    /// indirect calls and jumps, and its syscall sites.
    fn visit(&mut self, world: &mut World, n: Node) {
        let s = world.summary(n);
        self.follow_edges(world, n, &s);
        for &m in world.links.get(&n).into_iter().flatten() {
            enqueue(&mut self.w, &mut self.queue, m, Parent::Loaded(n));
        }
        self.take_addresses(world, n, &s);
        self.w.indirect_calls += s.indirect_calls.len();
        self.w.indirect_jumps += s.indirect_jumps.len();
        if !s.indirect_calls.is_empty() && self.indirect_from.is_none() {
            self.indirect_from = Some(n);
            for &m in &self.taken {
                let by = self.taken_by.get(&m).copied().unwrap_or(n);
                enqueue(&mut self.w, &mut self.queue, m, Parent::Indirect(by));
            }
        }
        self.syscall_sites(world, n, &s);
    }

    /// Queues the functions `n` calls or jumps to, and remembers `n` as their caller.
    fn follow_edges(&mut self, world: &World, n: Node, s: &Summary) {
        for e in &s.edges {
            let targets = world.resolve(n.0, &e.target);
            if targets.is_empty()
                && let Target::Import(name) = &e.target
            {
                self.w.unresolved_imports.insert(name.clone());
            }
            for m in targets {
                self.callers.entry(m).or_default().push((n, e.site));
                enqueue(&mut self.w, &mut self.queue, m, Parent::Edge(n, e.kind));
            }
        }
    }

    /// Notes the functions whose address `n` takes; queues them once an indirect call is
    /// reached.
    fn take_addresses(&mut self, world: &World, n: Node, s: &Summary) {
        for t in &s.address_taken {
            for m in world.resolve(n.0, t) {
                self.taken_by.entry(m).or_insert(n);
                if self.taken_seen.insert(m) {
                    self.taken.push(m);
                    if self.indirect_from.is_some() {
                        enqueue(&mut self.w, &mut self.queue, m, Parent::Indirect(n));
                    }
                }
            }
        }
    }

    /// Resolves the number of each syscall site of `n`.
    fn syscall_sites(&mut self, world: &mut World, n: Node, s: &Summary) {
        for &site in &s.syscalls {
            self.w.syscall_sites += 1;
            let v = world.value(n, site, Register::RAX);
            let addr = world.address(n, site);
            self.record(v, n, Vec::new(), n, addr);
        }
        for &site in &s.int80 {
            self.w.syscall_sites += 1;
            self.w.unresolved.push(Unresolved {
                node: n,
                address: world.address(n, site),
                reason: "int 0x80 uses the 32-bit syscall table".into(),
            });
        }
    }

    /// Numbers passed in a register: resolve them at each caller's call site, and further up
    /// while callers pass them on (libc's syscall(), glibc's internal wrappers, PLT stubs).
    fn resolve_passed_numbers(&mut self, world: &mut World) {
        let mut seen: HashSet<(Node, Register)> = HashSet::new();
        while let Some(d) = self.demands.pop() {
            if !seen.insert((d.function, d.reg)) {
                continue;
            }
            let sites = self.callers.get(&d.function).cloned().unwrap_or_default();
            let entered_otherwise = matches!(self.w.parent.get(&d.function), Some(Parent::Root(_)))
                || (self.indirect_from.is_some() && self.taken_seen.contains(&d.function));
            if sites.is_empty() || entered_otherwise {
                self.w.unresolved.push(Unresolved {
                    node: d.origin,
                    address: d.address,
                    reason: format!(
                        "the number comes in {} from callers the analysis cannot see ({} is {})",
                        format!("{:?}", d.reg).to_lowercase(),
                        world.label(d.function),
                        if sites.is_empty() && !entered_otherwise {
                            "never called directly"
                        } else {
                            "an entry point or address-taken"
                        }
                    ),
                });
            }
            let mut frames = vec![d.function];
            frames.extend(d.below.iter().copied());
            for (g, site) in sites {
                let v = world.value(g, site, d.reg);
                self.record(v, g, frames.clone(), d.origin, d.address);
            }
        }
    }

    /// What a syscall number's value says: the syscalls found, the numbers to resolve at the
    /// callers of `node`, or why it stays unresolved.
    fn record(&mut self, v: Value, node: Node, below: Vec<Node>, origin: Node, addr: u64) {
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
                    let sites = self.w.found.entry(nr).or_default();
                    if !sites.iter().any(|f| f.node == node && f.below == below) {
                        sites.push(Found {
                            node,
                            below: below.clone(),
                            how,
                        });
                    }
                }
                None => self.w.unresolved.push(Unresolved {
                    node: origin,
                    address: addr,
                    reason: format!("{c:#x} is not an x86_64 syscall number"),
                }),
            }
        }
        for r in &v.params {
            self.demands.push(Demand {
                function: node,
                reg: *r,
                below: below.clone(),
                origin,
                address: addr,
            });
        }
        let why = v.unknown.or_else(|| {
            // An address is no syscall number.
            (!v.addresses.is_empty()).then(|| "the number is computed (Lea)".to_string())
        });
        if let Some(why) = why {
            self.w.unresolved.push(Unresolved {
                node: origin,
                address: addr,
                reason: why,
            });
        }
    }
}

/// vDSO calls make no syscall, but fall back to one when the vDSO is absent.
fn add_vdso_fallbacks(world: &World, w: &mut Walk) {
    let reached: Vec<Node> = w.parent.keys().copied().collect();
    for n in reached {
        let name = world.objects[n.0]
            .name_at(world.codes[n.0].starts[n.1])
            .unwrap_or("");
        if let Some((_, sys)) = VDSO.iter().find(|(f, _)| *f == name)
            && let Some(nr) = crate::names::number(sys)
        {
            w.found.entry(nr).or_insert_with(|| {
                vec![Found {
                    node: n,
                    below: Vec::new(),
                    how: "vdso fallback",
                }]
            });
        }
    }
}
