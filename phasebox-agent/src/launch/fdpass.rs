//! Passing a file descriptor over a unix socket (SCM_RIGHTS): the launched child sends its
//! seccomp notification listener up to phasebox.
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Sends `fd` over `sock`. Async-signal-safe: the control buffer is on the stack, nothing is
/// allocated (the child calls it between fork and exec).
pub(super) fn send(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return;
    }
    let _ = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&[0])],
        &mut control,
        SendFlags::empty(),
    );
}

/// Receives a descriptor sent with `send`; None when the peer closed first.
pub(super) fn recv(sock: BorrowedFd<'_>) -> Option<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .ok()?;
    if got.bytes == 0 {
        return None;
    }
    control.drain().find_map(|msg| match msg {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    })
}
