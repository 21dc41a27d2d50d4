//! The cases: each runs its clients against one side's nginx and returns
//! an [`Outcome`]: a record compared across sides and the problems with the
//! case's own expectations.

mod http;
mod lifecycle;
mod proxy;

use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::bed::Bed;
use crate::client;
use crate::nginx::{Nginx, Side, HTTP_PORT};
use crate::report::Outcome;

/// What a case runs against.
pub struct Ctx<'a> {
    pub bed: &'a Bed,
    pub side: Side,
    pub nginx: &'a Nginx,
    pub files: &'a Files,
}

impl Ctx<'_> {
    /// The client in `mode` against `port`, its result with this side's
    /// address replaced by `ADDR` (a `Location` names it).
    pub fn client(&self, port: u16, mode: &str, args: &[&str]) -> Value {
        let value = client::run(self.bed, self.side, port, mode, args);
        let text = value.to_string().replace(self.side.addr(), "ADDR");
        serde_json::from_str(&text).expect("re-parse the client's JSON")
    }

    /// `GET path` on the HTTP port with extra client arguments; the elapsed
    /// time is left out (see [`elapsed`]).
    pub fn get(&self, path: &str, extra: &[&str]) -> Value {
        let mut args = vec![path];
        args.extend_from_slice(extra);
        self.client(HTTP_PORT, "get", &args)
    }
}

/// The elapsed seconds of a `get`, taken out of its record (timings differ
/// between any two runs; cases compare classes of them instead).
pub fn elapsed(result: &mut Value) -> f64 {
    result.as_object_mut().and_then(|o| o.remove("elapsed")).and_then(|e| e.as_f64()).unwrap_or(0.0)
}

/// One case: its name and how to run it on one side.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Ctx) -> Outcome,
}

/// Every case, in the order they run; the graceful quit stops nginx and so
/// comes last.
pub fn all() -> Vec<Case> {
    let mut cases = http::cases();
    cases.extend(proxy::cases());
    cases.extend(lifecycle::cases());
    cases
}

/// The files both nginx serve, with their SHA-256 (hex).
pub struct Files {
    pub www: PathBuf,
    pub small: Vec<u8>,
    pub big: Vec<u8>,
    pub huge_len: usize,
    pub limited: Vec<u8>,
    pub text: Vec<u8>,
}

/// `/small.txt`, `/big.bin` (1 MiB), `/huge.bin` (10 MiB), `/limited/file.bin`
/// and `/gz/text.txt` (compressible).
impl Files {
    pub fn write(www: &Path) -> Files {
        std::fs::create_dir_all(www.join("limited")).expect("create www/limited");
        std::fs::create_dir_all(www.join("gz")).expect("create www/gz");
        let small: Vec<u8> = (0..1000).map(|i| b"nginx-tests small file\n"[i % 23]).collect();
        let big = random(1 << 20, 1);
        let huge = random(10 << 20, 2);
        let limited = random(300 * 1024, 3);
        let text: Vec<u8> =
            (0..8000).flat_map(|i| format!("line {i:05} of a compressible text\n").into_bytes()).collect();
        for (name, bytes) in [
            ("small.txt", &small),
            ("big.bin", &big),
            ("huge.bin", &huge),
            ("limited/file.bin", &limited),
            ("gz/text.txt", &text),
        ] {
            std::fs::write(www.join(name), bytes).expect("write a served file");
        }
        Files { www: www.into(), small, big, huge_len: huge.len(), limited, text }
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand_chacha::ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// SHA-256 in hex, as the client reports it.
pub fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `r` (a client's response summary) is `status` with exactly
/// `body`.
pub fn expect_body(out: &mut Outcome, what: &str, r: &Value, status: u64, body: &[u8]) {
    out.expect(r["status"] == status, format!("{what}: status {} (want {status})", r["status"]));
    out.expect(
        r["sha256"] == sha(body).as_str() && r["length"] == body.len(),
        format!("{what}: wrong body ({} bytes, want {})", r["length"], body.len()),
    );
}
