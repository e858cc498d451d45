//! The `static` key of a profile made by `phasebox static`: where each syscall is reachable
//! from in the program's code, and what the analysis read and could not decide. Other
//! profiles have no such key; readers that do not know it ignore it (schema v1 allows
//! added keys).
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Profile, ProfileError, sections};
use crate::file_error::FileError;

/// The key under which the section is stored.
pub const KEY: &str = "static";

/// Where one syscall is reachable from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// Frames from an entry point to the function holding the `syscall` instruction, as
    /// `object:function`; a frame reached through an indirect call starts with `*`.
    pub chain: Vec<String>,
    /// How the number was known: `syscall instruction`, `number passed by a caller`,
    /// `vdso fallback`, `program start`.
    pub how: String,
    /// Further chains, each through another function of the program that reaches the call
    /// through library code alone (nearest first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Vec<String>>,
}

impl Reach {
    /// A short form: from the program's last frame (or the chain's last three) to the end,
    /// such as `nginx:ngx_reopen_files -> libc:chown`.
    pub fn short(&self, program: &str) -> String {
        let prefix = format!("{program}:");
        let in_program = |f: &String| f.trim_start_matches('*').starts_with(&prefix);
        let from = match self.chain.iter().rposition(in_program) {
            Some(i) if self.chain.len() - i <= 4 => i,
            _ => self.chain.len().saturating_sub(3),
        };
        let frames: Vec<&str> = self.chain[from..]
            .iter()
            .map(|f| f.trim_start_matches('*'))
            .collect();
        frames.join(" -> ")
    }
}

/// A library the analysis read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    pub name: String,
    pub path: String,
}

/// A library the program loads at run time that the analysis followed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedLibrary {
    pub name: String,
    /// Where it was found; empty when this machine does not have it (then nothing of it is
    /// analyzed).
    pub path: String,
    /// What loads it: `nsswitch.conf passwd, group: systemd`, `dlopen("libfoo.so.1") in
    /// prog:main`.
    pub loaded_by: String,
}

/// A reachable `syscall` whose number could not be (fully) resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub function: String,
    pub address: String,
    pub reason: String,
}

/// What the analysis read and how much it could decide.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub analyzer: String,
    pub libraries: Vec<Library>,
    pub functions_total: usize,
    pub functions_reached: usize,
    pub syscall_sites_total: usize,
    pub syscall_sites_reached: usize,
    /// Reachable sites whose number is unknown for some path.
    pub unresolved_sites: Vec<Site>,
    pub indirect_call_sites: usize,
    pub indirect_jump_sites: usize,
    /// Functions reached only because their address is taken and an indirect call exists.
    pub address_taken_functions: usize,
    /// Syscalls added as the fallback of a vDSO function the program reaches.
    pub vdso: Vec<String>,
    /// Imports no loaded object defines.
    pub unresolved_imports: Vec<String>,
    /// Libraries loaded at run time that were followed: NSS modules nsswitch.conf names for
    /// the databases the program looks up, and libraries dlopen() names with a constant.
    #[serde(default)]
    pub loaded_at_run_time: Vec<LoadedLibrary>,
    /// Reachable dlopen() calls whose library name is computed at run time: not followed.
    #[serde(default)]
    pub dlopen_unresolved: Vec<Site>,
    /// The conservative choices the analysis made, in words.
    pub assumptions: Vec<String>,
}

/// The section itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticSection {
    /// Syscall name → where it is reachable from.
    pub reachable_from: BTreeMap<String, Reach>,
    /// Every syscall found anywhere in the program and its libraries, reachable or not
    /// (Confine-style whole-image analysis), for comparison.
    pub whole_image: Vec<String>,
    pub provenance: Provenance,
}

/// Writes `profile` with `section` under [`KEY`], atomically.
pub fn save(profile: &Profile, section: &StaticSection, path: &Path) -> Result<(), FileError> {
    sections::save(profile, &[(KEY, to_value(section))], path)
}

/// The section as JSON.
pub fn to_value(section: &StaticSection) -> serde_json::Value {
    serde_json::to_value(section).expect("section serializes")
}

/// Reads a profile and its static section, if it has one.
pub fn load(path: &Path) -> Result<(Profile, Option<StaticSection>), ProfileError> {
    sections::load(path, KEY)
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::*;

    #[test]
    fn short_chain_starts_at_the_program() {
        let r = Reach {
            chain: vec![
                "nginx:_start".into(),
                "*nginx:main".into(),
                "nginx:ngx_reopen_files".into(),
                "libc:chown".into(),
            ],
            how: "syscall instruction".into(),
            ..Reach::default()
        };
        assert_eq!(r.short("nginx"), "nginx:ngx_reopen_files -> libc:chown");
        let deep = Reach {
            chain: ["a:x", "libc:a", "libc:b", "libc:c", "libc:d", "libc:e"]
                .map(String::from)
                .to_vec(),
            how: String::new(),
            ..Reach::default()
        };
        assert_eq!(deep.short("a"), "libc:c -> libc:d -> libc:e");
    }

    #[test]
    fn section_round_trips_beside_the_profile() {
        let dir = std::env::temp_dir().join(format!("pb-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let p = sample(&[("nginx", &[("static", &["chown", "read"])])]);
        let mut s = StaticSection::default();
        s.reachable_from.insert(
            "chown".into(),
            Reach {
                chain: vec!["nginx:ngx_reopen_files".into(), "libc:chown".into()],
                how: "syscall instruction".into(),
                ..Reach::default()
            },
        );
        s.whole_image = vec!["chown".into(), "read".into(), "reboot".into()];
        save(&p, &s, &path).unwrap();
        // Any profile reader takes it; the section comes back whole.
        assert_eq!(Profile::load(&path).unwrap(), p);
        let (back, section) = load(&path).unwrap();
        assert_eq!(back, p);
        assert_eq!(section.unwrap(), s);
        std::fs::write(&path, p.to_json()).unwrap();
        assert!(load(&path).unwrap().1.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
