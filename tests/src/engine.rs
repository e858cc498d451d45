//! What the tests ask of a container engine, Docker's (a private dockerd) or Podman's: its
//! client bound to the test's own engine, importing an image made from a root filesystem, and a
//! container's first process.
use std::path::Path;
use std::process::{Command, Output};

/// A container engine a test owns.
pub trait Engine {
    /// "docker" or "podman", for messages and `--for-runtime`.
    fn name(&self) -> &'static str;

    /// The engine's client, bound to this engine.
    fn command(&self) -> Command;

    /// A directory of the engine's own, for files the client reads (image tarballs).
    fn scratch(&self) -> &Path;

    /// Options each `run` of a test container needs on this machine.
    fn run_args(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// The client with `args`, output captured.
    fn cli(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("the {} client runs: {e}", self.name()))
    }

    /// The client with `args`, which must succeed; its standard output, trimmed.
    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The host pid of a running container's first process.
    fn container_pid(&self, id: &str) -> u32 {
        let pid = self.cli_ok(&["inspect", "-f", "{{.State.Pid}}", id]);
        pid.parse()
            .unwrap_or_else(|_| panic!("no pid for container {id}: {pid:?}"))
    }

    /// Imports the directory `root` as image `tag` (`import` of its tarball), with
    /// Dockerfile-style `changes` such as `ENTRYPOINT ["/init"]`.
    fn import(&self, root: &Path, tag: &str, changes: &[&str]) {
        let tar = self
            .scratch()
            .join(format!("import-{}.tar", tag.replace([':', '/'], "-")));
        let st = Command::new("tar")
            .arg("-C")
            .arg(root)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar runs");
        assert!(st.success(), "tar of {} failed", root.display());
        let mut args = vec!["import"];
        for c in changes {
            args.extend(["-c", c]);
        }
        let tar = tar.to_str().expect("UTF-8 path");
        args.extend([tar, tag]);
        self.cli_ok(&args);
    }

    /// A one-file image `tag` whose entrypoint is the static `tiny_init` test program
    /// (`cgroup` prints its /proc/self/cgroup, `wait` waits for SIGTERM, `calls N` makes N
    /// getppid calls and then waits).
    fn import_tiny(&self, tag: &str) {
        let root = self.scratch().join("tiny-root");
        std::fs::create_dir_all(&root).expect("the image's root");
        std::fs::copy(crate::fixture("tiny_init"), root.join("init")).expect("tiny_init");
        self.import(&root, tag, &[r#"ENTRYPOINT ["/init"]"#]);
    }
}
