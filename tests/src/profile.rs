//! Reading learned profiles in tests.
use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

pub fn load(path: &Path) -> Value {
    crate::read_json(path)
}

/// Every syscall of every role and phase of a profile.
pub fn all_syscalls(p: &Value) -> BTreeSet<String> {
    let roles = p["roles"].as_array().unwrap();
    roles
        .iter()
        .flat_map(|r| r["phases"].as_array().unwrap())
        .flat_map(syscalls)
        .collect()
}

pub fn role<'a>(p: &'a Value, name: &str) -> &'a Value {
    p["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no role {name} in profile: {}", role_names(p).join(", ")))
}

pub fn role_names(p: &Value) -> Vec<String> {
    p["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// Phase names of a role, in order.
pub fn phase_names(role: &Value) -> Vec<String> {
    role["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

pub fn phase<'a>(role: &'a Value, name: &str) -> &'a Value {
    role["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no phase {name}: {:?}", phase_names(role)))
}

/// Syscall names of a phase.
pub fn syscalls(phase: &Value) -> BTreeSet<String> {
    phase["syscalls"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The path arguments `syscall` had in a phase.
pub fn paths(phase: &Value, syscall: &str) -> Vec<String> {
    phase["syscalls"][syscall]["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Every syscall of a role.
pub fn union(role: &Value) -> BTreeSet<String> {
    role["phases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(syscalls)
        .collect()
}
