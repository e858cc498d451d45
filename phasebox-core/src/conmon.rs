//! Podman's containers as their monitors name them. Every Podman container (rootful or
//! rootless, with or without Podman's API service) has a `conmon` process whose command line
//! names the container's full id (`-c`), its name (`-n`) and its OCI bundle (`-b`,
//! `<storage>/<driver>-containers/<id>/userdata`); the storage's `containers.json` beside the
//! bundles holds the image each container was made from. This is how `--container NAME` finds
//! a Podman container when no engine API answers.

/// What one conmon's command line says of its container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitored {
    /// The container's full id.
    pub id: String,
    /// Its name, when conmon was given one.
    pub name: Option<String>,
    /// Its OCI bundle directory.
    pub bundle: Option<String>,
}

/// conmon's options whose value is an argument for another program.
const PASSED_ON: &[&str] = &[
    "--exit-command",
    "--exit-command-arg",
    "--runtime-arg",
    "--runtime-opt",
];

/// The container a conmon command line (`argv`, conmon's own name first) monitors; None when
/// it is not conmon's, or names no valid id.
pub fn monitored(argv: &[&str]) -> Option<Monitored> {
    let prog = argv.first()?;
    if prog.rsplit('/').next() != Some("conmon") {
        return None;
    }
    let mut id = None;
    let mut name = None;
    let mut bundle = None;
    let mut args = argv[1..].iter();
    while let Some(&arg) = args.next() {
        // conmon takes both `-c ID` and `--cid=ID` (glib's option parser).
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v)),
            _ => (arg, None),
        };
        let slot = match key {
            "-c" | "--cid" => &mut id,
            "-n" | "--name" => &mut name,
            "-b" | "--bundle" => &mut bundle,
            // Values passed on to runc or to Podman's exit command (`-n` among them).
            _ if inline.is_none() && PASSED_ON.contains(&key) => {
                args.next();
                continue;
            }
            _ => continue,
        };
        let Some(value) = inline.or_else(|| args.next().copied()) else {
            break;
        };
        *slot = Some(value.to_string());
    }
    let id = id?;
    let valid = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    valid.then_some(Monitored { id, name, bundle })
}

/// The image container `id` was made from, from the text of the storage's `containers.json`
/// (a list of `{"id", "names", "metadata": "<JSON text with image-name>"}`).
pub fn image_of(containers_json: &str, id: &str) -> Option<String> {
    let list: serde_json::Value = serde_json::from_str(containers_json).ok()?;
    let entry = list.as_array()?.iter().find(|c| c["id"] == id)?;
    let metadata: serde_json::Value = serde_json::from_str(entry["metadata"].as_str()?).ok()?;
    Some(metadata["image-name"].as_str()?.to_string())
}

/// Where `containers.json` is for a container whose bundle is `bundle`
/// (`<storage>/<driver>-containers/<id>/userdata`).
pub fn containers_json_of(bundle: &str) -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(bundle);
    Some(path.parent()?.parent()?.join("containers.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ea2978b58d046ee4bd3d215cacf9e45887bcc0bd6d15fba8dbd160d75cac7540";

    // As Podman 4.3.1 starts it (Debian 12), shortened after the log options.
    #[test]
    fn podmans_command_line_names_id_name_and_bundle() {
        let bundle = format!("/var/lib/containers/storage/overlay-containers/{ID}/userdata");
        let argv = [
            "/usr/bin/conmon",
            "--api-version",
            "1",
            "-c",
            ID,
            "-u",
            ID,
            "-r",
            "/usr/bin/runc",
            "-b",
            &bundle,
            "-n",
            "web",
            "--exit-dir",
            "/run/libpod/exits",
            "--exit-command-arg",
            "-n",
        ];
        let m = monitored(&argv).unwrap();
        assert_eq!(m.id, ID);
        assert_eq!(m.name.as_deref(), Some("web"));
        assert_eq!(m.bundle.as_deref(), Some(bundle.as_str()));
        assert_eq!(
            containers_json_of(&bundle).unwrap(),
            std::path::Path::new("/var/lib/containers/storage/overlay-containers/containers.json")
        );
        let long = [
            "conmon".to_string(),
            format!("--cid={ID}"),
            "--name=db".into(),
        ];
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        assert_eq!(monitored(&long).unwrap().name.as_deref(), Some("db"));
    }

    #[test]
    fn other_programs_and_bad_ids_are_not_containers() {
        assert_eq!(monitored(&["/usr/bin/nginx", "-c", ID]), None);
        assert_eq!(monitored(&["conmon", "-c", "short"]), None);
        assert_eq!(monitored(&["conmon", "-n", "web"]), None);
        assert_eq!(monitored(&["conmon", "-c"]), None);
        assert_eq!(monitored(&[]), None);
    }

    #[test]
    fn the_image_comes_from_the_storage_metadata() {
        let json = format!(
            r#"[{{"id":"{ID}","names":["web"],"metadata":"{{\"image-name\":\"localhost/pbtest/nginx:latest\",\"name\":\"web\"}}"}}]"#
        );
        assert_eq!(
            image_of(&json, ID).as_deref(),
            Some("localhost/pbtest/nginx:latest")
        );
        assert_eq!(image_of(&json, "0"), None);
        assert_eq!(image_of("not json", ID), None);
    }
}
