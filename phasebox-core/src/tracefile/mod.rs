//! The trace file: every record of a run, for later analysis. Format (docs/trace-format.md):
//!
//! ```text
//! "PBTRACE\0"  u32 LE header length  header JSON (TraceHeader)
//! records      the kernel's wire records as they arrived (kind in the first two bytes)
//! "PBTREND\0"  u32 LE footer length  footer JSON (TraceFooter: the run's summary and roots)
//! ```
mod error;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::AtomicFile;
use crate::event::{self, Event};
use crate::file_error::FileError;
use crate::input;
use crate::summary::Summary;
use crate::sysnames;

pub use error::{Damage, TraceError};

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
    /// `-e trace=` when the run was given one: only these calls have a record each (the
    /// others, their first uses); `trace dump` shows these only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
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

/// Writes a trace file atomically: it appears under its name only when finished. A write that
/// fails (a full disk) ends the trace, not the run: nothing more is written, the partial file
/// is removed at once (its space freed for the other outputs), and [`TraceWriter::finish`]
/// reports the first error.
pub struct TraceWriter {
    dest: PathBuf,
    /// The buffered writer and the file it writes; None once a write failed.
    open: Option<(BufWriter<File>, AtomicFile)>,
    failed: Option<FileError>,
}

impl TraceWriter {
    /// Creates the temporary file and writes the header (an error here is the caller's).
    pub fn create(path: &Path, header: &TraceHeader) -> Result<TraceWriter, FileError> {
        let mut file = AtomicFile::create(path)?;
        let handle = file
            .file()
            .try_clone()
            .map_err(FileError::on("write", path))?;
        let mut w = TraceWriter {
            dest: path.to_path_buf(),
            open: Some((BufWriter::with_capacity(1 << 20, handle), file)),
            failed: None,
        };
        let json = serde_json::to_vec(header).expect("header serializes");
        w.put(MAGIC);
        w.put(&(json.len() as u32).to_le_bytes());
        w.put(&json);
        match w.failed.take() {
            Some(e) => Err(e),
            None => Ok(w),
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        let Some((out, _)) = self.open.as_mut() else {
            return;
        };
        if let Err(e) = out.write_all(bytes) {
            self.fail(e);
        }
    }

    /// Gives up the file after a failed write: removed without writing the buffer out.
    fn fail(&mut self, e: std::io::Error) {
        self.failed = Some(FileError::io("write", &self.dest, e));
        if let Some((out, file)) = self.open.take() {
            drop(out.into_parts());
            drop(file);
        }
    }

    /// Appends one wire record as the kernel wrote it (nothing once a write has failed).
    pub fn record(&mut self, bytes: &[u8]) {
        self.put(bytes);
    }

    /// Writes the footer and gives the file its name; the first failed write, if one did.
    pub fn finish(mut self, footer: &TraceFooter) -> Result<PathBuf, FileError> {
        let json = serde_json::to_vec(footer).expect("footer serializes");
        self.put(END_MAGIC);
        self.put(&(json.len() as u32).to_le_bytes());
        self.put(&json);
        if let Some((out, _)) = self.open.as_mut()
            && let Err(e) = out.flush()
        {
            self.fail(e);
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let (out, file) = self.open.take().expect("open until a write fails");
        drop(out);
        file.commit()?;
        Ok(self.dest)
    }
}

/// A whole trace in memory: for tests and fuzzing. Files are read as a stream
/// ([`TraceReader`]), whatever their size.
#[derive(Debug)]
pub struct Trace {
    pub header: TraceHeader,
    pub events: Vec<Event>,
    pub footer: TraceFooter,
}

fn bad(origin: &str, damage: Damage) -> TraceError {
    TraceError::Damaged {
        origin: origin.to_string(),
        damage,
    }
}

/// The largest header or footer read (a footer lists every process of the run).
const MAX_BLOCK: u64 = 256 << 20;

/// Reads a block's length and, unless it is over [`MAX_BLOCK`], the block.
fn read_block(r: &mut impl Read, origin: &str, what: &'static str) -> Result<Vec<u8>, TraceError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)
        .map_err(|_| bad(origin, Damage::BlockCut(what)))?;
    let len = u64::from(u32::from_le_bytes(len));
    if len > MAX_BLOCK {
        return Err(bad(origin, Damage::BlockTooLong { what, len }));
    }
    // Read, not allocated up front: memory follows what the file holds, not what it claims.
    let mut buf = Vec::new();
    r.take(len)
        .read_to_end(&mut buf)
        .map_err(|err| bad(origin, Damage::Unreadable { what, err }))?;
    if buf.len() as u64 != len {
        return Err(bad(origin, Damage::BlockCut(what)));
    }
    Ok(buf)
}

fn parse_footer(json: &[u8], origin: &str) -> Result<TraceFooter, TraceError> {
    serde_json::from_slice(json).map_err(|e| bad(origin, Damage::Footer(e)))
}

/// A trace read as a stream, in bounded memory: the header first, then one record at a time,
/// then the footer, which must end the file.
pub struct TraceReader<R> {
    r: R,
    origin: String,
    header: TraceHeader,
    records: u64,
    footer: Option<TraceFooter>,
    buf: [u8; 512],
}

/// Opens a trace file and reads its header.
pub fn open(path: &Path) -> Result<TraceReader<BufReader<io::Take<File>>>, TraceError> {
    let r = BufReader::with_capacity(1 << 16, input::open(path, input::TRACE)?);
    TraceReader::new(r, &crate::input::origin(path))
}

impl<R: Read> TraceReader<R> {
    /// Reads the magic and the header from `r` and checks that this phasebox reads the
    /// records; `origin` names the trace in errors.
    pub fn new(mut r: R, origin: &str) -> Result<TraceReader<R>, TraceError> {
        let mut magic = [0u8; 8];
        if r.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(bad(origin, Damage::NoMagic));
        }
        let header: TraceHeader = serde_json::from_slice(&read_block(&mut r, origin, "header")?)
            .map_err(|e| bad(origin, Damage::Header(e)))?;
        check_header(&header, origin)?;
        Ok(TraceReader {
            r,
            origin: origin.to_string(),
            header,
            records: 0,
            footer: None,
            buf: [0; 512],
        })
    }

    /// What the trace says about its run.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// Records read so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The footer, once [`TraceReader::next_event`] has reached it.
    pub fn footer(&self) -> Option<&TraceFooter> {
        self.footer.as_ref()
    }

    /// The next record; None at the footer, which is then read and checked to end the file.
    pub fn next_event(&mut self) -> Result<Option<Event>, TraceError> {
        if self.footer.is_some() {
            return Ok(None);
        }
        let (origin, n) = (self.origin.as_str(), self.records);
        let buf = &mut self.buf;
        self.r
            .read_exact(&mut buf[..8])
            .map_err(|_| bad(origin, Damage::NoFooter(n)))?;
        if &buf[..8] == END_MAGIC {
            let footer = parse_footer(&read_block(&mut self.r, origin, "footer")?, origin)?;
            let more = self.r.read(&mut [0u8; 1]).map_err(|err| {
                let what = "end";
                bad(origin, Damage::Unreadable { what, err })
            })?;
            if more != 0 {
                return Err(bad(origin, Damage::AfterFooter));
            }
            self.footer = Some(footer);
            return Ok(None);
        }
        let record = |source| bad(origin, Damage::Record { n, source });
        let kind = event::peek_kind(&buf[..8]).map_err(record)?;
        let len = event::record_len(kind);
        self.r
            .read_exact(&mut buf[8..len])
            .map_err(|_| bad(origin, Damage::RecordCut(n)))?;
        let ev = event::decode(&buf[..len]).map_err(record)?;
        self.records += 1;
        Ok(Some(ev))
    }
}

/// The oldest record version this phasebox reads: version 3 added a record kind (calls a
/// seccomp filter answered) and gave the fork record's padding a meaning (0 in version 2),
/// version 4 another (recorded arguments), so version 2 and 3 records are read as they are.
const OLDEST_WIRE_VERSION: u32 = 2;

/// Refuses a trace this phasebox cannot read: another format, record layout or architecture.
fn check_header(header: &TraceHeader, origin: &str) -> Result<(), TraceError> {
    let wire = OLDEST_WIRE_VERSION..=phasebox_common::WIRE_VERSION;
    if header.format_version != FORMAT_VERSION || !wire.contains(&header.wire_version) {
        return Err(TraceError::Version {
            origin: origin.to_string(),
            format: header.format_version,
            wire: header.wire_version,
        });
    }
    // Records carry this architecture's syscall numbers only when it wrote them.
    if header.arch != sysnames::ARCH {
        return Err(TraceError::Arch {
            origin: origin.to_string(),
            arch: header.arch.clone(),
        });
    }
    Ok(())
}

/// Reads a whole trace from `r` into memory (tests, fuzzing); `origin` names it in errors.
pub fn parse(r: impl Read, origin: &str) -> Result<Trace, TraceError> {
    let mut t = TraceReader::new(r, origin)?;
    let mut events = Vec::new();
    while let Some(ev) = t.next_event()? {
        events.push(ev);
    }
    let footer = t.footer.take().expect("read at the end of the records");
    Ok(Trace {
        header: t.header,
        events,
        footer,
    })
}

/// Reads only the footer of the trace file at `path`, from the end: what a reader needs before
/// the records (the processes already running, the roots). The records, and that the footer
/// follows them, are checked as they are read.
pub fn read_footer(path: &Path) -> Result<TraceFooter, TraceError> {
    let origin = crate::input::origin(path);
    let mut file = input::open(path, input::TRACE)?.into_inner();
    let size = file.metadata().map_err(FileError::on("read", path))?.len();
    let Some(at) = footer_offset(&mut file, size).map_err(FileError::on("read", path))? else {
        return Err(bad(&origin, Damage::FooterNotAtEnd));
    };
    let mut json = Vec::new();
    file.seek(SeekFrom::Start(at + 12))
        .and_then(|_| file.take(size - at - 12).read_to_end(&mut json))
        .map_err(FileError::on("read", path))?;
    parse_footer(&json, &origin)
}

/// Where the footer's magic is in a file of `size` bytes: the last "PBTREND\0" whose length
/// field says the footer ends exactly at the end of the file. (The footer is JSON, which never
/// holds a NUL byte, so the magic cannot occur inside it.)
fn footer_offset(file: &mut File, size: u64) -> io::Result<Option<u64>> {
    const CHUNK: u64 = 1 << 16;
    let lowest = size.saturating_sub(MAX_BLOCK + 12);
    let mut end = size;
    let mut buf = Vec::new();
    while end > lowest {
        let start = end.saturating_sub(CHUNK).max(lowest);
        // 11 bytes past the chunk: a magic and its length that straddle two chunks.
        let upto = (end + 11).min(size);
        buf.resize((upto - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf)?;
        for i in (0..buf.len().saturating_sub(11)).rev() {
            if &buf[i..i + 8] != END_MAGIC {
                continue;
            }
            let len = u32::from_le_bytes(buf[i + 8..i + 12].try_into().expect("4 bytes"));
            if start + i as u64 + 12 + u64::from(len) == size {
                return Ok(Some(start + i as u64));
            }
        }
        end = start;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sentence;
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
            shown: None,
        }
    }

    fn read_all(path: &Path) -> Result<Trace, TraceError> {
        let file = File::open(path).unwrap();
        parse(BufReader::new(file), &crate::input::origin(path))
    }

    /// A trace of `n` syscall records of process 4.
    fn write_trace(path: &Path, n: u64) -> TraceFooter {
        let mut w = TraceWriter::create(path, &header()).unwrap();
        for i in 0..n {
            let sys = SyscallRecord {
                header: Header::of::<SyscallRecord>(0, 4),
                tid: 4,
                enter_ns: i,
                ..Default::default()
            };
            w.record(as_bytes(&sys));
        }
        let footer = TraceFooter {
            summary: Summary::build(&ProcessTree::new(), Losses::default(), n),
            root_pids: vec![4],
            attached_pids: vec![n as u32],
        };
        w.finish(&footer).unwrap();
        footer
    }

    #[test]
    fn the_footer_is_found_from_the_end_and_records_stream() {
        let dir = tempfile::tempdir().unwrap();
        // Sizes around the search's 64 KiB chunks, so the magic falls on either side of a
        // chunk's edge somewhere.
        for n in [0, 1, 1364, 1365, 1366, 5000] {
            let path = dir.path().join(format!("t{n}.pbtrace"));
            let footer = write_trace(&path, n);
            assert_eq!(read_footer(&path).unwrap(), footer, "{n} records");
            let mut r = open(&path).unwrap();
            let mut seen = 0;
            while let Some(ev) = r.next_event().unwrap() {
                assert_eq!(ev.ts_ns(), seen);
                seen += 1;
            }
            assert_eq!((seen, r.records()), (n, n));
            assert_eq!(r.footer(), Some(&footer));
            assert!(
                r.next_event().unwrap().is_none(),
                "nothing after the footer"
            );
        }
        // Damage at the end: no footer found.
        let path = dir.path().join("t5000.pbtrace");
        let bytes = std::fs::read(&path).unwrap();
        for damaged in [&bytes[..bytes.len() - 1], &[&bytes[..], b"x"].concat()[..]] {
            let bad = dir.path().join("bad.pbtrace");
            std::fs::write(&bad, damaged).unwrap();
            let e = read_footer(&bad).unwrap_err().sentence();
            assert!(
                e.ends_with(
                    "it does not end with its footer (it is cut short, or goes on after it)"
                ),
                "{e}"
            );
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
        w.record(as_bytes(&exec));
        w.record(as_bytes(&sys));
        let summary = Summary::build(&ProcessTree::new(), Losses::default(), 2);
        let footer = TraceFooter {
            summary,
            root_pids: vec![4],
            attached_pids: vec![],
        };
        w.finish(&footer).unwrap();

        let t = read_all(&path).unwrap();
        assert_eq!(t.header, header());
        assert_eq!(t.events.len(), 2);
        assert_eq!(t.events[1], Event::Syscall(sys));
        assert_eq!(t.footer, footer);

        // A file cut in the middle of the records is reported, not misread.
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.join("cut.pbtrace");
        std::fs::write(&cut, &bytes[..bytes.len() - 150]).unwrap();
        let err = read_all(&cut).unwrap_err().sentence();
        assert!(err.contains("not a valid phasebox trace file"), "{err}");
        std::fs::write(&cut, b"hello world").unwrap();
        let err = read_all(&cut).unwrap_err().sentence();
        assert!(err.contains("trace magic"), "{err}");

        // Bytes after the footer are damage, not ignored.
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"garbage");
        let err = parse(&longer[..], "g.pbtrace").unwrap_err().sentence();
        assert_eq!(
            err,
            "g.pbtrace is not a valid phasebox trace file: it goes on after its footer"
        );
        // A block that claims more than the file holds is cut short, with no huge allocation.
        let mut claims = MAGIC.to_vec();
        claims.extend_from_slice(&(200u32 << 20).to_le_bytes());
        claims.extend_from_slice(b"{}");
        let err = parse(&claims[..], "c").unwrap_err().sentence();
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
        let err = parse(&bytes[..], "s.pbtrace").unwrap_err().sentence();
        assert!(
            err.starts_with(
                "s.pbtrace is a trace of \"sparc\" programs; this phasebox is built for"
            ),
            "{err}"
        );
    }
}
