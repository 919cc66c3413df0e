//! The one name rule, for steps, destinations and plugins: the config
//! checks it, `sluice new` and `plugin.toml` check it, and the templates
//! can rely on it (a name is a valid Cargo package, npm package, Python
//! module file and S3 key segment).

/// The most bytes a name may have.
pub const MAX_LEN: usize = 64;

/// What a name may be, as error messages say it.
pub const RULE: &str =
    "1 to 64 ASCII letters, digits, `-` and `_`, starting with a letter or a digit";

/// The rule as a regular expression (for the config's JSON Schema).
pub const PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$";

/// Checks `name` against the rule; the error quotes the name and says the rule.
///
/// ```
/// assert!(sluice_core::name::check("drop-bots").is_ok());
/// assert!(sluice_core::name::check("-x").is_err());
/// ```
pub fn check(name: &str) -> Result<(), String> {
    let ok = name.len() <= MAX_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid name: use {RULE}"))
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn the_rule() {
        for good in ["a", "drop-bots", "by_type", "0day", &"x".repeat(64)] {
            assert!(check(good).is_ok(), "{good}");
        }
        for bad in ["", "-x", "_x", "a b", "é", "a.b", &"x".repeat(65)] {
            let e = check(bad).unwrap_err();
            assert!(e.contains("1 to 64"), "{e}");
        }
    }
}
