//! The real-browser test set-up works: Chromium, driven by `tests/browser/smoke.mjs`, opens a
//! page served by a tiny std-only HTTP server, clicks its button, sees the script's effect and
//! saves a screenshot (a PNG).

#[path = "common/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>promiscuous browser smoke test</title></head>
<body>
<h1>Browser smoke test</h1>
<button id="go">Go</button>
<div id="out">waiting</div>
<script>
document.getElementById("go").addEventListener("click", () => {
  document.getElementById("out").textContent = "clicked";
});
</script>
</body></html>
"#;

/// Serves `PAGE` at `/` (404 elsewhere) on a loopback port; returns the page's URL.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream);
        }
    });
    url
}

fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers, up to the empty line (a GET has no body).
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let (status, body) = if request_line.starts_with("GET / ") {
        ("200 OK", PAGE)
    } else {
        ("404 Not Found", "not found\n")
    };
    let content_type = if status.starts_with("200") {
        "text/html; charset=utf-8"
    } else {
        "text/plain"
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[test]
fn chromium_clicks_a_button_and_takes_a_screenshot() {
    let url = serve();
    let shot = browser::temp_dir("smoke").join("smoke.png");
    let out = browser::run_node(
        "smoke.mjs",
        &[
            ("SMOKE_URL", url),
            ("SMOKE_SHOT", shot.display().to_string()),
        ],
    );
    assert!(out.contains("ok:"), "smoke.mjs said: {out}");
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        shot.display()
    );
}
