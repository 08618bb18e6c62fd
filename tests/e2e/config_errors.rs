//! Settings errors at start, `check-config`, and the embedded default.

use std::process::Command;
use std::time::Duration;

use crate::support::pebble::free_port;
use crate::support::server::binary;

#[test]
fn bad_settings_exit_non_zero_naming_key_and_file_and_bind_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cases = [
        ("unknown.toml", format!("[entrypoints.web]\naddress = \"127.0.0.1:{port}\"\nadress = \"x\"\n"), "adress"),
        ("address.toml", format!("[entrypoints.web]\naddress = \"127.0.0.1:{port}\"\n[admin]\naddress = \"nowhere\"\n"), "admin.address"),
        ("duration.toml", format!("[entrypoints.web]\naddress = \"127.0.0.1:{port}\"\n[server]\ndrain_timeout = \"soon\"\n"), "server.drain_timeout"),
    ];
    for (name, text, key) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let output = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name} was accepted");
        assert!(stderr.contains(key), "{name}: {stderr}");
        assert!(
            stderr.contains(name),
            "{name}: the file is not named: {stderr}"
        );
        assert!(
            !stderr.contains("listening"),
            "{name}: something was bound: {stderr}"
        );
        assert!(
            !dir.path().join("portcullis-data").exists(),
            "{name}: state was created"
        );
        // The port is still free: nothing was bound even briefly and kept.
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();

        let output = Command::new(binary())
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains(key));
    }
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.toml");
    std::fs::write(
        &path,
        "data_dir = \"/tmp/x\"\n[admin]\naddress = \"127.0.0.1:9999\"\n",
    )
    .unwrap();
    let output = Command::new(binary())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok"));
}

#[test]
fn a_taken_port_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[entrypoints.web]\naddress = \"127.0.0.1:0\"\n[entrypoints.websecure]\naddress = \"{}\"\n[admin]\naddress = \"127.0.0.1:0\"\n",
            dir.path().join("data").display(),
            taken.local_addr().unwrap()
        ),
    )
    .unwrap();
    let output = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("websecure") && stderr.contains(&taken.local_addr().unwrap().to_string()),
        "{stderr}"
    );
}

/// The README's first command: `portcullis serve` with no config, in an empty directory.
#[test]
fn embedded_default_starts_with_state_in_portcullis_data() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .arg("serve")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect("127.0.0.1:9180") {
            use std::io::{Read, Write};
            stream
                .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                break true;
            }
        }
        if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let data = dir.path().join("portcullis-data");
    let web = std::net::TcpStream::connect("127.0.0.1:8080").is_ok();
    let websecure = std::net::TcpStream::connect("127.0.0.1:8443").is_ok();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(ready, "admin /readyz on 127.0.0.1:9180 never answered 200");
    assert!(web && websecure, "entrypoints 8080/8443 not listening");
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert!(data.join("dynamic").is_dir());
    assert!(data.join("portcullis.db").is_file());
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
}
