//! Real-browser tests: runs a script of `tests/browser/` (playwright-core driving Debian's
//! `/usr/bin/chromium`) with Node. The npm dependencies are installed on first use
//! (`scripts/browser-deps`); a missing browser fails the test, it is never skipped.
//!
//! Included with `#[path = "common/browser.rs"] mod browser;`.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The browser the tests drive (Debian's package `chromium`, installed by `scripts/services.sh up`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one script may run before it is killed (with its browser) and the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Installs the npm dependencies of `tests/browser/` once per test process (a no-op when they
/// are there); every caller sees the same failure if it could not.
fn browser_deps() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let script = root().join("scripts/browser-deps");
        match Command::new(&script).current_dir(root()).output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Err(format!("cannot run {}: {e}", script.display())),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Runs `node tests/browser/<script>` from the workspace root with `env` added to the
/// environment, and returns its stdout. Panics, showing its stdout and stderr, if it fails or
/// runs longer than [`TIMEOUT`] (then it is killed with the browser it started); panics if
/// Chromium is not installed.
pub fn run_node(script: &str, env: &[(&str, String)]) -> String {
    browser_deps();
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/services.sh up (it installs Debian's chromium)"
    );
    let path = root().join("tests/browser").join(script);
    let mut command = Command::new("node");
    command
        .arg(&path)
        .current_dir(root())
        // Playwright's error messages without terminal colour codes.
        .env("FORCE_COLOR", "0")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so that a timeout kills the browser too.
        .process_group(0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e}", path.display()));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());

    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    match status {
        Some(status) if status.success() => stdout,
        Some(status) => panic!(
            "node tests/browser/{script} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
        None => panic!(
            "node tests/browser/{script} did not finish within {TIMEOUT:?} (killed)\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        ),
    }
}

/// Reads a pipe to its end on a thread of its own (so that neither pipe fills up and blocks).
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A new, empty directory under the system's temp directory, named after `tag`, unique to this
/// call (for screenshots and the like; left in place so that they can be looked at).
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "promiscuous-browser-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
