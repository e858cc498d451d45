//! An object's machine code: a linear sweep of its executable sections with iced-x86,
//! re-synchronized at every known function start, and split into functions. Function starts
//! are symbols, entry points, call targets, addresses taken in code or data, and every branch
//! target that lies outside the function it leaves (cold parts, tail calls), to a fixpoint;
//! a function runs from its start to the next one.
use std::collections::BTreeSet;
use std::ops::Range;

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};

use crate::elf::{Object, Target};

/// Decoded instructions and the functions they form.
pub struct Code {
    /// Every decoded instruction, sorted by address.
    pub instrs: Vec<Instruction>,
    /// Function starts, sorted; `first[i]` is the index of function i's first instruction.
    pub starts: Vec<u64>,
    first: Vec<usize>,
}

impl Code {
    /// Disassembles `obj` and finds its functions.
    pub fn build(obj: &Object) -> Code {
        let mut seeds = seeds(obj);
        let instrs = sweep_in_step(obj, &mut seeds);
        let mut starts = seeds;
        for ins in &instrs {
            for t in code_targets(ins).into_iter().flatten() {
                if obj.is_code(t) && instrs.binary_search_by_key(&t, Instruction::ip).is_ok() {
                    starts.insert(t);
                }
            }
        }
        let mut code = Code {
            instrs,
            starts: Vec::new(),
            first: Vec::new(),
        };
        code.set_starts(&starts);
        // Branches that leave their function make their target a function of its own.
        loop {
            let new = code.branches_out(&starts);
            if new.is_empty() {
                break;
            }
            starts.extend(new);
            code.set_starts(&starts);
        }
        code
    }

    /// The targets of branches that leave their function, that are not function starts yet.
    fn branches_out(&self, starts: &BTreeSet<u64>) -> Vec<u64> {
        let mut new = Vec::new();
        for f in 0..self.starts.len() {
            let r = self.range(f);
            let (lo, hi) = self.span(f);
            for ins in &self.instrs[r] {
                if is_branch(ins) {
                    let t = ins.near_branch_target();
                    if (t < lo || t >= hi) && !starts.contains(&t) && self.index_of(t).is_some() {
                        new.push(t);
                    }
                }
            }
        }
        new
    }

    fn set_starts(&mut self, starts: &BTreeSet<u64>) {
        self.starts.clear();
        self.first.clear();
        for &s in starts {
            if let Some(i) = self.index_of(s) {
                self.starts.push(s);
                self.first.push(i);
            }
        }
    }

    /// Index of the instruction at exactly `addr`.
    pub fn index_of(&self, addr: u64) -> Option<usize> {
        self.instrs
            .binary_search_by_key(&addr, Instruction::ip)
            .ok()
    }

    /// The function starting exactly at `addr`.
    pub fn function_at(&self, addr: u64) -> Option<usize> {
        self.starts.binary_search(&addr).ok()
    }

    /// The function whose instructions include index `idx`.
    pub fn function_of_index(&self, idx: usize) -> Option<usize> {
        match self.first.binary_search(&idx) {
            Ok(f) => Some(f),
            Err(0) => None,
            Err(f) => Some(f - 1),
        }
    }

    /// Instruction indices of function `f`.
    pub fn range(&self, f: usize) -> Range<usize> {
        let end = self.first.get(f + 1).copied().unwrap_or(self.instrs.len());
        self.first[f]..end
    }

    /// Address span of function `f`: its start and the end of its last instruction.
    pub fn span(&self, f: usize) -> (u64, u64) {
        let r = self.range(f);
        let end = self.instrs[r.end - 1].next_ip();
        (self.starts[f], end)
    }

    /// How many functions.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether no function was found.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// Where decoding starts: code sections, symbols, entry points and code addresses the data
/// and the GOT hold.
fn seeds(obj: &Object) -> BTreeSet<u64> {
    let mut seeds: BTreeSet<u64> = obj.code_sections().map(|c| c.0).collect();
    seeds.extend(obj.names.iter().map(|n| n.0));
    seeds.extend(obj.entries.iter().map(|e| e.0));
    for t in obj.data_refs.iter().map(|r| &r.1).chain(obj.got.values()) {
        if let Target::Local(a) = t {
            seeds.insert(*a);
        }
    }
    seeds.retain(|&a| obj.is_code(a));
    seeds
}

/// Decodes from `seeds`; call and address targets that fall inside a decoded instruction mean
/// the sweep went out of step there: they are added as seeds and the code decoded again.
fn sweep_in_step(obj: &Object, seeds: &mut BTreeSet<u64>) -> Vec<Instruction> {
    let mut instrs = sweep(obj, seeds);
    for _ in 0..3 {
        let mut missing = Vec::new();
        for ins in &instrs {
            for t in code_targets(ins).into_iter().flatten() {
                if obj.is_code(t) && !seeds.contains(&t) {
                    missing.push(t);
                }
            }
        }
        let before = seeds.len();
        for t in missing {
            if instrs.binary_search_by_key(&t, Instruction::ip).is_err() {
                seeds.insert(t);
            }
        }
        if seeds.len() == before {
            break;
        }
        instrs = sweep(obj, seeds);
    }
    instrs
}

/// Decodes every executable section, starting over at each seed.
fn sweep(obj: &Object, seeds: &BTreeSet<u64>) -> Vec<Instruction> {
    let mut out = Vec::new();
    for (base, bytes) in obj.code_sections() {
        let end = base + bytes.len() as u64;
        let mut cuts: Vec<u64> = seeds.range(base..end).copied().collect();
        if cuts.first() != Some(&base) {
            cuts.insert(0, base);
        }
        cuts.push(end);
        for w in cuts.windows(2) {
            let (from, to) = (w[0], w[1]);
            let slice = &bytes[(from - base) as usize..(to - base) as usize];
            let mut dec = Decoder::with_ip(64, slice, from, DecoderOptions::NONE);
            let mut ins = Instruction::default();
            while dec.can_decode() {
                dec.decode_out(&mut ins);
                // An instruction that runs past the next seed is garbage before a real start.
                if ins.next_ip() > to {
                    break;
                }
                if ins.mnemonic() != Mnemonic::INVALID {
                    out.push(ins);
                }
            }
        }
    }
    out
}

/// The target of a direct (near, immediate) branch or call.
pub fn near_target(ins: &Instruction) -> Option<u64> {
    matches!(
        ins.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    )
    .then(|| ins.near_branch_target())
}

/// Whether `ins` is a direct jump or conditional branch.
pub fn is_branch(ins: &Instruction) -> bool {
    matches!(
        ins.flow_control(),
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
    ) && near_target(ins).is_some()
}

/// Code addresses `ins` names as a call target or takes with `lea` (candidate functions).
fn code_targets(ins: &Instruction) -> [Option<u64>; 1] {
    if ins.flow_control() == FlowControl::Call && near_target(ins).is_some() {
        return [near_target(ins)];
    }
    if ins.mnemonic() == Mnemonic::Lea && ins.is_ip_rel_memory_operand() {
        return [Some(ins.ip_rel_memory_address())];
    }
    [None]
}
