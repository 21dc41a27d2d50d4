//! nginx's own HTTP: static files, ranges, keep-alive and pipelining,
//! chunked (gzip) responses, large headers, `return`, `limit_rate` and a
//! slow reader.

use serde_json::{json, Value};

use super::{elapsed, expect_body, Case, Ctx};
use crate::nginx::LIMIT_RATE;
use crate::report::Outcome;

pub fn cases() -> Vec<Case> {
    vec![
        Case { name: "static small file", run: static_small },
        Case { name: "static 1 MiB file", run: static_big },
        Case { name: "range: single", run: range_single },
        Case { name: "range: multiple", run: range_multi },
        Case { name: "keepalive: 5 requests", run: keepalive },
        Case { name: "pipelining: 3 in one write", run: pipelining },
        Case { name: "chunked response (gzip)", run: chunked_response },
        Case { name: "large header 8 KiB", run: header_8k },
        Case { name: "large header 64 KiB", run: header_64k },
        Case { name: "return 301", run: return_301 },
        Case { name: "return 200 text", run: return_200 },
        Case { name: "limit_rate 100k", run: limit_rate },
        Case { name: "slow client 1 MiB", run: slow_client },
    ]
}

/// A plain GET of `path` that must answer 200 with `body`.
fn get_body(ctx: &Ctx, path: &str, extra: &[&str], body: &[u8]) -> Outcome {
    let mut r = ctx.get(path, extra);
    elapsed(&mut r);
    let mut out = Outcome::new(r.clone());
    expect_body(&mut out, path, &r, 200, body);
    out
}

fn static_small(ctx: &Ctx) -> Outcome {
    get_body(ctx, "/small.txt", &[], &ctx.files.small)
}

fn static_big(ctx: &Ctx) -> Outcome {
    get_body(ctx, "/big.bin", &[], &ctx.files.big)
}

/// RFC 9110 §14.2: one range answers 206 with those bytes and Content-Range.
fn range_single(ctx: &Ctx) -> Outcome {
    let mut r = ctx.get("/big.bin", &["--header", "Range: bytes=1000-1999"]);
    elapsed(&mut r);
    let mut out = Outcome::new(r.clone());
    expect_body(&mut out, "bytes=1000-1999", &r, 206, &ctx.files.big[1000..2000]);
    let range = format!("bytes 1000-1999/{}", ctx.files.big.len());
    out.expect(
        r["headers"]["content-range"] == range.as_str(),
        format!("Content-Range {}", r["headers"]["content-range"]),
    );
    out
}

/// RFC 9110 §14.6: several ranges answer a multipart/byteranges body whose
/// parts carry each range's bytes (the boundary differs from run to run, so
/// the record keeps the parts and not Content-Type).
fn range_multi(ctx: &Ctx) -> Outcome {
    let mut r = ctx.get("/big.bin", &["--header", "Range: bytes=0-99,5000-5099"]);
    elapsed(&mut r);
    let multipart = r["headers"]["content-type"].as_str().is_some_and(|t| t.starts_with("multipart/byteranges"));
    if let Some(headers) = r["headers"].as_object_mut() {
        headers.remove("content-type");
    }
    let mut out = Outcome::new(r.clone());
    out.expect(r["status"] == 206 && multipart, format!("status {} multipart {multipart}", r["status"]));
    let total = ctx.files.big.len();
    let want: Vec<Value> = [(0usize, 99usize), (5000, 5099)]
        .iter()
        .map(|&(a, b)| json!([format!("bytes {a}-{b}/{total}"), super::sha(&ctx.files.big[a..=b]), b - a + 1]))
        .collect();
    out.expect(r["parts"] == json!(want), format!("parts {}", r["parts"]));
    out
}

/// Responses on one connection, in order, each checked.
fn check_sequence(out: &mut Outcome, r: &Value, want: &[(&str, u64, &[u8])]) {
    let responses = r["responses"].as_array().cloned().unwrap_or_default();
    out.expect(responses.len() == want.len(), format!("{} responses of {}: {r}", responses.len(), want.len()));
    for (got, (path, status, body)) in responses.iter().zip(want) {
        expect_body(out, path, got, *status, body);
    }
}

fn keepalive(ctx: &Ctx) -> Outcome {
    let paths = ["/small.txt", "/big.bin", "/hello", "/small.txt", "/big.bin"];
    let r = ctx.client(crate::nginx::HTTP_PORT, "keepalive", &paths);
    let mut out = Outcome::new(r.clone());
    let (small, big, hello) = (&ctx.files.small[..], &ctx.files.big[..], &b"hello from nginx\n"[..]);
    let want = [
        (paths[0], 200, small),
        (paths[1], 200, big),
        (paths[2], 200, hello),
        (paths[3], 200, small),
        (paths[4], 200, big),
    ];
    check_sequence(&mut out, &r, &want);
    out
}

/// RFC 9112 §9.3.2: a server answers pipelined requests in order.
fn pipelining(ctx: &Ctx) -> Outcome {
    let paths = ["/small.txt", "/hello", "/big.bin"];
    let r = ctx.client(crate::nginx::HTTP_PORT, "pipeline", &paths);
    let mut out = Outcome::new(r.clone());
    let want = [
        (paths[0], 200, &ctx.files.small[..]),
        (paths[1], 200, &b"hello from nginx\n"[..]),
        (paths[2], 200, &ctx.files.big[..]),
    ];
    check_sequence(&mut out, &r, &want);
    out
}

/// gzip output has no length known in advance: HTTP/1.1 chunked coding.
pub fn chunked_gzip(ctx: &Ctx, path: &str) -> Outcome {
    let mut r = ctx.get(path, &["--gzip"]);
    elapsed(&mut r);
    let mut out = Outcome::new(r.clone());
    expect_body(&mut out, path, &r, 200, &ctx.files.text);
    out.expect(r["headers"]["transfer-encoding"] == "chunked", format!("headers {}", r["headers"]));
    out.expect(r["headers"]["content-encoding"] == "gzip", format!("headers {}", r["headers"]));
    out
}

fn chunked_response(ctx: &Ctx) -> Outcome {
    chunked_gzip(ctx, "/gz/text.txt")
}

/// A request header of `size` bytes; nginx takes up to 16 KiB
/// (`large_client_header_buffers 4 16k`) and answers 400 beyond.
fn header(ctx: &Ctx, size: usize, status: u64) -> Outcome {
    let r = ctx.client(crate::nginx::HTTP_PORT, "header", &["/hello", "--size", &size.to_string()]);
    let mut out = Outcome::new(r.clone());
    out.expect(r["status"] == status, format!("{size}-byte header: {r} (want {status})"));
    out
}

fn header_8k(ctx: &Ctx) -> Outcome {
    header(ctx, 8 * 1024, 200)
}

fn header_64k(ctx: &Ctx) -> Outcome {
    header(ctx, 64 * 1024, 400)
}

fn return_301(ctx: &Ctx) -> Outcome {
    let mut r = ctx.get("/moved", &[]);
    elapsed(&mut r);
    let mut out = Outcome::new(r.clone());
    let location = format!("http://ADDR:{}/small.txt", crate::nginx::HTTP_PORT);
    out.expect(r["status"] == 301 && r["headers"]["location"] == location.as_str(), format!("{r}"));
    out
}

fn return_200(ctx: &Ctx) -> Outcome {
    get_body(ctx, "/hello", &[], b"hello from nginx\n")
}

/// `limit_rate`: the file takes about its size over the rate, less the
/// first second's worth, which nginx sends at once (its limit is the rate
/// times the whole seconds since the request began, plus one). The record
/// keeps that class, not the time.
fn limit_rate(ctx: &Ctx) -> Outcome {
    let mut r = ctx.get("/limited/file.bin", &[]);
    let took = elapsed(&mut r);
    let least = 0.8 * (ctx.files.limited.len() as f64 / LIMIT_RATE as f64 - 1.0);
    r["rate_limited"] = json!(took >= least);
    let mut out = Outcome::new(r.clone());
    expect_body(&mut out, "/limited/file.bin", &r, 200, &ctx.files.limited);
    out.expect(took >= least, format!("took {took:.2} s, under {least:.2} s"));
    out
}

/// A reader with a 16 KiB receive buffer taking 400 KB/s: nginx waits on a
/// full window and still delivers every byte.
fn slow_client(ctx: &Ctx) -> Outcome {
    get_body(ctx, "/big.bin", &["--rcvbuf", "16384", "--rate", "400000"], &ctx.files.big)
}
