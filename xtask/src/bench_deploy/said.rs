//! What was said about a profile before deployment (`export` and `profile show` warnings,
//! the hybrid review, `validate`), and whether it named what later failed.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use super::stage::{Ctx, Stage};

/// `phasebox ARGS`: its exit status and everything it printed.
pub fn phasebox(ctx: &Ctx, args: &[&str]) -> (bool, String) {
    match Command::new(ctx.bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// The warning blocks of phasebox's output: `phasebox: warning:` lines and the indented
/// lines that follow them.
fn warning_blocks(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for l in text.lines() {
        inside = l.starts_with("phasebox: warning:") || (inside && l.starts_with(' '));
        if inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The calls the hybrid review lists: the lines after its `review:` header.
fn review_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip_while(|l| !l.contains("review: "))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Whether `text` has `word` as a whole word.
fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == word)
}

/// What was said about a profile before deployment.
pub struct Said {
    /// `export` and `profile show` warnings.
    pub warnings: String,
    /// Calls the hybrid review lists.
    pub review: BTreeSet<String>,
    /// Whether the export was written, or why not.
    pub export: Result<(), String>,
}

/// Exports `profile` with `export_args` and gathers the warnings of the export, of
/// `profile show`, and the hybrid review against the static profile `static_json`.
pub fn before_deployment(
    ctx: &Ctx,
    profile: &Path,
    export_args: &[&str],
    static_json: &Path,
) -> Said {
    let p = profile.to_str().expect("UTF-8 path");
    let mut args = vec!["export", p];
    args.extend_from_slice(export_args);
    let (ok, exported) = phasebox(ctx, &args);
    let (_, shown) = phasebox(ctx, &["profile", "show", p]);
    let hybrid = profile.with_extension("hybrid.json");
    let s = static_json.to_str().expect("UTF-8 path");
    let h = hybrid.to_str().expect("UTF-8 path");
    let (_, reviewed) = phasebox(ctx, &["export", p, "--hybrid", s, "-o", h]);
    Said {
        warnings: warning_blocks(&exported) + &warning_blocks(&shown),
        review: review_names(&reviewed),
        export: if ok {
            Ok(())
        } else {
            Err(exported
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
                .to_string())
        },
    }
}

/// The calls a stage's phasebox reported denied: `validate`'s `denied: NAME×N …` lines and
/// phase-aware enforcement's `… denied N calls made after serving began: NAME×N …`.
pub fn denied(stage: &Stage) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in stage.output.lines() {
        if let Some(rest) = l.strip_prefix("denied: ") {
            out.extend(rest.split('×').next().map(str::to_string));
        }
        if let Some((_, rest)) = l.split_once("after serving began: ") {
            let list = rest.split(" (first:").next().unwrap_or_default();
            out.extend(
                list.split_whitespace()
                    .filter_map(|w| w.split('×').next())
                    .map(str::to_string),
            );
        }
    }
    out
}

/// The operations the warnings say were never seen (`no reload seen`).
fn unseen_operations(warnings: &str) -> Vec<String> {
    warnings
        .lines()
        .filter_map(|l| l.strip_prefix("phasebox: warning: no "))
        .filter_map(|l| l.split(" seen").next())
        .map(str::to_string)
        .collect()
}

/// Whether and how a failed operation `op` was named before deployment: the calls denied
/// when it failed (`denied`, from validate and phase-aware enforcement) that a warning or the
/// hybrid review named, an operation the warnings said was never seen, and whether validate
/// (`checked`, the same operations under the same profile) failed it too.
pub fn naming(op: &str, denied: &BTreeSet<String>, said: &Said, checked: Option<&Stage>) -> String {
    let mut by = Vec::new();
    let warned: Vec<&str> = denied
        .iter()
        .filter(|c| has_word(&said.warnings, c))
        .map(String::as_str)
        .collect();
    if !warned.is_empty() {
        by.push(format!("warning ({})", warned.join(", ")));
    }
    if let Some(o) = unseen_operations(&said.warnings)
        .into_iter()
        .find(|o| op.contains(o.as_str()))
    {
        by.push(format!("warning (no {o} seen)"));
    }
    let reviewed: Vec<&str> = denied
        .iter()
        .filter(|c| said.review.contains(*c))
        .map(String::as_str)
        .collect();
    if !reviewed.is_empty() {
        by.push(format!("hybrid review ({})", reviewed.join(", ")));
    }
    if let Some(v) = checked.filter(|v| v.failed.iter().any(|(o, _)| o == op)) {
        let calls: Vec<String> = self::denied(v).into_iter().collect();
        by.push(format!(
            "validate (failed there too; denied {})",
            calls.join(", ")
        ));
    }
    if by.is_empty() {
        "not named".into()
    } else {
        by.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(output: &str, failed: &[&str]) -> Stage {
        Stage {
            output: output.into(),
            failed: failed
                .iter()
                .map(|o| (o.to_string(), "why".into()))
                .collect(),
            ..Stage::default()
        }
    }

    #[test]
    fn reads_the_calls_validate_and_phase_aware_enforcement_denied() {
        let out = "fail: `redis-server x` exited with 137 under a filter of 55 x86_64 syscalls; 4 calls denied\n\
                   denied: lseek×1 in role main, phase config (pid 7)\n\
                   denied: sync_file_range×3 in role main-child, phase work (pid 9)\n\
                   phasebox: phase-aware seccomp denied 3 calls made after serving began: setsockopt×2 brk×1 (first: setsockopt by pid 12)\n";
        let got: Vec<String> = denied(&stage(out, &[])).into_iter().collect();
        assert_eq!(got, ["brk", "lseek", "setsockopt", "sync_file_range"]);
    }

    #[test]
    fn names_a_failure_by_warning_review_unseen_operation_and_validate() {
        let text = "phasebox: note: nothing\n\
                    phasebox: warning: 83 calls that redis-server's code can reach …:\n\
                    \x20 persistence (data flushed to disk and renamed into place):\n\
                    \x20   sync_file_range    *redis-server:sub_ed010 -> libc:sync_file_range\n\
                    phasebox: --for-runtime docker added capget, lseek\n\
                    phasebox: warning: no reload seen (the master re-reads …): learn through a reload too\n";
        let said = Said {
            warnings: warning_blocks(text),
            review: review_names(
                "phasebox: review: 2 calls reachable …:\n  lseek  a -> b\n  sync_file_range  c\nafter\n",
            ),
            export: Ok(()),
        };
        assert!(!said.warnings.contains("capget"), "{}", said.warnings);
        let denied: BTreeSet<String> = ["lseek", "sync_file_range"].map(String::from).into();
        let checked = stage(
            "denied: sync_file_range×1 in role main, phase work (pid 3)\n",
            &["BGSAVE"],
        );
        assert_eq!(
            naming("BGSAVE", &denied, &said, Some(&checked)),
            "warning (sync_file_range); hybrid review (lseek, sync_file_range); \
             validate (failed there too; denied sync_file_range)"
        );
        let none = BTreeSet::new();
        assert_eq!(
            naming("reload (SIGHUP)", &none, &said, None),
            "warning (no reload seen)"
        );
        assert_eq!(naming("load", &none, &said, Some(&checked)), "not named");
    }
}
