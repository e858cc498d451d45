//! x86_64 syscall names and numbers (the analyzed binary's table, whatever the host).
use syscalls::x86_64::Sysno;

/// The name of x86_64 syscall `nr`.
pub fn name(nr: u32) -> Option<&'static str> {
    Sysno::new(nr as usize).map(|s| s.name())
}

/// The number of the x86_64 syscall called `name`.
pub fn number(name: &str) -> Option<u32> {
    name.parse::<Sysno>().ok().map(|s| s.id() as u32)
}
