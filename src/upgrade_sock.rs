//! The Unix socket of a binary upgrade (`run --upgrade`, then SIGQUIT to the old process), and
//! why it must live in a private directory.
//!
//! pingora 0.9.1 hands the listening sockets over like this (pingora-core,
//! `server/transfer_fd`): the new process unlinks whatever is at `server.upgrade_sock`, binds a
//! socket there, makes it mode 0666 and takes the sockets from the first connection; on SIGQUIT
//! the old process connects to whatever is at that path and sends every listening socket over
//! it (`SCM_RIGHTS`). Neither side checks who is at the other end. So:
//! - whoever can create a file in the directory can bind the path first and receive the
//!   listening sockets (then accept the proxy's clients themselves): the old `/tmp` default
//!   let any local user do that;
//! - whoever can enter the directory can connect to a waiting `run --upgrade` and hand it
//!   sockets of their own.
//!
//! crossgate therefore defaults to a private directory (see [`default_path`]), creates it with
//! mode 0700, refuses at load a directory that others can write in or enter, or that neither
//! crossgate's user nor root owns, and on SIGQUIT checks that the file at the path is a socket
//! of its own effective uid before it lets pingora connect ([`check_handover`]). The check is a
//! stat, not `SO_PEERCRED`: pingora's receiver accepts exactly one connection and reads the
//! sockets from it, so a probe connection of ours would be taken for the hand-over itself. A
//! stat cannot be raced here: in a directory that only crossgate's user and root can write,
//! nobody else can swap the file between the check and pingora's connect.

use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Linux's `sun_path` holds 108 bytes, the terminating NUL included; pingora's receiver panics
/// binding a longer path.
pub const MAX_PATH_LEN: usize = 107;

/// How long SIGQUIT waits for the new process's socket to appear: pingora itself retried a
/// missing socket for 5 s, so "start the new process, then send SIGQUIT at once" keeps working.
pub const HANDOVER_WAIT: Duration = Duration::from_secs(5);

/// The file name in the runtime directory.
const FILE: &str = "upgrade.sock";

/// The default `server.upgrade_sock`, from the environment of this process.
pub fn default_path() -> PathBuf {
    default_for(&Env {
        runtime_directory: std::env::var_os("RUNTIME_DIRECTORY").map(PathBuf::from),
        xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        euid: euid(),
        temp_dir: std::env::temp_dir(),
    })
}

/// What [`default_for`] looks at.
#[derive(Debug, Clone)]
pub struct Env {
    /// systemd's `RuntimeDirectory=` (a colon-separated list when it names several).
    pub runtime_directory: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    pub euid: u32,
    pub temp_dir: PathBuf,
}

/// The first choice that applies:
/// 1. `$RUNTIME_DIRECTORY/upgrade.sock`: under systemd, the directory the unit's
///    `RuntimeDirectory=` made for this service, owned by its user and removed when it stops
///    (deploy/crossgate.service sets it, with `RuntimeDirectoryMode=0700`);
/// 2. `/run/crossgate/upgrade.sock` as root: `/run` is where system services keep their
///    sockets, and only root can write in it;
/// 3. `$XDG_RUNTIME_DIR/crossgate/upgrade.sock`: a user's own runtime directory (mode 0700 by
///    the XDG spec);
/// 4. `<temp dir>/crossgate-<euid>/upgrade.sock` otherwise, as tmux does (`/tmp/tmux-UID`): a
///    container running as a plain uid (the image's 10001), CI. In a sticky `/tmp` nobody else
///    can rename or remove that directory, and one that another user made first is refused at
///    load as not ours; in a Kubernetes pod `/tmp` is an `emptyDir` only the pod's containers
///    see.
pub fn default_for(env: &Env) -> PathBuf {
    let absolute = |d: PathBuf| Some(d).filter(|d| d.is_absolute());
    // systemd joins several RuntimeDirectory= entries with ':'; the first is this service's.
    let runtime = env.runtime_directory.as_ref().and_then(|list| {
        absolute(list.to_str().map_or_else(
            || list.clone(),
            |s| PathBuf::from(s.split(':').next().unwrap_or_default()),
        ))
    });
    let xdg = env.xdg_runtime_dir.clone().and_then(absolute);
    if let Some(dir) = runtime {
        dir.join(FILE)
    } else if env.euid == 0 {
        PathBuf::from("/run/crossgate").join(FILE)
    } else if let Some(dir) = xdg {
        dir.join("crossgate").join(FILE)
    } else {
        env.temp_dir
            .join(format!("crossgate-{}", env.euid))
            .join(FILE)
    }
}

/// This process's effective uid.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// What a file is, for the checks (from `lstat`, or `stat` for the directory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Socket,
    Symlink,
    Other,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Kind::Dir => "directory",
            Kind::Socket => "socket",
            Kind::Symlink => "symbolic link",
            Kind::Other => "file that is not a socket",
        })
    }
}

/// The owner, permission bits and kind of a file: all the checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub uid: u32,
    /// Permission bits, with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
}

impl From<&Metadata> for Node {
    fn from(m: &Metadata) -> Node {
        let t = m.file_type();
        let kind = if t.is_dir() {
            Kind::Dir
        } else if t.is_socket() {
            Kind::Socket
        } else if t.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        Node {
            kind,
            uid: m.uid(),
            mode: m.mode() & 0o7777,
        }
    }
}

/// Group and other may neither write in the directory (plant a socket) nor enter it (connect
/// to the 0666 socket pingora binds). Read alone lists names and opens nothing.
const OPEN_BITS: u32 = 0o033;
const STICKY: u32 = 0o1000;

/// Why the upgrade socket is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("server.upgrade_sock {} is {len} bytes long: a Unix socket path has at most {MAX_PATH_LEN}", sock.display())]
    TooLong { sock: PathBuf, len: usize },
    #[error("{} (the directory of server.upgrade_sock) is a {kind}, not a directory", dir.display())]
    NotADirectory { dir: PathBuf, kind: Kind },
    #[error("the directory {} of server.upgrade_sock is owned by uid {owner}, neither crossgate's user (uid {euid}) nor root: its owner could put a socket there and receive the listening sockets on SIGQUIT", dir.display())]
    DirOwner { dir: PathBuf, owner: u32, euid: u32 },
    #[error("the directory {} of server.upgrade_sock is open to other users (mode {mode:04o}): whoever can write in it can bind the socket first and receive the listening sockets on SIGQUIT, and whoever can enter it can connect to `run --upgrade` (pingora makes the socket 0666) and hand it sockets of their own", dir.display())]
    DirOpen { dir: PathBuf, mode: u32 },
    #[error("the directory {} of server.upgrade_sock does not exist", dir.display())]
    DirMissing { dir: PathBuf },
    #[error("cannot create the directory {} of server.upgrade_sock: {error}", dir.display())]
    CannotCreate { dir: PathBuf, error: String },
    #[error("cannot inspect {}: {error}", path.display())]
    Unreadable { path: PathBuf, error: String },
    #[error("no socket at {} after {}s: no process started with `run --upgrade` is waiting for the listening sockets", sock.display(), HANDOVER_WAIT.as_secs())]
    NoSocket { sock: PathBuf },
    #[error("{} is a {kind}, not the socket of a process started with `run --upgrade`", sock.display())]
    NotASocket { sock: PathBuf, kind: Kind },
    #[error("the socket {} belongs to uid {owner}, not to crossgate's user (uid {euid}): a crossgate started with `run --upgrade` by this user did not make it", sock.display())]
    SocketOwner {
        sock: PathBuf,
        owner: u32,
        euid: u32,
    },
}

impl Refusal {
    /// How to fix it, for the `fix:` line.
    pub fn fix(&self) -> String {
        let private = format!(
            "set server.upgrade_sock to a path in a directory that only crossgate's user can enter (or leave it out: the default here, {}, is created with mode 0700)",
            default_path().display()
        );
        let restart = "start the new process with `crossgate run --upgrade` and the same config as this user, then send SIGQUIT again";
        match self {
            Refusal::TooLong { .. } => "use a shorter path".into(),
            Refusal::NotADirectory { .. } | Refusal::Unreadable { .. } => private,
            Refusal::DirOwner { dir, euid, .. } => {
                format!("chown {euid} {}, or {private}", dir.display())
            }
            // A sticky world-writable directory is a shared temp dir: chmod is no fix there.
            Refusal::DirOpen { mode, .. } if mode & STICKY != 0 => private,
            Refusal::DirOpen { dir, .. } => {
                format!(
                    "chmod 700 {} if only crossgate uses it, or {private}",
                    dir.display()
                )
            }
            Refusal::CannotCreate { dir, .. } => format!(
                "create {} (mode 0700, owned by crossgate's user), or {private}",
                dir.display()
            ),
            Refusal::DirMissing { .. } | Refusal::NoSocket { .. } => restart.into(),
            Refusal::NotASocket { sock, .. } | Refusal::SocketOwner { sock, .. } => {
                format!(
                    "find out who made {} and remove it; {restart}",
                    sock.display()
                )
            }
        }
    }
}

/// The directory the socket is bound in (`.` for a bare file name).
fn dir_of(sock: &Path) -> PathBuf {
    match sock.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The part of [`check_config`] that reads nothing: the path fits in a socket address.
pub fn check_len(sock: &Path) -> Result<(), Refusal> {
    let len = sock.as_os_str().len();
    if len > MAX_PATH_LEN {
        return Err(Refusal::TooLong {
            sock: sock.to_path_buf(),
            len,
        });
    }
    Ok(())
}

/// The directory may hold the upgrade socket: a directory that crossgate's user or root owns,
/// that group and other can neither write in nor enter.
pub fn check_dir(dir: &Path, node: Node, euid: u32) -> Result<(), Refusal> {
    let dir = dir.to_path_buf();
    if node.kind != Kind::Dir {
        return Err(Refusal::NotADirectory {
            dir,
            kind: node.kind,
        });
    }
    if node.uid != euid && node.uid != 0 {
        return Err(Refusal::DirOwner {
            dir,
            owner: node.uid,
            euid,
        });
    }
    if node.mode & OPEN_BITS != 0 {
        return Err(Refusal::DirOpen {
            dir,
            mode: node.mode,
        });
    }
    Ok(())
}

/// The file at the path may receive the listening sockets: a socket (not a link to one) of
/// crossgate's own effective uid, as a `run --upgrade` of the same user binds it.
pub fn check_socket(sock: &Path, node: Node, euid: u32) -> Result<(), Refusal> {
    let sock = sock.to_path_buf();
    if node.kind != Kind::Socket {
        return Err(Refusal::NotASocket {
            sock,
            kind: node.kind,
        });
    }
    if node.uid != euid {
        return Err(Refusal::SocketOwner {
            sock,
            owner: node.uid,
            euid,
        });
    }
    Ok(())
}

/// `stat` (following links, so a link to a private directory is judged by that directory).
fn stat_dir(dir: &Path) -> Result<Option<Node>, Refusal> {
    match std::fs::metadata(dir) {
        Ok(m) => Ok(Some(Node::from(&m))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Refusal::Unreadable {
            path: dir.to_path_buf(),
            error: e.to_string(),
        }),
    }
}

/// The load-time check (`check`, `run`, reload): the path fits in a socket address, and its
/// directory, if it exists yet, is private. A missing directory is made by [`prepare`].
pub fn check_config(sock: &Path) -> Result<(), Refusal> {
    check_len(sock)?;
    let dir = dir_of(sock);
    match stat_dir(&dir)? {
        Some(node) => check_dir(&dir, node, euid()),
        None => Ok(()),
    }
}

/// At start, before pingora binds or connects: creates the directory with mode 0700 if it is
/// missing, checks it, and returns the socket's path with the directory's symbolic links
/// resolved, the path pingora is then given. Resolving once means a link someone swaps later
/// cannot redirect the hand-over: every directory on the resolved path is a real one.
pub fn prepare(sock: &Path) -> Result<PathBuf, Refusal> {
    check_len(sock)?;
    let dir = dir_of(sock);
    if stat_dir(&dir)?.is_none() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Refusal::CannotCreate {
                dir: dir.clone(),
                error: e.to_string(),
            })?;
    }
    let real = std::fs::canonicalize(&dir).map_err(|e| Refusal::Unreadable {
        path: dir.clone(),
        error: e.to_string(),
    })?;
    match stat_dir(&real)? {
        Some(node) => check_dir(&real, node, euid())?,
        None => return Err(Refusal::DirMissing { dir: real }),
    }
    let sock = match sock.file_name() {
        Some(name) => real.join(name),
        None => real.join(FILE),
    };
    check_len(&sock)?;
    Ok(sock)
}

/// On SIGQUIT, before pingora connects and sends the listening sockets: the directory is still
/// private and the file at `sock` is a socket of our own uid.
pub fn check_handover(sock: &Path) -> Result<(), Refusal> {
    let dir = dir_of(sock);
    let euid = euid();
    match stat_dir(&dir)? {
        Some(node) => check_dir(&dir, node, euid)?,
        None => return Err(Refusal::DirMissing { dir }),
    }
    // lstat: pingora's connect would follow a link; a link is refused as not a socket.
    match std::fs::symlink_metadata(sock) {
        Ok(m) => check_socket(sock, Node::from(&m), euid),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Refusal::NoSocket {
            sock: sock.to_path_buf(),
        }),
        Err(e) => Err(Refusal::Unreadable {
            path: sock.to_path_buf(),
            error: e.to_string(),
        }),
    }
}

/// [`check_handover`], after waiting up to [`HANDOVER_WAIT`] for the new process to bind the
/// socket (it may have been started a moment before SIGQUIT).
pub async fn wait_for_handover(sock: &Path) -> Result<(), Refusal> {
    let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
    loop {
        match check_handover(sock) {
            Err(Refusal::NoSocket { .. } | Refusal::DirMissing { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests;
