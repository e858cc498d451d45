//! /etc/ld.so.cache, read as the dynamic loader reads it: the `glibc-ld.so.cache1.1` format
//! (alone, or after the old `ld.so-1.7.0` table), entries for x86_64 ELF libraries only.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::Error;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// Header of the new format: magic and version (20), nlibs, len_strings (8), flags and
/// padding (4), extension offset (4), unused (12).
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
const OLD_ENTRY: usize = 12;
/// FLAG_ELF_LIBC6 | FLAG_X8664_LIB64: the only entries an x86_64 loader considers.
const X86_64_LIBC6: i32 = 0x0303;

/// Library file name → path, first entry wins (the loader's order).
#[derive(Debug, Default, Clone)]
pub struct LdCache {
    entries: HashMap<String, PathBuf>,
}

impl LdCache {
    /// Reads the cache at `path`; a missing file is an empty cache (the loader goes on to the
    /// default directories), a malformed one an error.
    pub fn load(path: &Path) -> Result<LdCache, Error> {
        match std::fs::read(path) {
            Ok(data) => LdCache::parse(&data).ok_or_else(|| {
                Error::Other(format!(
                    "{} is not a loader cache this phasebox can read",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LdCache::default()),
            Err(e) => Err(Error::io(path, &e)),
        }
    }

    /// Parses the bytes of a cache file.
    pub fn parse(data: &[u8]) -> Option<LdCache> {
        let start = if data.starts_with(NEW_MAGIC) {
            0
        } else if data.starts_with(OLD_MAGIC) {
            // The old table comes first; the new header follows it, 8-byte aligned.
            let nlibs = u32_at(data, 12)? as usize;
            let end = 16 + nlibs * OLD_ENTRY;
            let start = end.next_multiple_of(8);
            if !data.get(start..)?.starts_with(NEW_MAGIC) {
                return None;
            }
            start
        } else {
            return None;
        };
        let nlibs = u32_at(data, start + 20)? as usize;
        let mut entries = HashMap::new();
        for i in 0..nlibs {
            let e = start + NEW_HEADER + i * NEW_ENTRY;
            let flags = u32_at(data, e)? as i32;
            let key = u32_at(data, e + 4)? as usize;
            let value = u32_at(data, e + 8)? as usize;
            if flags != X86_64_LIBC6 {
                continue;
            }
            // String offsets count from the start of the new-format header.
            let name = c_str(data, start + key)?;
            let path = c_str(data, start + value)?;
            entries
                .entry(name.to_string())
                .or_insert_with(|| PathBuf::from(path));
        }
        Some(LdCache { entries })
    }

    /// The path the cache gives for a library file name.
    pub fn lookup(&self, name: &str) -> Option<&Path> {
        self.entries.get(name).map(PathBuf::as_path)
    }

    /// How many x86_64 entries the cache holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds no x86_64 entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn c_str(data: &[u8], at: usize) -> Option<&str> {
    let rest = data.get(at..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache in the new format with the given (flags, name, path) entries.
    fn cache(entries: &[(i32, &str, &str)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut table = Vec::new();
        for (flags, name, path) in entries {
            let key = strings_at + strings.len();
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let value = strings_at + strings.len();
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&(key as u32).to_le_bytes());
            table.extend_from_slice(&(value as u32).to_le_bytes());
            table.extend_from_slice(&[0; 12]);
        }
        let mut out = NEW_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[0; 20]);
        out.extend(table);
        out.extend(strings);
        out
    }

    #[test]
    fn keeps_x86_64_entries_in_order() {
        let data = cache(&[
            (0x0003, "libz.so.1", "/lib32/libz.so.1"),
            (X86_64_LIBC6, "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"),
            (X86_64_LIBC6, "libz.so.1", "/usr/lib/other/libz.so.1"),
        ]);
        let c = LdCache::parse(&data).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            c.lookup("libz.so.1").unwrap(),
            Path::new("/lib/x86_64-linux-gnu/libz.so.1")
        );
        assert!(c.lookup("libc.so.6").is_none());
    }

    #[test]
    fn old_format_prefix_is_skipped() {
        let new = cache(&[(X86_64_LIBC6, "libm.so.6", "/lib/libm.so.6")]);
        let mut data = OLD_MAGIC.to_vec();
        data.push(0);
        data.extend_from_slice(&1u32.to_le_bytes());
        data.extend_from_slice(&[0; OLD_ENTRY]);
        while !data.len().is_multiple_of(8) {
            data.push(0);
        }
        data.extend(new);
        let c = LdCache::parse(&data).unwrap();
        assert_eq!(c.lookup("libm.so.6").unwrap(), Path::new("/lib/libm.so.6"));
        assert!(LdCache::parse(b"garbage").is_none());
    }

    #[test]
    fn this_machine_cache_knows_libc() {
        let c = LdCache::load(Path::new("/etc/ld.so.cache")).unwrap();
        assert!(c.lookup("libc.so.6").unwrap().exists());
    }
}
