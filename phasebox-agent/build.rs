//! Builds the kernel programs (phasebox-ebpf) for the BPF target and leaves the object in
//! OUT_DIR, where `src/probe/load.rs` embeds it.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let ebpf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../phasebox-ebpf");
    let ebpf_dir = std::fs::canonicalize(ebpf_dir).context("phasebox-ebpf not found")?;
    let root_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    println!("cargo:rerun-if-changed={root_dir}/../phasebox-common/src");
    aya_build::build_ebpf(
        [Package {
            name: "phasebox-ebpf",
            root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
