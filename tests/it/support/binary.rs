//! The real `verge` binary as a child process, for what only a process shows: signals, stdout
//! (access log), memory. Ports are picked by binding `127.0.0.1:0` and releasing; the start is
//! retried on the rare collision.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Path of the built binary.
pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_verge"))
}

/// A free loopback port, released for the child to bind. Another test may take it first; a
/// child is only taken as started once [`listens_on`] shows the port is its own.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `N` free loopback ports, all different: each is held until all are picked.
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let held: [TcpListener; N] = std::array::from_fn(|_| TcpListener::bind("127.0.0.1:0").unwrap());
    held.map(|l| l.local_addr().unwrap())
}

/// A loopback address that refuses connections for as long as the socket is kept: bound, so no
/// other test can take the port, but not listening, so a connection gets a reset.
pub fn refusing_addr() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Whether process `pid` holds the socket listening on `addr` (an IPv4 address): its inode,
/// from `/proc/net/tcp`, among the process's open files.
pub fn listens_on(pid: u32, addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else {
        return false;
    };
    // /proc/net/tcp prints the address as the in-memory (network-order) word in hex, the port
    // in hex, and 0A for LISTEN.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
                .then(|| fields.get(9).map(|i| format!("socket:[{i}]")))
                .flatten()
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
}

/// A running `verge serve`. Killed (SIGKILL) when dropped if still running.
pub struct Verge {
    /// The child.
    pub child: Child,
    /// Proxy listener.
    pub addr: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// TLS listener, when the template has `{tls}`.
    pub tls: SocketAddr,
    /// Every stdout line so far.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Verge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Verge {
    /// Send a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        #[expect(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Wait (bounded) for the process to exit; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The configuration generation `/healthz` reports.
    pub async fn generation(&self) -> serde_json::Value {
        super::get(self.admin, "/healthz").await.json()["generation"].clone()
    }

    /// Whether `/healthz` reports `generation` within a few seconds (a reload's outcome).
    pub async fn reaches_generation(&self, generation: u64) -> bool {
        super::eventually(100, Duration::from_millis(50), || async {
            (self.generation().await == generation).then_some(())
        })
        .await
        .is_some()
    }

    /// stdout lines parsed as JSON (non-JSON lines skipped).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Peak resident memory of the process, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

/// Start `verge serve --config FILE` where `template` has `{listen}`, `{admin}` (and optionally
/// `{tls}`) placeholders; waits (bounded) until `/healthz` answers.
pub async fn start(dir: &Path, template: &str) -> Verge {
    start_watching(dir, template, 100).await
}

/// As [`start`], checking the configuration files every `watch_ms` (0: only on SIGHUP).
pub async fn start_watching(dir: &Path, template: &str, watch_ms: u64) -> Verge {
    start_with(dir, template, watch_ms, "info").await
}

/// As [`start_watching`], with `RUST_LOG` set to `rust_log`.
pub async fn start_with(dir: &Path, template: &str, watch_ms: u64, rust_log: &str) -> Verge {
    start_with_env(dir, template, watch_ms, rust_log, &[]).await
}

/// As [`start_with`], with `env` added to verge's environment.
pub async fn start_with_env(
    dir: &Path,
    template: &str,
    watch_ms: u64,
    rust_log: &str,
    env: &[(&str, &str)],
) -> Verge {
    for _ in 0..5 {
        let [addr, admin, tls] = free_addrs();
        let config = template
            .replace("{listen}", &addr.to_string())
            .replace("{admin}", &admin.to_string())
            .replace("{tls}", &tls.to_string());
        let path = dir.join("verge.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(exe())
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--watch-interval-ms", &watch_ms.to_string()])
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let verge = Verge {
            child,
            addr,
            admin,
            tls,
            lines,
        };
        // Healthy admin and every listener bound by this child: pingora starts its services on
        // their own threads, so the admin app can answer before the proxy listener is bound,
        // and a port another test took between `free_addr` and the bind answers too, but not
        // from this child (the start is then retried on new ports).
        let pid = verge.child.id();
        let mut listeners = vec![addr, admin];
        if template.contains("{tls}") {
            listeners.push(tls);
        }
        let up = super::eventually(100, Duration::from_millis(50), || async {
            let healthy = super::client::try_request(admin, super::client::get_req("/healthz"))
                .await
                .is_ok_and(|r| r.status == 200);
            let own = listeners.iter().all(|&l| listens_on(pid, l));
            (healthy && own).then_some(())
        })
        .await;
        if up.is_some() {
            return verge;
        }
    }
    panic!("verge did not start");
}

/// Run `verge validate --config FILE`: (exit code, stdout).
pub fn validate(config: &Path) -> (i32, String) {
    let out = Command::new(exe())
        .args(["validate", "--config"])
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
