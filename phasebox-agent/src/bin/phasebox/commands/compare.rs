//! `phasebox compare PROFILE POLICY…`: a learned profile against other policies.
use crate::cli::CompareArgs;
use phasebox_core::{
    atomic_file::write_atomic,
    policy::{Policy, report},
    profile::Profile,
};

pub fn compare(args: &CompareArgs) -> anyhow::Result<i32> {
    let profile = Profile::load(&args.profile)?;
    let policies = args
        .policies
        .iter()
        .map(|p| Policy::load(p, &profile.kernel_release, args.role.as_deref()))
        .chain(args.deny_list.iter().map(|p| Policy::load_deny_list(p)))
        .collect::<Result<Vec<_>, _>>()?;
    let c = report::compare(
        &profile,
        &policies,
        args.role.as_deref(),
        args.phase.as_deref(),
    )?;
    phasebox::logging::write_stdout(&report::render(&c));
    if let Some(path) = &args.json {
        write_atomic(
            path,
            serde_json::to_string_pretty(&c)
                .expect("serializes")
                .as_bytes(),
        )?;
    }
    Ok(0)
}
