//! What a session traces: processes it attaches to (with their descendants, walked in /proc),
//! or a command it launches, traced from its execve on.
use std::collections::BTreeSet;
use std::path::Path;

use super::{Session, scope::Finder};
use crate::{
    launch::{self, Gated, Isolation, Seccomp},
    procfs,
};

/// Refuses phasebox's own pid and pids that do not exist or have exited.
pub fn check_target(pid: u32) -> anyhow::Result<()> {
    if pid == std::process::id() {
        anyhow::bail!("phasebox cannot trace itself (pid {pid})");
    }
    match procfs::read_stat(pid).map_err(|e| unreadable(pid, &e))? {
        None => anyhow::bail!("no process with pid {pid} exists"),
        Some(s) if s.state == 'Z' || s.state == 'X' => {
            anyhow::bail!("process {pid} has already exited")
        }
        Some(_) => Ok(()),
    }
}

/// /proc could not say whether `pid` exists (not that it does not).
fn unreadable(pid: u32, e: &std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot read /proc/{pid}/stat: {}",
        phasebox_core::sysnames::describe_io(e)
    )
}

impl Session {
    /// Tracks each of `pids` and every descendant /proc shows (twice, to catch forks made
    /// meanwhile; after that the kernel follows new children itself). Returns how many
    /// processes are traced.
    pub fn attach(&mut self, pids: &[u32]) -> anyhow::Result<usize> {
        for &pid in pids {
            check_target(pid)?;
        }
        self.attach_trees(pids)?;
        if self.run.name.is_empty() || self.run.name.starts_with(self.mode.name()) {
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            self.run.name = format!("{} -p {}", self.mode.name(), list.join(","));
        }
        Ok(self.tree.processes().count())
    }

    /// Tracks `pids` and their descendants (see [`Session::attach`]); a process that exits
    /// meanwhile is left out.
    fn attach_trees(&mut self, pids: &[u32]) -> anyhow::Result<()> {
        let me = std::process::id();
        let mut seen = BTreeSet::new();
        for _pass in 0..2 {
            let parents = procfs::parents();
            for &root in pids {
                let below = procfs::descendants(&parents, root, me);
                for pid in std::iter::once(root).chain(below) {
                    if !seen.insert(pid) {
                        continue;
                    }
                    // Gone since /proc was walked: nothing to trace.
                    let Some(st) = procfs::read_stat(pid).map_err(|e| unreadable(pid, &e))? else {
                        continue;
                    };
                    self.probe.track(pid)?;
                    self.tree.add(pid, st.ppid, procfs::exe(pid), st.comm, None);
                    self.tree
                        .set_container(pid, procfs::container(pid).map(|c| c.id));
                    self.attached.push(pid);
                }
            }
        }
        self.roots.extend_from_slice(pids);
        if let Some(l) = self.learner.as_mut() {
            l.add_origin(pids, &self.attached);
        }
        if seen.iter().any(|&p| procfs::under_seccomp(p)) {
            self.watch_filtered();
        }
        Ok(())
    }

    /// Attaches to every live process of the container the session was built for (the
    /// kernel follows the programs executed in it later); returns how many. A container with
    /// no process (not started yet, or stopped meanwhile) is waited for.
    pub fn attach_container(&mut self) -> anyhow::Result<usize> {
        let Finder::Container(w) = &mut self.finder else {
            anyhow::bail!("this session traces no container");
        };
        self.run.name = format!("{} --container {}", self.mode.name(), w.spec());
        let Some(target) = w.target.clone() else {
            // Awaited: its first process is seen from its execve.
            self.run.launched = true;
            return Ok(0);
        };
        // Zombies and processes that exit meanwhile are left out, not an error.
        let members = crate::containers::members(&target);
        if members.is_empty() {
            self.run.launched = true;
            w.ended();
            let scope = self.finder.scope();
            self.probe.set_scope(scope)?;
            return Ok(0);
        }
        self.attach_trees(&members)?;
        for &pid in &members {
            self.tree.set_container(pid, Some(target.id.clone()));
        }
        Ok(self.tree.processes().count())
    }

    /// Forks `program` behind a gate, tracked from its execve on; the caller releases it
    /// ([`Gated::release`]).
    pub fn launch(
        &mut self,
        program: &Path,
        argv: &[String],
        seccomp: Option<Seccomp>,
        isolate: Isolation,
    ) -> anyhow::Result<Gated> {
        launch::become_subreaper();
        let child = launch::spawn_gated(program, argv, seccomp, isolate)?;
        if let Err(e) = self.probe.track_from_exec(child.pid) {
            child.abort();
            return Err(e.into());
        }
        let comm = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let exe = program.display().to_string();
        self.tree
            .add(child.pid, std::process::id(), exe, comm, None);
        self.roots.push(child.pid);
        if let Some(l) = self.learner.as_mut() {
            l.add_origin(&[child.pid], &[]);
        }
        Ok(child)
    }
}
