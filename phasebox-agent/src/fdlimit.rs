//! The agent's open-files limit. Systemd and many container runtimes start services with a
//! soft RLIMIT_NOFILE of 1,024 and a much higher hard limit; the agent raises its soft limit to
//! the hard one at start-up, as Go programs do, so that its /proc reads, its outputs and the
//! metrics server never compete for a thousand descriptors. It starts no programs that would
//! inherit the raised limit.
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft open-files limit to the hard limit; logs (once, as it is called once) when
/// it cannot. Returns the soft limit in force afterwards (None: unlimited).
pub fn raise() -> Option<u64> {
    let now = getrlimit(Resource::Nofile);
    let Some(wanted) = raised(&now) else {
        return now.current;
    };
    let to = wanted.current;
    match setrlimit(Resource::Nofile, wanted) {
        Ok(()) => to,
        Err(e) => {
            log::warn!(
                "cannot raise the open-files limit from {} to {}: {}",
                shown(now.current),
                shown(now.maximum),
                phasebox_core::sysnames::describe_io(&e.into())
            );
            now.current
        }
    }
}

/// The limit to ask for: the soft limit at the hard one, or None when it is there already.
fn raised(now: &Rlimit) -> Option<Rlimit> {
    let below = match (now.current, now.maximum) {
        (_, None) => now.current.is_some(),
        (Some(soft), Some(hard)) => soft < hard,
        (None, Some(_)) => false,
    };
    below.then_some(Rlimit {
        current: now.maximum,
        maximum: now.maximum,
    })
}

fn shown(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(current: Option<u64>, maximum: Option<u64>) -> Rlimit {
        Rlimit { current, maximum }
    }

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one() {
        let up = raised(&limit(Some(1024), Some(524288))).unwrap();
        assert_eq!((up.current, up.maximum), (Some(524288), Some(524288)));
        assert!(raised(&limit(Some(1024), Some(1024))).is_none());
        assert!(raised(&limit(None, None)).is_none());
        let up = raised(&limit(Some(1024), None)).unwrap();
        assert_eq!(up.current, None);
    }

    #[test]
    fn raising_leaves_a_limit_at_least_as_high() {
        let before = getrlimit(Resource::Nofile).current;
        let after = raise();
        assert!(after.unwrap_or(u64::MAX) >= before.unwrap_or(u64::MAX));
        assert_eq!(getrlimit(Resource::Nofile).current, after);
    }
}
