//! What crossgate's build and tests need from the machine, how to tell whether it is there, and
//! what to do when it is not: install it with Debian's apt-get when we are root, otherwise say
//! the exact command to run.
//!
//! The decisions (`missing`, `plan`) are pure functions of a probe and of facts about the
//! machine, so that they are tested without touching it; `ensure` is the one place that looks
//! and installs.

use std::path::Path;
use std::process::Command;

/// How to tell that a tool is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// A command on `PATH`: build scripts run these by name (the `cmake` and `cc` crates).
    Command(&'static str),
    /// One of these files: tests/browser.rs looks at fixed paths, not at `PATH`.
    AnyFile(&'static [&'static str]),
}

/// One thing the build or the tests need, and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// What it is and who needs it, for messages.
    pub what: &'static str,
    pub probe: Probe,
    pub package: &'static str,
}

/// What `cargo build` of crossgate needs besides the Rust toolchain.
pub const BUILD: &[Need] = &[
    Need {
        what: "cmake (pingora's zlib-ng build runs it)",
        probe: Probe::Command("cmake"),
        package: "cmake",
    },
    Need {
        what: "a C compiler (ring, zstd and jemalloc build C)",
        probe: Probe::Command("cc"),
        package: "build-essential",
    },
    Need {
        what: "make (jemalloc's build runs it)",
        probe: Probe::Command("make"),
        package: "build-essential",
    },
];

/// The chromium and chromedriver paths are the ones tests/browser.rs looks at (a test below
/// checks that they stay the same).
pub const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
pub const CHROMEDRIVER: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

/// What the tests need beyond the build: a headless Chromium driven over WebDriver
/// (tests/browser.rs), promtool (tests/monitoring.rs) and systemd-analyze (tests/cli.rs).
pub const BROWSER: &[Need] = &[
    Need {
        what: "Chromium (tests/browser.rs)",
        probe: Probe::AnyFile(CHROMIUM),
        package: "chromium",
    },
    Need {
        what: "chromedriver (tests/browser.rs)",
        probe: Probe::AnyFile(CHROMEDRIVER),
        package: "chromium-driver",
    },
    Need {
        what: "promtool (tests/monitoring.rs checks the alerting rules)",
        probe: Probe::Command("promtool"),
        package: "prometheus",
    },
    Need {
        what: "systemd-analyze (tests/cli.rs verifies the systemd unit)",
        probe: Probe::Command("systemd-analyze"),
        package: "systemd",
    },
];

/// The needs that `present` says are missing.
pub fn missing<'a>(
    needs: impl IntoIterator<Item = &'a Need>,
    present: impl Fn(&Probe) -> bool,
) -> Vec<&'a Need> {
    needs.into_iter().filter(|n| !present(&n.probe)).collect()
}

/// The packages that provide `needs`, each once, in the order first needed.
pub fn packages(needs: &[&Need]) -> Vec<&'static str> {
    let mut packages = Vec::new();
    for need in needs {
        if !packages.contains(&need.package) {
            packages.push(need.package);
        }
    }
    packages
}

/// Facts about the machine that decide how to install.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    pub root: bool,
    pub apt_get: bool,
    pub sudo: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Everything is there.
    Nothing,
    /// Root on a machine with apt-get: install these packages.
    Install(Vec<&'static str>),
    /// Not ours to install: print this and exit non-zero.
    Stop(String),
}

pub fn plan(missing: &[&Need], machine: Machine) -> Plan {
    if missing.is_empty() {
        return Plan::Nothing;
    }
    let packages = packages(missing);
    if machine.root && machine.apt_get {
        return Plan::Install(packages);
    }
    let mut message = String::from("cargo xtask: missing:\n");
    for need in missing {
        message += &format!("  - {}\n", need.what);
    }
    if machine.apt_get {
        let sudo = if machine.sudo { "sudo " } else { "" };
        let who = if machine.sudo { "" } else { " as root" };
        message += &format!(
            "Not root, so nothing was installed. Run this{who}, then the same command again:\n    {}\n",
            install_command(&packages, sudo)
        );
    } else {
        message += &format!(
            "No apt-get here (crossgate's set-up knows Debian and Ubuntu), so nothing was \
             installed: install the equivalents of the Debian packages {} with this system's \
             package manager, then run the same command again.\n",
            packages.join(" ")
        );
    }
    Plan::Stop(message)
}

/// The shell command that installs `packages`, each apt-get prefixed with `sudo` (`"sudo "` or
/// `""`). `apt-get update` first: a fresh container has no package lists.
pub fn install_command(packages: &[&str], sudo: &str) -> String {
    format!(
        "{sudo}apt-get update && {sudo}apt-get install -y {}",
        packages.join(" ")
    )
}

/// Whether `probe` finds its tool on this machine.
pub fn present(probe: &Probe) -> bool {
    match probe {
        Probe::Command(name) => on_path(name),
        Probe::AnyFile(paths) => paths.iter().any(|p| Path::new(p).exists()),
    }
}

fn on_path(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn machine() -> Machine {
    Machine {
        // SAFETY: geteuid has no preconditions and cannot fail.
        root: unsafe { libc::geteuid() } == 0,
        apt_get: on_path("apt-get"),
        sudo: on_path("sudo"),
    }
}

/// Makes sure that every one of `needs` is there: installs what is missing when it can, or
/// returns the message that says what to run.
pub fn ensure(needs: &[Need]) -> Result<(), String> {
    let packages = match plan(&missing(needs, present), machine()) {
        Plan::Nothing => return Ok(()),
        Plan::Stop(message) => return Err(message),
        Plan::Install(packages) => packages,
    };
    eprintln!(
        "cargo xtask: installing {} with apt-get",
        packages.join(" ")
    );
    apt_get(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend(&packages);
    apt_get(&install)?;
    let still = missing(needs, present);
    if still.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "cargo xtask: apt-get installed {} but these are still not found:\n",
        packages.join(" ")
    );
    for need in still {
        let looked = match need.probe {
            Probe::Command(name) => format!("`{name}` on PATH"),
            Probe::AnyFile(paths) => paths.join(" or "),
        };
        message += &format!("  - {} (looked for {looked})\n", need.what);
    }
    Err(message)
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cargo xtask: cannot run apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo xtask: `apt-get {}` failed ({status})",
            args.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Machine = Machine {
        root: true,
        apt_get: true,
        sudo: false,
    };
    const USER: Machine = Machine {
        root: false,
        apt_get: true,
        sudo: true,
    };

    /// A machine that has exactly the tools named in `have`.
    fn having(have: &'static [&'static str]) -> impl Fn(&Probe) -> bool {
        move |probe| match probe {
            Probe::Command(name) => have.contains(name),
            Probe::AnyFile(paths) => paths.iter().any(|p| have.contains(p)),
        }
    }

    fn all() -> Vec<Need> {
        BUILD.iter().chain(BROWSER).copied().collect()
    }

    #[test]
    fn a_machine_with_everything_needs_nothing() {
        let have = having(&[
            "cmake",
            "cc",
            "make",
            "/usr/bin/chromium",
            "/usr/bin/chromedriver",
            "promtool",
            "systemd-analyze",
        ]);
        assert_eq!(plan(&missing(&all(), have), ROOT), Plan::Nothing);
    }

    #[test]
    fn a_fresh_debian_with_rust_lacks_cmake_and_the_browser() {
        let all = all();
        let fresh = missing(&all, having(&["cc", "make"]));
        assert_eq!(
            plan(&fresh, ROOT),
            Plan::Install(vec![
                "cmake",
                "chromium",
                "chromium-driver",
                "prometheus",
                "systemd"
            ])
        );
    }

    #[test]
    fn the_demo_does_not_install_the_browser() {
        let fresh = missing(BUILD, having(&["cc", "make"]));
        assert_eq!(plan(&fresh, ROOT), Plan::Install(vec!["cmake"]));
    }

    #[test]
    fn build_essential_is_named_once_for_the_compiler_and_make() {
        let bare = missing(BUILD, having(&[]));
        assert_eq!(packages(&bare), ["cmake", "build-essential"]);
    }

    #[test]
    fn chromedriver_in_chromiums_own_folder_counts() {
        let have = having(&[
            "cmake",
            "cc",
            "make",
            "/usr/bin/chromium-browser",
            "/usr/lib/chromium/chromedriver",
            "promtool",
            "systemd-analyze",
        ]);
        assert!(missing(&all(), have).is_empty());
    }

    #[test]
    fn without_root_it_prints_the_sudo_command_and_installs_nothing() {
        let all = all();
        let fresh = missing(&all, having(&["cc", "make"]));
        let Plan::Stop(message) = plan(&fresh, USER) else {
            panic!("a user who is not root must not get an install");
        };
        assert!(
            message.contains(
                "\n    sudo apt-get update && sudo apt-get install -y cmake chromium chromium-driver prometheus systemd\n"
            ),
            "{message}"
        );
        assert!(
            message.contains("- cmake (pingora's zlib-ng build runs it)"),
            "{message}"
        );
        assert!(
            message.contains("- Chromium (tests/browser.rs)"),
            "{message}"
        );
        assert!(message.contains("then the same command again"), "{message}");
    }

    #[test]
    fn without_root_or_sudo_it_says_to_run_the_command_as_root() {
        let fresh = missing(BUILD, having(&["cc", "make"]));
        let no_sudo = Machine {
            sudo: false,
            ..USER
        };
        let Plan::Stop(message) = plan(&fresh, no_sudo) else {
            panic!("no install without root");
        };
        assert!(message.contains("Run this as root"), "{message}");
        assert!(
            message.contains("\n    apt-get update && apt-get install -y cmake\n"),
            "{message}"
        );
    }

    #[test]
    fn root_without_apt_get_is_told_which_packages_to_find() {
        let fresh = missing(BUILD, having(&["cc", "make"]));
        let Plan::Stop(message) = plan(
            &fresh,
            Machine {
                apt_get: false,
                ..ROOT
            },
        ) else {
            panic!("no apt-get, no install");
        };
        assert!(message.contains("No apt-get here"), "{message}");
        assert!(message.contains("Debian packages cmake "), "{message}");
    }

    #[test]
    fn the_browser_paths_are_the_ones_tests_browser_rs_looks_at() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let test = std::fs::read_to_string(root.join("tests/browser.rs")).unwrap();
        for path in CHROMIUM.iter().chain(CHROMEDRIVER) {
            assert!(test.contains(&format!("\"{path}\"")), "{path}");
        }
    }
}
