//! The profile as the poster's table: per role, a row per phase with its syscalls.
use std::fmt::Write as _;

use super::{Profile, Role};
use crate::display;

/// An errno by name (`ENOSYS`), or its number when the table has none.
pub fn errno_name(errno: u32) -> String {
    i32::try_from(errno)
        .ok()
        .and_then(|e| syscalls::Errno::new(e).name())
        .map_or(errno.to_string(), str::to_string)
}

/// The profile as text: its program and runs, then a table per role. Every name is printed
/// through [`display::text`]: a profile is a file anyone may have written.
pub fn render(p: &Profile) -> String {
    let mut out = String::new();
    header(&mut out, p);
    for role in &p.roles {
        role_table(&mut out, role);
    }
    out
}

/// The program, where it was learned, how complete it is, its notes and its operations.
fn header(out: &mut String, p: &Profile) {
    let state = if p.complete {
        "complete".to_string()
    } else {
        format!("incomplete: {}", display::join(&p.incomplete_reasons, "; "))
    };
    let _ = writeln!(
        out,
        "{} ({}), {} on {}, {} run{}, {}",
        display::text(&p.program.path),
        display::text(&p.program.comm),
        display::text(&p.arch),
        display::text(&p.kernel_release),
        p.runs.len(),
        if p.runs.len() == 1 { "" } else { "s" },
        state
    );
    for note in &p.notes {
        let _ = writeln!(out, "note: {}", display::text(note));
    }
    if let Some(ops) = super::operations::recognize(p) {
        let marks: Vec<String> = ops
            .known
            .iter()
            .map(|k| {
                let seen = if ops.seen.contains(k) {
                    "seen"
                } else {
                    "NOT seen"
                };
                format!("{} {seen}", display::text(k))
            })
            .collect();
        let _ = writeln!(
            out,
            "operations ({} rules): {}",
            display::text(&ops.rules),
            marks.join(", ")
        );
    }
}

/// A role's table: a row per phase with its syscalls, and the calls a filter denied.
fn role_table(out: &mut String, role: &Role) {
    let union = role.union();
    let _ = writeln!(
        out,
        "\nrole {} ({} process{}, {} syscalls in all)",
        display::text(&role.name),
        role.processes,
        if role.processes == 1 { "" } else { "es" },
        union.len()
    );
    let names: Vec<_> = role
        .phases
        .iter()
        .map(|ph| display::text(&ph.name))
        .collect();
    let width = display::column(names.iter().map(AsRef::as_ref), 5);
    let _ = writeln!(out, "  {:<width$}  {:>5}  syscalls", "phase", "count");
    for (ph, name) in role.phases.iter().zip(&names) {
        let calls: Vec<&str> = ph.names().collect();
        let _ = writeln!(
            out,
            "  {name:<width$}  {:>5}  {}",
            calls.len(),
            display::join(&calls, ", ")
        );
        let restricted = ph.argument_restrictions();
        if !restricted.is_empty() {
            let _ = writeln!(
                out,
                "  {:<width$}         arguments: {}",
                "",
                display::text(&restricted.join("; "))
            );
        }
        if !ph.filtered.is_empty() {
            let denied: Vec<String> = ph
                .filtered
                .iter()
                .map(|(n, f)| format!("{n}×{} ({})", f.calls, errno_name(f.errno)))
                .collect();
            let _ = writeln!(
                out,
                "  {:<width$}         filtered by seccomp while learning: {}",
                "",
                denied.join(", ")
            );
        }
    }
}

/// The same view as [`render`], as JSON (`profile show --json`): the program, where and how
/// completely it was learned, the operations seen, and per role a row per phase with its
/// calls (name, count), argument restrictions and calls filtered while learning; `warnings`
/// holds what the text prints as warnings.
pub fn render_json(p: &Profile, warnings: &[String]) -> String {
    use serde_json::json;
    let roles: Vec<serde_json::Value> = p
        .roles
        .iter()
        .map(|role| {
            let phases: Vec<serde_json::Value> = role
                .phases
                .iter()
                .map(|ph| {
                    let calls: serde_json::Map<String, serde_json::Value> = ph
                        .syscalls
                        .iter()
                        .map(|(n, u)| (n.clone(), json!(u.calls)))
                        .collect();
                    let filtered: serde_json::Map<String, serde_json::Value> = ph
                        .filtered
                        .iter()
                        .map(|(n, f)| {
                            let v = json!({"calls": f.calls, "errno": errno_name(f.errno)});
                            (n.clone(), v)
                        })
                        .collect();
                    json!({
                        "name": ph.name, "syscalls": calls,
                        "arguments": ph.argument_restrictions(), "filtered": filtered,
                    })
                })
                .collect();
            json!({
                "name": role.name, "processes": role.processes, "container": role.container,
                "syscalls_in_all": role.union().len(), "phases": phases,
            })
        })
        .collect();
    let operations = super::operations::recognize(p)
        .map(|ops| json!({"rules": ops.rules, "known": ops.known, "seen": ops.seen}));
    let view = json!({
        "program": p.program.path, "comm": p.program.comm, "arch": p.arch,
        "kernel": p.kernel_release, "runs": p.runs.len(), "complete": p.complete,
        "incomplete_reasons": p.incomplete_reasons, "notes": p.notes,
        "operations": operations, "roles": roles, "warnings": warnings,
    });
    serde_json::to_string_pretty(&view).expect("serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn table_lists_phases_in_order() {
        let p = sample(&[(
            "worker",
            &[("init", &["setuid", "prctl"]), ("serving", &["accept4"])],
        )]);
        let t = render(&p);
        let init = t.find("init ").unwrap();
        let serving = t.find("serving").unwrap();
        assert!(init < serving, "{t}");
        assert!(t.contains("prctl, setuid"), "{t}");
        assert!(
            t.contains("role worker (1 process, 3 syscalls in all)"),
            "{t}"
        );
        assert!(!t.contains("filtered"), "{t}");
    }

    #[test]
    fn argument_restrictions_are_shown_under_their_phase() {
        let mut p = sample(&[("worker", &[("serving", &["openat", "read"])])]);
        p.roles[0].phases[0]
            .syscalls
            .get_mut("openat")
            .unwrap()
            .args = Some(vec![[0, 0, 0], [0, 0, 0o2101]]);
        let t = render(&p);
        assert!(
            t.contains("arguments: openat(O_RDONLY) openat(O_WRONLY|O_CREAT|O_APPEND)"),
            "{t}"
        );
    }

    #[test]
    fn filtered_calls_are_shown_under_their_phase() {
        let mut p = sample(&[("main", &[("run", &["read"])])]);
        p.roles[0].phases[0].filtered.insert(
            "clone3".into(),
            super::super::Filtered {
                calls: 2,
                errno: 38,
            },
        );
        let t = render(&p);
        assert!(
            t.contains("filtered by seccomp while learning: clone3×2 (ENOSYS)"),
            "{t}"
        );
    }

    #[test]
    fn long_and_hostile_names_print_without_a_panic_or_controls() {
        let long = "p".repeat(70_000);
        let mut p = sample(&[("worker", &[("init", &["setuid"])])]);
        p.roles[0].phases[0].name = long.clone();
        p.roles[0].name = "w\x1b[31m".into();
        p.program.path = "/tmp/\x1b]0;x\x07".into();
        let t = render(&p);
        assert!(t.contains("… (70000 characters)"), "cut for display");
        assert!(!t.contains(&long));
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t}");
        assert!(t.contains("role w\\u{1b}[31m ("), "{t}");
    }

    #[test]
    fn the_json_view_holds_the_table() {
        let p = sample(&[(
            "worker",
            &[("init", &["setuid"]), ("serving", &["accept4", "read"])],
        )]);
        let v: serde_json::Value =
            serde_json::from_str(&render_json(&p, &["w".to_string()])).unwrap();
        assert_eq!(v["roles"][0]["name"], "worker");
        assert_eq!(v["roles"][0]["syscalls_in_all"], 3);
        let serving = &v["roles"][0]["phases"][1];
        assert_eq!(serving["name"], "serving");
        assert!(serving["syscalls"]["accept4"].is_u64(), "{serving}");
        assert_eq!(v["warnings"][0], "w");
    }
}
