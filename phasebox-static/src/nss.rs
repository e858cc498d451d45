//! The Name Service Switch: the modules glibc loads at run time for the databases a program
//! looks up (passwd, group, hosts…), as nsswitch.conf names them. A program that reaches
//! `getpwnam` loads `libnss_systemd.so.2` when the passwd line says `systemd`. Services whose
//! functions a loaded object already exports (`files` and `dns`, built into glibc since 2.34)
//! load nothing.
use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;
use crate::elf::Target;
use crate::reach::{Node, Walk, World};

/// One database: per group of libc functions that look it up, the functions of a module they
/// call (`_nss_SERVICE_` + each); and the database whose line it falls back to when it has
/// none.
struct Database {
    name: &'static str,
    calls: &'static [Lookup],
    fallback: Option<&'static str>,
}

/// Libc functions, and the module functions they call.
type Lookup = (&'static [&'static str], &'static [&'static str]);

/// A database's enumeration: setXXent, getXXent(_r), endXXent.
macro_rules! enumeration {
    ($set:literal, $get:literal, $get_r:literal, $end:literal) => {
        (&[$set, $get, $get_r], &[$set, $get_r, $end])
    };
}

const DATABASES: &[Database] = &[
    Database {
        name: "passwd",
        calls: &[
            (&["getpwnam", "getpwnam_r"], &["getpwnam_r"]),
            (&["getpwuid", "getpwuid_r"], &["getpwuid_r"]),
            enumeration!("setpwent", "getpwent", "getpwent_r", "endpwent"),
        ],
        fallback: None,
    },
    Database {
        name: "group",
        calls: &[
            (&["getgrnam", "getgrnam_r"], &["getgrnam_r"]),
            (&["getgrgid", "getgrgid_r"], &["getgrgid_r"]),
            enumeration!("setgrent", "getgrent", "getgrent_r", "endgrent"),
        ],
        fallback: None,
    },
    Database {
        name: "initgroups",
        calls: &[(
            &["initgroups", "getgrouplist"],
            // Modules without initgroups_dyn are enumerated.
            &["initgroups_dyn", "setgrent", "getgrent_r", "endgrent"],
        )],
        fallback: Some("group"),
    },
    Database {
        name: "shadow",
        calls: &[
            (&["getspnam", "getspnam_r"], &["getspnam_r"]),
            enumeration!("setspent", "getspent", "getspent_r", "endspent"),
        ],
        fallback: None,
    },
    Database {
        name: "gshadow",
        calls: &[
            (&["getsgnam", "getsgnam_r"], &["getsgnam_r"]),
            enumeration!("setsgent", "getsgent", "getsgent_r", "endsgent"),
        ],
        fallback: None,
    },
    Database {
        name: "hosts",
        calls: &[
            (
                &["getaddrinfo"],
                &[
                    "gethostbyname4_r",
                    "gethostbyname3_r",
                    "gethostbyname2_r",
                    "gethostbyname_r",
                ],
            ),
            (
                &[
                    "gethostbyname",
                    "gethostbyname_r",
                    "gethostbyname2",
                    "gethostbyname2_r",
                ],
                &["gethostbyname3_r", "gethostbyname2_r", "gethostbyname_r"],
            ),
            (
                &["getnameinfo", "gethostbyaddr", "gethostbyaddr_r"],
                &["gethostbyaddr2_r", "gethostbyaddr_r"],
            ),
            enumeration!("sethostent", "gethostent", "gethostent_r", "endhostent"),
        ],
        fallback: None,
    },
    Database {
        name: "services",
        calls: &[
            (
                &["getaddrinfo", "getservbyname", "getservbyname_r"],
                &["getservbyname_r"],
            ),
            (
                &["getnameinfo", "getservbyport", "getservbyport_r"],
                &["getservbyport_r"],
            ),
            enumeration!("setservent", "getservent", "getservent_r", "endservent"),
        ],
        fallback: None,
    },
    Database {
        name: "protocols",
        calls: &[
            (
                &["getprotobyname", "getprotobyname_r"],
                &["getprotobyname_r"],
            ),
            (
                &["getprotobynumber", "getprotobynumber_r"],
                &["getprotobynumber_r"],
            ),
            enumeration!("setprotoent", "getprotoent", "getprotoent_r", "endprotoent"),
        ],
        fallback: None,
    },
    Database {
        name: "networks",
        calls: &[
            (&["getnetbyname", "getnetbyname_r"], &["getnetbyname_r"]),
            (&["getnetbyaddr", "getnetbyaddr_r"], &["getnetbyaddr_r"]),
            enumeration!("setnetent", "getnetent", "getnetent_r", "endnetent"),
        ],
        fallback: None,
    },
    Database {
        name: "rpc",
        calls: &[
            (&["getrpcbyname", "getrpcbyname_r"], &["getrpcbyname_r"]),
            (
                &["getrpcbynumber", "getrpcbynumber_r"],
                &["getrpcbynumber_r"],
            ),
            enumeration!("setrpcent", "getrpcent", "getrpcent_r", "endrpcent"),
        ],
        fallback: None,
    },
    Database {
        name: "ethers",
        calls: &[
            (&["ether_hostton"], &["gethostton_r"]),
            (&["ether_ntohost"], &["getntohost_r"]),
        ],
        fallback: None,
    },
    Database {
        name: "netgroup",
        calls: &[(
            &["setnetgrent", "getnetgrent", "getnetgrent_r", "innetgr"],
            &["setnetgrent", "getnetgrent_r", "endnetgrent"],
        )],
        fallback: None,
    },
    Database {
        name: "aliases",
        calls: &[
            (
                &["getaliasbyname", "getaliasbyname_r"],
                &["getaliasbyname_r"],
            ),
            enumeration!("setaliasent", "getaliasent", "getaliasent_r", "endaliasent"),
        ],
        fallback: None,
    },
];

/// Each database of an nsswitch.conf, with its services in order.
pub type Config = BTreeMap<String, Vec<String>>;

/// Each database line of an nsswitch.conf, with its services in order (`[STATUS=action]`
/// items left out).
pub fn parse(text: &str) -> Config {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let Some((db, rest)) = line.split_once(':') else {
            continue;
        };
        let mut services = Vec::new();
        let mut in_action = false;
        for word in rest.split_whitespace() {
            if word.starts_with('[') {
                in_action = true;
            }
            if !in_action {
                services.push(word.to_string());
            }
            if word.ends_with(']') {
                in_action = false;
            }
        }
        out.insert(db.trim().to_string(), services);
    }
    out
}

/// Reads nsswitch.conf at `path`; a missing file names no service (glibc's defaults are
/// built in).
pub fn read(path: &Path) -> Result<Config, Error> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let text = phasebox_core::input::read_text(path, phasebox_core::input::TEXT)?;
    Ok(parse(&text))
}

/// A module the program loads: its service, the databases it serves, and the reached libc
/// functions that look them up, each with the module's functions it calls.
#[derive(Debug, Default)]
pub struct Module {
    pub service: String,
    pub databases: Vec<&'static str>,
    pub calls: Vec<(Node, Vec<String>)>,
}

impl Module {
    /// The file glibc loads for it.
    pub fn file(&self) -> String {
        format!("libnss_{}.so.2", self.service)
    }
}

/// The reached libc functions that look `db` up, each with the module functions it calls
/// (without their `_nss_SERVICE_` prefix).
fn reached_lookups(
    world: &World,
    walk: &Walk,
    db: &Database,
) -> Vec<(Node, &'static [&'static str])> {
    db.calls
        .iter()
        .flat_map(|&(lookups, module)| {
            lookups
                .iter()
                .flat_map(|l| world.resolve(0, &Target::Import(l.to_string())))
                .filter(|n| walk.parent.contains_key(n))
                .map(move |n| (n, module))
        })
        .collect()
}

/// The modules `config` names for the databases whose lookups `walk` reached, leaving out
/// services a loaded object implements already.
pub fn modules(world: &World, walk: &Walk, config: &Config) -> Vec<Module> {
    let mut out: Vec<Module> = Vec::new();
    for db in DATABASES {
        let lookups = reached_lookups(world, walk, db);
        if lookups.is_empty() {
            continue;
        }
        let services = config
            .get(db.name)
            .or_else(|| db.fallback.and_then(|f| config.get(f)));
        for service in services.into_iter().flatten() {
            let prefix = format!("_nss_{service}_");
            let built_in = world.objects[..world.startup].iter().any(|o| {
                o.exports.keys().any(|e| {
                    e.strip_prefix(&prefix)
                        .is_some_and(|f| db.calls.iter().any(|c| c.1.contains(&f)))
                })
            });
            if built_in {
                continue;
            }
            let i = match out.iter().position(|m| &m.service == service) {
                Some(i) => i,
                None => {
                    out.push(Module {
                        service: service.clone(),
                        ..Module::default()
                    });
                    out.len() - 1
                }
            };
            out[i].databases.push(db.name);
            for &(n, module) in &lookups {
                let functions = module.iter().map(|f| format!("{prefix}{f}")).collect();
                out[i].calls.push((n, functions));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_per_database_without_actions_or_comments() {
        let c = parse(
            "# comment\npasswd:  files systemd\nhosts: files mdns4_minimal [NOTFOUND=return] dns # x\n\
             group:files\nnonsense line\nnetgroup: nis\n",
        );
        assert_eq!(c["passwd"], ["files", "systemd"]);
        assert_eq!(c["hosts"], ["files", "mdns4_minimal", "dns"]);
        assert_eq!(c["group"], ["files"]);
        assert_eq!(c["netgroup"], ["nis"]);
        assert_eq!(c.len(), 4);
    }
}
