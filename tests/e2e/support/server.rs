//! The real `portcullis` binary, started on ephemeral loopback ports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub web: SocketAddr,
    pub websecure: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    logs: Arc<Mutex<Vec<String>>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

impl Server {
    /// Starts `portcullis serve` with a config whose listeners use port 0,
    /// state in a fresh temp dir, and `extra` appended to the config.
    pub fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data/dynamic")).unwrap();
        Self::start_in(dir, extra)
    }

    /// Like [`Server::start`], in an existing directory (to restart with the same state).
    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Self {
        Self::start_on(dir, extra, 0, 0)
    }

    /// Starts with fixed `web` and `websecure` ports (an ACME server must
    /// know where to send its validation requests).
    pub fn start_on(
        dir: tempfile::TempDir,
        extra: &str,
        web_port: u16,
        websecure_port: u16,
    ) -> Self {
        Self::configure(dir, extra, web_port, websecure_port, false)
    }

    /// Starts with `admin.require_approval = true`, as the embedded default
    /// runs (the other constructors turn it off so plans run at once).
    pub fn start_requiring_approval(extra: &str, web_port: u16, websecure_port: u16) -> Self {
        Self::configure(
            tempfile::tempdir().unwrap(),
            extra,
            web_port,
            websecure_port,
            true,
        )
    }

    pub fn configure(
        dir: tempfile::TempDir,
        extra: &str,
        web_port: u16,
        websecure_port: u16,
        approval: bool,
    ) -> Self {
        Self::configure_admin(
            dir,
            extra,
            web_port,
            websecure_port,
            &format!("require_approval = {approval}\n"),
        )
    }

    /// Starts on ephemeral ports with extra keys in the `[admin]` table.
    pub fn start_with_admin_extra(admin: &str) -> Self {
        Self::configure_admin(
            tempfile::tempdir().unwrap(),
            "",
            0,
            0,
            &format!("require_approval = false\n{admin}"),
        )
    }

    fn configure_admin(
        dir: tempfile::TempDir,
        extra: &str,
        web_port: u16,
        websecure_port: u16,
        admin: &str,
    ) -> Self {
        Self::write_config(&dir, extra, web_port, websecure_port, admin);
        Self::launch(dir)
    }

    fn write_config(
        dir: &tempfile::TempDir,
        extra: &str,
        web_port: u16,
        websecure_port: u16,
        admin: &str,
    ) {
        std::fs::create_dir_all(dir.path().join("data/dynamic")).unwrap();
        std::fs::write(
            dir.path().join("portcullis.toml"),
            format!(
                "data_dir = \"{data}\"\n[entrypoints.web]\naddress = \"127.0.0.1:{web_port}\"\n[entrypoints.websecure]\naddress = \"127.0.0.1:{websecure_port}\"\n[admin]\naddress = \"127.0.0.1:0\"\n{admin}{extra}\n",
                data = dir.path().join("data").display()
            ),
        )
        .unwrap();
    }

    /// Kills the process (SIGKILL, as a crash would) and starts it again with
    /// the same config and state.
    pub fn restart(self) -> Self {
        Self::launch(self.into_dir())
    }

    fn launch(dir: tempfile::TempDir) -> Self {
        Self::try_launch(dir).unwrap_or_else(|(_, logs)| panic!("{logs}"))
    }

    /// Like [`Server::configure`], but a start that fails because a fixed
    /// port was taken in the meantime (another test's ephemeral port) comes
    /// back as `Err` so the caller can pick new ports.
    pub fn try_configure(
        dir: tempfile::TempDir,
        extra: &str,
        web_port: u16,
        websecure_port: u16,
        approval: bool,
    ) -> Result<Self, String> {
        Self::write_config(
            &dir,
            extra,
            web_port,
            websecure_port,
            &format!("require_approval = {approval}\n"),
        );
        Self::try_launch(dir).map_err(|(_, logs)| logs)
    }

    fn try_launch(dir: tempfile::TempDir) -> Result<Self, (tempfile::TempDir, String)> {
        let config = dir.path().join("portcullis.toml");
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info,portcullis_proxy=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (web, websecure, admin) = loop {
            let found = {
                let logs = logs.lock().unwrap();
                let find = |name: &str| logs.iter().find_map(|l| listening_address(l, name));
                (find("web"), find("websecure"), find("admin"))
            };
            if let (Some(a), Some(b), Some(c)) = found {
                break (a, b, c);
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the reader thread drain what the process wrote last.
                std::thread::sleep(Duration::from_millis(200));
                let text = format!(
                    "portcullis exited with {status}:\n{}",
                    logs.lock().unwrap().join("\n")
                );
                return Err((dir, text));
            }
            assert!(
                Instant::now() < deadline,
                "portcullis did not start:\n{}",
                logs.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let server = Self {
            child,
            web,
            websecure,
            admin,
            dir,
            logs,
        };
        server.wait_for_log("configuration applied", Duration::from_secs(10));
        Ok(server)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.toml")
    }

    /// The admin token the server wrote on first start.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Calls the admin API with the admin token; returns status and JSON body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (http::StatusCode, serde_json::Value) {
        self.api_as(&self.token(), method, path, body).await
    }

    /// Calls the admin API with `token`.
    pub async fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (http::StatusCode, serde_json::Value) {
        use http_body_util::BodyExt;
        let tcp = tokio::net::TcpStream::connect(self.admin).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "admin")
            .header("content-type", "application/json");
        if !token.is_empty() {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = sender
            .send_request(
                request
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// GETs `path` (which must answer 200) until its `status` field is
    /// not one of `busy`; returns that answer. Fails with the server's log
    /// after `timeout`.
    pub async fn wait_status(
        &self,
        path: &str,
        busy: &[&str],
        timeout: Duration,
    ) -> serde_json::Value {
        self.wait_until(path, timeout, |body| {
            !busy.contains(&body["status"].as_str().unwrap_or_default())
        })
        .await
    }

    /// GETs `path` (which must answer 200) until `done` holds for the
    /// answer; returns it. Fails with the answer and the server's log after
    /// `timeout`.
    pub async fn wait_until(
        &self,
        path: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (status, body) = self.api("GET", path, None).await;
            assert_eq!(status, 200, "{body}\n{}", self.logs());
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} after {timeout:?}: {body}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls a plan until it leaves running/awaiting_approval; returns it.
    pub async fn wait_plan(&self, id: &str, timeout: Duration) -> serde_json::Value {
        let path = format!("/api/v1/plans/{id}");
        self.wait_status(&path, &["running", "awaiting_approval"], timeout)
            .await
    }

    /// Polls a certificate until it leaves pending/issuing/renewing; returns the record.
    pub async fn wait_certificate(&self, id: &str, timeout: Duration) -> serde_json::Value {
        let path = format!("/api/v1/acme/certificates/{id}");
        self.wait_status(&path, &["pending", "issuing", "renewing"], timeout)
            .await
    }

    /// Polls a valid certificate until the API says the data plane serves
    /// it (`served`), as a client should before connecting; returns the record.
    pub async fn wait_served(&self, id: &str, timeout: Duration) -> serde_json::Value {
        let path = format!("/api/v1/acme/certificates/{id}");
        self.wait_until(&path, timeout, |body| body["served"] == true)
            .await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dynamic_dir(&self) -> PathBuf {
        self.data_dir().join("dynamic")
    }

    /// Writes a dynamic-configuration file atomically (write + rename), as a deploy tool would.
    pub fn write_dynamic(&self, name: &str, contents: &str) {
        write_atomic(&self.dynamic_dir().join(name), contents);
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn log_count(&self, needle: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until a log line contains `needle`; panics with the log on timeout.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_count(needle) == 0 {
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "portcullis did not exit:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process (SIGKILL) and hands back its directory, for a restart.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a "listening" log line for `entrypoint`, text or JSON.
fn listening_address(line: &str, entrypoint: &str) -> Option<SocketAddr> {
    if line.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(line).ok()?;
        if json["message"] != "listening" || json["entrypoint"] != entrypoint {
            return None;
        }
        return json["address"].as_str()?.parse().ok();
    }
    let rest = line
        .split(&format!("entrypoint={entrypoint} address="))
        .nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
