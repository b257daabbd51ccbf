//! A real S3-compatible server (moto, installed by `scripts/test-servers.sh`) on 127.0.0.1,
//! started once per test process and killed when the process's last handle is dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::workspace_root;

/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct S3Server {
    child: Mutex<Child>,
    pub port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Sends one unsigned HTTP request (moto accepts them) and returns the status line.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_string())
}

impl S3Server {
    /// The shared server (started on first use). Also points the AWS_* environment variables
    /// of this process at it, which is how `s3://` stores find their endpoint.
    pub fn shared() -> Arc<S3Server> {
        static SERVER: OnceLock<Mutex<Weak<S3Server>>> = OnceLock::new();
        let slot = SERVER.get_or_init(|| Mutex::new(Weak::new()));
        let mut weak = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(server) = weak.upgrade() {
            return server;
        }
        let server = Arc::new(S3Server::start());
        *weak = Arc::downgrade(&server);
        server
    }

    fn start() -> S3Server {
        let bin = workspace_root().join("target/tools/moto/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test-servers.sh (scripts/test.sh does)",
            bin.display()
        );
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let server = S3Server {
            child: Mutex::new(child),
            port,
        };
        let started = Instant::now();
        while http(port, "GET", "/").is_err() {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "moto_server did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The variables object_store reads; no other test touches AWS_* variables.
        for (key, value) in [
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
            ("AWS_ALLOW_HTTP", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ] {
            std::env::set_var(key, value);
        }
        server
    }

    /// Creates a bucket (3 or more characters).
    pub fn create_bucket(&self, name: &str) {
        let status = http(self.port, "PUT", &format!("/{name}")).expect("creating a bucket");
        assert!(status.contains(" 200"), "creating bucket {name}: {status}");
    }
}
