//! What an attacker's code inside a local sandbox tried, through the public API only, and the
//! containment each finding now has (one test per finding).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2b_blocking::local::ResourceLimits;
use e2b_blocking::{Error, Isolation, LocalOptions, ReconnectPolicy, Sandbox};

use super::{out, sh};
use crate::support::own_process::{in_own_process, this_test_again};
use crate::support::{deadline, init_logs, local};

/// The sandbox's server (bubblewrap's process) and every process below it.
fn processes(sbx: &Sandbox) -> Vec<u32> {
    let root = sbx.as_local().unwrap().pid();
    std::iter::once(root)
        .chain(crate::support::descendants(root))
        .collect()
}

/// The sandbox's host directory.
fn sandbox_dir(sbx: &Sandbox) -> std::path::PathBuf {
    let runtime = sbx.as_local().unwrap().runtime_dir();
    runtime.parent().unwrap().to_path_buf()
}

/// Where each open descriptor of `pids` points.
fn open_files(pids: &[u32]) -> Vec<String> {
    let mut links = Vec::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                links.push(target.display().to_string());
            }
        }
    }
    links
}

/// A host directory opened without `O_CLOEXEC`, as a shell's `exec 7</dir` leaves one: closed
/// when dropped.
struct LeakedDir(i32);

impl LeakedDir {
    fn open(dir: &Path) -> LeakedDir {
        let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; the descriptor is closed in Drop.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        assert!(fd >= 0, "cannot open {}", dir.display());
        LeakedDir(fd)
    }
}

impl Drop for LeakedDir {
    fn drop(&mut self) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(self.0) };
    }
}

/// Finding 1: a descriptor the embedding process holds without `O_CLOEXEC` reaches no process
/// of the sandbox, so code inside cannot open the host directory through `/proc/PID/fd`.
#[test]
fn a_descriptor_the_host_process_leaks_is_unreachable_inside() {
    deadline(|| {
        init_logs();
        let host_dir = std::env::temp_dir().join(format!("e2b-leaked-dir-{}", std::process::id()));
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("e2b-fd-marker"), "host").unwrap();
        let leaked = LeakedDir::open(&host_dir);
        let isolated = local();
        let unisolated = Sandbox::builder()
            .local_with(LocalOptions::new().isolation(Isolation::None))
            .unwrap();
        drop(leaked);
        let code = r#"
import os
hits = []
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        continue
    for fd in fds:
        p = f"/proc/{pid}/fd/{fd}"
        try:
            if os.path.isdir(p) and "e2b-fd-marker" in os.listdir(p):
                hits.append(p)
        except OSError:
            pass
print("hits", hits)
"#;
        assert_eq!(out(&isolated, code), "hits []\n");
        let wanted = host_dir.display().to_string();
        for sbx in [&isolated, &unisolated] {
            let pids = processes(sbx);
            let links = open_files(&pids);
            assert!(!links.is_empty(), "no descriptor seen at all");
            assert!(!links.contains(&wanted), "{wanted} is open in {pids:?}");
        }
        let _ = std::fs::remove_dir_all(&host_dir);
    });
}

/// Finding 3: the sandbox's environment values reach it, but no process's command line.
#[test]
fn env_values_are_on_no_command_line() {
    deadline(|| {
        init_logs();
        let value = format!("env-secret-{}", uuid::Uuid::new_v4().simple());
        let sbx = Sandbox::builder()
            .envs([("E2B_PROBE_SECRET", value.as_str())])
            .local()
            .unwrap();
        let inside = out(&sbx, "import os; print(os.environ['E2B_PROBE_SECRET'])");
        assert_eq!(inside.trim(), value);
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&value),
                "the value is on {}'s command line",
                entry.path().display()
            );
        }
    });
}

/// Finding 7: a seccomp filter refuses the kernel interfaces a sandbox has no use for, nested
/// user namespaces are refused, and open files are limited.
#[test]
fn seccomp_nested_namespaces_and_open_files_are_limited() {
    deadline(|| {
        let sbx = local();
        let shell = sh(
            &sbx,
            "grep '^Seccomp:' /proc/self/status; \
             unshare -U true 2>/dev/null && echo nested-userns || echo no-nested-userns; \
             ulimit -n",
        );
        assert_eq!(shell, "Seccomp:\t2\nno-nested-userns\n4096\n");
        #[cfg(target_arch = "x86_64")]
        {
            let code = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for name, nr in (("io_uring_setup", 425), ("keyctl", 250), ("perf_event_open", 298), ("mount", 165)):
    ctypes.set_errno(0)
    r = libc.syscall(nr, 0, 0, 0, 0, 0)
    print(name, r, ctypes.get_errno())
"#;
            assert_eq!(
                out(&sbx, code),
                "io_uring_setup -1 1\nkeyctl -1 1\nperf_event_open -1 1\nmount -1 1\n"
            );
        }
        assert_eq!(out(&sbx, "print(6 * 7)"), "42\n");
    });
}

/// Finding 5: `/tmp` and `/dev/shm` are tmpfs of a given size, `/` is read-only, and the root
/// stays writable.
#[test]
fn tmp_and_shm_are_sized_and_the_rest_of_slash_is_read_only() {
    deadline(|| {
        init_logs();
        let limits = ResourceLimits::new()
            .tmp_size_bytes(Some(8 << 20))
            .shm_size_bytes(Some(4 << 20));
        let sbx = Sandbox::builder()
            .local_with(LocalOptions::new().resource_limits(limits))
            .unwrap();
        let shell = sh(
            &sbx,
            "df -k /tmp /dev/shm | awk 'NR > 1 { print $6, $2 }'; \
             { head -c 16M /dev/zero > /tmp/fill; } 2>&1 || echo tmp-full; \
             { head -c 8M /dev/zero > /dev/shm/fill; } 2>&1 || echo shm-full; \
             touch /planted 2>&1 || echo root-read-only; \
             touch /home/user/ok && echo home-writable",
        );
        assert!(shell.contains("/tmp 8192\n"), "{shell}");
        assert!(shell.contains("/dev/shm 4096\n"), "{shell}");
        for said in ["tmp-full", "shm-full", "root-read-only", "home-writable"] {
            assert!(shell.contains(said), "{said} missing: {shell}");
        }
        assert_eq!(
            shell.matches("No space left on device").count(),
            2,
            "{shell}"
        );
        assert!(shell.contains("Read-only file system"), "{shell}");
    });
}

/// Finding 5: the sandbox's memory as a whole is capped (a memory cgroup): a process that
/// takes more than the cap is killed inside the sandbox, and the sandbox goes on.
#[test]
fn the_sandboxs_total_memory_is_capped() {
    deadline(|| {
        init_logs();
        let cap: u64 = 384 << 20;
        let limits = ResourceLimits::new().max_total_memory_bytes(Some(cap));
        let sbx = Sandbox::builder()
            .local_with(LocalOptions::new().resource_limits(limits))
            .unwrap();
        let pid = sbx.as_local().unwrap().pid();
        let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        if !groups.contains("e2b-local-") && !can_make_memory_cgroups() {
            eprintln!("skipped: this host gives the SDK no memory cgroup:\n{groups}");
            return;
        }
        assert!(
            groups.contains("e2b-local-"),
            "not in its cgroup:\n{groups}"
        );
        // Twice the cap, every page touched.
        let hog = "python -c \"b = b'x' * (768 << 20); print(len(b))\"";
        let hog = sbx.commands().run(hog).unwrap();
        assert_eq!(hog.exit_code, -9, "the hog was not killed: {hog:?}");
        assert_eq!(out(&sbx, "print(6 * 7)"), "42\n");
    });
}

/// Whether this process may make a child of its memory cgroup (v1 or v2).
fn can_make_memory_cgroups() -> bool {
    let groups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let candidates = groups.lines().filter_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            Some(Path::new("/sys/fs/cgroup/memory").join(path))
        } else if controllers.is_empty() {
            Some(Path::new("/sys/fs/cgroup").join(path))
        } else {
            None
        }
    });
    for dir in candidates {
        let probe = dir.join(format!("e2b-probe-{}", std::process::id()));
        if std::fs::create_dir(&probe).is_ok() {
            let _ = std::fs::remove_dir(&probe);
            return true;
        }
    }
    false
}

/// `(inode, local address)` of the TCP sockets listening in this network namespace.
fn listening() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let (Some(&"0A"), Some(addr), Some(inode)) =
                (fields.get(3), fields.get(1), fields.get(9))
            {
                found.push((inode.to_string(), addr.to_string()));
            }
        }
    }
    found
}

/// Finding 8: with the host's network shared, the kernels' channels are Unix sockets inside
/// the sandbox, not TCP ports any local user or other sandbox could connect to. The one TCP
/// listener a kernel keeps is ipykernel's own pipe for output from forked children (on
/// 127.0.0.1, and it drops every message without a 16-byte secret of the kernel's).
#[test]
fn with_internet_access_no_kernel_channel_is_on_the_host_network() {
    deadline(|| {
        init_logs();
        let sbx = Sandbox::builder()
            .local_with(LocalOptions::new().allow_internet_access(true))
            .unwrap();
        let ctx = sbx.create_context(Default::default()).unwrap();
        let pipe_port = "from ipykernel.kernelapp import IPKernelApp\n\
                         print(IPKernelApp.instance().iopub_thread._pipe_port)";
        let mut pipes = vec![out(&sbx, pipe_port)];
        pipes.push(
            sbx.code(pipe_port)
                .context(&ctx)
                .run()
                .unwrap()
                .logs
                .stdout
                .join(""),
        );
        let pipes: Vec<u16> = pipes.iter().map(|p| p.trim().parse().unwrap()).collect();

        let kernels = crate::support::kernel_connection_files(&sbx);
        for info in &kernels {
            assert_eq!(info["transport"], "ipc", "{info}");
        }
        assert!(kernels.len() >= 2, "{} connection files", kernels.len());

        let pids = processes(&sbx);
        let links = open_files(&pids);
        assert!(links.iter().any(|l| l.starts_with("socket:[")));
        for (inode, addr) in listening() {
            if !links.contains(&format!("socket:[{inode}]")) {
                continue;
            }
            let (ip, port) = addr.split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            assert_eq!(ip, "0100007F", "listening beyond loopback: {addr}");
            assert!(
                pipes.contains(&port),
                "port {port} is no kernel's output pipe ({pipes:?})"
            );
        }
    });
}

/// A host Unix socket that counts the connections it is offered.
struct HostSocket {
    path: std::path::PathBuf,
    listener: std::os::unix::net::UnixListener,
}

impl HostSocket {
    fn new(name: &str) -> HostSocket {
        let path = std::env::temp_dir().join(format!("{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        HostSocket { path, listener }
    }

    fn was_reached(&self) -> bool {
        self.listener.accept().is_ok()
    }
}

impl Drop for HostSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Finding 2: a link the sandbox plants where its server's socket (or a `get_host` relay's)
/// was is never followed to a socket of the host.
#[test]
fn a_planted_socket_link_is_never_followed() {
    deadline(|| {
        init_logs();
        let host = HostSocket::new("e2b-planted-target");
        // The kernel connect below fails for good; a short reconnect budget says so sooner.
        let sbx = Sandbox::builder()
            .reconnect(ReconnectPolicy::default().max_elapsed(Duration::from_secs(2)))
            .local()
            .unwrap();
        let mut relay_target = sbx
            .commands()
            .cmd(
                "python -c \"import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); \
                  s.listen(); print(s.getsockname()[1], flush=True); s.accept()\"",
            )
            .timeout(None)
            .spawn()
            .unwrap();
        let port: u16 = loop {
            if let Some(line) = relay_target.stdout().lines().next() {
                break line.trim().parse().unwrap();
            }
            if let Some(done) = relay_target
                .wait_timeout(Duration::from_millis(50))
                .unwrap()
            {
                panic!("the listener exited: {done:?}");
            }
        };
        let forward = sbx.get_host(port).unwrap();
        let plant = format!(
            r#"
import os
for d in ("/run/e2b-blocking/sock", "/run/e2b-blocking/fwd"):
    for name in os.listdir(d):
        if name.endswith(".sock"):
            os.rename(f"{{d}}/{{name}}", f"{{d}}/moved-{{name}}")
            os.symlink({:?}, f"{{d}}/{{name}}")
print("planted")
"#,
            host.path.display().to_string()
        );
        assert_eq!(out(&sbx, &plant), "planted\n");
        // New connections: through the relay, to a new kernel's websocket (its REST call may
        // ride a pooled connection), and from a new client of the server's URL.
        if let Ok(mut tcp) = std::net::TcpStream::connect(forward.as_str()) {
            use std::io::Read;
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = tcp.read(&mut [0u8; 16]);
        }
        let context = sbx.create_context(Default::default());
        assert!(
            context.is_err(),
            "a kernel through a planted link: {context:?}"
        );
        match Sandbox::jupyter(sbx.jupyter_url(), "not-the-token") {
            Err(Error::Transport { .. }) => {}
            other => panic!("a client of the planted socket: {other:?}"),
        }
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            assert!(
                !host.was_reached(),
                "the SDK connected to the planted target"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Put the sockets back from the host's side: the sandbox works again, and stopping the
        // relay and the listener need not wait out their kill budgets against a server that
        // cannot be reached.
        let sock = unix_socket_of(sbx.jupyter_url());
        let sandbox_dir = sock.parent().and_then(Path::parent).unwrap();
        for dir in ["sock", "fwd"].map(|d| sandbox_dir.join(d)) {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if let Some(original) = name.strip_prefix("moved-") {
                    std::fs::remove_file(dir.join(original)).unwrap();
                    std::fs::rename(dir.join(&name), dir.join(original)).unwrap();
                }
            }
        }
        assert_eq!(out(&sbx, "print('restored')"), "restored\n");
        relay_target.kill().unwrap();
    });
}

/// The socket path of an `http+unix://` URL (its host, percent-encoded).
fn unix_socket_of(url: &str) -> PathBuf {
    let host = url
        .strip_prefix("http+unix://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("not an http+unix URL: {url}"));
    PathBuf::from(host.replace("%2F", "/").replace("%2f", "/"))
}

/// Finding 6: code that writes without end to the server's log (the descriptor its processes
/// inherit) fills neither the host's disk nor the SDK's memory; the log's end is still read.
#[test]
fn a_flooded_server_log_stays_bounded() {
    // It measures the resident memory of its process, which tests beside it would raise.
    in_own_process(|| {
        deadline(|| {
            let sbx = local();
            let before = rss_kib();
            let flood = r#"
    import os
    # The kernel's own copy of the descriptor it inherited from the server (ipykernel keeps one
    # when it captures fd 2): the server's log.
    log = os.readlink(f"/proc/{os.getppid()}/fd/2")
    fd = next(int(n) for n in os.listdir("/proc/self/fd") if os.readlink(f"/proc/self/fd/{n}") == log)
    chunk = b"x" * (1 << 20)
    for _ in range(256):
        os.write(fd, chunk)
    os.write(fd, b"\nthe last line\n")
    print("flooded")
    "#;
            assert_eq!(out(&sbx, flood), "flooded\n");
            let until = Instant::now() + Duration::from_secs(60);
            while !sbx
                .as_local()
                .unwrap()
                .server_log()
                .ends_with("the last line")
            {
                assert!(Instant::now() < until, "the log's end never arrived");
                std::thread::sleep(Duration::from_millis(50));
            }
            let grown = rss_kib().saturating_sub(before);
            assert!(grown < 32 << 10, "the SDK grew by {grown} KiB");
            let mut todo = vec![sandbox_dir(&sbx)];
            while let Some(d) = todo.pop() {
                for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let meta = entry.metadata().unwrap();
                    if meta.is_dir() {
                        todo.push(entry.path());
                    } else if entry.file_name() != "root.img" {
                        // (root.img is the root's own file system, capped on its own.)
                        assert!(meta.len() < 1 << 20, "{} grew", entry.path().display());
                    }
                }
            }
        });
    });
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Finding 9: the directory of a sandbox whose SDK process was SIGKILLed (no `Drop` ran) is
/// removed when a later sandbox starts.
#[test]
fn a_killed_sdks_sandbox_directory_is_removed_at_the_next_start() {
    const CHILD: &str = "E2B_TEST_SANDBOX_CHILD";
    if std::env::var_os(CHILD).is_some() {
        // The child: start a sandbox, say where its directory is, wait to be killed.
        let sbx = local();
        let dir = sandbox_dir(&sbx);
        println!("DIR {}", dir.display());
        std::thread::sleep(Duration::from_secs(600));
        return;
    }
    deadline(|| {
        use std::io::BufRead;
        let mut child = this_test_again()
            .env(CHILD, "1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let dir = loop {
            let line = lines
                .next()
                .expect("the child said where its sandbox is")
                .unwrap();
            // The harness may print the test's name on the same line first.
            if let Some((_, dir)) = line.split_once("DIR ") {
                break std::path::PathBuf::from(dir.trim());
            }
        };
        assert!(dir.exists());
        child.kill().unwrap();
        child.wait().unwrap();
        let _next = local();
        assert!(!dir.exists(), "{} was left", dir.display());
    });
}

/// Finding 6: the root's size is capped (where the SDK runs as root, which may mount): a write
/// past it fails inside, the host's disk is untouched, and nothing stays mounted afterwards.
#[test]
fn the_roots_size_is_capped() {
    deadline(|| {
        init_logs();
        let limits = ResourceLimits::new().max_disk_bytes(Some(64 << 20));
        let sbx = Sandbox::builder()
            .local_with(LocalOptions::new().resource_limits(limits))
            .unwrap();
        let root = sbx.as_local().unwrap().root().to_path_buf();
        let mounted = || {
            std::fs::read_to_string("/proc/mounts")
                .unwrap()
                .contains(&format!(" {} ", root.display()))
        };
        if !nix::unistd::geteuid().is_root() {
            assert!(!mounted());
            eprintln!("skipped: only root may mount the root's file system");
            return;
        }
        assert!(mounted(), "{} is not a mount point", root.display());
        let shell = sh(
            &sbx,
            "{ head -c 100M /dev/zero > /home/user/big; } 2>&1 || echo root-full; \
             ls /home/user; rm /home/user/big; echo small > /home/user/ok && cat /home/user/ok",
        );
        assert!(shell.contains("No space left on device"), "{shell}");
        assert!(shell.contains("root-full"), "{shell}");
        assert!(shell.ends_with("small\n"), "{shell}");
        assert!(!shell.contains("lost+found"), "{shell}");
        assert_eq!(sbx.files().read("ok").unwrap(), "small\n");
        sbx.kill().unwrap();
        assert!(!mounted(), "{} stays mounted", root.display());
        assert!(!root.exists());
    });
}
