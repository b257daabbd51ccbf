//! Inodes made ahead of need for a local store's documents.
//!
//! On the ext4 disks measured here, making an inode is the slowest step of a durable run:
//! 20 - 40 µs for each directory or file, and a root run makes five (its run, action and
//! attempt directories, its inputs and outputs documents; see BENCHMARKS.md). A thread of the
//! store makes them ahead, in a staging directory of its own, while runs go on on the other
//! core. A run then takes them:
//! - a spare tree `t<n>/<tail>` (the tail is `a0/1`, a root run's action and first attempt) is
//!   renamed onto `<project>/<domain>/<run>`: one rename instead of three `mkdir`s;
//! - a spare unnamed file (`O_TMPFILE`) gets a root run's document's bytes and is then linked
//!   at its path (`linkat`, by descriptor where the process may, else through
//!   `/proc/self/fd`), so the document appears whole, at once. Children's documents are made in
//!   place: they run many at a time, with no idle core to make them ahead.
//!
//! When nothing is ready, or any step fails, the document is written as before (make the
//! directories, create the file): no run waits for the thread. The thread starts only when a
//! host begins its second root run, so a one-run `sluice run` never pays for it.
//!
//! After a crash, unnamed files vanish with the process; spare trees are empty directories
//! under `.sluice-spare/<owner>/`, held with `flock` while the owner lives. The next process
//! that starts its thread removes every staging directory whose lock it can take.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Directory under the store's root that holds every process's staging directory.
pub const STAGING_DIR: &str = ".sluice-spare";
/// Spare trees kept ready (one per root run).
pub const SPARE_TREES: usize = 8;
/// Spare files kept ready (a root run takes two: its inputs and outputs documents).
pub const SPARE_FILES: usize = 16;
/// Root runs that find no spare tree before the thread starts.
const MISSES_BEFORE_START: u32 = 2;
/// Run directories this store has written under that it remembers, so that a run's later
/// documents do not try to place a tree there (older ones are forgotten first).
const SEEN_REMEMBERED: usize = 1024;

pub(crate) struct Spares {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    root: PathBuf,
    /// The directories a spare tree holds below its top, e.g. `a0/1`.
    tail: String,
    state: Mutex<State>,
    wake: Condvar,
    /// Files are linked by descriptor (`AT_EMPTY_PATH`, which needs `CAP_DAC_READ_SEARCH`)
    /// rather than through `/proc/self/fd`: set by the thread when a trial link works.
    by_fd: AtomicBool,
}

impl Shared {
    fn links_by_fd(&self) -> bool {
        self.by_fd.load(Ordering::Relaxed)
    }

    /// The pools and marks; a panic elsewhere while holding them leaves nothing half-done.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
struct State {
    trees: Vec<PathBuf>,
    files: Vec<File>,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
    misses: u32,
    started: bool,
    stopping: bool,
}

impl Spares {
    pub fn new(root: &Path, tail: &str) -> Spares {
        Spares {
            shared: Arc::new(Shared {
                root: root.to_path_buf(),
                tail: tail.trim_matches('/').to_string(),
                state: Mutex::default(),
                wake: Condvar::new(),
                by_fd: AtomicBool::new(false),
            }),
            thread: Mutex::new(None),
        }
    }

    /// Writes `bytes` at `rel` under the root, as `write_document` does, with spare inodes
    /// when there are.
    pub fn write_document(&self, rel: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.shared.root.join(rel);
        // A run's first document: its directories do not exist yet, so place a spare tree
        // before anything tries the path (a failed link or open costs 10 µs here).
        // The tree is tried once per run directory: the fallbacks below make plain directories.
        let top = rel.rsplit_once('/').and_then(|(dir, _)| self.tree_top(dir));
        if let Some(top) = top {
            self.place_tree(top);
        }
        // Spare files go to root runs' documents only. Children run many at a time, with both
        // cores busy, where a file made on the thread and linked costs more in all than one
        // made in place (15 + 10 µs against 22 µs here).
        if let Some(file) = top.and_then(|_| self.take_file()) {
            match place_file(&file, bytes, &target, self.shared.links_by_fd()) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(dir) = target.parent() {
                        std::fs::create_dir_all(dir)?;
                        if link_at(&file, &target, self.shared.links_by_fd()).is_ok() {
                            return Ok(());
                        }
                    }
                }
                // Already there (it is replaced below), or linking is not possible here.
                Err(_) => {}
            }
        }
        super::write_document(&target, bytes)
    }

    /// The run directory (`<project>/<domain>/<run>`) a spare tree would become, when
    /// `rel_dir` ends with the trees' tail.
    fn tree_top<'a>(&self, rel_dir: &'a str) -> Option<&'a str> {
        rel_dir
            .strip_suffix(self.shared.tail.as_str())
            .and_then(|top| top.strip_suffix('/'))
            .filter(|top| !top.is_empty())
    }

    /// Renames a spare tree onto `top`, the first time this store writes under `top` (a
    /// run's later documents find its directories made, one way or the other). Fails, and the
    /// tree stays a spare, when `top` exists and is not empty or its parent is missing.
    fn place_tree(&self, top: &str) {
        {
            let mut state = self.lock();
            if state.seen.contains(top) {
                return;
            }
            state.seen.insert(top.to_string());
            state.seen_order.push_back(top.to_string());
            if state.seen_order.len() > SEEN_REMEMBERED {
                if let Some(oldest) = state.seen_order.pop_front() {
                    state.seen.remove(&oldest);
                }
            }
        }
        let Some(tree) = self.take_tree() else {
            return;
        };
        if std::fs::rename(&tree, self.shared.root.join(top)).is_err() {
            self.lock().trees.push(tree);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    fn take_tree(&self) -> Option<PathBuf> {
        let mut state = self.lock();
        let tree = state.trees.pop();
        if tree.is_none() && !state.started {
            state.misses += 1;
            if state.misses >= MISSES_BEFORE_START {
                state.started = true;
                drop(state);
                self.start();
                return None;
            }
        } else if state.trees.len() == SPARE_TREES / 2 {
            // Woken once per half a pool, not once per take: a wake is a system call.
            self.shared.wake.notify_one();
        }
        tree
    }

    fn take_file(&self) -> Option<File> {
        let mut state = self.lock();
        let file = state.files.pop();
        if file.is_some() && state.files.len() == SPARE_FILES / 2 {
            self.shared.wake.notify_one();
        }
        file
    }

    fn start(&self) {
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("sluice-spares".into())
            .spawn(move || make_ahead(&shared));
        // Without the thread, documents are written as before.
        if let Ok(handle) = spawned {
            *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        }
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.lock().stopping = true;
        self.shared.wake.notify_one();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            // At most one tree in the making and the staging directory's removal.
            let _ = handle.join();
        }
    }
}

/// Writes `bytes` into an unnamed file and links it at `target`.
fn place_file(file: &File, bytes: &[u8], target: &Path, by_fd: bool) -> io::Result<()> {
    use std::io::Write;
    (&mut &*file).write_all(bytes)?;
    link_at(file, target, by_fd)
}

/// Gives an unnamed (`O_TMPFILE`) file the name `target`; fails if `target` exists. By
/// descriptor when `by_fd` (a third cheaper here), else through `/proc/self/fd`.
fn link_at(file: &File, target: &Path, by_fd: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(target.as_os_str().as_bytes())?;
    // SAFETY: every path is a NUL-terminated string that lives across the call, and the
    // descriptor is open for as long as `file` is borrowed.
    let rc = if by_fd {
        unsafe {
            libc::linkat(
                file.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        }
    } else {
        let proc_path = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_path.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The spare thread: fills both pools, then sleeps until a take leaves one of them half full.
fn make_ahead(shared: &Shared) {
    let Some(staging) = Staging::open(&shared.root) else {
        return;
    };
    let by_fd = staging.links_by_fd();
    shared.by_fd.store(by_fd, Ordering::Relaxed);
    let mut files_work = by_fd || Path::new("/proc/self/fd").is_dir();
    let mut trees_work = true;
    let mut made = 0u64;
    let mut state = shared.lock();
    loop {
        if state.stopping {
            break;
        }
        let want_tree = trees_work && state.trees.len() < SPARE_TREES;
        let want_file = files_work && state.files.len() < SPARE_FILES;
        if !want_tree && !want_file {
            state = shared.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        drop(state);
        let tree = want_tree.then(|| staging.make_tree(made, &shared.tail));
        let file = want_file.then(|| staging.make_file());
        made += 1;
        state = shared.lock();
        match tree {
            Some(Ok(tree)) => state.trees.push(tree),
            Some(Err(_)) => trees_work = false,
            None => {}
        }
        match file {
            Some(Ok(file)) => state.files.push(file),
            // No O_TMPFILE on this file system (or no /proc): files are made on demand.
            Some(Err(_)) => files_work = false,
            None => {}
        }
    }
    state.trees.clear();
    state.files.clear();
    drop(state);
    staging.remove();
}

/// This process's staging directory, held with `flock` while it lives.
struct Staging {
    dir: PathBuf,
    _lock: File,
}

impl Staging {
    /// Makes the staging directory and removes those of owners that are gone.
    fn open(root: &Path) -> Option<Staging> {
        let parent = root.join(STAGING_DIR);
        std::fs::create_dir_all(&parent).ok()?;
        remove_abandoned(&parent);
        let dir = parent.join(ulid::Ulid::generate().to_string());
        std::fs::create_dir(&dir).ok()?;
        let lock = File::open(&dir).ok()?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return None;
        }
        Some(Staging { dir, _lock: lock })
    }

    fn make_tree(&self, n: u64, tail: &str) -> io::Result<PathBuf> {
        let top = self.dir.join(format!("t{n}"));
        std::fs::create_dir(&top)?;
        let mut dir = top.clone();
        for segment in tail.split('/') {
            dir.push(segment);
            std::fs::create_dir(&dir)?;
        }
        Ok(top)
    }

    #[cfg(not(target_os = "linux"))]
    fn make_file(&self) -> io::Result<File> {
        Err(io::ErrorKind::Unsupported.into())
    }

    #[cfg(target_os = "linux")]
    fn make_file(&self) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .mode(0o666) // as a file made by `File::create`, less the umask
            .custom_flags(libc::O_TMPFILE)
            .open(&self.dir)
    }

    /// Whether this process may link a file by its descriptor: tried once, on a spare file.
    fn links_by_fd(&self) -> bool {
        let Ok(file) = self.make_file() else {
            return false;
        };
        let trial = self.dir.join("link-trial");
        let linked = link_at(&file, &trial, true).is_ok();
        let _ = std::fs::remove_file(&trial);
        linked
    }

    fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the staging directories whose owner no longer holds their lock.
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(dir) = File::open(&path) else {
            continue;
        };
        // SAFETY: flock on a descriptor this loop owns; released when `dir` closes.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(root: &Path) -> Spares {
        let spares = Spares::new(root, "a0/1");
        for _ in 0..MISSES_BEFORE_START {
            assert!(spares.take_tree().is_none());
        }
        // The pools fill on the thread; wait until both have something.
        for _ in 0..2000 {
            let state = spares.lock();
            if state.trees.len() == SPARE_TREES && state.files.len() == SPARE_FILES {
                break;
            }
            drop(state);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        spares
    }

    fn staging_dirs(root: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(root.join(STAGING_DIR))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Writes a document through `spares` and checks the file holds exactly those bytes.
    fn write_and_check(spares: &Spares, root: &Path, rel: &str, bytes: &[u8]) {
        spares.write_document(rel, bytes).unwrap();
        assert_eq!(std::fs::read(root.join(rel)).unwrap(), bytes, "{rel}");
    }

    #[test]
    fn a_host_with_one_run_never_starts_the_thread() {
        let root = tempfile::tempdir().unwrap();
        let spares = Spares::new(root.path(), "a0/1");
        for name in ["inputs.msgpack", "outputs.msgpack", "log.txt"] {
            write_and_check(&spares, root.path(), &format!("p/d/r1/a0/1/{name}"), b"1");
        }
        assert!(!spares.lock().started, "one run, one miss");
        write_and_check(&spares, root.path(), "p/d/r2/a0/1/inputs.msgpack", b"2");
        assert!(spares.lock().started, "the second run starts it");
    }

    #[test]
    fn a_root_run_takes_a_spare_tree_and_spare_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("p/d")).unwrap();
        let spares = started(root.path());
        let state = spares.lock();
        assert_eq!(
            (state.trees.len(), state.files.len()),
            (SPARE_TREES, SPARE_FILES)
        );
        drop(state);

        write_and_check(&spares, root.path(), "p/d/r1/a0/1/inputs.msgpack", b"in");
        write_and_check(&spares, root.path(), "p/d/r1/a0/1/outputs.msgpack", b"out");
        let state = spares.lock();
        assert_eq!(state.trees.len(), SPARE_TREES - 1, "one tree placed");
        assert!(state.files.len() < SPARE_FILES, "spare files used");
    }

    #[test]
    fn a_document_already_there_is_replaced_and_other_shapes_get_plain_directories() {
        let root = tempfile::tempdir().unwrap();
        let spares = started(root.path());
        // The run's directory exists and holds something: no tree can take its place.
        std::fs::create_dir_all(root.path().join("p/d/r2/a0/1")).unwrap();
        std::fs::write(root.path().join("p/d/r2/a0/1/inputs.msgpack"), b"old").unwrap();
        write_and_check(&spares, root.path(), "p/d/r2/a0/1/inputs.msgpack", b"new");
        // A child action's attempt and a retry: made with create_dir_all, files made in place.
        let files = spares.lock().files.len();
        write_and_check(
            &spares,
            root.path(),
            "p/d/r2/a1f/1/inputs.msgpack",
            b"child",
        );
        write_and_check(&spares, root.path(), "p/d/r2/a0/2/inputs.msgpack", b"retry");
        assert_eq!(
            spares.lock().files.len(),
            files,
            "no spare file for a child or a retry"
        );
        // A new domain: the tree's rename finds no parent, the tree stays a spare.
        write_and_check(&spares, root.path(), "q/e/r3/a0/1/inputs.msgpack", b"first");
        assert_eq!(spares.lock().trees.len(), SPARE_TREES);
    }

    #[test]
    fn staging_is_removed_on_drop_and_abandoned_staging_by_the_next_thread() {
        let root = tempfile::tempdir().unwrap();
        let spares = started(root.path());
        assert_eq!(staging_dirs(root.path()).len(), 1);
        // Another staging directory that a live owner holds, and one whose owner is gone.
        let live = root.path().join(STAGING_DIR).join("live");
        let gone = root.path().join(STAGING_DIR).join("gone");
        std::fs::create_dir_all(live.join("t0/a0/1")).unwrap();
        std::fs::create_dir_all(gone.join("t0/a0/1")).unwrap();
        let held = File::open(&live).unwrap();
        assert_eq!(
            unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        drop(spares);
        let left = staging_dirs(root.path());
        assert_eq!(left.len(), 2, "only this owner's staging is gone: {left:?}");

        let again = started(root.path());
        let mut left = staging_dirs(root.path());
        left.retain(|d| d != &live);
        assert_eq!(left.len(), 1, "the abandoned one is removed: {left:?}");
        assert!(!gone.exists());
        assert!(live.exists(), "a held staging directory is kept");
        drop(again);
    }
}
