//! Boots a kernel of the matrix with an initramfs under qemu (emulated, TCG) and keeps what it
//! writes on its serial console.
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::kernels::Kernel;

/// Guest memory: phasebox, nginx and the initramfs itself (unpacked in memory) fit with room.
const MEMORY_MIB: &str = "1024";
/// A guest still running after this long is stuck (a hang, not a slow run): it is stopped and
/// its report says how far it got.
const HANG: Duration = Duration::from_secs(20 * 60);

/// Boots `kernel` with `initrd`; its console output, also written to `log` as it comes.
pub fn boot(kernel: &Kernel, initrd: &Path, log: &Path) -> anyhow::Result<String> {
    let (qemu, machine) = kernel.arch.qemu();
    let append = format!(
        "console={} rdinit=/init quiet panic=-1",
        kernel.arch.console()
    );
    let mut child = Command::new(qemu)
        .args(machine)
        .args(["-m", MEMORY_MIB, "-smp", "1", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(kernel.vmlinuz())
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &append])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {qemu} (cargo xtask setup installs it)"))?;
    let stdout = child.stdout.take().context("qemu's console")?;
    let stderr = child.stderr.take().context("qemu's standard error")?;
    let mut file = std::fs::File::create(log)?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line);
            let _ = writeln!(file, "{line}");
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let start = Instant::now();
    while child.try_wait()?.is_none() {
        if start.elapsed() > HANG {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = child.wait()?;
    let mut text = reader.join().unwrap_or_default();
    let errors = errors.join().unwrap_or_default();
    if !status.success() || !errors.trim().is_empty() {
        text.push_str(&format!("qemu: {status}: {}\n", errors.trim()));
    }
    Ok(text)
}
