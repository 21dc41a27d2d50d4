//! A setting's value as a source gave it, before it is checked, and the
//! readers that turn it into text, numbers and switches. Flags and variables
//! are always text; the file has TOML types, and a value of the wrong type
//! there is an error rather than a guess.

use super::number;

/// An unchecked value.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// From a flag, a variable or a default: text.
    Arg(String),
    /// From the config file.
    Toml(toml::Value),
}

/// The TOML type's name, for "expected X, found Y".
fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

impl Raw {
    /// The value as the user wrote it, quoted and escaped, for messages.
    pub fn shown(&self) -> String {
        match self {
            Raw::Arg(text) => format!("{text:?}"),
            Raw::Toml(toml::Value::String(text)) => format!("{text:?}"),
            Raw::Toml(value) => value.to_string(),
        }
    }

    fn wrong_type(&self, expected: &str) -> String {
        match self {
            Raw::Toml(value) => format!("expected {expected}, found {} {}", type_name(value), self.shown()),
            Raw::Arg(_) => format!("{} is not {expected}", self.shown()),
        }
    }

    /// Text: a flag, a variable or a TOML string.
    pub fn text(&self) -> Result<&str, String> {
        match self {
            Raw::Arg(text) | Raw::Toml(toml::Value::String(text)) => Ok(text),
            Raw::Toml(_) => Err(self.wrong_type("a string")),
        }
    }

    /// A plain decimal count; a TOML integer in the file.
    pub fn count(&self) -> Result<u64, String> {
        match self {
            Raw::Arg(text) => number::decimal(text).ok_or_else(|| format!("{} is not a number", self.shown())),
            Raw::Toml(toml::Value::Integer(n)) => {
                u64::try_from(*n).map_err(|_| format!("{} is negative", self.shown()))
            }
            Raw::Toml(_) => Err(self.wrong_type("an integer")),
        }
    }

    /// A count or size with an optional binary suffix (`64k`); in the file a
    /// TOML integer, or a string when it has a suffix.
    pub fn size(&self) -> Result<u64, String> {
        match self {
            Raw::Arg(text) | Raw::Toml(toml::Value::String(text)) => number::size(text)
                .ok_or_else(|| format!("{} is not a size (a number with an optional k, M or G suffix)", self.shown())),
            Raw::Toml(toml::Value::Integer(_)) => self.count(),
            Raw::Toml(_) => Err(self.wrong_type("an integer or a string like \"64k\"")),
        }
    }

    /// An octal mode; in the file a TOML integer (write it `0o660`) or an
    /// octal string.
    pub fn octal(&self) -> Result<u64, String> {
        match self {
            Raw::Arg(text) | Raw::Toml(toml::Value::String(text)) => {
                number::octal(text).ok_or_else(|| format!("{} is not an octal mode", self.shown()))
            }
            Raw::Toml(toml::Value::Integer(_)) => self.count(),
            Raw::Toml(_) => Err(self.wrong_type("an integer like 0o660 or a string like \"0660\"")),
        }
    }

    /// A percentage in parts per million; in the file also a TOML integer
    /// or float.
    pub fn percent_ppm(&self) -> Result<u32, String> {
        let bad = || format!("{} is not a percentage 0..=100 with up to 4 decimals", self.shown());
        match self {
            Raw::Arg(text) | Raw::Toml(toml::Value::String(text)) => number::percent_ppm(text).ok_or_else(bad),
            Raw::Toml(toml::Value::Integer(n)) => number::percent_ppm(&n.to_string()).ok_or_else(bad),
            Raw::Toml(toml::Value::Float(f)) if (0.0..=100.0).contains(f) => {
                let ppm = f * 10_000.0;
                // Only values with at most 4 decimals are exact here.
                ((ppm - ppm.round()).abs() < 1e-6).then_some(ppm.round() as u32).ok_or_else(bad)
            }
            Raw::Toml(_) => Err(self.wrong_type("a number like 2 or 0.5")),
        }
    }

    /// `on`/`off`; in the file also a TOML boolean.
    pub fn switch(&self) -> Result<bool, String> {
        match self {
            Raw::Toml(toml::Value::Boolean(on)) => Ok(*on),
            Raw::Arg(_) | Raw::Toml(toml::Value::String(_)) => self.choice(&[("on", true), ("off", false)]),
            Raw::Toml(_) => Err(self.wrong_type("a boolean or one of \"on\", \"off\"")),
        }
    }

    /// One of the named values (ASCII case ignored); the message lists them.
    pub fn choice<T: Copy>(&self, names: &[(&str, T)]) -> Result<T, String> {
        let list = names.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
        let text = self.text().map_err(|_| self.wrong_type(&format!("a string, one of {list}")))?;
        names
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, value)| *value)
            .ok_or_else(|| format!("{} is not one of {list}", self.shown()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_keep_their_types() {
        assert_eq!(Raw::Toml(toml::Value::Integer(4)).count(), Ok(4));
        let quoted = Raw::Toml(toml::Value::String("4".into())).count().unwrap_err();
        assert_eq!(quoted, "expected an integer, found a string \"4\"");
        assert_eq!(Raw::Toml(toml::Value::Integer(-1)).count().unwrap_err(), "-1 is negative");
        assert_eq!(Raw::Toml(toml::Value::Integer(0o660)).octal(), Ok(0o660));
        assert_eq!(Raw::Toml(toml::Value::Boolean(true)).switch(), Ok(true));
        assert!(Raw::Toml(toml::Value::Boolean(true)).text().is_err());
    }

    #[test]
    fn choices_list_the_valid_values() {
        let raw = Raw::Arg("xpd".into());
        assert_eq!(raw.choice(&[("xdp", 1), ("tap", 2)]).unwrap_err(), "\"xpd\" is not one of xdp, tap");
        assert_eq!(Raw::Arg("TAP".into()).choice(&[("xdp", 1), ("tap", 2)]), Ok(2));
    }
}
