//! `phasebox completions SHELL` and `phasebox manpages DIR`: shell completions and man pages
//! made from the command line's own definitions, so they never disagree with it (`cargo xtask
//! install` installs both).
use std::path::Path;

use clap::CommandFactory;
use phasebox_core::atomic_file::write_atomic;

use crate::cli::Cli;

/// Prints the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "phasebox", &mut out);
    super::write_stdout(&out)?;
    Ok(0)
}

/// Writes phasebox.1 and a page per visible subcommand (phasebox-agent.1, phasebox-trace-dump.1…)
/// into `dir`.
pub fn manpages(dir: &Path) -> anyhow::Result<i32> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {}", dir.display(), e.kind()))?;
    let mut written = 0;
    let mut todo = vec![(
        String::from("phasebox"),
        Cli::command().version(crate::cli::VERSION),
    )];
    while let Some((name, cmd)) = todo.pop() {
        let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            if sub.get_name() != "help" {
                todo.push((format!("{name}-{}", sub.get_name()), sub.clone()));
            }
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .title(name.to_uppercase())
            .render(&mut page)
            .map_err(|e| anyhow::anyhow!("cannot render the man page of {name}: {e}"))?;
        write_atomic(&dir.join(format!("{name}.1")), &page)?;
        written += 1;
    }
    phasebox::say!("phasebox: {written} man pages written to {}", dir.display());
    Ok(0)
}
