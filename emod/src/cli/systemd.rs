//! Running under systemd: readiness notification (`Type=notify`) and journal-friendly logs.
//!
//! Both are plain protocols, implemented here with the standard library instead of a crate:
//! readiness is one datagram (`READY=1`) to the socket named by `$NOTIFY_SOCKET`, and the journal
//! reads a `<N>` syslog priority prefix at the start of each stderr line (`SyslogLevelPrefix=`,
//! on by default) when stderr is connected to it (`$JOURNAL_STREAM`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Sends `state` (e.g. `READY=1\nSTATUS=…`) to systemd's notification socket. `Ok(false)` when
/// the process was not started with `$NOTIFY_SOCKET` (not under `Type=notify`).
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let bytes = name.as_encoded_bytes();
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(&name))?;
    }
    Ok(true)
}

/// Whether the daemon runs under systemd's service manager and should say when it is ready.
pub fn notify_wanted() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Waits (on its own thread) for the daemon to write `port_file` — it does once the API serves
/// requests — then confirms that `GET /healthz` answers on that address and only then tells
/// systemd `READY=1`, so `systemctl start emod` returns when clients can connect. Gives up
/// silently when the daemon exits first (systemd then reports the failed start itself).
pub fn notify_when_ready(port_file: PathBuf) {
    std::thread::Builder::new()
        .name("sd-notify".into())
        .spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(3600);
            while Instant::now() < deadline {
                if let Some(addr) = std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<SocketAddr>().ok())
                {
                    if healthz_answers(addr) {
                        let status = format!("READY=1\nSTATUS=serving on http://{addr}\n");
                        if let Err(e) = notify(&status) {
                            tracing::warn!(error = %e, "cannot notify systemd of readiness");
                        }
                        return;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .expect("spawn the sd-notify thread");
}

/// One `GET /healthz` over loopback-or-wherever: true on an HTTP 200.
fn healthz_answers(mut addr: SocketAddr) -> bool {
    if addr.ip().is_unspecified() {
        // Listening on 0.0.0.0 / [::]: ask over loopback.
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// True when stderr is the journal's stream (`$JOURNAL_STREAM` names its device and inode):
/// the journal then timestamps each line itself and shows no colours.
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Text log writer for the journal: each event is one line (control characters escaped, as in
/// the terminal log) prefixed with its syslog priority, so `journalctl -p warning -u emod` works.
#[derive(Clone, Copy)]
pub struct JournalWriter;

pub struct PrefixedEvent {
    priority: u8,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for JournalWriter {
    type Writer = PrefixedEvent;

    fn make_writer(&'a self) -> Self::Writer {
        PrefixedEvent { priority: 6 }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        PrefixedEvent {
            priority: syslog_priority(meta.level()),
        }
    }
}

/// syslog priorities: err 3, warning 4, info 6, debug 7.
pub fn syslog_priority(level: &tracing::Level) -> u8 {
    match *level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

impl Write for PrefixedEvent {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let line = format!(
            "<{}>{}",
            self.priority,
            super::logging::escape_event(&text, false)
        );
        io::stderr().write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(syslog_priority(&tracing::Level::ERROR), 3);
        assert_eq!(syslog_priority(&tracing::Level::WARN), 4);
        assert_eq!(syslog_priority(&tracing::Level::INFO), 6);
        assert_eq!(syslog_priority(&tracing::Level::DEBUG), 7);
    }

    #[test]
    fn notify_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // Only this test sets NOTIFY_SOCKET in the unit-test process; other tests do not read it.
        std::env::set_var("NOTIFY_SOCKET", &path);
        assert!(notify("READY=1\n").unwrap());
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }
}
