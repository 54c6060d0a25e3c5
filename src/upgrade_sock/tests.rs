use super::*;

fn env(runtime: Option<&str>, xdg: Option<&str>, euid: u32) -> Env {
    Env {
        runtime_directory: runtime.map(PathBuf::from),
        xdg_runtime_dir: xdg.map(PathBuf::from),
        euid,
        temp_dir: PathBuf::from("/tmp"),
    }
}

fn node(kind: Kind, uid: u32, mode: u32) -> Node {
    Node { kind, uid, mode }
}

#[test]
fn the_default_prefers_systemds_runtime_directory_then_run_then_xdg_then_a_per_uid_temp_dir() {
    let p = |e: Env| default_for(&e).display().to_string();
    assert_eq!(
        p(env(Some("/run/crossgate"), Some("/run/user/1000"), 1000)),
        "/run/crossgate/upgrade.sock"
    );
    assert_eq!(
        p(env(Some("/run/crossgate:/run/other"), None, 0)),
        "/run/crossgate/upgrade.sock"
    );
    assert_eq!(p(env(None, None, 0)), "/run/crossgate/upgrade.sock");
    // Root ignores a user's XDG_RUNTIME_DIR that sudo may have kept.
    assert_eq!(
        p(env(None, Some("/run/user/1000"), 0)),
        "/run/crossgate/upgrade.sock"
    );
    assert_eq!(
        p(env(None, Some("/run/user/1000"), 1000)),
        "/run/user/1000/crossgate/upgrade.sock"
    );
    assert_eq!(
        p(env(None, None, 10001)),
        "/tmp/crossgate-10001/upgrade.sock"
    );
    // Relative or empty values are not runtime directories.
    assert_eq!(
        p(env(Some(""), Some("run"), 10001)),
        "/tmp/crossgate-10001/upgrade.sock"
    );
}

#[test]
fn a_private_directory_of_ours_or_roots_is_accepted() {
    let d = Path::new("/run/crossgate");
    assert_eq!(check_dir(d, node(Kind::Dir, 1000, 0o700), 1000), Ok(()));
    assert_eq!(check_dir(d, node(Kind::Dir, 0, 0o700), 1000), Ok(()));
    // Read alone opens nothing: without search permission no name in it can be used.
    assert_eq!(check_dir(d, node(Kind::Dir, 1000, 0o744), 1000), Ok(()));
}

#[test]
fn a_directory_others_can_write_in_or_enter_is_refused() {
    let d = Path::new("/tmp");
    for mode in [0o1777, 0o777, 0o770, 0o755, 0o750, 0o720, 0o702, 0o701] {
        assert_eq!(
            check_dir(d, node(Kind::Dir, 0, mode), 0),
            Err(Refusal::DirOpen {
                dir: d.into(),
                mode
            }),
            "{mode:o}"
        );
    }
}

#[test]
fn a_directory_of_another_user_is_refused_whatever_its_mode() {
    let d = Path::new("/tmp/crossgate-1000");
    assert_eq!(
        check_dir(d, node(Kind::Dir, 65534, 0o700), 1000),
        Err(Refusal::DirOwner {
            dir: d.into(),
            owner: 65534,
            euid: 1000
        })
    );
    assert!(matches!(
        check_dir(d, node(Kind::Other, 1000, 0o700), 1000),
        Err(Refusal::NotADirectory { .. })
    ));
}

#[test]
fn only_a_socket_of_our_own_uid_receives_the_sockets() {
    let s = Path::new("/run/crossgate/upgrade.sock");
    assert_eq!(check_socket(s, node(Kind::Socket, 0, 0o666), 0), Ok(()));
    assert_eq!(
        check_socket(s, node(Kind::Socket, 65534, 0o666), 0),
        Err(Refusal::SocketOwner {
            sock: s.into(),
            owner: 65534,
            euid: 0
        })
    );
    // Root's socket is not ours either when we are not root.
    assert!(check_socket(s, node(Kind::Socket, 0, 0o666), 1000).is_err());
    for kind in [Kind::Symlink, Kind::Other, Kind::Dir] {
        assert_eq!(
            check_socket(s, node(kind, 0, 0o777), 0),
            Err(Refusal::NotASocket {
                sock: s.into(),
                kind
            })
        );
    }
}

#[test]
fn a_path_longer_than_a_socket_address_holds_is_refused() {
    let ok = PathBuf::from(format!("/{}", "a".repeat(MAX_PATH_LEN - 1)));
    assert_eq!(check_len(&ok), Ok(()));
    let long = PathBuf::from(format!("/{}", "a".repeat(MAX_PATH_LEN)));
    assert!(matches!(
        check_len(&long),
        Err(Refusal::TooLong { len, .. }) if len == MAX_PATH_LEN + 1
    ));
}

#[test]
fn the_fix_for_a_shared_temp_dir_is_another_path_not_chmod() {
    let shared = Refusal::DirOpen {
        dir: "/tmp".into(),
        mode: 0o1777,
    };
    assert!(!shared.fix().contains("chmod"), "{}", shared.fix());
    assert!(shared.fix().contains("set server.upgrade_sock"));
    let own = Refusal::DirOpen {
        dir: "/srv/cg".into(),
        mode: 0o755,
    };
    assert!(own.fix().starts_with("chmod 700 /srv/cg"), "{}", own.fix());
}

#[test]
fn a_bare_file_name_is_bound_in_the_working_directory() {
    assert_eq!(dir_of(Path::new("upgrade.sock")), PathBuf::from("."));
    assert_eq!(
        dir_of(Path::new("/run/crossgate/upgrade.sock")),
        PathBuf::from("/run/crossgate")
    );
}
