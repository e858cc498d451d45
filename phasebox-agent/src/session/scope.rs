//! What a session traces besides the processes it attached to or launched: programs found at
//! their exec. The kernel's match is a prefilter (a comm of at most 15 bytes; a pid
//! namespace; any exec while a container is awaited or shares the host's pid namespace); the
//! session decides on each found process here, by its whole program name or by the container
//! its cgroup names, and the kernel untracks what is rejected (`PB_VERDICTS`).
use std::collections::HashMap;

use phasebox_common::{Scope, exec_flags, scope_flags};
use phasebox_core::event::Exec;

use crate::containers::{self, ContainerTarget, Membership, Wanted};
use crate::procfs;

/// What a session finds at exec.
#[derive(Clone, Debug, Default)]
pub enum Finder {
    /// Nothing: only the roots and their descendants are traced.
    #[default]
    Nothing,
    /// `--exec-name`: programs with this file name.
    Name(String),
    /// `--container`: programs executed in this container.
    Container(Watch),
}

/// A container traced, or awaited.
#[derive(Clone, Debug)]
pub struct Watch {
    wanted: Wanted,
    /// The container, once it runs.
    pub target: Option<ContainerTarget>,
    /// Container ids already looked up, and whether each is the one wanted.
    looked_up: HashMap<String, bool>,
    /// The host's pid namespace (phasebox's own).
    host_pidns: (u64, u64),
}

/// The decision on a process found at its exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Traced: it runs in this container (full id), or on the host.
    Accept { container: Option<String> },
    /// Outside the scope: the kernel untracks it.
    Reject,
}

impl Watch {
    /// A watch on a running container (named by its engine's name, or its short id).
    pub fn running(target: ContainerTarget) -> Watch {
        let spec = target
            .name
            .clone()
            .unwrap_or_else(|| target.id.chars().take(12).collect());
        let wanted = Wanted {
            spec,
            id: Some(target.id.clone()),
            host_pid: false,
        };
        Watch {
            host_pidns: host_pidns(),
            looked_up: HashMap::from([(target.id.clone(), true)]),
            wanted,
            target: Some(target),
        }
    }

    /// A watch on a container that does not run yet.
    pub fn waiting(wanted: Wanted) -> Watch {
        Watch {
            host_pidns: host_pidns(),
            looked_up: HashMap::new(),
            wanted,
            target: None,
        }
    }

    /// What the user asked for (a name or an id).
    pub fn spec(&self) -> &str {
        &self.wanted.spec
    }

    /// The container ended (every process of it gone): wait for it to start again.
    pub fn ended(&mut self) {
        if let Some(t) = self.target.take() {
            self.wanted.id = Some(t.id);
        }
    }

    /// Whether the container with this full id is the one wanted; `pid` runs in it. Finding it
    /// while waiting makes it the target.
    fn is_wanted(&mut self, id: &str, pid: u32) -> bool {
        if let Some(t) = &self.target {
            return t.id == id;
        }
        if let Some(&known) = self.looked_up.get(id) {
            if known {
                self.target = containers::identify(&self.wanted.spec, id, pid);
            }
            return known;
        }
        let found = match &self.wanted.id {
            Some(want) => want == id,
            None => false,
        };
        let target = if found {
            containers::identify(id, id, pid)
        } else {
            containers::identify(&self.wanted.spec, id, pid)
        };
        let yes = target.is_some();
        self.looked_up.insert(id.to_string(), yes);
        self.target = target;
        yes
    }

    /// The kernel's prefilter: the container's own pid namespace once it runs in one; any
    /// exec when it shares the host's; while it is awaited, any exec outside the host's pid
    /// namespace (or any exec, for a container known to share the host's).
    fn scope(&self) -> Scope {
        let (host_dev, host_ino) = self.host_pidns;
        let mut s = Scope {
            host_pidns_dev: host_dev,
            host_pidns_ino: host_ino,
            ..Scope::default()
        };
        match &self.target {
            Some(t) if t.pidns != self.host_pidns && t.pidns != (0, 0) => {
                s.flags = scope_flags::PIDNS;
                (s.pidns_dev, s.pidns_ino) = t.pidns;
            }
            Some(_) => s.flags = scope_flags::ANY,
            None if self.wanted.host_pid => s.flags = scope_flags::ANY,
            None => s.flags = scope_flags::FOREIGN_PIDNS,
        }
        s
    }

    /// A process found at its exec: in the container if its cgroup says so. When /proc can no
    /// longer tell (it has exited already), the kernel's match decides only if it was the
    /// container's own pid namespace.
    fn decide(&mut self, e: &Exec) -> Decision {
        match containers::membership(e.tgid) {
            Membership::Container(id) if self.is_wanted(&id, e.tgid) => Decision::Accept {
                container: Some(id),
            },
            Membership::Unknown if e.found_by & exec_flags::BY_PIDNS != 0 => match &self.target {
                Some(t) => Decision::Accept {
                    container: Some(t.id.clone()),
                },
                None => Decision::Reject,
            },
            _ => Decision::Reject,
        }
    }
}

/// phasebox's own pid namespace: the host's, as the kernel programs see it.
fn host_pidns() -> (u64, u64) {
    procfs::pid_namespace(std::process::id()).unwrap_or((0, 0))
}

impl Finder {
    /// The kernel's prefilter for this finder (`--exec-name`'s comm is a load setting).
    pub fn scope(&self) -> Scope {
        match self {
            Finder::Container(w) => w.scope(),
            Finder::Nothing | Finder::Name(_) => Scope::default(),
        }
    }

    /// Decides on a process the kernel found at its exec.
    pub fn decide(&mut self, e: &Exec) -> Decision {
        match self {
            Finder::Name(name) => {
                let base = e.filename.rsplit('/').next().unwrap_or_default();
                if base == name {
                    let container = procfs::container(e.tgid).map(|c| c.id);
                    Decision::Accept { container }
                } else {
                    Decision::Reject
                }
            }
            Finder::Container(w) => w.decide(e),
            Finder::Nothing => Decision::Reject,
        }
    }

    /// The container traced, once it runs.
    pub fn target(&self) -> Option<&ContainerTarget> {
        match self {
            Finder::Container(w) => w.target.as_ref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(filename: &str, found_by: u16) -> Exec {
        Exec {
            new_root: true,
            found_by,
            // A pid that cannot exist: /proc never answers for it.
            tgid: u32::MAX - 1,
            tid: u32::MAX - 1,
            old_tid: 0,
            ts_ns: 1,
            comm: String::new(),
            filename: filename.into(),
        }
    }

    #[test]
    fn names_are_matched_whole() {
        let mut f = Finder::Name("a-program-with-a-long-name".into());
        let long = exec("/usr/bin/a-program-with-a-long-name", exec_flags::BY_NAME);
        assert_eq!(f.decide(&long), Decision::Accept { container: None });
        // Same first 15 bytes (the comm the kernel compares), another program.
        let other = exec("/usr/bin/a-program-with-a-long-nap", exec_flags::BY_NAME);
        assert_eq!(f.decide(&other), Decision::Reject);
    }

    #[test]
    fn a_container_is_its_cgroup() {
        let target = ContainerTarget {
            id: "ab".repeat(32),
            name: Some("web".into()),
            image: None,
            init_pid: 1,
            pidns: (7, 8),
        };
        let mut w = Watch::running(target.clone());
        let s = w.scope();
        assert_eq!(s.flags, scope_flags::PIDNS);
        assert_eq!((s.pidns_dev, s.pidns_ino), (7, 8));
        // Gone before /proc could be read: the kernel's match by the container's own pid
        // namespace decides; any other match does not.
        let gone = exec("/bin/true", exec_flags::BY_PIDNS);
        assert_eq!(
            w.decide(&gone),
            Decision::Accept {
                container: Some(target.id.clone())
            }
        );
        assert_eq!(
            w.decide(&exec("/bin/true", exec_flags::BY_ANY)),
            Decision::Reject
        );
        // A container in the host's pid namespace: every exec is a candidate.
        let mut shared = target.clone();
        shared.pidns = w.host_pidns;
        let w2 = Watch::running(shared);
        assert_eq!(w2.scope().flags, scope_flags::ANY);
        // Awaited: execs outside the host's pid namespace.
        let mut waiting = Watch::waiting(Wanted {
            spec: "web".into(),
            id: None,
            host_pid: false,
        });
        assert_eq!(waiting.scope().flags, scope_flags::FOREIGN_PIDNS);
        assert_eq!(waiting.decide(&gone), Decision::Reject);
        waiting.wanted.host_pid = true;
        assert_eq!(waiting.scope().flags, scope_flags::ANY);
    }
}
