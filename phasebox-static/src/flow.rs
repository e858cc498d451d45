//! Where a register's value comes from at a point of a function: a backward walk over the
//! function's control flow (fall-through and direct branches) to the instructions that set
//! it. Constants (`mov eax, 39`, `xor eax, eax`), addresses (`lea rdi, [rip+name]`) and copies
//! between registers are followed; reaching the function's start means the caller passes the
//! value in that register.
use std::collections::{BTreeSet, HashMap, HashSet};

use iced_x86::{
    FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess, OpKind, Register,
};

use crate::code::{Code, is_branch, near_target};

/// Steps a single walk may take before giving up (huge functions with loops).
const MAX_STEPS: usize = 20_000;

/// Instruction index → the indices of the branches inside the function that jump to it.
pub type Preds = HashMap<usize, Vec<usize>>;

/// The branch predecessors of function `f`'s instructions.
pub fn branch_preds(code: &Code, f: usize) -> Preds {
    let (lo, hi) = code.span(f);
    let mut preds = Preds::new();
    for i in code.range(f) {
        let ins = &code.instrs[i];
        if is_branch(ins) {
            let t = ins.near_branch_target();
            if t >= lo
                && t < hi
                && let Some(ti) = code.index_of(t)
            {
                preds.entry(ti).or_default().push(i);
            }
        }
    }
    preds
}

/// What a register may hold at a point.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Value {
    /// Constants it may hold.
    pub consts: BTreeSet<u64>,
    /// Addresses it may hold, set by a `lea` relative to the instruction pointer: the
    /// object's own data (a string, a table) or code.
    pub addresses: BTreeSet<u64>,
    /// Registers whose value at the function's entry it may hold (set by the callers).
    pub params: BTreeSet<Register>,
    /// Why some path gives a value the walk cannot know, if one does.
    pub unknown: Option<String>,
}

/// Registers a call may change (System V ABI: caller-saved).
const CALL_CLOBBERED: [Register; 9] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];

/// Whether execution continues with the next instruction after `ins`.
pub fn falls_through(ins: &Instruction) -> bool {
    !matches!(
        ins.flow_control(),
        FlowControl::UnconditionalBranch
            | FlowControl::IndirectBranch
            | FlowControl::Return
            | FlowControl::Exception
    ) && !matches!(ins.mnemonic(), Mnemonic::Int3 | Mnemonic::Hlt)
}

/// The value `reg` (a 64-bit register) holds just before instruction `pos` of function `f`
/// executes; `pos` may be one past the function's last instruction (its fall-through exit).
/// `preds` are function `f`'s branch predecessors ([`branch_preds`]).
pub fn value_before(code: &Code, f: usize, preds: &Preds, pos: usize, reg: Register) -> Value {
    let range = code.range(f);
    let mut info = InstructionInfoFactory::new();
    let mut clobber_memo: HashMap<(usize, Register), bool> = HashMap::new();
    let mut out = Value::default();
    let mut seen: HashSet<(usize, Register)> = HashSet::new();
    let mut work = vec![(pos, reg)];
    let mut steps = 0;
    while let Some((at, reg)) = work.pop() {
        if !seen.insert((at, reg)) {
            continue;
        }
        steps += 1;
        if steps > MAX_STEPS {
            out.unknown = Some("the function is too large to follow".into());
            break;
        }
        let mut any_pred = false;
        let before = (at > range.start && falls_through(&code.instrs[at - 1])).then(|| at - 1);
        let branches = preds.get(&at).map(Vec::as_slice).unwrap_or_default();
        for &p in before.iter().chain(branches) {
            any_pred = true;
            let ins = &code.instrs[p];
            // GCC's interprocedural register allocation keeps values in caller-saved
            // registers across calls to local functions that leave them alone.
            if ins.flow_control() == FlowControl::Call
                && CALL_CLOBBERED.contains(&reg)
                && let Some(callee) = near_target(ins).and_then(|t| code.function_at(t))
                && !clobbers(code, callee, reg, &mut info, &mut clobber_memo, 0)
            {
                work.push((p, reg));
                continue;
            }
            match definition(&mut info, ins, reg) {
                Def::None => work.push((p, reg)),
                Def::Const(c) => {
                    out.consts.insert(c);
                }
                Def::Address(a) => {
                    out.addresses.insert(a);
                }
                Def::Copy(r) => work.push((p, r)),
                Def::Unknown(why) => {
                    out.unknown.get_or_insert(why);
                }
            }
        }
        if at == range.start {
            out.params.insert(reg);
        } else if !any_pred && code.instrs[at].mnemonic() != Mnemonic::Nop {
            // (A padding nop after a jump is dead code, not a path.)
            // Reached only through a jump the walk cannot see (a jump table).
            out.unknown
                .get_or_insert_with(|| "the code is reached through a jump table".into());
        }
    }
    out
}

/// Calls followed when deciding whether a callee changes a register.
const MAX_CLOBBER_DEPTH: usize = 4;

/// Whether function `f` (or what it calls or jumps to) may change `reg`.
fn clobbers(
    code: &Code,
    f: usize,
    reg: Register,
    info: &mut InstructionInfoFactory,
    memo: &mut HashMap<(usize, Register), bool>,
    depth: usize,
) -> bool {
    if let Some(&c) = memo.get(&(f, reg)) {
        return c;
    }
    // Assume it does while deciding, so recursion ends on the safe side.
    memo.insert((f, reg), true);
    let (lo, hi) = code.span(f);
    let mut result = depth >= MAX_CLOBBER_DEPTH;
    for ins in &code.instrs[code.range(f)] {
        if result {
            break;
        }
        result = match ins.flow_control() {
            FlowControl::IndirectCall | FlowControl::IndirectBranch => true,
            FlowControl::Call
            | FlowControl::UnconditionalBranch
            | FlowControl::ConditionalBranch
                if near_target(ins).is_some_and(|t| {
                    ins.flow_control() == FlowControl::Call || t < lo || t >= hi
                }) =>
            {
                match near_target(ins).and_then(|t| code.function_at(t)) {
                    Some(g) => clobbers(code, g, reg, info, memo, depth + 1),
                    None => true,
                }
            }
            _ => !matches!(definition(info, ins, reg), Def::None),
        };
    }
    if !result && code.range(f).end < code.instrs.len() {
        // It may run on into the next function.
        let last = &code.instrs[code.range(f).end - 1];
        result = falls_through(last);
    }
    memo.insert((f, reg), result);
    result
}

/// How instruction `ins` sets `reg`.
enum Def {
    /// It does not.
    None,
    Const(u64),
    /// An address relative to the instruction pointer.
    Address(u64),
    /// A full copy of another register.
    Copy(Register),
    Unknown(String),
}

fn definition(info: &mut InstructionInfoFactory, ins: &Instruction, reg: Register) -> Def {
    let op0_is =
        |r: Register| ins.op0_kind() == OpKind::Register && ins.op0_register().full_register() == r;
    // (iced counts `syscall` as a call; it changes only rax, rcx and r11.)
    if matches!(
        ins.flow_control(),
        FlowControl::Call | FlowControl::IndirectCall
    ) && ins.mnemonic() != Mnemonic::Syscall
        && CALL_CLOBBERED.contains(&reg)
    {
        return Def::Unknown(format!("{} is set by a call", name(reg)));
    }
    let writes = info.info(ins).used_registers().iter().any(|u| {
        u.register().full_register() == reg
            && matches!(
                u.access(),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            )
    });
    if !writes {
        return Def::None;
    }
    let full_width =
        ins.op0_kind() == OpKind::Register && matches!(ins.op0_register().size(), 4 | 8);
    match ins.mnemonic() {
        Mnemonic::Mov if op0_is(reg) && full_width => match ins.op1_kind() {
            OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64 => {
                let v = ins.immediate(1);
                Def::Const(if ins.op0_register().size() == 4 {
                    v & 0xffff_ffff
                } else {
                    v
                })
            }
            OpKind::Register if matches!(ins.op1_register().size(), 4 | 8) => {
                Def::Copy(ins.op1_register().full_register())
            }
            _ => Def::Unknown(format!("{} is loaded from memory", name(reg))),
        },
        Mnemonic::Lea if op0_is(reg) && full_width && ins.is_ip_rel_memory_operand() => {
            Def::Address(ins.ip_rel_memory_address())
        }
        Mnemonic::Xor | Mnemonic::Sub
            if op0_is(reg)
                && ins.op1_kind() == OpKind::Register
                && ins.op1_register() == ins.op0_register() =>
        {
            Def::Const(0)
        }
        m => Def::Unknown(format!("{} is computed ({m:?})", name(reg))),
    }
}

fn name(reg: Register) -> String {
    format!("{reg:?}").to_lowercase()
}
