//! Which role a process plays: the rule set's role rules (root, parent role, exec), else
//! `main` for a root, the program's name for an exec, `<parent>-child` for a fork.
use crate::{phase::Detector, process::ProcessTree, rules::RoleRule};

use super::Learner;

/// Whether `pid` runs another program than its parent.
pub(super) fn runs_other_program(pid: u32, tree: &ProcessTree) -> bool {
    let Some(p) = tree.get(pid) else { return false };
    tree.get(p.ppid)
        .is_some_and(|parent| !p.exe.is_empty() && parent.exe != p.exe)
}

impl Learner {
    pub(super) fn role_name(&self, pid: u32, tree: &ProcessTree, execd: bool) -> String {
        self.role_name_at(pid, tree, execd, 0)
    }

    /// The role of `pid`; a parent not seen yet (attached processes come in any order) gets
    /// its role from the process tree, up to `MAX_DEPTH` ancestors.
    fn role_name_at(&self, pid: u32, tree: &ProcessTree, execd: bool, depth: usize) -> String {
        const MAX_DEPTH: usize = 32;
        let root = self.roots.contains(&pid);
        let parent_role = tree.get(pid).and_then(|p| match self.procs.get(&p.ppid) {
            Some(s) => Some(self.roles[s.role].name.clone()),
            None if depth < MAX_DEPTH && !root && tree.get(p.ppid).is_some() => {
                Some(self.role_name_at(p.ppid, tree, false, depth + 1))
            }
            None => None,
        });
        if let Detector::Rules(r) = &self.det {
            let fits = |rule: &RoleRule| {
                rule.root.is_none_or(|x| x == root)
                    && rule
                        .parent
                        .as_ref()
                        .is_none_or(|p| Some(p) == parent_role.as_ref())
                    && rule.exec.is_none_or(|e| e == execd)
            };
            if let Some(rule) = r.roles.iter().find(|rule| fits(rule)) {
                return rule.name.clone();
            }
        }
        if root {
            return "main".into();
        }
        if execd {
            let exe = tree.get(pid).map(|p| p.exe.clone()).unwrap_or_default();
            let base = exe.rsplit('/').next().unwrap_or_default();
            if !base.is_empty() {
                return base.to_string();
            }
        }
        format!("{}-child", parent_role.unwrap_or_else(|| "main".into()))
    }
}
