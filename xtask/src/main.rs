//! `cargo xtask`: the README's first two commands, which set a fresh machine up before they run
//! cargo (the cargo-xtask convention: <https://github.com/matklad/cargo-xtask>).
//!
//! - `cargo xtask demo [ARGS]`: what the build needs (cmake, a C compiler, make), then
//!   `cargo run -- demo [ARGS]`.
//! - `cargo xtask test [ARGS]`: that, plus Chromium and chromedriver for tests/browser.rs, the
//!   open-file limit raised for tests/slow_clients.rs, then `cargo test --locked --workspace
//!   [ARGS]`.
//!
//! - `cargo xtask mutants [ARGS]`: cargo-mutants (installed with `cargo install` if missing)
//!   over the modules where a silent regression is a security hole, run with the tests that
//!   cover them, each mutant bounded in time (MUTANTS.md has the last run's counts). Not in CI:
//!   hours on 2 cores.
//!
//! Each ends by exec'ing cargo, so cargo's output, its exit status and Ctrl-C are exactly those
//! of the plain cargo command (.ci/run counts the `test result:` lines).

mod setup;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask <task> [ARGS]

tasks:
    demo [ARGS]   install what the build needs (cmake, a C compiler, make) if missing, then
                  `cargo run --locked -- demo [ARGS]`: crossgate on 127.0.0.1:8080 in front
                  of its embedded demo legacy backend
    test [ARGS]   install that and Chromium with chromedriver (tests/browser.rs) if missing,
                  raise the open-file soft limit to the hard one, then
                  `cargo test --locked --workspace [ARGS]`: every test of crossgate and of
                  xtask (ARGS such as `--test cors`, a name filter, `-- --nocapture`)
    mutants [ARGS]
                  install cargo-mutants if missing, then run it over the security-critical
                  modules (path, percent, origin, cors, dispatch, JSONP, head, wire, the
                  guard's message boundaries) with the tests that cover them; ARGS go to
                  cargo-mutants (`--file src/path.rs` narrows it to that file, `--list`
                  counts).
                  Outcomes in target/mutants.out/; see MUTANTS.md
    help          this text

As root, what is missing is installed with apt-get. Otherwise the exact command to run is
printed and the task exits 1, installing nothing.
";

#[derive(Debug, PartialEq, Eq)]
enum Task {
    Demo(Vec<OsString>),
    Test(Vec<OsString>),
    Mutants(Vec<OsString>),
    Help,
}

/// Exit status for a command line that names no known task (as cargo and clap use).
const USAGE_ERROR: u8 = 2;

fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Task, String> {
    let Some(task) = args.next() else {
        return Err("cargo xtask: which task?".into());
    };
    let rest = args.collect();
    match task.to_str() {
        Some("demo") => Ok(Task::Demo(rest)),
        Some("test") => Ok(Task::Test(rest)),
        Some("mutants") => Ok(Task::Mutants(rest)),
        Some("help" | "--help" | "-h") => Ok(Task::Help),
        _ => Err(format!(
            "cargo xtask: unknown task `{}`",
            task.to_string_lossy()
        )),
    }
}

fn main() -> ExitCode {
    let task = match parse(std::env::args_os().skip(1)) {
        Ok(task) => task,
        Err(message) => {
            eprintln!("{message}\n\n{USAGE}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let (needs, command) = match task {
        Task::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Task::Demo(args) => (setup::BUILD.to_vec(), demo(args)),
        Task::Mutants(args) => {
            if let Err(message) = install_cargo_mutants() {
                eprintln!("{message}");
                return ExitCode::FAILURE;
            }
            (setup::BUILD.to_vec(), mutants(args))
        }
        Task::Test(args) => {
            raise_open_files();
            let needs = setup::BUILD.iter().chain(setup::BROWSER).copied().collect();
            (needs, test(args))
        }
    };
    if let Err(message) = setup::ensure(&needs) {
        eprint!("{message}");
        return ExitCode::FAILURE;
    }
    exec(command)
}

/// The workspace's manifest. Cargo runs from the caller's directory (so that a relative
/// `--config` given to the demo means what the caller meant) with this manifest.
fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits in the workspace root")
        .join("Cargo.toml")
}

/// `cargo SUBCOMMAND` on the workspace, with the cargo that ran us (cargo sets CARGO for what it
/// runs), so that a `cargo +toolchain xtask` keeps its toolchain.
fn cargo(subcommand: &str) -> Command {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo.arg(subcommand).arg("--manifest-path").arg(manifest());
    cargo
}

/// `cargo run -- demo`, as the README's first command always was (a debug build: quickest to a
/// running demo), with --locked like the alias that built us.
fn demo(args: Vec<OsString>) -> Command {
    let mut command = cargo("run");
    command.args(["--locked", "--package", "crossgate", "--", "demo"]);
    command.args(args);
    command
}

/// The whole suite: crossgate's tests and xtask's own (`--workspace`; a plain `cargo test` in
/// the root runs only crossgate's, the root package).
fn test(args: Vec<OsString>) -> Command {
    let mut command = cargo("test");
    command.args(["--locked", "--workspace"]);
    command.args(args);
    command
}

/// The modules where a mutant that survives is a security hole waiting (issue: honest tests).
const MUTATED: &[&str] = &[
    "src/path.rs",
    "src/percent.rs",
    "src/origin.rs",
    "src/cors/*.rs",
    "src/dispatch.rs",
    "src/channels/jsonp/*.rs",
    "src/head/*.rs",
    "src/wire/*.rs",
    "src/guard/h1.rs",
];

/// The tests that cover them: unit tests, the properties, and the integration tests of
/// paths, CORS, JSONP and the wire (the browser, reload and slow-client suites add minutes
/// per mutant and nothing for these modules).
const MUTANT_TESTS: &[&str] = &[
    "--lib",
    "--test",
    "properties",
    "--test",
    "security",
    "--test",
    "cors",
    "--test",
    "jsonp",
    "--test",
    "desync",
    "--test",
    "hostile",
    "--test",
    "semantics",
];

/// cargo-mutants, from crates.io, when `cargo mutants` is not there yet.
fn install_cargo_mutants() -> Result<(), String> {
    let present = cargo("mutants")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let mut install = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    install.args(["install", "cargo-mutants", "--locked"]);
    match install.status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(
            "cargo xtask: could not install cargo-mutants: run `cargo install \
             cargo-mutants --locked`, then this again"
                .into(),
        ),
    }
}

/// `cargo mutants` over [`MUTATED`] with [`MUTANT_TESTS`], each mutant's tests cut after
/// 300 s (a mutant that hangs a test is caught, as a timeout).
fn mutants(args: Vec<OsString>) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.arg("mutants");
    let root = manifest();
    let root = root.parent().expect("the workspace root");
    command.arg("--dir").arg(root);
    command.args(["--package", "crossgate", "--timeout", "300"]);
    command.arg("--output").arg(root.join("target"));
    // Files named on the command line narrow the run to them.
    let narrowed = args.iter().any(|a| a == "--file" || a == "-f");
    if !narrowed {
        for file in MUTATED {
            command.args(["--file", file]);
        }
    }
    command.args(args);
    command.arg("--");
    command.args(MUTANT_TESTS);
    command
}

fn exec(mut command: Command) -> ExitCode {
    // exec only returns on failure.
    let err = command.exec();
    eprintln!(
        "cargo xtask: cannot run {}: {err}",
        command.get_program().to_string_lossy()
    );
    ExitCode::FAILURE
}

/// tests/slow_clients.rs holds 10,000 sockets; a shell's default soft limit is often 1024. Like
/// `ulimit -n "$(ulimit -Hn)"`, the soft limit goes up to the hard one, which exec'd cargo and
/// the tests inherit. A failure is only a warning: that test says what to do.
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let Some(soft) = raised_soft_limit(limit.rlim_cur, limit.rlim_max, nr_open) else {
        return;
    };
    let before = limit.rlim_cur;
    limit.rlim_cur = soft;
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        eprintln!(
            "cargo xtask: cannot raise the open-file limit from {before}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The soft open-file limit to set, or None to leave it: the hard limit, or the kernel's
/// per-process ceiling (`fs.nr_open`) when the hard limit is unlimited, since Linux refuses
/// an unlimited RLIMIT_NOFILE.
fn raised_soft_limit(
    soft: libc::rlim_t,
    hard: libc::rlim_t,
    nr_open: Option<libc::rlim_t>,
) -> Option<libc::rlim_t> {
    let target = if hard == libc::RLIM_INFINITY {
        nr_open?
    } else {
        hard
    };
    (soft < target).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Result<Task, String> {
        parse(line.iter().map(OsString::from))
    }

    #[test]
    fn mutants_takes_its_arguments_and_runs_over_the_security_modules_with_their_tests() {
        assert_eq!(
            args(&["mutants", "--file", "src/path.rs"]),
            Ok(Task::Mutants(vec!["--file".into(), "src/path.rs".into()]))
        );
        let command = mutants(vec!["--list".into()]);
        let line: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(line[0], "mutants");
        let dashes = line.iter().position(|a| a == "--").unwrap();
        assert_eq!(line[dashes - 1], "--list");
        assert_eq!(&line[dashes + 1..], MUTANT_TESTS);
        assert!(line.windows(2).any(|w| w == ["--file", "src/path.rs"]));
        // Named files narrow it.
        let command = mutants(vec!["--file".into(), "src/wire/chunked.rs".into()]);
        let files: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "--file")
            .map(|w| w[1].clone())
            .collect();
        assert_eq!(files, ["src/wire/chunked.rs"]);
    }

    #[test]
    fn extra_arguments_pass_through_in_order() {
        assert_eq!(
            args(&["test", "--test", "cors", "--", "--nocapture"]),
            Ok(Task::Test(vec![
                "--test".into(),
                "cors".into(),
                "--".into(),
                "--nocapture".into()
            ]))
        );
        assert_eq!(
            args(&["demo", "--config", "x.yaml"]),
            Ok(Task::Demo(vec!["--config".into(), "x.yaml".into()]))
        );
    }

    #[test]
    fn an_unknown_task_or_none_is_a_usage_error() {
        assert_eq!(
            args(&["tset"]),
            Err("cargo xtask: unknown task `tset`".into())
        );
        assert!(args(&[]).is_err());
        assert_eq!(args(&["--help"]), Ok(Task::Help));
    }

    #[test]
    fn the_demo_runs_the_crossgate_demo_and_the_test_the_locked_workspace() {
        let manifest = manifest();
        let manifest = manifest.to_str().unwrap();
        let args = |c: Command| -> Vec<String> {
            c.get_args()
                .map(|a| a.to_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            args(demo(vec!["--config".into(), "c.yaml".into()])),
            [
                "run",
                "--manifest-path",
                manifest,
                "--locked",
                "--package",
                "crossgate",
                "--",
                "demo",
                "--config",
                "c.yaml"
            ]
        );
        assert_eq!(
            args(test(vec!["--test".into(), "cors".into()])),
            [
                "test",
                "--manifest-path",
                manifest,
                "--locked",
                "--workspace",
                "--test",
                "cors"
            ]
        );
        let root = std::fs::read_to_string(manifest).unwrap();
        assert!(
            root.contains("\n[workspace]\n"),
            "{manifest} is not the workspace's"
        );
    }

    #[test]
    fn the_soft_open_file_limit_goes_up_to_the_hard_one_never_down() {
        assert_eq!(raised_soft_limit(1024, 524_288, None), Some(524_288));
        assert_eq!(raised_soft_limit(20_000, 20_000, None), None);
        assert_eq!(
            raised_soft_limit(1024, libc::RLIM_INFINITY, Some(1_048_576)),
            Some(1_048_576)
        );
        assert_eq!(raised_soft_limit(1024, libc::RLIM_INFINITY, None), None);
    }
}
