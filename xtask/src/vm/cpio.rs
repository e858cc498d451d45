//! An initramfs: the kernel's "newc" cpio archive of directories and regular files.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

/// A guest's files: path (without the leading slash) to content and permission bits.
#[derive(Default)]
pub struct Tree {
    files: BTreeMap<String, (Vec<u8>, u32)>,
    dirs: BTreeSet<String>,
}

impl Tree {
    /// Adds a file, replacing one at the same path.
    pub fn file(&mut self, path: &str, data: Vec<u8>, mode: u32) {
        let path = path.trim_start_matches('/').to_string();
        self.files.insert(path, (data, mode));
    }

    /// Adds an empty directory.
    pub fn dir(&mut self, path: &str) {
        self.dirs.insert(path.trim_start_matches('/').to_string());
    }

    /// Whether the tree has a file at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.files.contains_key(path.trim_start_matches('/'))
    }

    /// Writes the archive: every directory (parents first), then every file.
    pub fn write(&self, out: &Path) -> anyhow::Result<()> {
        let mut dirs = self.dirs.clone();
        for path in self.files.keys().chain(self.dirs.iter()) {
            let mut p = Path::new(path.as_str());
            while let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                dirs.insert(parent.to_string_lossy().into_owned());
                p = parent;
            }
        }
        let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
        let mut ino = 1;
        for d in &dirs {
            entry(&mut w, ino, d, 0o040755, &[])?;
            ino += 1;
        }
        for (path, (data, mode)) in &self.files {
            entry(&mut w, ino, path, 0o100000 | mode, data)?;
            ino += 1;
        }
        entry(&mut w, 0, "TRAILER!!!", 0, &[])?;
        w.flush()?;
        Ok(())
    }
}

/// One newc record: header, name, data, each padded to four bytes.
fn entry(w: &mut impl Write, ino: u32, name: &str, mode: u32, data: &[u8]) -> anyhow::Result<()> {
    let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        u32::try_from(data.len())?,
        0,
        0,
        0,
        0,
        u32::try_from(name.len() + 1)?,
        0,
    ];
    let mut header = String::from("070701");
    for f in fields {
        header.push_str(&format!("{f:08x}"));
    }
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w, header.len() + name.len() + 1)?;
    w.write_all(data)?;
    pad(w, data.len())
}

fn pad(w: &mut impl Write, len: usize) -> anyhow::Result<()> {
    w.write_all(&[0; 3][..(4 - len % 4) % 4])?;
    Ok(())
}
