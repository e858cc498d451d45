//! The hybrid profile's review section: the calls static analysis finds reachable that no
//! traced run used, each with where it is reachable from, and which of them the user chose
//! to allow. It shows what a dynamic profile may be missing before it goes to production.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::static_section::StaticSection;
use super::{Profile, ProfileError, SyscallUse, sections, unseen};
use crate::{display, file_error::FileError};

/// The key under which the section is stored.
pub const KEY: &str = "review";

/// Why a review cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{static_origin} analyzes {static_program}, but the profile is of {program}")]
    OtherProgram {
        static_origin: String,
        static_program: String,
        program: String,
    },
    #[error("--allow-reachable {name}: {static_origin} does not find {name} reachable")]
    NotReachable { name: String, static_origin: String },
}

/// One call to review.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewCall {
    pub name: String,
    /// The short chain, such as `nginx:ngx_create_paths -> libc:chown`.
    pub reachable_from: String,
    /// The whole chain from an entry point.
    pub chain: Vec<String>,
    /// How the analysis knew the number.
    pub how: String,
    /// Added to every phase of the exported policy (`--allow-reachable`).
    pub allowed: bool,
}

/// The section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// The static profile it came from.
    pub static_profile: String,
    pub calls: Vec<ReviewCall>,
}

/// The review of `dynamic` against a static analysis of the same program, most likely needed
/// first (ranked as [`unseen::rank`] says); `allow` names calls of the review to add. A name in
/// `allow` the analysis did not find reachable is an error (allowing it would be a guess, not a
/// review).
pub fn build(
    dynamic: &Profile,
    analysis: &StaticSection,
    static_program: &str,
    static_origin: &str,
    allow: &[String],
) -> Result<Review, ReviewError> {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    if base(&dynamic.program.path) != base(static_program) {
        return Err(ReviewError::OtherProgram {
            static_origin: static_origin.to_string(),
            static_program: static_program.to_string(),
            program: dynamic.program.path.clone(),
        });
    }
    let used: BTreeSet<&str> = dynamic.roles.iter().flat_map(|r| r.union()).collect();
    if let Some(a) = allow
        .iter()
        .find(|a| !analysis.reachable_from.contains_key(*a))
    {
        return Err(ReviewError::NotReachable {
            name: a.clone(),
            static_origin: static_origin.to_string(),
        });
    }
    let program = unseen::object_name(static_program);
    let mut ranked: Vec<(unseen::Rank, ReviewCall)> = analysis
        .reachable_from
        .iter()
        .filter(|(name, _)| !used.contains(name.as_str()))
        .map(|(name, r)| {
            let rank = unseen::rank(&r.chain, &program, 1 + r.also.len());
            let call = ReviewCall {
                name: name.clone(),
                reachable_from: r.short(&program),
                chain: r.chain.clone(),
                how: r.how.clone(),
                allowed: allow.contains(name),
            };
            (rank, call)
        })
        .collect();
    // Most likely needed first, as the operations coverage ranks them.
    ranked.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
    let calls = ranked.into_iter().map(|(_, c)| c).collect();
    Ok(Review {
        static_profile: static_origin.to_string(),
        calls,
    })
}

/// `dynamic` with the allowed review calls added to every phase of every role.
pub fn with_allowed(dynamic: &Profile, review: &Review) -> Profile {
    let mut p = dynamic.clone();
    for role in &mut p.roles {
        for ph in &mut role.phases {
            for c in review.calls.iter().filter(|c| c.allowed) {
                ph.syscalls
                    .entry(c.name.clone())
                    .or_insert_with(SyscallUse::default);
            }
        }
    }
    p
}

/// The review as text: a line per call, allowed ones marked.
pub fn render(r: &Review) -> String {
    let mut out = String::new();
    let allowed = r.calls.iter().filter(|c| c.allowed).count();
    let _ = writeln!(
        out,
        "review: {} call{} reachable according to {} that no run used ({} allowed with --allow-reachable):",
        r.calls.len(),
        if r.calls.len() == 1 { "" } else { "s" },
        display::text(&r.static_profile),
        allowed
    );
    let names: Vec<_> = r.calls.iter().map(|c| display::text(&c.name)).collect();
    let width = display::column(names.iter().map(AsRef::as_ref), 0);
    for (c, name) in r.calls.iter().zip(&names) {
        let _ = writeln!(
            out,
            "  {name:<width$}  {}{}",
            display::text(&c.reachable_from),
            if c.allowed { "  [allowed]" } else { "" }
        );
    }
    out
}

/// Writes the hybrid profile: `profile` with the review section, atomically.
pub fn save(profile: &Profile, review: &Review, path: &Path) -> Result<(), FileError> {
    let value = serde_json::to_value(review).expect("review serializes");
    sections::save(profile, &[(KEY, value)], path)
}

/// Reads a profile and its review section, if it has one.
pub fn load(path: &Path) -> Result<(Profile, Option<Review>), ProfileError> {
    sections::load(path, KEY)
}

#[cfg(test)]
mod tests {
    use super::super::static_section::Reach;
    use super::super::tests::sample;
    use super::*;

    fn analysis(names: &[(&str, &[&str])]) -> StaticSection {
        let mut s = StaticSection::default();
        for (n, chain) in names {
            s.reachable_from.insert(
                n.to_string(),
                Reach {
                    chain: chain.iter().map(|c| c.to_string()).collect(),
                    how: "syscall instruction".into(),
                    ..Reach::default()
                },
            );
        }
        s
    }

    #[test]
    fn reachable_but_unused_calls_with_their_chains() {
        let dynamic = sample(&[
            ("master", &[("init", &["read", "setuid"])]),
            ("worker", &[("serving", &["accept4", "read"])]),
        ]);
        let s = analysis(&[
            ("read", &["nginx:main", "libc:read"]),
            ("accept4", &["nginx:main", "libc:accept4"]),
            ("setuid", &["nginx:main", "libc:setuid"]),
            (
                "chown",
                &[
                    "nginx:_start",
                    "*nginx:main",
                    "nginx:ngx_reopen_files",
                    "libc:chown",
                ],
            ),
            ("setsid", &["nginx:main", "nginx:ngx_daemon", "libc:setsid"]),
        ]);
        let r = build(
            &dynamic,
            &s,
            "/usr/sbin/nginx",
            "n.static.json",
            &["chown".into()],
        )
        .unwrap();
        let names: Vec<&str> = r.calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["chown", "setsid"]);
        assert_eq!(
            r.calls[0].reachable_from,
            "nginx:ngx_reopen_files -> libc:chown"
        );
        assert!(r.calls[0].allowed && !r.calls[1].allowed);
        let text = render(&r);
        assert!(
            text.starts_with("review: 2 calls reachable according to n.static.json"),
            "{text}"
        );
        assert!(
            text.contains("chown   nginx:ngx_reopen_files -> libc:chown  [allowed]"),
            "{text}"
        );
        // Allowed calls join every phase; the others do not.
        let p = with_allowed(&dynamic, &r);
        for role in &p.roles {
            for ph in &role.phases {
                assert!(ph.syscalls.contains_key("chown"));
                assert!(!ph.syscalls.contains_key("setsid"));
            }
        }
        // Round trip beside the profile.
        let dir = std::env::temp_dir().join(format!("pb-review-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.json");
        save(&p, &r, &path).unwrap();
        assert_eq!(load(&path).unwrap(), (p, Some(r)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_guesses_and_other_programs() {
        let dynamic = sample(&[("worker", &[("serving", &["read"])])]);
        let s = analysis(&[("read", &["nginx:main", "libc:read"])]);
        let e = build(
            &dynamic,
            &s,
            "/usr/sbin/nginx",
            "n.json",
            &["reboot".into()],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "--allow-reachable reboot: n.json does not find reboot reachable"
        );
        let e = build(&dynamic, &s, "/bin/pwd", "p.json", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.json analyzes /bin/pwd, but the profile is of /usr/sbin/nginx"),
            "{e}"
        );
    }
}
