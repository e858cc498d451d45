//! Why a trace file cannot be read.
use std::io;

use super::{FORMAT_VERSION, OLDEST_WIRE_VERSION};
use crate::event::DecodeError;
use crate::file_error::FileError;
use crate::sysnames::{self, describe_io};

/// Why a trace file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{origin} is not a valid phasebox trace file")]
    Damaged {
        origin: String,
        #[source]
        damage: Damage,
    },
    #[error(
        "{origin} has trace format {format} with records of version {wire}; this phasebox reads \
         format {FORMAT_VERSION} with records of versions {OLDEST_WIRE_VERSION} to {}",
        phasebox_common::WIRE_VERSION
    )]
    Version {
        origin: String,
        format: u32,
        wire: u32,
    },
    #[error(
        "{origin} is a trace of {arch:?} programs; this phasebox is built for {} and reads {} traces only",
        sysnames::ARCH,
        sysnames::ARCH
    )]
    Arch { origin: String, arch: String },
}

/// What is wrong inside a trace file.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("it does not start with the trace magic")]
    NoMagic,
    /// The header or the footer ends early.
    #[error("the {0} is cut short")]
    BlockCut(&'static str),
    #[error("the {what} claims {len} bytes")]
    BlockTooLong { what: &'static str, len: u64 },
    #[error("the {what} cannot be read: {}", describe_io(.err))]
    Unreadable { what: &'static str, err: io::Error },
    #[error("its header is malformed")]
    Header(#[source] serde_json::Error),
    #[error("its footer is malformed")]
    Footer(#[source] serde_json::Error),
    #[error("it ends after {0} records without its footer")]
    NoFooter(u64),
    #[error("it goes on after its footer")]
    AfterFooter,
    #[error("record {0} is cut short")]
    RecordCut(u64),
    #[error("record {n}")]
    Record {
        n: u64,
        #[source]
        source: DecodeError,
    },
    #[error("it does not end with its footer (it is cut short, or goes on after it)")]
    FooterNotAtEnd,
}
