//! Seccomp user notifications: the kernel asks phasebox about some calls and waits for the
//! answer. Decisions use only the syscall number, its scalar arguments (registers, copied by
//! the kernel) and what phasebox knows (the process's phase), never the target's memory, so
//! there is no time-of-check/time-of-use race.
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};

use phasebox_core::{call_args, sysnames};

/// What to do with a notified call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Fail it with this errno.
    Deny(i32),
    /// Kill the calling process, as a `SCMP_ACT_KILL_PROCESS` rule does (with SIGKILL,
    /// which the program cannot ignore).
    Kill,
}

/// A call phasebox denied.
#[derive(Clone, Debug, PartialEq)]
pub struct Denial {
    pub pid: u32,
    /// The call with its recorded arguments (`openat(O_WRONLY|O_CREAT)`), or its name.
    pub call: String,
    /// Seconds since the supervisor started.
    pub after_s: f64,
}

/// Answers notifications on `fd` with `decide(pid, syscall number, arguments)` until every
/// process under the filter is gone or `stop` is set; returns the denials.
pub fn supervise(
    fd: OwnedFd,
    stop: Arc<AtomicBool>,
    decide: impl Fn(u32, u32, &[u64; 6]) -> Verdict + Send + 'static,
) -> JoinHandle<Vec<Denial>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut denials = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, 100) };
            if n <= 0 {
                continue;
            }
            if pfd.revents & libc::POLLIN == 0 {
                break; // POLLHUP: no process uses the filter any more
            }
            let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else {
                continue;
            };
            let nr = i32::from(req.data.syscall) as u32;
            let resp = match decide(req.pid, nr, &req.data.args) {
                Verdict::Allow => ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty()),
                verdict => {
                    denials.push(Denial {
                        pid: req.pid,
                        call: call_args::describe_raw(&sysnames::name(nr), &req.data.args),
                        after_s: start.elapsed().as_secs_f64(),
                    });
                    let errno = match verdict {
                        Verdict::Deny(errno) => errno,
                        _ => {
                            // SAFETY: signals the process that made the call (a thread id
                            // names its whole process for kill).
                            unsafe { libc::kill(req.pid as i32, libc::SIGKILL) };
                            libc::EPERM
                        }
                    };
                    ScmpNotifResp::new_error(req.id, -errno, ScmpNotifRespFlags::empty())
                }
            };
            // The process may be gone already (killed meanwhile): nothing to answer then.
            let _ = resp.respond(fd.as_raw_fd());
        }
        denials
    })
}
