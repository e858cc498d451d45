//! phasebox's container image: staging its build context (deploy/Dockerfile and a root with
//! the binary and the libraries it links), shared by `cargo xtask image` and the image tests.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tag `cargo xtask image` gives the image.
pub const TAG: &str = "phasebox:latest";

/// deploy/, where the Dockerfile and the manifests live.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Fills `ctx` (emptied first) with the Dockerfile and rootfs/: `bin` stripped of debug info
/// as usr/bin/phasebox, every shared library `ldd` lists for it at its path, and an empty
/// tmp/ (the agent's checkpoints need a writable place when no volume is mounted).
pub fn stage_context(bin: &Path, ctx: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(ctx);
    let rootfs = ctx.join("rootfs");
    let io = |what: &str, e: std::io::Error| anyhow::anyhow!("{what}: {e}");
    std::fs::create_dir_all(rootfs.join("usr/bin")).map_err(|e| io("rootfs", e))?;
    std::fs::copy(deploy_dir().join("Dockerfile"), ctx.join("Dockerfile"))
        .map_err(|e| io("deploy/Dockerfile", e))?;
    let tmp = rootfs.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| io("rootfs/tmp", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| io("rootfs/tmp", e))?;
    let out = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(rootfs.join("usr/bin/phasebox"))
        .arg(bin)
        .output()
        .map_err(|e| io("strip (binutils)", e))?;
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "strip {} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    copy_into(&rootfs, shared_libraries(bin)?)
}

/// Copies each file to the same path under `root` (the file a symlink points to, under the
/// name the loader asks for).
pub fn copy_into(root: &Path, files: impl IntoIterator<Item = PathBuf>) -> anyhow::Result<()> {
    for f in files {
        let dest = root.join(f.strip_prefix("/").unwrap_or(&f));
        std::fs::create_dir_all(dest.parent().expect("a file path has a parent"))
            .map_err(|e| anyhow::anyhow!("{}: {e}", root.display()))?;
        std::fs::copy(&f, &dest).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
    }
    Ok(())
}

/// `exe` and the libraries it loads, copied under `root`.
pub fn copy_with_libraries(exe: &Path, root: &Path) -> anyhow::Result<()> {
    let libs = shared_libraries(exe)?;
    copy_into(root, std::iter::once(exe.to_path_buf()).chain(libs))
}

/// The shared libraries `bin` loads, the dynamic loader included, as `ldd` resolves them.
pub fn shared_libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .env_remove(crate::CARGO_LIBRARY_PATH)
        .output()
        .map_err(|e| anyhow::anyhow!("ldd: {e}"))?;
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "ldd {} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// Library paths from `ldd` output: `name => /path (0x…)` and `/path (0x…)` (the loader);
/// the vDSO has no file.
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = l.split_once("=>").map_or(l, |(_, p)| p.trim());
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Writes into `root` an nginx root filesystem made from the host's nginx: the binary and the
/// libraries `ldd` lists, libnss_files, passwd/group with root and www-data, nsswitch.conf,
/// mime.types, a config (master as root, workers as www-data, listening on 127.0.0.1:`port`,
/// logs in /var/log/nginx, temp paths under /var/lib/nginx created by nginx itself), a page,
/// and `/gate` (the static `tiny_init`) with the fifo /run/start it waits on.
pub fn nginx_root(root: &Path, port: u16) -> anyhow::Result<()> {
    let io = |what: &str, e: std::io::Error| anyhow::anyhow!("{what}: {e}");
    let nginx = Path::new("/usr/sbin/nginx");
    let mut files = vec![
        nginx.to_path_buf(),
        PathBuf::from("/lib/x86_64-linux-gnu/libnss_files.so.2"),
        PathBuf::from("/etc/nginx/mime.types"),
    ];
    files.extend(shared_libraries(nginx)?);
    copy_into(root, files)?;
    for d in [
        "run",
        "tmp",
        "var/log/nginx",
        "var/lib/nginx",
        "srv/html",
        "etc",
    ] {
        std::fs::create_dir_all(root.join(d)).map_err(|e| io(d, e))?;
    }
    let write =
        |path: &str, text: &str| std::fs::write(root.join(path), text).map_err(|e| io(path, e));
    write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n",
    )?;
    write("etc/group", "root:x:0:\nwww-data:x:33:\n")?;
    write("etc/nsswitch.conf", "passwd: files\ngroup: files\n")?;
    write("srv/html/index.html", "<h1>phasebox in a container</h1>\n")?;
    write("etc/nginx/nginx.conf", &nginx_config(port))?;
    std::fs::copy(crate::fixture("tiny_init"), root.join("gate")).map_err(|e| io("gate", e))?;
    let fifo = std::ffi::CString::new(root.join("run/start").as_os_str().as_encoded_bytes())
        .expect("no NUL in a path");
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) } != 0 {
        return Err(anyhow::anyhow!(
            "mkfifo: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// nginx's config in `nginx_root`: a deployment's shape (master as root, a `user`).
fn nginx_config(port: u16) -> String {
    format!(
        "user www-data;\nworker_processes 2;\npid /run/nginx.pid;\n\
         error_log /var/log/nginx/error.log info;\nevents {{ worker_connections 256; }}\n\
         http {{\n  include /etc/nginx/mime.types;\n  access_log /var/log/nginx/access.log;\n\
           sendfile on;\n  keepalive_timeout 5;\n\
           client_body_temp_path /var/lib/nginx/body;\n  proxy_temp_path /var/lib/nginx/proxy;\n\
           fastcgi_temp_path /var/lib/nginx/fastcgi;\n  uwsgi_temp_path /var/lib/nginx/uwsgi;\n\
           scgi_temp_path /var/lib/nginx/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    root /srv/html;\n  }}\n}}\n"
    )
}

/// Writes a default OCI bundle config in `bundle` with `runc spec` and returns it with no
/// terminal and `args` as its process, for the test to change and write back to `config.json`.
pub fn runc_spec(bundle: &Path, args: serde_json::Value) -> serde_json::Value {
    let st = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(bundle)
        .status()
        .expect("runc is installed");
    assert!(st.success(), "runc spec failed");
    let text = std::fs::read_to_string(bundle.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = args;
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd5d3f2000)\n\
            \tlibseccomp.so.2 => /lib/x86_64-linux-gnu/libseccomp.so.2 (0x00007f84bab79000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f84ba33e000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f84babac000)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libseccomp.so.2",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }
}
