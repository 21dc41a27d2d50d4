//! nginx as a proxy: `proxy_pass` to the upstream on 127.0.0.1 (under
//! Sluice a cut-through session in the daemon), chunked request bodies
//! through it, chunked responses relayed from it, and the `stream` TCP
//! proxy in front of it.

use serde_json::{json, Value};

use super::http::chunked_gzip;
use super::{elapsed, expect_body, Case, Ctx};
use crate::nginx::{Nginx, Side, HTTP_PORT, STREAM_PORT};
use crate::report::Outcome;

pub fn cases() -> Vec<Case> {
    vec![
        Case { name: "proxy_pass keepalive upstream", run: proxy_keepalive },
        Case { name: "chunked request body (PUT via proxy)", run: chunked_request },
        Case { name: "chunked response via proxy", run: chunked_proxied },
        Case { name: "stream TCP proxy", run: stream_proxy },
        Case { name: "upstream listening on 127.0.0.1", run: loopback_listener },
    ]
}

/// The ports of the nginx of [`loopback_listener`]: its front and its
/// upstream on 127.0.0.1.
const LOOPBACK_FRONT_PORT: u16 = 18084;
const LOOPBACK_UPSTREAM_PORT: u16 = 18083;

/// Whether the daemon holds a cut-through session (anywhere in `sluice
/// sessions --json`).
fn has_cut_through(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.get("cut_through") == Some(&Value::Bool(true)) || map.values().any(has_cut_through),
        Value::Array(items) => items.iter().any(has_cut_through),
        _ => false,
    }
}

/// Requests through `proxy_pass` on one client connection; the upstream's
/// idle keep-alive connections (`keepalive 8`) stay open after, and under
/// Sluice they are cut-through sessions.
fn proxy_keepalive(ctx: &Ctx) -> Outcome {
    let paths = ["/up/small.txt", "/up/big.bin", "/up/small.txt", "/up/big.bin", "/up/small.txt"];
    let r = ctx.client(HTTP_PORT, "keepalive", &paths);
    let mut out = Outcome::new(r.clone());
    let responses = r["responses"].as_array().cloned().unwrap_or_default();
    out.expect(responses.len() == paths.len(), format!("{} responses: {r}", responses.len()));
    for (got, path) in responses.iter().zip(paths) {
        let body = if path.ends_with(".bin") { &ctx.files.big[..] } else { &ctx.files.small[..] };
        expect_body(&mut out, path, got, 200, body);
    }
    if ctx.side == Side::Sluice {
        let sessions = ctx.bed.sessions().unwrap_or(Value::Null);
        out.expect(has_cut_through(&sessions), format!("no cut-through session to the upstream: {sessions}"));
    }
    out
}

/// A chunked PUT (RFC 9112 §7.1) through the proxy to the upstream's
/// WebDAV location, then the file read back through the proxy.
fn chunked_request(ctx: &Ctx) -> Outcome {
    let put = ctx.client(HTTP_PORT, "put-chunked", &["/put/upload.bin", "--length", "300000", "--chunk", "7000"]);
    let mut back = ctx.get("/up/dav/upload.bin", &[]);
    elapsed(&mut back);
    let mut out = Outcome::new(json!({"put": put, "get": back}));
    out.expect(put["status"] == 201, format!("PUT: {put}"));
    let same = back["status"] == 200 && back["sha256"] == put["sent_sha256"] && back["length"] == 300000;
    out.expect(same, format!("read back {} bytes, status {}", back["length"], back["status"]));
    out
}

fn chunked_proxied(ctx: &Ctx) -> Outcome {
    chunked_gzip(ctx, "/up/gz/text.txt")
}

/// HTTP through the `stream` proxy: the bytes pass both ways unchanged.
fn stream_proxy(ctx: &Ctx) -> Outcome {
    let mut small = ctx.client(STREAM_PORT, "get", &["/small.txt"]);
    let mut big = ctx.client(STREAM_PORT, "get", &["/big.bin"]);
    elapsed(&mut small);
    elapsed(&mut big);
    let mut out = Outcome::new(json!({"small": small, "big": big}));
    expect_body(&mut out, "stream /small.txt", &small, 200, &ctx.files.small);
    expect_body(&mut out, "stream /big.bin", &big, 200, &ctx.files.big);
    out
}

/// A second nginx whose upstream listens on 127.0.0.1 itself, a common
/// layout (the suite's own upstream listens on the wildcard address): it
/// must start and proxy as the first one does.
fn loopback_listener(ctx: &Ctx) -> Outcome {
    let dir = ctx.nginx.dir.join("loopback-listen");
    let d = dir.display();
    let (front, upstream, addr) = (LOOPBACK_FRONT_PORT, LOOPBACK_UPSTREAM_PORT, ctx.side.addr());
    let text = format!(
        "daemon on;\nmaster_process on;\nworker_processes 2;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n\
         client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
         uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
         server {{ listen 127.0.0.1:{upstream}; return 200 \"loopback upstream\\n\"; }}\n\
         server {{ listen {addr}:{front}; location / {{ proxy_pass http://127.0.0.1:{upstream}; }} }}\n}}\n"
    );
    match Nginx::try_start(ctx.bed, ctx.side, &dir, &text) {
        Ok(nginx) => {
            let mut r = ctx.client(front, "get", &["/"]);
            elapsed(&mut r);
            let mut out = Outcome::new(json!({"started": true, "response": r}));
            expect_body(&mut out, "GET / through the loopback upstream", &r, 200, b"loopback upstream\n");
            out.expect(nginx.quit(), "the loopback-upstream nginx did not quit");
            out
        }
        Err(why) => {
            let mut out = Outcome::new(json!({"started": false}));
            out.expect(false, why.replace('\n', " "));
            out
        }
    }
}
