//! Extra top-level sections a profile may carry beside schema v1's keys (`static`, `review`):
//! written into the same JSON object, read back by key, ignored by readers that do not know
//! them.
use std::path::Path;

use serde::de::DeserializeOwned;

use super::{Profile, ProfileError, ProfileProblem};
use crate::{atomic_file::write_atomic, file_error::FileError};

/// Writes `profile` with `sections` (key, value) added, atomically.
pub fn save(
    profile: &Profile,
    sections: &[(&str, serde_json::Value)],
    path: &Path,
) -> Result<(), FileError> {
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
pub fn load<T: DeserializeOwned>(
    path: &Path,
    key: &'static str,
) -> Result<(Profile, Option<T>), ProfileError> {
    let text = crate::input::read_text(path, crate::input::TEXT).map_err(super::missing)?;
    let origin = crate::input::origin(path);
    let profile = Profile::parse(&text, &origin)?;
    // The text parsed as a profile, so it is JSON.
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let problem = ProfileProblem::Json(e);
            return Err(ProfileError::Invalid { origin, problem });
        }
    };
    let Some(v) = value.get(key) else {
        return Ok((profile, None));
    };
    match serde_json::from_value(v.clone()) {
        Ok(section) => Ok((profile, Some(section))),
        Err(source) => Err(ProfileError::Section {
            origin,
            key,
            source,
        }),
    }
}
