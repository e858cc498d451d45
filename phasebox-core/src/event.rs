//! Decoding of the kernel's wire records into typed events.
use phasebox_common::{
    ArgsRecord, BATCH_LEN, BatchRecord, ExecRecord, ExitRecord, FilteredRecord, ForkRecord, Header,
    Kind, PathRecord, Record, SegmentRecord, SyscallRecord, WIRE_VERSION, exec_flags,
};

/// One record from the kernel (or from a trace file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Syscall(SyscallRecord),
    Fork(ForkRecord),
    Exec(Exec),
    Exit(ExitRecord),
    Path(PathArg),
    Segment(SegmentRecord),
    /// A call a seccomp filter answered before phasebox could see it enter.
    Filtered(FilteredRecord),
    /// The recorded arguments of a call (`call_args`).
    Args(ArgsRecord),
}

/// The path argument of a syscall; the syscall's record (or segment opener) with the same tid
/// and entry time follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathArg {
    pub tgid: u32,
    pub tid: u32,
    pub nr: u32,
    pub enter_ns: u64,
    pub path: String,
}

/// An exec with its strings decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The process was not tracked before this exec (`--exec-name`, `--container`).
    pub new_root: bool,
    /// How the kernel found it (`exec_flags::BY_*`; 0 when it was tracked already).
    pub found_by: u16,
    pub tgid: u32,
    pub tid: u32,
    pub old_tid: u32,
    pub ts_ns: u64,
    pub comm: String,
    pub filename: String,
}

/// Why a record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than a record header")]
    Short(usize),
    #[error("record kind {0} is unknown to this phasebox (wire version {WIRE_VERSION})")]
    UnknownKind(u16),
    #[error("record of kind {kind:?} has {got} bytes, expected {want}")]
    Length { kind: Kind, got: usize, want: usize },
    #[error("a batch of calls is split into its calls before it is decoded")]
    Batch,
    #[error("a batch says it holds {count} calls (at most {BATCH_LEN}) in {len} bytes")]
    BatchLength { count: usize, len: usize },
}

/// Size of the record of `kind`.
pub fn record_len(kind: Kind) -> usize {
    match kind {
        Kind::Syscall => size_of::<SyscallRecord>(),
        Kind::Fork => size_of::<ForkRecord>(),
        Kind::Exec => size_of::<ExecRecord>(),
        Kind::Exit => size_of::<ExitRecord>(),
        Kind::Path => size_of::<PathRecord>(),
        Kind::Segment => size_of::<SegmentRecord>(),
        Kind::Filtered => size_of::<FilteredRecord>(),
        Kind::Args => size_of::<ArgsRecord>(),
        // Never in a trace file: its header alone, so that decoding it fails cleanly.
        Kind::Batch => BatchRecord::HEAD,
    }
}

/// The syscall records of a batch (`Kind::Batch`), each as its own bytes; any other record is
/// itself. Err when a batch's length does not match its count.
pub fn split(bytes: &[u8]) -> Result<std::slice::ChunksExact<'_, u8>, DecodeError> {
    if peek_header(bytes)?.kind != Kind::Batch as u16 {
        return Ok(bytes.chunks_exact(bytes.len().max(1)));
    }
    let count = bytes
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u32::from_ne_bytes(b) as usize);
    if count > BATCH_LEN || bytes.len() != BatchRecord::wire_len(count) {
        let len = bytes.len();
        return Err(DecodeError::BatchLength { count, len });
    }
    Ok(bytes[BatchRecord::HEAD..].chunks_exact(size_of::<SyscallRecord>()))
}

/// The header of the record starting at `bytes`.
pub fn peek_header(bytes: &[u8]) -> Result<Header, DecodeError> {
    let head = bytes
        .first_chunk::<8>()
        .ok_or(DecodeError::Short(bytes.len()))?;
    let [k0, k1, f0, f1, t0, t1, t2, t3] = *head;
    Ok(Header {
        kind: u16::from_ne_bytes([k0, k1]),
        flags: u16::from_ne_bytes([f0, f1]),
        tgid: u32::from_ne_bytes([t0, t1, t2, t3]),
    })
}

/// The kind of the record starting at `bytes`.
pub fn peek_kind(bytes: &[u8]) -> Result<Kind, DecodeError> {
    let kind = peek_header(bytes)?.kind;
    Kind::from_u16(kind).ok_or(DecodeError::UnknownKind(kind))
}

/// Reads a whole record of type `R` from exactly its bytes.
pub fn read<R: Record>(bytes: &[u8]) -> Result<R, DecodeError> {
    if bytes.len() != size_of::<R>() {
        return Err(DecodeError::Length {
            kind: R::KIND,
            got: bytes.len(),
            want: size_of::<R>(),
        });
    }
    // SAFETY: the length is checked, and `Record` guarantees a layout without padding that is
    // valid for any bytes.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<R>()) })
}

/// Decodes one whole record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    Ok(match peek_kind(bytes)? {
        Kind::Syscall => Event::Syscall(read(bytes)?),
        Kind::Fork => Event::Fork(read(bytes)?),
        Kind::Exit => Event::Exit(read(bytes)?),
        Kind::Segment => Event::Segment(read(bytes)?),
        Kind::Filtered => Event::Filtered(read(bytes)?),
        Kind::Args => Event::Args(read(bytes)?),
        Kind::Batch => return Err(DecodeError::Batch),
        Kind::Exec => {
            let r: ExecRecord = read(bytes)?;
            Event::Exec(Exec {
                new_root: r.header.flags & exec_flags::NEW_ROOT != 0,
                found_by: r.header.flags & !exec_flags::NEW_ROOT,
                tgid: r.header.tgid,
                tid: r.tid,
                old_tid: r.old_tid,
                ts_ns: r.ts_ns,
                comm: c_string(&r.comm),
                filename: c_string(&r.filename),
            })
        }
        Kind::Path => {
            let r: PathRecord = read(bytes)?;
            Event::Path(PathArg {
                tgid: r.header.tgid,
                tid: r.tid,
                nr: r.nr,
                enter_ns: r.enter_ns,
                path: c_string(&r.path),
            })
        }
    })
}

/// The bytes of a record, as the kernel wrote it.
pub fn as_bytes<R: Record>(rec: &R) -> &[u8] {
    // SAFETY: `Record` guarantees a layout without padding, so every byte is initialized.
    unsafe { std::slice::from_raw_parts((rec as *const R).cast::<u8>(), size_of::<R>()) }
}

/// A NUL-terminated byte string as text (lossy).
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Event {
    /// The process the event belongs to.
    pub fn tgid(&self) -> u32 {
        match self {
            Event::Syscall(r) => r.header.tgid,
            Event::Fork(r) => r.header.tgid,
            Event::Exec(e) => e.tgid,
            Event::Exit(r) => r.header.tgid,
            Event::Path(p) => p.tgid,
            Event::Segment(s) => s.header.tgid,
            Event::Filtered(f) => f.header.tgid,
            Event::Args(a) => a.header.tgid,
        }
    }

    /// Kernel monotonic time of the event.
    pub fn ts_ns(&self) -> u64 {
        match self {
            Event::Syscall(r) => r.enter_ns,
            Event::Fork(r) => r.ts_ns,
            Event::Exec(e) => e.ts_ns,
            Event::Exit(r) => r.ts_ns,
            Event::Path(p) => p.enter_ns,
            Event::Segment(s) => s.ts_ns,
            Event::Filtered(f) => f.ts_ns,
            Event::Args(a) => a.enter_ns,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use phasebox_common::{COMM_LEN, EXEC_PATH_LEN};

    pub fn exec_record(tgid: u32, comm: &str, path: &str, ts_ns: u64) -> ExecRecord {
        let mut r = ExecRecord {
            header: Header::of::<ExecRecord>(0, tgid),
            tid: tgid,
            old_tid: tgid,
            ts_ns,
            comm: [0; COMM_LEN],
            filename: [0; EXEC_PATH_LEN],
        };
        r.comm[..comm.len()].copy_from_slice(comm.as_bytes());
        r.filename[..path.len()].copy_from_slice(path.as_bytes());
        r
    }

    #[test]
    fn decodes_each_kind() {
        let sys = SyscallRecord {
            header: Header::of::<SyscallRecord>(0, 7),
            tid: 8,
            nr: 257,
            instance: 3,
            seg: 2,
            enter_ns: 10,
            duration_ns: 5,
            ret: -2,
        };
        assert_eq!(decode(as_bytes(&sys)), Ok(Event::Syscall(sys)));

        let exec = exec_record(7, "pwd", "/usr/bin/pwd", 3);
        match decode(as_bytes(&exec)).unwrap() {
            Event::Exec(e) => {
                assert_eq!(
                    (e.comm.as_str(), e.filename.as_str()),
                    ("pwd", "/usr/bin/pwd")
                );
                assert_eq!(e.tgid, 7);
            }
            other => panic!("decoded as {other:?}"),
        }
        let exit = ExitRecord {
            header: Header::of::<ExitRecord>(0, 7),
            tid: 9,
            group_dead: 1,
            ts_ns: 99,
        };
        assert_eq!(decode(as_bytes(&exit)).unwrap().ts_ns(), 99);
    }

    #[test]
    fn a_batch_splits_into_its_calls_and_other_records_stay_whole() {
        let call = |i: u32| SyscallRecord {
            header: Header::of::<SyscallRecord>(0, 7),
            tid: 8,
            nr: i,
            enter_ns: u64::from(i) * 10,
            ..SyscallRecord::default()
        };
        let mut batch = BatchRecord {
            header: Header::of::<BatchRecord>(0, 7),
            count: 3,
            _pad: 0,
            calls: [call(1), call(2), call(3), call(99)],
        };
        let wire = &as_bytes(&batch)[..BatchRecord::wire_len(3)];
        let calls: Vec<Event> = split(wire).unwrap().map(|b| decode(b).unwrap()).collect();
        assert_eq!(calls, [1, 2, 3].map(|i| Event::Syscall(call(i))));
        // A batch is never an event by itself.
        assert_eq!(decode(wire), Err(DecodeError::Batch));
        // Other records pass through whole.
        let five = call(5);
        let one: Vec<&[u8]> = split(as_bytes(&five)).unwrap().collect();
        assert_eq!(one, [as_bytes(&five)]);
        // A count the bytes do not hold, or above the batch's size, is refused.
        assert!(split(&as_bytes(&batch)[..BatchRecord::wire_len(2)]).is_err());
        batch.count = BATCH_LEN as u32 + 1;
        assert!(split(as_bytes(&batch)).is_err());
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(decode(&[1, 0]), Err(DecodeError::Short(2)));
        let mut bytes = [0u8; 40];
        bytes[0] = 99;
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownKind(99)));
        bytes[0] = Kind::Fork as u8;
        assert!(matches!(decode(&bytes), Err(DecodeError::Length { .. })));
    }
}
