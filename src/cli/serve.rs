//! `photon-upgrade internals serve DIR`: a minimal static HTTP/1.1 server
//! for demos and air-gapped labs (GET, HEAD and single byte ranges; files
//! only, no directory listings, never outside DIR, never through a
//! symlink). Production publishing uses any real web server or CDN.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::fsutil::Dir;

/// Idle connections are closed after this long.
const IDLE: Duration = Duration::from_secs(30);

/// Serves `root` on `addr` until killed; prints the bound address first.
pub fn serve(root: &Path, addr: &str) -> Result<()> {
    let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    let dir = Dir::open(root).with_context(|| format!("opening {}", root.display()))?;
    println!("serving {} on http://{}", root.display(), listener.local_addr()?);
    std::io::stdout().flush()?;
    std::thread::scope(|s| {
        for conn in listener.incoming().flatten() {
            let dir = &dir;
            s.spawn(move || {
                let _ = handle(dir, conn);
            });
        }
    });
    Ok(())
}

fn handle(dir: &Dir, conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let mut range = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("range")
            {
                range = v
                    .trim()
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|n| n.parse::<u64>().ok());
            }
        }
        let file =
            safe_path(target).and_then(|p| dir.open_file(&p).ok()).filter(|f| f.metadata().is_ok_and(|m| m.is_file()));
        let Some(mut file) = file else {
            out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        };
        let len = file.metadata()?.len();
        let (status, start) = match range {
            Some(n) if n < len => ("206 Partial Content", n),
            Some(_) => {
                write!(
                    out,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n"
                )?;
                continue;
            }
            None => ("200 OK", 0),
        };
        write!(out, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n", len - start)?;
        if start > 0 {
            write!(out, "Content-Range: bytes {start}-{}/{len}\r\n", len - 1)?;
        }
        out.write_all(b"\r\n")?;
        if method == "GET" {
            file.seek(SeekFrom::Start(start))?;
            std::io::copy(&mut (&mut file).take(len - start), &mut out)?;
        }
    }
}

/// The relative path a request names, if it stays inside the root.
fn safe_path(target: &str) -> Option<PathBuf> {
    let path = target.split('?').next()?.trim_start_matches('/');
    let p = Path::new(path);
    if path.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(p.to_owned())
}
