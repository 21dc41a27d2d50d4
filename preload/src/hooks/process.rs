//! Process life: `fork`, `vfork`, `_Fork`, `daemon`, the `execve` family and
//! `posix_spawn`/`posix_spawnp`.
//!
//! * **fork**: the child inherits the fd table and the candidate store with
//!   its memory, and every descriptor with its file table, so nothing needs
//!   copying. The candidate store's lock is taken around the fork (a
//!   `pthread_atfork` handler for `fork`, explicitly for `_Fork`, which runs
//!   no handlers), so the child never inherits it held. With a backend, its
//!   `before_fork`/`after_fork_*` hooks run around the real call.
//! * **vfork** runs as `fork`: a conforming implementation (the child may only
//!   `_exit` or exec), and the only safe one when the child's exec goes
//!   through our hooks.
//! * **daemon** is re-implemented on our `fork` when a backend is active
//!   (glibc's calls its internal fork, past our hook).
//! * **exec**: candidates that survive the exec (not close-on-exec) are
//!   converted to kernel sockets first, so the new image gets the kernel
//!   socket the program made. Surviving sessions are offered to the backend
//!   ([`Backend::prepare_exec`]). The table itself does not survive: the new
//!   image starts with an empty one. If exec returns, the backend hears
//!   [`Backend::exec_failed`]. `posix_spawn` gets the same preparation (the
//!   child execs; the parent carries on as after a failed exec). Exec paths
//!   that bypass these symbols (libc's own `system` and `popen`, runtimes
//!   that `clone` and exec with raw system calls) skip the preparation; see
//!   [`crate::candidate`].
//! * The sessions themselves cannot cross (their memory goes with the old
//!   image): the backend describes them ([`Backend::handover`]: the vcl
//!   backend's `SLUICE_INHERITED`) and the hooks add that variable to the
//!   new image's environment: a new array with the caller's entries
//!   (`execve`, `execvpe`, `execveat`, `fexecve`, `posix_spawn*`) or the
//!   process's (`execv`, `execvp`, and the `execl` family through them),
//!   never a change to the caller's or to `environ`. Without anything to
//!   hand over, the call is made as the caller made it.

use std::ffi::CString;
use std::os::fd::RawFd;

use libc::{c_char, c_int, pid_t};

use super::fd::dup2_tracked;
use crate::backend::Backend;
use crate::candidate::{self, convert};
use crate::errno::{check, Errno};
use crate::fdtable::{Entry, FDS};
use crate::hook::{self, Outcome};
use crate::policy;
use crate::real;
use crate::trace;

/// The backend, if one is active in this process (a decision was made and
/// the backend was reachable); without one, process calls need nothing.
fn active_backend() -> Option<&'static dyn Backend> {
    policy::get_if_parsed().and_then(|p| p.backend.as_ref().ok().copied())
}

fn fork_with(backend: Option<&'static dyn Backend>, real_fork: impl FnOnce() -> pid_t) -> Result<pid_t, Errno> {
    if let Some(b) = backend {
        b.before_fork();
    }
    let pid = real_fork();
    let err = Errno::last();
    match (pid, backend) {
        (0, Some(b)) => b.after_fork_child(),
        (_, Some(b)) => b.after_fork_parent(pid),
        (_, None) => {}
    }
    if pid == -1 {
        Err(err)
    } else {
        Ok(pid)
    }
}

crate::hook! {
    fn fork() -> pid_t;
    kernel_if active_backend().is_none();
    // SAFETY: fork has no arguments; the child continues in this code.
    fork_with(active_backend(), || unsafe { real::fork() }).map(Outcome::Done)
}

/// `vfork` runs as `fork`; see the module docs.
///
/// # Safety
/// As `fork`.
#[no_mangle]
pub unsafe extern "C" fn vfork() -> pid_t {
    // SAFETY: same contract.
    unsafe { fork() }
}

crate::hook! {
    fn _Fork() -> pid_t;
    kernel_if false;
    {
        // `_Fork` runs no atfork handlers: hold the candidate lock across it
        // here; parent and child each release their copy.
        let store = candidate::lock();
        // SAFETY: _Fork has no arguments.
        let result = fork_with(active_backend(), || unsafe { real::_Fork() });
        drop(store);
        result.map(Outcome::Done)
    }
}

crate::hook! {
    fn daemon(nochdir: c_int, noclose: c_int) -> c_int;
    kernel_if active_backend().is_none();
    daemonize(nochdir, noclose).map(Outcome::Done)
}

/// glibc's `daemon(3)` (misc/daemon.c), forking through our hook.
fn daemonize(nochdir: c_int, noclose: c_int) -> Result<c_int, Errno> {
    // SAFETY: fork has no arguments.
    match fork_with(active_backend(), || unsafe { real::fork() })? {
        0 => {}
        // SAFETY: _exit ends the parent, as daemon(3) does.
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() })?;
    if nochdir == 0 {
        // SAFETY: a NUL-terminated path.
        let _ = unsafe { libc::chdir(c"/".as_ptr()) };
    }
    if noclose == 0 {
        // SAFETY: a NUL-terminated path; open is not hooked.
        let null = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) })?;

        // SAFETY: an all-zero stat is a valid out-buffer.
        let mut st: libc::stat64 = unsafe { std::mem::zeroed() };
        // SAFETY: fstat64 of the descriptor just opened into a local.
        let stat_ok = unsafe { real::fstat64(null, &mut st) } == 0;
        let is_dev_null = stat_ok && st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        if !is_dev_null {
            // SAFETY: closing the descriptor opened above.
            unsafe { real::close(null) };
            return Err(Errno(libc::ENODEV));
        }
        for target in 0..=2 {
            dup2_tracked(null, target)?;
        }
        if null > 2 {
            // SAFETY: closing the descriptor opened above.
            unsafe { real::close(null) };
        }
    }
    Ok(0)
}

/// What [`prepare_exec`] leaves for the exec call: the backend to tell if
/// it fails, and the variable (`NAME=VALUE`) the new image needs.
struct Prepared {
    backend: Option<&'static dyn Backend>,
    variable: Option<(&'static str, CString)>,
}

/// Makes the process ready for an exec (see the module docs). `exec_self`:
/// this process execs (not a `posix_spawn` child).
fn prepare_exec(exec_self: bool) -> Prepared {
    let survives = |fd: RawFd| {
        // SAFETY: F_GETFD on a tracked descriptor.
        let flags = unsafe { real::fcntl(fd, libc::F_GETFD, 0) };
        flags >= 0 && flags & libc::FD_CLOEXEC == 0
    };
    let mut candidates = Vec::new();
    let mut sessions = Vec::new();
    FDS.for_each_tracked(0..=c_int::MAX, |fd, entry| match entry {
        Entry::Candidate(_) if survives(fd) => candidates.push(fd),
        Entry::Session(s) if survives(fd) => sessions.push((fd, s)),
        _ => {}
    });
    if !candidates.is_empty() {
        let mut store = candidate::lock();
        for fd in candidates {
            if let Err(err) = convert::to_kernel(&mut store, fd) {
                log::warn!("socket {fd} reaches the exec'd program as a plain eventfd: {err}");
            }
        }
    }
    let Some(backend) = active_backend() else { return Prepared { backend: None, variable: None } };
    if sessions.is_empty() {
        return Prepared { backend: Some(backend), variable: None };
    }
    for fd in backend.prepare_exec(&sessions) {
        if let Some(at) = sessions.iter().position(|(named, _)| *named == fd) {
            let (_, s) = sessions.remove(at);
            if FDS.forget(fd, Entry::Session(s)) {
                backend.release(s);
            }
        }
    }
    let variable = backend.handover(&sessions, exec_self).and_then(|(name, value)| {
        CString::new(format!("{name}={value}")).ok().map(|entry| (name, entry))
    });
    Prepared { backend: Some(backend), variable }
}

/// An exec'd environment: the caller's entries, without any of the handed
/// over variable's name, then that variable.
struct Environment {
    pointers: Vec<*const c_char>,
    _entry: CString,
}

impl Environment {
    /// # Safety
    /// `envp` is NULL (an empty environment, as Linux takes it) or a
    /// NULL-terminated array of NUL-terminated strings.
    unsafe fn new(envp: Argv, (name, entry): (&'static str, CString)) -> Environment {
        let mut pointers = Vec::new();
        let mut at = envp;
        // SAFETY: walking the caller's NULL-terminated array, as execve does.
        while !at.is_null() && unsafe { !(*at).is_null() } {

            // SAFETY: as above; each entry is a C string.
            let e = unsafe { *at };
            // SAFETY: a NUL-terminated string of the caller's.
            let bytes = unsafe { std::ffi::CStr::from_ptr(e) }.to_bytes();
            if !(bytes.starts_with(name.as_bytes()) && bytes.get(name.len()) == Some(&b'=')) {
                pointers.push(e);
            }
            // SAFETY: the array goes on until its NULL.
            at = unsafe { at.add(1) };
        }
        pointers.push(entry.as_ptr());
        pointers.push(std::ptr::null());
        Environment { pointers, _entry: entry }
    }

    fn as_ptr(&self) -> Argv {
        self.pointers.as_ptr()
    }
}

extern "C" {
    /// The process environment, which `execv`, `execvp` and `execl*` pass on.
    static environ: Argv;
}

fn process_environment() -> Argv {
    // SAFETY: reading libc's pointer; the array it names is walked like any caller's envp.
    unsafe { environ }
}

/// Runs an exec call after [`prepare_exec`]; it only returns on failure.
/// `call` gets the environment to pass: the handed-over one if there is
/// something to hand over (built from `envp`, the call's own), else `None`
/// (the call as the caller made it).
fn exec_with(envp: Argv, call: impl FnOnce(Option<Argv>) -> c_int) -> Result<Outcome<c_int>, Errno> {
    let prepared = prepare_exec(true);
    // SAFETY: `envp` is the caller's environment argument (or `environ`).
    let environment = prepared.variable.map(|v| unsafe { Environment::new(envp, v) });
    call(environment.as_ref().map(Environment::as_ptr));
    let err = Errno::last();
    if let Some(b) = prepared.backend {
        b.exec_failed();
    }
    Err(err)
}

fn nothing_tracked() -> bool {
    FDS.high_water() == 0
}

type Argv = *const *const c_char;

crate::hook! {
    fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int;
    kernel_if nothing_tracked();
    // SAFETY: the caller's arguments, as asked.
    exec_with(envp, |env| unsafe { real::execve(path, argv, env.unwrap_or(envp)) })
}

crate::hook! {
    fn execv(path: *const c_char, argv: Argv) -> c_int;
    kernel_if nothing_tracked();
    exec_with(process_environment(), |env| match env {
        // SAFETY: the caller's arguments, and the environment built from the process's.
        Some(env) => unsafe { real::execve(path, argv, env) },
        // SAFETY: the caller's arguments, as asked.
        None => unsafe { real::execv(path, argv) },
    })
}

crate::hook! {
    fn execvp(file: *const c_char, argv: Argv) -> c_int;
    kernel_if nothing_tracked();
    exec_with(process_environment(), |env| match env {
        // SAFETY: the caller's arguments, and the environment built from the process's.
        Some(env) => unsafe { real::execvpe(file, argv, env) },
        // SAFETY: the caller's arguments, as asked.
        None => unsafe { real::execvp(file, argv) },
    })
}

crate::hook! {
    fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int;
    kernel_if nothing_tracked();
    // SAFETY: the caller's arguments, as asked.
    exec_with(envp, |env| unsafe { real::execvpe(file, argv, env.unwrap_or(envp)) })
}

crate::hook! {
    fn execveat(dirfd: c_int, path: *const c_char, argv: Argv, envp: Argv, flags: c_int) -> c_int;
    kernel_if nothing_tracked();
    // SAFETY: the caller's arguments, as asked.
    exec_with(envp, |env| unsafe { real::execveat(dirfd, path, argv, env.unwrap_or(envp), flags) })
}

crate::hook! {
    fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int;
    kernel_if nothing_tracked();
    // SAFETY: the caller's arguments, as asked.
    exec_with(envp, |env| unsafe { real::fexecve(fd, argv, env.unwrap_or(envp)) })
}

type SpawnArgv = *const *mut c_char;

/// `posix_spawn`/`posix_spawnp` return an error number instead of setting
/// `errno`, so they are written out by hand. `call` gets the environment to
/// pass, as [`exec_with`]'s.
fn spawn_with(
    name: &'static str,
    args: &[trace::Arg],
    pid: *mut pid_t,
    envp: SpawnArgv,
    call: impl FnOnce(SpawnArgv) -> c_int,
) -> c_int {
    if crate::guard::inside() {
        return call(envp);
    }
    let rc = if nothing_tracked() {
        call(envp)
    } else {
        let prepared = hook::run_guarded(name, || Ok(prepare_exec(false)))
            .unwrap_or(Prepared { backend: None, variable: None });
        // SAFETY: the caller's environment argument.
        let environment = prepared.variable.map(|v| unsafe { Environment::new(envp.cast(), v) });
        let rc = call(environment.as_ref().map_or(envp, |e| e.as_ptr().cast()));
        if let Some(b) = prepared.backend {
            // The parent carries on in this image, as after a failed exec.
            b.exec_failed();
            // SAFETY: posix_spawn stored the child's pid if it succeeded and `pid` is not NULL.
            if let Some(child) = (rc == 0 && !pid.is_null()).then(|| unsafe { *pid }) {
                let _ = hook::run_guarded(name, || {
                    b.spawned(child);
                    Ok(())
                });
            }
        }
        rc
    };
    if trace::enabled() {
        let errno = (rc != 0).then_some(Errno(rc));
        trace::call(name, args, &trace::Outcome { value: trace::Arg::from(rc), errno });
    }
    rc
}

/// # Safety
/// As `posix_spawn(3)`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: SpawnArgv,
    envp: SpawnArgv,
) -> c_int {
    let args = [trace::Arg::from(pid), trace::Arg::from(path), trace::Arg::from(argv)];
    // SAFETY: the caller's arguments, as asked.
    spawn_with("posix_spawn", &args, pid, envp, |env| unsafe {
        real::posix_spawn(pid, path, actions, attr, argv, env)
    })
}

/// # Safety
/// As `posix_spawnp(3)`.
#[no_mangle]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    actions: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: SpawnArgv,
    envp: SpawnArgv,
) -> c_int {
    let args = [trace::Arg::from(pid), trace::Arg::from(file), trace::Arg::from(argv)];
    // SAFETY: the caller's arguments, as asked.
    spawn_with("posix_spawnp", &args, pid, envp, |env| unsafe {
        real::posix_spawnp(pid, file, actions, attr, argv, env)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(env: &Environment) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = env.as_ptr();
        // SAFETY: the array `Environment` built, NULL-terminated.
        while unsafe { !(*at).is_null() } {
            // SAFETY: each entry is a live C string (the caller's or ours).
            out.push(unsafe { std::ffi::CStr::from_ptr(*at) }.to_string_lossy().into_owned());

            // SAFETY: within the array, before its NULL.
            at = unsafe { at.add(1) };
        }
        out
    }

    #[test]
    fn the_exec_d_environment_replaces_the_handed_over_variable() {
        let path = CString::new("PATH=/bin").unwrap();
        let stale = CString::new("SLUICE_INHERITED=3,C,0,-,0,0,").unwrap();
        let similar = CString::new("SLUICE_INHERITED_X=1").unwrap();
        let envp = [path.as_ptr(), stale.as_ptr(), similar.as_ptr(), std::ptr::null()];
        let ours = || ("SLUICE_INHERITED", CString::new("SLUICE_INHERITED=4,C,0,-,0,0,").unwrap());
        // SAFETY: a NULL-terminated array of C strings that outlive the call.
        let env = unsafe { Environment::new(envp.as_ptr(), ours()) };
        assert_eq!(strings(&env), ["PATH=/bin", "SLUICE_INHERITED_X=1", "SLUICE_INHERITED=4,C,0,-,0,0,"]);
        // SAFETY: a NULL environment is an empty one.
        let env = unsafe { Environment::new(std::ptr::null(), ours()) };
        assert_eq!(strings(&env), ["SLUICE_INHERITED=4,C,0,-,0,0,"]);
    }
}
