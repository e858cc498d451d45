//! The trace file: every record of a run, for later analysis. Format (docs/trace-format.md):
//!
//! ```text
//! "PBTRACE\0"  u32 LE header length  header JSON (TraceHeader)
//! records      the kernel's wire records as they arrived (kind in the first two bytes)
//! "PBTREND\0"  u32 LE footer length  footer JSON (TraceFooter: the run's summary and roots)
//! ```
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::{AtomicFile, file_error};
use crate::event::{self, Event};
use crate::input;
use crate::summary::Summary;
use crate::sysnames;

pub const MAGIC: &[u8; 8] = b"PBTRACE\0";
pub const END_MAGIC: &[u8; 8] = b"PBTREND\0";
/// Version of the container format; the records carry `wire_version`.
pub const FORMAT_VERSION: u32 = 1;

/// What the trace file says about the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub format_version: u32,
    pub wire_version: u32,
    pub phasebox_version: String,
    pub arch: String,
    pub kernel_release: String,
    /// "run" (launched, seen from its execve) or "record" (attached to a running process).
    pub mode: String,
    pub command: Vec<String>,
    pub target_pid: Option<u32>,
    pub started_unix_ms: u64,
    /// Kernel monotonic time at start: record times minus this are times since start.
    pub started_monotonic_ns: u64,
}

/// What the trace file says at its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceFooter {
    /// The run's summary: exact counters and every process with its parent and program.
    pub summary: Summary,
    /// The processes phasebox launched or attached to.
    pub root_pids: Vec<u32>,
    /// Processes that were already running when tracing began.
    pub attached_pids: Vec<u32>,
}

/// Writes a trace file atomically: it appears under its name only when finished.
pub struct TraceWriter {
    out: BufWriter<File>,
    file: AtomicFile,
    records: u64,
}

impl TraceWriter {
    pub fn create(path: &Path, header: &TraceHeader) -> anyhow::Result<TraceWriter> {
        let mut file = AtomicFile::create(path)?;
        let handle = file
            .file()
            .try_clone()
            .map_err(|e| file_error("write", path, &e))?;
        let mut w = TraceWriter {
            out: BufWriter::with_capacity(1 << 20, handle),
            file,
            records: 0,
        };
        let json = serde_json::to_vec(header).expect("header serializes");
        w.put(MAGIC)?;
        w.put(&(json.len() as u32).to_le_bytes())?;
        w.put(&json)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| file_error("write", self.file.dest(), &e))
    }

    /// Appends one wire record as the kernel wrote it.
    pub fn record(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.records += 1;
        self.put(bytes)
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes the footer and gives the file its name.
    pub fn finish(mut self, footer: &TraceFooter) -> anyhow::Result<PathBuf> {
        let json = serde_json::to_vec(footer).expect("footer serializes");
        self.put(END_MAGIC)?;
        self.put(&(json.len() as u32).to_le_bytes())?;
        self.put(&json)?;
        let dest = self.file.dest().to_path_buf();
        self.out
            .flush()
            .map_err(|e| file_error("write", &dest, &e))?;
        self.file.commit()?;
        Ok(dest)
    }
}

/// A trace file read back.
#[derive(Debug)]
pub struct Trace {
    pub header: TraceHeader,
    pub events: Vec<Event>,
    pub footer: TraceFooter,
}

fn bad(origin: &str, what: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{origin} is not a valid phasebox trace file: {what}")
}

/// The largest header or footer read (a footer lists every process of the run).
const MAX_BLOCK: u64 = 256 << 20;

fn read_block(r: &mut impl Read, origin: &str, what: &str) -> anyhow::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|_| bad(origin, format!("the {what} is cut short")))?;
    let len = u64::from(u32::from_le_bytes(len));
    if len > MAX_BLOCK {
        return Err(bad(origin, format!("the {what} claims {len} bytes")));
    }
    // Read, not allocated up front: memory follows what the file holds, not what it claims.
    let mut buf = Vec::new();
    r.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| bad(origin, format!("the {what} cannot be read ({e})")))?;
    if buf.len() as u64 != len {
        return Err(bad(origin, format!("the {what} is cut short")));
    }
    Ok(buf)
}

/// Reads a whole trace file.
pub fn read(path: &Path) -> anyhow::Result<Trace> {
    let r = BufReader::new(input::open(path, input::TRACE)?);
    parse(r, &path.display().to_string())
}

/// Reads a trace from `r`; `origin` names it in errors.
pub fn parse(mut r: impl Read, origin: &str) -> anyhow::Result<Trace> {
    let mut magic = [0u8; 8];
    if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(bad(origin, "it does not start with the trace magic"));
    }
    let header: TraceHeader = serde_json::from_slice(&read_block(&mut r, origin, "header")?)
        .map_err(|e| bad(origin, format!("its header is malformed ({e})")))?;
    if header.format_version != FORMAT_VERSION
        || header.wire_version != phasebox_common::WIRE_VERSION
    {
        anyhow::bail!(
            "{origin} has trace format {} with records of version {}; this phasebox reads format {} \
             with records of version {}",
            header.format_version,
            header.wire_version,
            FORMAT_VERSION,
            phasebox_common::WIRE_VERSION
        );
    }
    // Records carry this architecture's syscall numbers only when it wrote them.
    if header.arch != sysnames::ARCH {
        anyhow::bail!(
            "{origin} is a trace of {:?} programs; this phasebox is built for {} and reads {} traces only",
            header.arch,
            sysnames::ARCH,
            sysnames::ARCH
        );
    }
    let mut events = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = events.len();
        r.read_exact(&mut buf[..8]).map_err(|_| {
            bad(
                origin,
                format!("it ends after {n} records without its footer"),
            )
        })?;
        if &buf[..8] == END_MAGIC {
            break;
        }
        let kind =
            event::peek_kind(&buf[..8]).map_err(|e| bad(origin, format!("record {n}: {e}")))?;
        let len = event::record_len(kind);
        r.read_exact(&mut buf[8..len])
            .map_err(|_| bad(origin, format!("record {n} is cut short")))?;
        events.push(event::decode(&buf[..len]).map_err(|e| bad(origin, e))?);
    }
    let footer: TraceFooter = serde_json::from_slice(&read_block(&mut r, origin, "footer")?)
        .map_err(|e| bad(origin, format!("its footer is malformed ({e})")))?;
    if r.read(&mut [0u8; 1]).map_err(|e| bad(origin, e))? != 0 {
        return Err(bad(origin, "it goes on after its footer"));
    }
    Ok(Trace {
        header,
        events,
        footer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{as_bytes, tests::exec_record};
    use crate::process::ProcessTree;
    use crate::summary::Losses;
    use phasebox_common::{Header, SyscallRecord};

    fn header() -> TraceHeader {
        TraceHeader {
            format_version: FORMAT_VERSION,
            wire_version: phasebox_common::WIRE_VERSION,
            phasebox_version: "test".into(),
            arch: sysnames::ARCH.into(),
            kernel_release: "6.0".into(),
            mode: "run".into(),
            command: vec!["/bin/pwd".into()],
            target_pid: Some(4),
            started_unix_ms: 1,
            started_monotonic_ns: 2,
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let dir = std::env::temp_dir().join(format!("pb-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pbtrace");
        let sys = SyscallRecord {
            header: Header::of::<SyscallRecord>(0, 4),
            tid: 4,
            nr: 0,
            instance: 1,
            seg: 1,
            enter_ns: 10,
            duration_ns: 1,
            ret: 5,
        };
        let exec = exec_record(4, "pwd", "/bin/pwd", 9);
        let mut w = TraceWriter::create(&path, &header()).unwrap();
        assert!(!path.exists(), "visible before finish");
        w.record(as_bytes(&exec)).unwrap();
        w.record(as_bytes(&sys)).unwrap();
        let summary = Summary::build(&ProcessTree::new(), Losses::default(), 2);
        let footer = TraceFooter {
            summary,
            root_pids: vec![4],
            attached_pids: vec![],
        };
        w.finish(&footer).unwrap();

        let t = read(&path).unwrap();
        assert_eq!(t.header, header());
        assert_eq!(t.events.len(), 2);
        assert_eq!(t.events[1], Event::Syscall(sys));
        assert_eq!(t.footer, footer);

        // A file cut in the middle of the records is reported, not misread.
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.join("cut.pbtrace");
        std::fs::write(&cut, &bytes[..bytes.len() - 150]).unwrap();
        let err = read(&cut).unwrap_err().to_string();
        assert!(err.contains("not a valid phasebox trace file"), "{err}");
        std::fs::write(&cut, b"hello world").unwrap();
        let err = read(&cut).unwrap_err().to_string();
        assert!(err.contains("trace magic"), "{err}");

        // Bytes after the footer are damage, not ignored.
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"garbage");
        let err = parse(&longer[..], "g.pbtrace").unwrap_err().to_string();
        assert_eq!(
            err,
            "g.pbtrace is not a valid phasebox trace file: it goes on after its footer"
        );
        // A block that claims more than the file holds is cut short, with no huge allocation.
        let mut claims = MAGIC.to_vec();
        claims.extend_from_slice(&(200u32 << 20).to_le_bytes());
        claims.extend_from_slice(b"{}");
        let err = parse(&claims[..], "c").unwrap_err().to_string();
        assert!(err.contains("the header is cut short"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn traces_of_another_architecture_are_refused() {
        let mut h = header();
        h.arch = "sparc".into();
        let json = serde_json::to_vec(&h).unwrap();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&json);
        let err = parse(&bytes[..], "s.pbtrace").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "s.pbtrace is a trace of \"sparc\" programs; this phasebox is built for"
            ),
            "{err}"
        );
    }
}
