//! Extra top-level sections a profile may carry beside schema v1's keys (`static`, `review`):
//! written into the same JSON object, read back by key, ignored by readers that do not know
//! them.
use std::path::Path;

use serde::de::DeserializeOwned;

use super::Profile;
use crate::atomic_file::write_atomic;

/// Writes `profile` with `sections` (key, value) added, atomically.
pub fn save(
    profile: &Profile,
    sections: &[(&str, serde_json::Value)],
    path: &Path,
) -> anyhow::Result<()> {
    write_atomic(path, to_json(profile, sections).as_bytes())
}

/// The profile's JSON with `sections` added.
pub fn to_json(profile: &Profile, sections: &[(&str, serde_json::Value)]) -> String {
    let mut value = serde_json::to_value(profile).expect("profile serializes");
    for (key, v) in sections {
        value[*key] = v.clone();
    }
    serde_json::to_string_pretty(&value).expect("serializes") + "\n"
}

/// Reads a profile and its section `key`, if it has one.
pub fn load<T: DeserializeOwned>(path: &Path, key: &str) -> anyhow::Result<(Profile, Option<T>)> {
    let text = crate::input::read_text(path, crate::input::TEXT)?;
    let origin = path.display().to_string();
    let profile = Profile::parse(&text, &origin)?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    let section = match value.get(key) {
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| anyhow::anyhow!("{origin} has a malformed \"{key}\" section: {e}"))?,
        ),
        None => None,
    };
    Ok((profile, section))
}
