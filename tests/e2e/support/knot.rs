//! A private Knot DNS server (`knotd`) on a free loopback port (UDP and
//! TCP), with its own rundir and storage in a tempdir, a TSIG key allowed to
//! update and transfer every zone, and the zones the test gives as
//! zone-file text. Killed on drop.
//!
//! Knot facts the tests rely on (knot 3.2): it follows a CNAME only to a
//! target in the same zone; a TXT added at a name holding a CNAME is
//! silently ignored; a wrong TSIG secret gets NOTAUTH with TSIG error
//! BADSIG; an UPDATE for a zone it does not serve gets an unsigned NOTAUTH.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::pebble::free_dns_port;

/// How long knotd may take to answer after it is started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one `dig` may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a start is retried when the reserved port was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

pub struct Knot {
    /// Where knotd listens (UDP and TCP).
    pub addr: SocketAddr,
    /// The TSIG key allowed to update and transfer every zone.
    pub key_name: String,
    /// Its secret, base64 (as `keymgr -t` prints it).
    pub key_secret_base64: String,
    /// Its algorithm (`hmac-sha256` unless started with another).
    pub key_algorithm: String,
    /// A second key knotd knows but no ACL allows (updates get BADKEY).
    pub denied_key_name: String,
    /// Its secret, base64.
    pub denied_key_secret_base64: String,
    // Killed before the directory holding its files is removed.
    proc: Proc,
    dir: tempfile::TempDir,
}

impl Knot {
    /// Starts knotd serving `zones`: (zone name, zone-file text) pairs, e.g.
    /// `("test", "$ORIGIN test.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 900 604800 60\n...")`.
    /// Returns once every zone's SOA answers over UDP and TCP.
    pub async fn start(zones: &[(&str, &str)]) -> Knot {
        Self::start_with_algorithm(zones, "hmac-sha256").await
    }

    /// Like [`Knot::start`], with the allowed key of `algorithm`
    /// (`hmac-sha256`, `hmac-sha512`, ...).
    pub async fn start_with_algorithm(zones: &[(&str, &str)], algorithm: &str) -> Knot {
        assert!(!zones.is_empty(), "Knot::start: give at least one zone");
        let dir = tempfile::tempdir().unwrap();
        let key_name = "portcullis-acme".to_owned();
        let key_secret_base64 = generate_secret(&key_name, algorithm);
        let denied_key_name = "denied-key".to_owned();
        let denied_key_secret_base64 = generate_secret(&denied_key_name, "hmac-sha256");
        let mut zone_entries = String::new();
        for (zone, text) in zones {
            let zone = zone.trim_end_matches('.');
            let file = dir.path().join(format!("{zone}.zone"));
            std::fs::write(&file, text).unwrap();
            zone_entries.push_str(&format!(
                "  - domain: {zone}.\n    file: \"{}\"\n",
                file.display()
            ));
        }
        for sub in ["run", "storage"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }

        let mut last_logs = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), free_dns_port());
            let config = config(
                dir.path(),
                addr,
                [
                    (key_name.as_str(), algorithm, key_secret_base64.as_str()),
                    (
                        denied_key_name.as_str(),
                        "hmac-sha256",
                        denied_key_secret_base64.as_str(),
                    ),
                ],
                &zone_entries,
            );
            let config_path = dir.path().join("knot.conf");
            std::fs::write(&config_path, config).unwrap();
            let mut command = Command::new(knotd());
            command.arg("-c").arg(&config_path).current_dir(dir.path());
            let mut proc = Proc::spawn(command);

            let deadline = Instant::now() + STARTUP_TIMEOUT;
            let ready = loop {
                if let Some(status) = proc.exited() {
                    if proc.port_clash() {
                        break false;
                    }
                    panic!("knotd exited with {status}:\n{}", proc.logs());
                }
                assert!(
                    !proc.load_failed(),
                    "knotd could not load a zone:\n{}",
                    proc.logs()
                );
                if proc.loaded(zones.len()) && answers_soa(addr, zones).await {
                    break true;
                }
                assert!(
                    Instant::now() < deadline,
                    "knotd did not answer on {addr} within {STARTUP_TIMEOUT:?}:\n{}",
                    proc.logs()
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            };
            if ready {
                return Knot {
                    addr,
                    key_name,
                    key_secret_base64,
                    key_algorithm: algorithm.to_owned(),
                    denied_key_name,
                    denied_key_secret_base64,
                    proc,
                    dir,
                };
            }
            last_logs = proc.logs();
        }
        panic!("knotd: ports kept being taken after {PORT_ATTEMPTS} attempts:\n{last_logs}");
    }

    /// The TXT values at `fqdn` (strings of one RR joined), asked with
    /// `dig` over TCP, sorted. CNAMEs on the way (knot follows them inside
    /// a zone) are left out.
    pub async fn txt(&self, fqdn: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .query(fqdn, "TXT")
            .await
            .iter()
            .filter(|line| line.starts_with('"'))
            .map(|line| unquote_txt(line))
            .collect();
        values.sort();
        values
    }

    /// `dig +short` lines for `fqdn` `rtype` (no recursion, TCP).
    pub async fn query(&self, fqdn: &str, rtype: &str) -> Vec<String> {
        let addr = self.addr;
        let (name, kind) = (fqdn.to_owned(), rtype.to_owned());
        let output = tokio::time::timeout(
            QUERY_TIMEOUT,
            tokio::task::spawn_blocking(move || {
                Command::new("dig")
                    .arg(format!("@{}", addr.ip()))
                    .args(["-p", &addr.port().to_string()])
                    .args(["+short", "+norecurse", "+tcp", "+time=2", "+tries=1"])
                    .args([name.as_str(), kind.as_str()])
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("cannot run dig ({e}); install Debian's `dnsutils` package (scripts/test-all does)")
                    })
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("dig {fqdn} {rtype}: no answer in {QUERY_TIMEOUT:?}"))
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success() && !stdout.starts_with(";;"),
            "dig {fqdn} {rtype} at {}: {stdout}{}\n{}",
            self.addr,
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
        stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// knotd's captured log (stderr).
    pub fn logs(&self) -> String {
        self.proc.logs()
    }

    /// The scratch directory (config, zone files, storage).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// knotd is in /usr/sbin, which a non-root PATH may lack.
fn knotd() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|d| d.join("knotd").is_file()))
        .unwrap_or(false);
    if on_path {
        PathBuf::from("knotd")
    } else {
        PathBuf::from("/usr/sbin/knotd")
    }
}

/// A fresh TSIG secret from `keymgr -t NAME ALGORITHM`.
fn generate_secret(name: &str, algorithm: &str) -> String {
    let keymgr = if Path::new("/usr/sbin/keymgr").is_file() {
        "/usr/sbin/keymgr"
    } else {
        "keymgr"
    };
    let output = Command::new(keymgr)
        .args(["-t", name, algorithm])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run keymgr ({e}); install Debian's `knot` package (scripts/test-all does)"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "keymgr -t {name} {algorithm}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret:"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| panic!("keymgr printed no secret:\n{stdout}"))
}

/// knotd's configuration: one listener, small databases, few workers, every
/// zone updatable (and transferable) with the allowed key, nothing written
/// back to the zone files.
fn config(dir: &Path, addr: SocketAddr, keys: [(&str, &str, &str); 2], zones: &str) -> String {
    let [(allowed, allowed_algorithm, allowed_secret), (denied, denied_algorithm, denied_secret)] =
        keys;
    format!(
        "server:
  listen: {ip}@{port}
  rundir: \"{dir}/run\"
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
log:
  - target: stderr
    any: info
database:
  storage: \"{dir}/storage\"
  journal-db-max-size: 20M
  kasp-db-max-size: 5M
  timer-db-max-size: 5M
  catalog-db-max-size: 5M
key:
  - id: {allowed}
    algorithm: {allowed_algorithm}
    secret: {allowed_secret}
  - id: {denied}
    algorithm: {denied_algorithm}
    secret: {denied_secret}
acl:
  - id: acme
    key: {allowed}
    action: [update, transfer]
template:
  - id: default
    storage: \"{dir}\"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    acl: acme
zone:
{zones}",
        ip = addr.ip(),
        port = addr.port(),
        dir = dir.display(),
    )
}

/// Whether every zone's SOA answers over UDP and over TCP (TCP proves the
/// port is this knotd's: knotd binds UDP with SO_REUSEPORT, TCP without).
async fn answers_soa(addr: SocketAddr, zones: &[(&str, &str)]) -> bool {
    for (zone, _) in zones {
        for transport in ["+notcp", "+tcp"] {
            let zone = zone.trim_end_matches('.').to_owned();
            let output = tokio::task::spawn_blocking(move || {
                Command::new("dig")
                    .arg(format!("@{}", addr.ip()))
                    .args(["-p", &addr.port().to_string()])
                    .args(["+short", "+norecurse", "+time=1", "+tries=1", transport])
                    .args([format!("{zone}."), "SOA".to_owned()])
                    .output()
            })
            .await;
            match output {
                Ok(Ok(out))
                    if out.status.success()
                        && !out.stdout.is_empty()
                        && !out.stdout.starts_with(b";;") => {}
                _ => return false,
            }
        }
    }
    true
}

/// `"a" "b"` (one TXT RR of two strings, as dig prints it) → `ab`.
fn unquote_txt(line: &str) -> String {
    let mut value = String::new();
    let mut chars = line.chars();
    let mut inside = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => inside = !inside,
            '\\' if inside => {
                if let Some(next) = chars.next() {
                    value.push(next);
                }
            }
            c if inside => value.push(c),
            _ => {}
        }
    }
    value
}

/// knotd with its stderr/stdout captured; killed on drop.
struct Proc {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run knotd ({e}); install Debian's `knot` package (scripts/test-all does)")
            });
        let logs = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            capture(child.stdout.take().unwrap(), Arc::clone(&logs)),
            capture(child.stderr.take().unwrap(), Arc::clone(&logs)),
        ];
        Self {
            child,
            logs,
            readers,
        }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// knotd exits when its TCP listener cannot bind.
    fn port_clash(&self) -> bool {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("address already in use"))
    }

    /// Whether knotd logged that `zones` zones are loaded.
    fn loaded(&self, zones: usize) -> bool {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .filter(|l| l.contains("] loaded, serial"))
            .count()
            >= zones
    }

    /// Whether a zone file failed to load (knotd logs it and runs on).
    fn load_failed(&self) -> bool {
        let logs = self.logs.lock().unwrap();
        logs.iter().any(|l| l.contains("zone event 'load' failed"))
    }

    /// The exit status once knotd has exited, with its output read to the end.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.try_wait().unwrap()?;
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Some(status)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(
    stream: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    })
}
