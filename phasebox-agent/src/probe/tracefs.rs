//! tracefs: mounting it when missing, and reading tracepoint field offsets from its `format`
//! files (layouts differ between kernels).
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use phasebox_core::sysnames::describe_io;

const MOUNT_POINT: &str = "/sys/kernel/tracing";
const LEGACY: &str = "/sys/kernel/debug/tracing";

/// Where tracefs is, mounting it at /sys/kernel/tracing if it is not mounted anywhere.
pub fn ensure_mounted() -> anyhow::Result<PathBuf> {
    for dir in [MOUNT_POINT, LEGACY] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    let target = std::ffi::CString::new(MOUNT_POINT).expect("no NUL");
    let fstype = std::ffi::CString::new("tracefs").expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        anyhow::bail!(
            "tracefs is not mounted and mounting it at {MOUNT_POINT} failed ({}); \
             mount it with: mount -t tracefs tracefs {MOUNT_POINT}",
            describe_io(&err)
        );
    }
    Ok(PathBuf::from(MOUNT_POINT))
}

/// Offset and size of one tracepoint field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// Parses a tracepoint `format` file into field name → offset and size.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let (Some(decl), Some(off), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // "char comm[16]" → "comm"; "__data_loc char[] filename" → "filename".
        let Some(name) = decl.split_whitespace().last() else {
            continue;
        };
        let name = name.split('[').next().unwrap_or(name);
        let num = |s: &str, key: &str| s.strip_prefix(key).and_then(|v| v.trim().parse().ok());
        if let (Some(offset), Some(size)) = (num(off, "offset:"), num(size, "size:")) {
            out.insert(name.to_string(), Field { offset, size });
        }
    }
    out
}

/// Fields of tracepoint `category/name`.
pub fn fields(
    tracefs: &Path,
    category: &str,
    name: &str,
) -> anyhow::Result<HashMap<String, Field>> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!(
            "this kernel has no tracepoint {category}/{name} ({}: {})",
            path.display(),
            describe_io(&e)
        )
    })?;
    Ok(parse_format(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_format_files() {
        let text = "name: sched_process_exit\nID: 369\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
            \tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\
            \tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n\
            \tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
            \nprint fmt: \"comm=%s\"\n";
        let f = parse_format(text);
        assert_eq!(
            f["pid"],
            Field {
                offset: 24,
                size: 4
            }
        );
        assert_eq!(
            f["group_dead"],
            Field {
                offset: 32,
                size: 1
            }
        );
        assert_eq!(f["comm"].size, 16);
        assert_eq!(f["filename"].offset, 8);
        assert!(!f.contains_key("print"));
    }
}
