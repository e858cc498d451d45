//! The page as a whole: its sections, escaping and numbers.
use super::*;
use crate::profile::review::ReviewCall;
use crate::profile::{Phase, Role, SyscallUse};

#[test]
fn page_has_its_sections_and_escapes() {
    let mut p = Profile {
        program: crate::profile::Program {
            path: "/bin/<pwd>".into(),
            comm: "pwd".into(),
        },
        complete: true,
        ..Default::default()
    };
    p.roles.push(Role {
        container: None,
        name: "main".into(),
        processes: 1,
        phases: vec![Phase {
            name: "exec".into(),
            start_ns: 0,
            end_ns: 1_500_000,
            syscalls: [(
                "execve".to_string(),
                SyscallUse {
                    calls: 1,
                    times_ns: vec![0],
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        }],
    });
    let page = Page {
        title: "pwd & co".into(),
        profiles: vec![("a".into(), &p)],
        merge: None,
        coverage: None,
        comparison: None,
        reviews: Vec::new(),
    };
    let h = html(&page).unwrap();
    assert!(h.contains("<title>pwd &amp; co</title>"));
    assert!(h.contains("/bin/&lt;pwd&gt;"));
    assert!(h.contains("<figure class=\"timeline\"><svg"));
    assert!(
        h.contains("<td>exec</td><td class=\"n\">0.000</td><td class=\"n\">1.500</td>"),
        "{h}"
    );
    assert!(!h.contains("id=\"coverage\""));
    assert!(!h.contains("id=\"review\""));
    assert!(!h.contains("<script"));
    let review = Review {
        static_profile: "nginx.static.json".into(),
        calls: vec![ReviewCall {
            name: "chown".into(),
            reachable_from: "nginx:ngx_reopen_files -> libc:chown".into(),
            chain: vec![
                "nginx:main".into(),
                "nginx:ngx_reopen_files".into(),
                "libc:chown".into(),
            ],
            how: "syscall instruction".into(),
            allowed: true,
        }],
    };
    let h = html(&Page {
        reviews: vec![("hybrid".into(), review)],
        ..page.clone()
    })
    .unwrap();
    assert!(h.contains("<a href=\"#review\">"), "{h}");
    assert!(
        h.contains("<td>chown</td><td class=\"calls\" title=\"nginx:main -&gt; nginx:ngx_reopen_files -&gt; libc:chown\">nginx:ngx_reopen_files -&gt; libc:chown</td><td>yes</td>"),
        "{h}"
    );

    // Names a policy lists that are not syscalls here are told, escaped, once per policy.
    let pol = crate::policy::Policy::parse(
        r#"{"syscalls": ["execve", "<script>", "nope"]}"#,
        "list.txt",
        "6.1",
    )
    .unwrap();
    let comparison = crate::policy::report::compare(&p, &[pol], None, None).unwrap();
    let page = Page {
        comparison: Some(Compared {
            given: comparison,
            own: Err("not here".into()),
        }),
        ..page
    };
    let h = html(&page).unwrap();
    let told = "list.txt lists 2 names that are not";
    assert_eq!(h.matches(told).count(), 1, "{h}");
    assert!(h.contains("left out: &lt;script&gt; nope</p>"), "{h}");
    assert!(!h.contains("<script"));
}

#[test]
fn argument_restrictions_show_in_the_phase_table_and_the_comparison() {
    let mut p = crate::profile::tests::sample(&[("worker", &[("serving", &["openat"])])]);
    p.roles[0].phases[0]
        .syscalls
        .get_mut("openat")
        .unwrap()
        .args = Some(vec![[0, 0, 0]]);
    let pol = crate::policy::Policy::parse(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["openat"],"action":"SCMP_ACT_ALLOW","args":[
                {"index":2,"value":4194371,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        "args.json",
        "6.1",
    )
    .unwrap();
    let comparison = crate::policy::report::compare(&p, &[pol], None, None).unwrap();
    let page = Page {
        title: "t".into(),
        profiles: vec![("a".into(), &p)],
        merge: None,
        coverage: None,
        comparison: Some(Compared {
            given: comparison,
            own: Err("not here".into()),
        }),
        reviews: Vec::new(),
    };
    let h = html(&page).unwrap();
    assert!(
        h.contains("<td class=\"calls\">openat</td><td class=\"calls\">openat(O_RDONLY)</td></tr>"),
        "{h}"
    );
    assert!(h.contains("<th>only with some arguments</th>"), "{h}");
    assert!(
        h.contains("<td rowspan=\"2\" class=\"calls\">openat</td><td>worker</td>"),
        "{h}"
    );
}

/// A scenario profile of one run, its calls in one role and phase, with times.
pub(super) fn scenario(name: &str, calls: &[&str]) -> Profile {
    let mut p = crate::profile::tests::sample(&[("main", &[("init", calls)])]);
    p.runs = vec![crate::profile::Run {
        name: name.into(),
        ..Default::default()
    }];
    for (k, u) in p.roles[0].phases[0].syscalls.values_mut().enumerate() {
        u.first_seen_ns = 1_000 * (k as u64 + 1);
        u.times_ns = vec![u.first_seen_ns];
    }
    p
}

#[test]
fn a_merged_profile_is_the_merge_not_one_more_scenario() {
    let (a, b) = (scenario("s/a", &["read"]), scenario("s/b", &["write"]));
    let merged = crate::profile::compare::merge(&[a.clone(), b.clone()]).unwrap();
    let given = vec![
        ("s/a".to_string(), &a),
        ("s/b".to_string(), &b),
        ("merged.profile.json".to_string(), &merged),
    ];
    let h = page(given, &[], None, Vec::new()).unwrap();
    assert_eq!(h.matches("<section class=\"profile\"").count(), 2, "{h}");
    assert!(h.contains("2 scenario profiles and their merge"), "{h}");
    let merge = &h[h.find("id=\"merge\"").expect("merge section")..];
    let merge = &merge[..merge.find("</section>").unwrap()];
    assert!(
        merge.contains("merged.profile.json is this merge"),
        "{merge}"
    );
    assert!(!merge.contains("<th>from (ms)</th>"), "{merge}");
    let cov = &h[h.find("id=\"coverage\"").expect("coverage")..];
    assert!(!cov.contains("merged.profile.json"), "{cov}");
    assert_eq!(cov.matches("<tr><td>s/").count(), 2, "{cov}");
}

#[test]
fn the_comparison_names_what_it_counts_and_has_phasebox_rows() {
    let (a, b) = (
        scenario("s/a", &["read", "setuid"]),
        scenario("s/b", &["write", "openat"]),
    );
    let dir = std::env::temp_dir().join(format!("pb-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pol = dir.join("list.txt");
    std::fs::write(&pol, "pwd:read,write,execve,ptrace\n").unwrap();
    let given = vec![("s/a".to_string(), &a), ("s/b".to_string(), &b)];
    let h = page(given, std::slice::from_ref(&pol), None, Vec::new()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let c = &h[h.find("id=\"comparison\"").expect("comparison")..];
    // Critical calls named in the table, each with its reason.
    let why = crate::policy::critical::CRITICAL
        .iter()
        .find(|c| c.0 == "ptrace")
        .unwrap()
        .1;
    assert!(
        c.contains(&format!("<span title=\"{}\">ptrace</span>", esc(why))),
        "{c}"
    );
    assert!(
        c.contains("<td rowspan=\"2\" class=\"calls\">2: <span"),
        "{c}"
    );
    // The policy's own numbers once, over its rows (init and all phases of main).
    assert!(c.contains("<td rowspan=\"2\" class=\"n\">4 of "), "{c}");
    // Five rows, three policies: the share of the table each removes is written three times.
    assert_eq!(c.matches("%</td>").count(), 3, "{c}");
    // Missing calls named, and none said.
    assert!(
        c.contains("<td class=\"calls missing\">openat setuid</td>"),
        "{c}"
    );
    // phasebox's own export: a row per phase, nothing missing.
    assert!(
        c.contains("<tr class=\"own\"><td rowspan=\"2\">phasebox export <"),
        "{c}"
    );
    assert!(c.contains("phasebox export --per-phase <"), "{c}");
    let own = &c[c.find("<tr class=\"own\">").unwrap()..];
    let own = &own[..own.find("</table>").unwrap()];
    assert_eq!(
        own.matches("<td class=\"calls missing\"><i>none</i></td>")
            .count(),
        3
    );
    for word in [
        "surface removed</dt>",
        "over-approximation</dt>",
        "missing</dt>",
    ] {
        assert!(c.contains(word), "{word} not explained");
    }
    assert!(
        c.contains("<td class=\"calls\">setuid</td>"),
        "critical reasons listed"
    );
}
