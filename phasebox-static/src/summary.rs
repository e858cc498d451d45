//! What one function does, as far as reachability cares: whom it calls or jumps to, its
//! `syscall` instructions, its indirect calls, and the function addresses it takes.
use std::ops::Range;

use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::code::{Code, near_target};
use crate::elf::{Object, Target};
use crate::flow::falls_through;

/// Functions that never return: a call to one ends its caller's flow (without this, a
/// function ending in `call __stack_chk_fail` would seem to run into the next one).
const NORETURN: &[&str] = &[
    "abort",
    "exit",
    "_exit",
    "_Exit",
    "quick_exit",
    "__stack_chk_fail",
    "__assert_fail",
    "__assert_perror_fail",
    "__fortify_fail",
    "__chk_fail",
    "__libc_fatal",
    "err",
    "errx",
    "verr",
    "verrx",
    "pthread_exit",
    "longjmp",
    "siglongjmp",
    "_longjmp",
    "__longjmp_chk",
    "__cxa_throw",
    "__cxa_rethrow",
    "_Unwind_Resume",
];

/// How control goes from one function to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    Call,
    /// A jump out of the function (tail call, PLT stub, cold part).
    Jump,
    /// The function's last instruction runs on into the next function.
    FallThrough,
}

/// A direct transfer to another function; `site` is the index of the instruction (for a
/// fall-through, one past the function's last).
#[derive(Clone, Debug)]
pub struct Edge {
    pub target: Target,
    pub site: usize,
    pub kind: EdgeKind,
}

/// One function's summary.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub edges: Vec<Edge>,
    /// Indices of its `syscall` instructions.
    pub syscalls: Vec<usize>,
    /// Indices of its `int 0x80` instructions (the 32-bit table: never resolved).
    pub int80: Vec<usize>,
    /// Indices of calls and jumps through a register or memory that no relocation names.
    pub indirect_calls: Vec<usize>,
    pub indirect_jumps: Vec<usize>,
    /// Functions whose address it takes (`lea`, GOT loads, absolute immediates).
    pub address_taken: Vec<Target>,
    /// Data addresses it names (a table, a variable, a string), for the chains: a table of
    /// function pointers is used by the code that names it.
    pub data_refs: Vec<u64>,
}

/// Summarizes function `f` of `obj`.
pub fn summarize(obj: &Object, code: &Code, f: usize) -> Summary {
    let range = code.range(f);
    let span = code.span(f);
    let instrs = &code.instrs[range.clone()];
    if let Some(stub) = plt_stub(obj, instrs, range.start) {
        return stub;
    }
    let mut s = Summary::default();
    for (k, ins) in instrs.iter().enumerate() {
        let idx = range.start + k;
        s.add_transfer(obj, ins, idx, span);
        s.add_syscall_or_address(obj, ins, idx);
    }
    s.edges.extend(fall_through(obj, code, range));
    s
}

/// A PLT stub's summary: its GOT jump is all it does (a lazy stub's push/jmp to the resolver
/// only runs before binding and reaches the same function). `start` is the index of the
/// function's first instruction.
fn plt_stub(obj: &Object, instrs: &[Instruction], start: usize) -> Option<Summary> {
    let first = instrs.iter().find(|i| i.mnemonic() != Mnemonic::Endbr64)?;
    if first.flow_control() != FlowControl::IndirectBranch {
        return None;
    }
    let target = got_target(obj, first)?;
    let site = start
        + instrs
            .iter()
            .position(|i| i.ip() == first.ip())
            .unwrap_or(0);
    Some(Summary {
        edges: vec![Edge {
            target,
            site,
            kind: EdgeKind::Jump,
        }],
        ..Summary::default()
    })
}

impl Summary {
    /// Records instruction `idx` when it calls or jumps out of the function (whose address
    /// span is `lo..hi`), directly, through the GOT, or indirectly.
    fn add_transfer(&mut self, obj: &Object, ins: &Instruction, idx: usize, (lo, hi): (u64, u64)) {
        match ins.flow_control() {
            FlowControl::Call
            | FlowControl::UnconditionalBranch
            | FlowControl::ConditionalBranch => {
                let kind = if ins.flow_control() == FlowControl::Call {
                    EdgeKind::Call
                } else {
                    EdgeKind::Jump
                };
                if let Some(t) = near_target(ins)
                    && (kind == EdgeKind::Call || t < lo || t >= hi)
                {
                    self.edges.push(Edge {
                        target: Target::Local(t),
                        site: idx,
                        kind,
                    });
                }
            }
            FlowControl::IndirectCall | FlowControl::IndirectBranch => {
                let call = ins.flow_control() == FlowControl::IndirectCall;
                match got_target(obj, ins) {
                    Some(t) => self.edges.push(Edge {
                        target: t,
                        site: idx,
                        kind: if call { EdgeKind::Call } else { EdgeKind::Jump },
                    }),
                    None if call => self.indirect_calls.push(idx),
                    None => self.indirect_jumps.push(idx),
                }
            }
            _ => {}
        }
    }

    /// Records instruction `idx` when it is a `syscall` or `int 0x80`, or takes the address
    /// of a function.
    fn add_syscall_or_address(&mut self, obj: &Object, ins: &Instruction, idx: usize) {
        match ins.mnemonic() {
            Mnemonic::Syscall => self.syscalls.push(idx),
            Mnemonic::Int if ins.immediate8() == 0x80 => self.int80.push(idx),
            Mnemonic::Lea if ins.is_ip_rel_memory_operand() => {
                let a = ins.ip_rel_memory_address();
                if obj.is_code(a) {
                    self.address_taken.push(Target::Local(a));
                } else {
                    self.data_refs.push(a);
                }
            }
            _ if ins.is_ip_rel_memory_operand()
                && !matches!(
                    ins.flow_control(),
                    FlowControl::IndirectCall | FlowControl::IndirectBranch
                ) =>
            {
                // A GOT load: the address of a function, to be called or passed on.
                let a = ins.ip_rel_memory_address();
                match obj.got.get(&a) {
                    Some(t) => self.address_taken.push(t.clone()),
                    None => self.data_refs.push(a),
                }
            }
            _ if obj.fixed_address => self.add_absolute(obj, ins),
            _ => {}
        }
    }
}

impl Summary {
    /// In a fixed-address object: the code and data addresses `ins` names as immediates or
    /// memory displacements.
    fn add_absolute(&mut self, obj: &Object, ins: &Instruction) {
        for op in 0..ins.op_count() {
            let (a, immediate) = match ins.op_kind(op) {
                OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64 => {
                    (ins.immediate(op), true)
                }
                OpKind::Memory if ins.memory_base() == Register::None => {
                    (ins.memory_displacement64(), false)
                }
                _ => continue,
            };
            if obj.is_code(a) {
                if immediate {
                    self.address_taken.push(Target::Local(a));
                }
            } else if obj.is_mapped(a) {
                self.data_refs.push(a);
            }
        }
    }
}

/// The edge into the next function, when the last instruction of the function at `range`
/// runs on into it.
fn fall_through(obj: &Object, code: &Code, range: Range<usize>) -> Option<Edge> {
    let instrs = &code.instrs[range.clone()];
    let last = instrs
        .iter()
        .rev()
        .find(|i| !matches!(i.mnemonic(), Mnemonic::Nop | Mnemonic::Int3))
        .or(instrs.last())?;
    let runs_on = falls_through(last)
        && !calls_noreturn(obj, code, last)
        && range.end < code.instrs.len()
        && code.instrs[range.end - 1].next_ip() == code.instrs[range.end].ip();
    runs_on.then(|| Edge {
        target: Target::Local(code.instrs[range.end].ip()),
        site: range.end,
        kind: EdgeKind::FallThrough,
    })
}

/// What a call or jump through `[rip+slot]` reaches, when a relocation fills that slot.
fn got_target(obj: &Object, ins: &Instruction) -> Option<Target> {
    if !ins.is_ip_rel_memory_operand() {
        return None;
    }
    obj.got.get(&ins.ip_rel_memory_address()).cloned()
}

fn calls_noreturn(obj: &Object, code: &Code, ins: &Instruction) -> bool {
    if !matches!(
        ins.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    ) {
        return false;
    }
    let name = match near_target(ins) {
        Some(t) => match obj.name_at(t) {
            Some(n) => Some(n.to_string()),
            // A PLT stub: the name of the import it jumps to.
            None => code
                .function_at(t)
                .and_then(|f| {
                    code.instrs[code.range(f)]
                        .iter()
                        .find(|i| i.mnemonic() != Mnemonic::Endbr64)
                        .cloned()
                })
                .and_then(|i| match got_target(obj, &i) {
                    Some(Target::Import(n)) => Some(n),
                    _ => None,
                }),
        },
        None => match got_target(obj, ins) {
            Some(Target::Import(n)) => Some(n),
            _ => None,
        },
    };
    name.is_some_and(|n| NORETURN.contains(&n.as_str()))
}
