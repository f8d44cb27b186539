//! Child processes of the benchmark: started pinned to a core, killed by their own pid when the
//! benchmark ends (and by the kernel if the benchmark dies first), waited for until listening.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::Duration;

use crate::BoxError;

/// A free loopback port.
pub fn free_addr() -> Result<SocketAddr, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// `N` free loopback ports, all different: each is held until all are picked (one released
/// at once could be handed out again for the next).
pub fn free_addrs<const N: usize>() -> Result<[SocketAddr; N], BoxError> {
    let mut held = Vec::with_capacity(N);
    for _ in 0..N {
        held.push(TcpListener::bind("127.0.0.1:0")?);
    }
    let mut addrs = [SocketAddr::from(([127, 0, 0, 1], 0)); N];
    for (addr, listener) in addrs.iter_mut().zip(&held) {
        *addr = listener.local_addr()?;
    }
    Ok(addrs)
}

/// Every process the benchmark started, killed and reaped on drop, however the run ends.
#[derive(Default)]
pub struct Procs(Vec<(String, Child)>);

impl Procs {
    /// Start `command`, remembered as `name`.
    pub fn spawn(&mut self, name: &str, command: &mut Command) -> Result<(), BoxError> {
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.0.push((name.to_owned(), child));
        Ok(())
    }

    /// Fail if a process already exited (a bad configuration, a port taken).
    pub fn check_alive(&mut self) -> Result<(), BoxError> {
        for (name, child) in &mut self.0 {
            if let Some(status) = child.try_wait()? {
                return Err(format!("{name} exited early ({status}); see target/bench/").into());
            }
        }
        Ok(())
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait (bounded) until something accepts connections at `addr`.
pub fn wait_listening(addr: SocketAddr) -> Result<(), BoxError> {
    for _ in 0..400 {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!("{addr} never started listening").into())
}

/// `program` prefixed with `taskset -c CPU` when taskset exists and the machine has that core.
/// The child is killed when the benchmark dies, however it dies (Linux parent-death signal).
pub fn pinned(cpu: usize, program: &str) -> Command {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let has_taskset = Command::new("taskset").arg("-V").output().is_ok();
    let mut c = if has_taskset && cpu < cores {
        let mut c = Command::new("taskset");
        c.args(["-c", &cpu.to_string(), program]);
        c
    } else {
        Command::new(program)
    };
    die_with_parent(&mut c);
    c
}

#[expect(
    unsafe_code,
    reason = "prctl(2) between fork and exec has no safe wrapper"
)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
