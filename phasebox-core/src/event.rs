//! Decoding of the kernel's wire records into typed events.
use phasebox_common::{
    ExecRecord, ExitRecord, ForkRecord, Header, PathRecord, SyscallRecord, WIRE_VERSION, kind,
};

/// One record from the kernel (or from a trace file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Syscall(SyscallRecord),
    Fork(ForkRecord),
    Exec(Exec),
    Exit(ExitRecord),
    Path(PathArg),
}

/// The path argument of a syscall; the syscall's record with the same tid and `enter_ns`
/// follows it.
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
    /// The process was not tracked before this exec (`--exec-name`).
    pub new_root: bool,
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
    #[error("record of kind {kind} has {got} bytes, expected {want}")]
    Length { kind: u16, got: usize, want: usize },
}

/// Size of the record of `kind`, or None for an unknown kind.
pub fn record_len(kind: u16) -> Option<usize> {
    Some(match kind {
        kind::SYSCALL => size_of::<SyscallRecord>(),
        kind::FORK => size_of::<ForkRecord>(),
        kind::EXEC => size_of::<ExecRecord>(),
        kind::EXIT => size_of::<ExitRecord>(),
        kind::PATH => size_of::<PathRecord>(),
        _ => return None,
    })
}

/// The kind of the record starting at `bytes`.
pub fn peek_kind(bytes: &[u8]) -> Result<u16, DecodeError> {
    if bytes.len() < size_of::<Header>() {
        return Err(DecodeError::Short(bytes.len()));
    }
    Ok(u16::from_ne_bytes([bytes[0], bytes[1]]))
}

fn read<T: Copy>(bytes: &[u8], kind: u16) -> Result<T, DecodeError> {
    if bytes.len() != size_of::<T>() {
        return Err(DecodeError::Length {
            kind,
            got: bytes.len(),
            want: size_of::<T>(),
        });
    }
    // SAFETY: length checked; T is a repr(C) struct of plain integers, valid for any bytes.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one whole record.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let kind = peek_kind(bytes)?;
    Ok(match kind {
        kind::SYSCALL => Event::Syscall(read(bytes, kind)?),
        kind::FORK => Event::Fork(read(bytes, kind)?),
        kind::EXIT => Event::Exit(read(bytes, kind)?),
        kind::EXEC => {
            let r: ExecRecord = read(bytes, kind)?;
            Event::Exec(Exec {
                new_root: r.header.flags & phasebox_common::exec_flags::NEW_ROOT != 0,
                tgid: r.header.tgid,
                tid: r.tid,
                old_tid: r.old_tid,
                ts_ns: r.ts_ns,
                comm: c_string(&r.comm),
                filename: c_string(&r.filename),
            })
        }
        kind::PATH => {
            let r: PathRecord = read(bytes, kind)?;
            Event::Path(PathArg {
                tgid: r.header.tgid,
                tid: r.tid,
                nr: r.nr,
                enter_ns: r.enter_ns,
                path: c_string(&r.path),
            })
        }
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// The bytes of a plain-old-data record, as the kernel wrote them.
pub fn as_bytes<T: Copy>(rec: &T) -> &[u8] {
    // SAFETY: T is a repr(C) wire record without implicit padding (checked in phasebox-common).
    unsafe { std::slice::from_raw_parts((rec as *const T).cast::<u8>(), size_of::<T>()) }
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
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use phasebox_common::{COMM_LEN, EXEC_PATH_LEN};

    pub fn exec_record(tgid: u32, comm: &str, path: &str, ts_ns: u64) -> ExecRecord {
        let mut r = ExecRecord {
            header: Header {
                kind: kind::EXEC,
                flags: 0,
                tgid,
            },
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
            header: Header {
                kind: kind::SYSCALL,
                flags: 0,
                tgid: 7,
            },
            tid: 8,
            nr: 257,
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
            header: Header {
                kind: kind::EXIT,
                flags: 0,
                tgid: 7,
            },
            tid: 9,
            group_dead: 1,
            ts_ns: 99,
        };
        assert_eq!(decode(as_bytes(&exit)).unwrap().ts_ns(), 99);
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(decode(&[1, 0]), Err(DecodeError::Short(2)));
        let mut bytes = [0u8; 40];
        bytes[0] = 99;
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownKind(99)));
        bytes[0] = kind::FORK as u8;
        assert!(matches!(decode(&bytes), Err(DecodeError::Length { .. })));
    }
}
