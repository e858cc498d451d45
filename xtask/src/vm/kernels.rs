//! The kernels of the matrix: which Debian suite and architecture each comes from, and how
//! qemu boots it.
use std::path::PathBuf;

/// The architectures the matrix boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// Debian's name for it.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The kernel's name for it (`uname -m`).
    pub fn machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// The GNU triplet: Debian's library directory and the cross compiler's prefix.
    pub fn triplet(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::Aarch64 => "aarch64-linux-gnu",
        }
    }

    /// The system emulator and its machine: TCG only, since nested KVM does not boot guests
    /// on the machines this runs on.
    pub fn qemu(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Arch::X86_64 => ("qemu-system-x86_64", &["-accel", "tcg", "-cpu", "max"]),
            Arch::Aarch64 => (
                "qemu-system-aarch64",
                // pauth-impdef: a pointer-authentication algorithm that is cheap to emulate.
                &["-M", "virt", "-accel", "tcg", "-cpu", "max,pauth-impdef=on"],
            ),
        }
    }

    /// The serial console the kernel writes to.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }
}

/// One kernel of the matrix.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// How reports and the table name it.
    pub name: &'static str,
    /// The Debian suite whose `linux-image-cloud-*` meta-package picks the kernel.
    pub suite: &'static str,
    pub arch: Arch,
}

/// Debian 11, Debian 12, Debian 12's backports, and Debian 12 on arm64.
pub const KERNELS: [Kernel; 4] = [
    Kernel {
        name: "debian11-amd64",
        suite: "bullseye",
        arch: Arch::X86_64,
    },
    Kernel {
        name: "debian12-amd64",
        suite: "bookworm",
        arch: Arch::X86_64,
    },
    Kernel {
        name: "debian12-backports-amd64",
        suite: "bookworm-backports",
        arch: Arch::X86_64,
    },
    Kernel {
        name: "debian12-arm64",
        suite: "bookworm",
        arch: Arch::Aarch64,
    },
];

/// Where downloads are kept between runs (outside the repository, so clean clones share them).
pub fn cache() -> PathBuf {
    PathBuf::from("/var/cache/phasebox-vm")
}

impl Kernel {
    /// The cached kernel image.
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir().join("vmlinuz")
    }

    /// The cached kernel's directory.
    pub fn dir(&self) -> PathBuf {
        cache()
            .join("kernels")
            .join(format!("{}-{}", self.suite, self.arch.debian()))
    }

    /// The meta-package that names the suite's current cloud kernel.
    pub fn meta_package(&self) -> String {
        format!("linux-image-cloud-{}", self.arch.debian())
    }
}
