//! Configuration kept outside the deployment directory, as the Debian packages keep it
//! (docs/install.md): `poros-hub init --config FILE` and `poros-agent enroll --config FILE`
//! write the file there and make the directory's `hub.toml` / `agent.toml` a symbolic link to
//! it. The hub and the agent then run, are administered and reconfigured through the link,
//! and a second deployment naming the same file is refused before it creates anything.
//! (The packaged defaults themselves, /var/lib and /etc with the service users, are checked
//! by scripts/package-check.sh on the installed packages.)

mod common;
use common::*;
use poros_harness::{run_cmd, ProcessGroup};
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The target of the symbolic link `link`, which must be one.
fn link_target(link: &Path) -> PathBuf {
    let meta =
        std::fs::symlink_metadata(link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
    assert!(
        meta.is_symlink(),
        "{} is not a symbolic link",
        link.display()
    );
    std::fs::read_link(link).unwrap()
}

/// A command that must fail; its stderr.
fn refused(exe: &str, args: &[&str]) -> String {
    let out = Command::new(exe).args(args).output().unwrap();
    assert!(!out.status.success(), "{exe} {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn configuration_outside_the_directory_is_linked_and_used() {
    let tmp = tempfile::Builder::new()
        .prefix("poros-e2e-")
        .tempdir()
        .unwrap();
    let root = tmp.path();
    let etc = root.join("etc");
    let (hub_dir, hub_toml) = (root.join("hub"), etc.join("poros-hub/hub.toml"));
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    run_cmd(
        Path::new(HUB_EXE),
        &[
            "init",
            "--dir",
            s(&hub_dir),
            "--config",
            s(&hub_toml),
            "--listen",
            &listen,
            "--ops-listen",
            "127.0.0.1:0",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(link_target(&hub_dir.join("hub.toml")), hub_toml);
    let text = std::fs::read_to_string(&hub_toml).unwrap();
    assert!(
        text.contains(&listen),
        "hub.toml lacks the listen address:\n{text}"
    );

    // Another deployment naming the same file is refused, and creates nothing.
    let other = root.join("hub2");
    let e = refused(
        HUB_EXE,
        &["init", "--dir", s(&other), "--config", s(&hub_toml)],
    );
    assert!(e.contains(s(&hub_toml)) && e.contains("refusing"), "{e}");
    assert!(!other.join("pki").exists(), "the refused init created keys");
    assert_eq!(std::fs::read_to_string(&hub_toml).unwrap(), text);

    let mut procs = ProcessGroup::new(&root.join("logs")).unwrap();
    procs
        .spawn("hub", Path::new(HUB_EXE), &["run", "--dir", s(&hub_dir)])
        .unwrap();
    let ops = hub_dir.join("run/ops.addr");
    procs
        .wait_ready("hub", "the hub to listen", DEADLINE, || ops.exists())
        .unwrap_or_else(|e| panic!("{e}"));

    // The admin verbs find the deployment through the link; enrolment writes the agent's
    // configuration outside its directory.
    let token = run_cmd(
        Path::new(HUB_EXE),
        &[
            "node",
            "add",
            "--dir",
            s(&hub_dir),
            "--agency",
            A,
            "--name",
            "A",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (agent_dir, agent_toml) = (root.join("agent"), etc.join("poros-agent/agent.toml"));
    let enroll = [
        "enroll",
        "--dir",
        s(&agent_dir),
        "--config",
        s(&agent_toml),
        "--token",
        &token,
    ];
    run_cmd(Path::new(AGENT_EXE), &enroll).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(link_target(&agent_dir.join("agent.toml")), agent_toml);
    let text = std::fs::read_to_string(&agent_toml).unwrap();
    assert!(text.contains(A), "agent.toml lacks the agency:\n{text}");

    procs
        .spawn(
            "agent",
            Path::new(AGENT_EXE),
            &["run", "--dir", s(&agent_dir)],
        )
        .unwrap();
    let api = agent_dir.join("run/api.addr");
    let http = reqwest::blocking::Client::new();
    procs
        .wait_ready("agent", "the agent to connect to the hub", DEADLINE, || {
            let Ok(addr) = std::fs::read_to_string(&api) else {
                return false;
            };
            http.get(format!("http://{}/v1/health", addr.trim()))
                .send()
                .and_then(|r| r.json::<serde_json::Value>())
                .is_ok_and(|v| v["connected"] == true)
        })
        .unwrap_or_else(|e| panic!("{e}"));

    // A verb that rewrites the configuration writes the linked file; the link stays.
    run_cmd(
        Path::new(AGENT_EXE),
        &["vdxp", "enable", "--dir", s(&agent_dir)],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(link_target(&agent_dir.join("agent.toml")), agent_toml);
    let after = std::fs::read_to_string(&agent_toml).unwrap();
    assert!(
        after.contains("enabled = true"),
        "vdxp not enabled in:\n{after}"
    );

    // A second enrolment naming the same file is refused before it generates anything.
    let token_b = run_cmd(
        Path::new(HUB_EXE),
        &[
            "node",
            "add",
            "--dir",
            s(&hub_dir),
            "--agency",
            B,
            "--name",
            "B",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let other = root.join("agent2");
    let e = refused(
        AGENT_EXE,
        &[
            "enroll",
            "--dir",
            s(&other),
            "--config",
            s(&agent_toml),
            "--token",
            &token_b,
        ],
    );
    assert!(e.contains(s(&agent_toml)) && e.contains("refusing"), "{e}");
    assert!(
        !other.join("keys").exists(),
        "the refused enrolment made keys"
    );
    assert_eq!(std::fs::read_to_string(&agent_toml).unwrap(), after);
    procs.stop_all();
}
