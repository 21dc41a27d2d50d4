//! A minimal JSON object writer for the driver's report lines (flat values
//! and nested objects only; all the driver needs).

use std::fmt::Write;

/// Builds one JSON object.
pub struct JsonObject {
    buf: String,
    empty: bool,
}

impl Default for JsonObject {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonObject {
    pub fn new() -> Self {
        JsonObject { buf: String::from("{"), empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.buf.push(',');
        }
        self.empty = false;
        push_string(&mut self.buf, key);
        self.buf.push(':');
    }

    pub fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_string(&mut self.buf, value);
        self
    }

    pub fn num(mut self, key: &str, value: impl Into<u64>) -> Self {
        self.key(key);
        let _ = write!(self.buf, "{}", value.into());
        self
    }

    pub fn float(mut self, key: &str, value: f64) -> Self {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.buf, "{value:.3}");
        } else {
            self.buf.push_str("null");
        }
        self
    }

    pub fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.buf.push_str(if value { "true" } else { "false" });
        self
    }

    pub fn null(mut self, key: &str) -> Self {
        self.key(key);
        self.buf.push_str("null");
        self
    }

    pub fn object(mut self, key: &str, value: JsonObject) -> Self {
        self.key(key);
        self.buf.push_str(&value.finish());
        self
    }

    pub fn array(mut self, key: &str, values: impl IntoIterator<Item = JsonObject>) -> Self {
        self.key(key);
        self.buf.push('[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            self.buf.push_str(&v.finish());
        }
        self.buf.push(']');
        self
    }

    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_objects_and_escapes_strings() {
        let inner = JsonObject::new().num("n", 7u32).bool("b", false);
        let text = JsonObject::new()
            .str("s", "a\"b\\c\n\u{1}")
            .object("o", inner)
            .array("a", [JsonObject::new().null("x"), JsonObject::new()])
            .float("f", 1.5)
            .finish();
        assert_eq!(text, r#"{"s":"a\"b\\c\n\u0001","o":{"n":7,"b":false},"a":[{"x":null},{}],"f":1.500}"#);
    }
}
