//! Text to numbers, strictly: no signs, no spaces, no silent wrap-around.

/// A decimal number without sign or suffix (`u64::from_str` alone would
/// accept a leading `+`).
pub fn decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A decimal number with an optional binary suffix: `k`/`K` (2^10), `m`/`M`
/// (2^20) or `g`/`G` (2^30), optionally followed by `iB` (`64KiB`).
/// Decimal units (`KB`) are refused rather than guessed.
pub fn size(text: &str) -> Option<u64> {
    let digits_end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let number = decimal(digits)?;
    let shift = match suffix {
        "" => 0,
        "k" | "K" | "KiB" => 10,
        "m" | "M" | "MiB" => 20,
        "g" | "G" | "GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// An octal file mode: `0660`, `660` or `0o660` (as chmod(1) and TOML write it).
pub fn octal(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
}

/// A percentage `0..=100` with up to 4 decimals (`2`, `0.5`, `12.25`), in
/// parts per million.
pub fn percent_ppm(text: &str) -> Option<u32> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 4 || (text.contains('.') && fraction.is_empty()) {
        return None;
    }
    let whole = decimal(whole)?;
    let fraction = if fraction.is_empty() { 0 } else { decimal(fraction)? * 10u64.pow(4 - fraction.len() as u32) };
    let ppm = whole.checked_mul(10_000)?.checked_add(fraction)?;
    (ppm <= 1_000_000).then_some(ppm as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_refuses_signs_spaces_and_overflow() {
        assert_eq!(decimal("65536"), Some(65536));
        assert_eq!(decimal("+1"), None);
        assert_eq!(decimal(" 1"), None);
        assert_eq!(decimal(""), None);
        assert_eq!(decimal("99999999999999999999999"), None);
    }

    #[test]
    fn percentages_are_exact_to_four_decimals() {
        assert_eq!(percent_ppm("0"), Some(0));
        assert_eq!(percent_ppm("2"), Some(20_000));
        assert_eq!(percent_ppm("0.5"), Some(5_000));
        assert_eq!(percent_ppm("12.25"), Some(122_500));
        assert_eq!(percent_ppm("0.0001"), Some(1));
        assert_eq!(percent_ppm("100"), Some(1_000_000));
        assert_eq!(percent_ppm("100.0001"), None);
        assert_eq!(percent_ppm("0.00001"), None);
        assert_eq!(percent_ppm("1."), None);
        assert_eq!(percent_ppm(".5"), None);
        assert_eq!(percent_ppm("-1"), None);
        assert_eq!(percent_ppm("5%"), None);
    }

    #[test]
    fn size_suffixes_are_binary() {
        assert_eq!(size("64k"), Some(65536));
        assert_eq!(size("64KiB"), Some(65536));
        assert_eq!(size("4M"), Some(4 << 20));
        assert_eq!(size("1G"), Some(1 << 30));
        assert_eq!(size("64KB"), None);
        assert_eq!(size("k"), None);
        assert_eq!(size("18446744073709551615k"), None);
    }

    #[test]
    fn octal_forms() {
        assert_eq!(octal("0660"), Some(0o660));
        assert_eq!(octal("0o777"), Some(0o777));
        assert_eq!(octal("8"), None);
        assert_eq!(octal("0o"), None);
    }
}
