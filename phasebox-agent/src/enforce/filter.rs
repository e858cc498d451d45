//! OCI seccomp profiles compiled into a classic BPF program with libseccomp, in phasebox's own
//! process. The launched child then only installs the ready program (prctl + seccomp), which
//! is safe between fork and exec.
use std::collections::BTreeSet;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use phasebox_core::seccomp::{
    action::{Action, Operator},
    oci::{ERRNO_RANGE, OciArg, OciProfile},
};

/// A seccomp filter ready to install.
#[derive(Clone, Debug)]
pub struct Program {
    pub filters: Vec<libc::sock_filter>,
    /// Install with a user-notification listener (phasebox answers some calls).
    pub listener: bool,
}

#[derive(Clone, Debug)]
struct SpecRule {
    name: String,
    action: ScmpAction,
    args: Vec<ScmpArgCompare>,
}

/// A filter before compilation: a default action and rules by syscall name.
#[derive(Clone, Debug)]
pub struct FilterSpec {
    default: ScmpAction,
    rules: Vec<SpecRule>,
    /// Rules left out because they depend on capabilities or architectures (OCI includes and
    /// excludes), which a launched command has no container to decide.
    pub skipped_conditional: usize,
}

fn action(
    action: Action,
    errno: Option<u32>,
    default_errno: Option<u32>,
) -> anyhow::Result<ScmpAction> {
    Ok(match action {
        Action::Allow => ScmpAction::Allow,
        Action::Errno => {
            let errno = errno.or(default_errno).unwrap_or(libc::EPERM as u32);
            // Past 4095 the kernel's return is no errno: a large one reads as success or
            // a count (a program retries forever), 0 as success.
            if !ERRNO_RANGE.contains(&errno) {
                anyhow::bail!(
                    "the seccomp profile asks for errno {errno}, outside 1..4095, the errno values a seccomp filter can return"
                );
            }
            ScmpAction::Errno(errno as i32)
        }
        Action::Kill | Action::KillThread => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Log => ScmpAction::Log,
        // A profile gives no tracer or listener to hand these calls to.
        Action::Trace | Action::Notify => {
            anyhow::bail!("the seccomp profile asks for {action}, which phasebox does not enforce")
        }
    })
}

fn compare(index: u32, op: Operator, value: u64, value_two: u64) -> ScmpArgCompare {
    let op = match op {
        Operator::NotEqual => ScmpCompareOp::NotEqual,
        Operator::Less => ScmpCompareOp::Less,
        Operator::LessOrEqual => ScmpCompareOp::LessOrEqual,
        Operator::Equal => ScmpCompareOp::Equal,
        Operator::GreaterOrEqual => ScmpCompareOp::GreaterEqual,
        Operator::Greater => ScmpCompareOp::Greater,
        Operator::MaskedEqual => {
            return ScmpArgCompare::new(index, ScmpCompareOp::MaskedEqual(value), value_two);
        }
    };
    ScmpArgCompare::new(index, op, value)
}

impl FilterSpec {
    pub fn from_oci(p: &OciProfile) -> anyhow::Result<FilterSpec> {
        let default = action(p.default_action, p.default_errno_ret, p.default_errno_ret)?;
        let mut rules = Vec::new();
        let mut skipped = 0;
        for r in &p.syscalls {
            if r.includes.is_some() || r.excludes.is_some() {
                skipped += 1;
                continue;
            }
            let act = action(r.action, r.errno_ret, p.default_errno_ret)?;
            let args: Vec<_> = r
                .args
                .iter()
                .map(|a| compare(a.index, a.op, a.value, a.value_two))
                .collect();
            for name in r.all_names() {
                rules.push(SpecRule {
                    name,
                    action: act,
                    args: args.clone(),
                });
            }
        }
        Ok(FilterSpec {
            default,
            rules,
            skipped_conditional: skipped,
        })
    }

    /// Calls the profile does not allow go to phasebox instead of failing (`validate`).
    pub fn notify_by_default(&mut self) {
        self.default = ScmpAction::Notify;
    }

    /// Calls the spec kills go to phasebox instead, so that it can report them before it
    /// kills (`validate`); returns their names.
    pub fn notify_kills(&mut self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for r in &mut self.rules {
            if matches!(r.action, ScmpAction::KillProcess | ScmpAction::KillThread) {
                r.action = ScmpAction::Notify;
                names.insert(r.name.clone());
            }
        }
        names
    }

    /// Allowed calls named in `names` go to phasebox instead (phase-aware enforcement).
    pub fn notify(&mut self, names: &BTreeSet<String>) {
        for r in &mut self.rules {
            if r.action == ScmpAction::Allow && names.contains(&r.name) {
                r.action = ScmpAction::Notify;
            }
        }
    }

    /// The allow rule of `name` with exactly these conditions goes to phasebox instead
    /// (phase-aware enforcement: a combination only the phases before serving used).
    pub fn notify_with_args(&mut self, name: &str, args: &[OciArg]) {
        let want: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| compare(a.index, a.op, a.value, a.value_two))
            .collect();
        for r in &mut self.rules {
            if r.action == ScmpAction::Allow && r.name == name && r.args == want {
                r.action = ScmpAction::Notify;
            }
        }
    }

    /// Names in the spec the running kernel's table lacks.
    pub fn unknown_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .rules
            .iter()
            .filter(|r| ScmpSyscall::from_name(&r.name).is_err())
            .map(|r| r.name.clone())
            .collect();
        v.dedup();
        v
    }

    /// Whether compiling gives a filter with a notification listener.
    pub fn needs_listener(&self) -> bool {
        self.default == ScmpAction::Notify
            || self.rules.iter().any(|r| r.action == ScmpAction::Notify)
    }

    /// Compiles; names the kernel does not know are an error unless `skip_unknown`.
    /// `launcher_sock`: the launcher sends the listener on this fd after installing the filter,
    /// so `sendmsg` on exactly that fd is allowed (it is closed at exec).
    pub fn compile(
        &self,
        skip_unknown: bool,
        launcher_sock: Option<i32>,
    ) -> anyhow::Result<Program> {
        let unknown = self.unknown_names();
        if !unknown.is_empty() && !skip_unknown {
            anyhow::bail!(
                "the seccomp profile names syscalls this kernel does not know: {} (--seccomp-skip-unknown leaves them out)",
                unknown.join(", ")
            );
        }
        let mut ctx = ScmpFilterContext::new(self.default)
            .map_err(|e| anyhow::anyhow!("cannot create a seccomp filter: {e}"))?;
        let mut listener = self.default == ScmpAction::Notify;
        for r in &self.rules {
            let Ok(sys) = ScmpSyscall::from_name(&r.name) else {
                continue;
            };
            // libseccomp refuses a rule that repeats the default action; it is a no-op anyway.
            if r.action == self.default && r.args.is_empty() {
                continue;
            }
            listener |= r.action == ScmpAction::Notify;
            let res = if r.args.is_empty() {
                ctx.add_rule(r.action, sys)
            } else {
                ctx.add_rule_conditional(r.action, sys, &r.args)
            };
            res.map_err(|e| anyhow::anyhow!("cannot add the seccomp rule for {}: {e}", r.name))?;
        }
        if let Some(fd) = launcher_sock {
            let sendmsg = ScmpSyscall::from_name("sendmsg").map_err(|e| anyhow::anyhow!("{e}"))?;
            let on_fd = ScmpArgCompare::new(0, ScmpCompareOp::Equal, fd as u64);
            ctx.add_rule_conditional(ScmpAction::Allow, sendmsg, &[on_fd])
                .map_err(|e| anyhow::anyhow!("cannot add the launcher's sendmsg rule: {e}"))?;
        }
        Ok(Program {
            filters: export(&ctx)?,
            listener,
        })
    }
}

/// The filter as classic BPF instructions.
fn export(ctx: &ScmpFilterContext) -> anyhow::Result<Vec<libc::sock_filter>> {
    // SAFETY: plain memfd_create with a static name.
    let fd = unsafe { libc::memfd_create(c"phasebox-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        anyhow::bail!("cannot create a memory file for the seccomp program");
    }
    // SAFETY: fd was just created and is owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    ctx.export_bpf(fd.as_fd())
        .map_err(|e| anyhow::anyhow!("cannot export the seccomp program: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_and_reports_unknown_names() {
        let names: BTreeSet<String> = ["read", "write", "exit_group", "no_such_call"]
            .map(String::from)
            .into();
        let p = OciProfile::allow_list(&names, phasebox_core::sysnames::ARCH, Action::Errno, 1);
        let spec = FilterSpec::from_oci(&p).unwrap();
        assert_eq!(spec.unknown_names(), ["no_such_call"]);
        let e = spec.compile(false, None).unwrap_err().to_string();
        assert!(e.contains("does not know: no_such_call"), "{e}");
        let prog = spec.compile(true, None).unwrap();
        assert!(prog.filters.len() > 5 && !prog.listener);
        let mut n = spec.clone();
        n.notify(&["write".to_string()].into());
        assert!(n.needs_listener());
        assert!(n.compile(true, Some(7)).unwrap().listener);
    }

    #[test]
    fn errno_values_a_filter_cannot_return_are_refused() {
        let names: BTreeSet<String> = ["read".to_string()].into();
        for bad in [0, 4096, 65536, 1 << 31, u32::MAX] {
            let p =
                OciProfile::allow_list(&names, phasebox_core::sysnames::ARCH, Action::Errno, bad);
            let e = FilterSpec::from_oci(&p).unwrap_err().to_string();
            assert!(e.contains(&format!("errno {bad}, outside 1..4095")), "{e}");
        }
        let p = OciProfile::allow_list(&names, phasebox_core::sysnames::ARCH, Action::Errno, 38);
        FilterSpec::from_oci(&p).unwrap();
    }

    #[test]
    fn docker_profile_compiles() {
        let text = include_str!("../../../tests/fixtures/docker-default-seccomp.json");
        let spec = FilterSpec::from_oci(&OciProfile::parse(text, "d").unwrap()).unwrap();
        assert!(spec.skipped_conditional > 0);
        assert!(spec.compile(true, None).unwrap().filters.len() > 50);
    }
}
