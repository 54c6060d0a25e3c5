//! The xtask binary as a user runs it: help, and a command line it does not know.

use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_both_tasks_on_stdout_and_exits_0() {
    let out = xtask(&["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("usage: cargo xtask <task> [ARGS]"),
        "{stdout}"
    );
    assert!(stdout.contains("\n    demo [ARGS]"), "{stdout}");
    assert!(stdout.contains("\n    test [ARGS]"), "{stdout}");
    assert!(out.stderr.is_empty());
    assert_eq!(xtask(&["help"]).stdout, out.stdout);
}

#[test]
fn an_unknown_task_is_named_with_the_usage_and_exits_2_installing_nothing() {
    let out = xtask(&["tset", "--test", "cors"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("cargo xtask: unknown task `tset`\n\nusage: cargo xtask"),
        "{stderr}"
    );
    assert!(!stderr.contains("cargo xtask: installing"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn no_task_asks_which_and_exits_2() {
    let out = xtask(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("cargo xtask: which task?"), "{stderr}");
}

#[test]
fn the_cargo_alias_runs_this_crate_with_the_lock_file_enforced() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
    assert!(
        config
            .lines()
            .any(|l| l == r#"xtask = "run --quiet --locked --package xtask --""#),
        "{config}"
    );
}
