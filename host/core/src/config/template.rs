//! Key and group-id templates such as `clicks/{yyyy}/{mm}/{shard}-{first_seq}.jsonl`.
//!
//! A template is parsed and its placeholders checked when the config is
//! validated, so a typo fails the cold start, not every record.

/// A parsed template: literal text and placeholders, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

/// The entry of a template's allowed placeholders that accepts
/// `{attr:NAME}`: the value of the output's attribute `NAME`.
pub const ATTRIBUTE: &str = "attr:NAME";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Var(String),
}

impl Template {
    /// Parses `text`, accepting only the placeholders in `allowed`. An
    /// entry [`ATTRIBUTE`] in `allowed` accepts `{attr:NAME}` for any
    /// non-empty `NAME` (an output attribute), rendered as `attr:NAME`.
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("`{text}`: `{{` without a closing `}}`"))?;
            let name = &rest[open + 1..open + close];
            let attribute = name
                .strip_prefix("attr:")
                .is_some_and(|a| !a.is_empty() && !a.contains(['{', '}']))
                && allowed.contains(&ATTRIBUTE);
            if !attribute && !allowed.contains(&name) {
                let list: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
                return Err(format!(
                    "`{text}`: unknown placeholder `{{{name}}}` (expected one of {})",
                    list.join(", ")
                ));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{text}`: `}}` without an opening `{{`"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template {
            parts,
            source: text.to_owned(),
        })
    }

    /// Whether the template uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v == name))
    }

    /// Renders the template, asking `value` for each placeholder.
    pub fn render<'a>(&self, mut value: impl FnMut(&str) -> &'a str) -> String {
        let mut out = String::with_capacity(self.source.len() + 64);
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Var(v) => out.push_str(value(v)),
            }
        }
        out
    }
}

impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_rejects_unknown_placeholders() {
        let t = Template::parse("a/{x}-{y}.gz", &["x", "y"]).unwrap();
        assert_eq!(t.render(|v| if v == "x" { "1" } else { "2" }), "a/1-2.gz");
        assert!(t.uses("x"));
        let e = Template::parse("a/{z}", &["x"]).unwrap_err();
        assert!(
            e.contains("unknown placeholder `{z}` (expected one of {x})"),
            "{e}"
        );
        assert!(Template::parse("a/{x", &["x"]).is_err());
        assert!(Template::parse("a/x}", &["x"]).is_err());
        let t = Template::parse("{attr:tenant}/{x}", &["x", ATTRIBUTE]).unwrap();
        assert_eq!(
            t.render(|v| if v == "attr:tenant" { "acme" } else { "1" }),
            "acme/1"
        );
        assert!(Template::parse("{attr:tenant}", &["x"]).is_err());
        assert!(Template::parse("{attr:}", &["x", ATTRIBUTE]).is_err());
    }
}
