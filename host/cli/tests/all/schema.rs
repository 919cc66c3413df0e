//! The pipeline config's JSON Schema (`sluice config schema`): the copy in
//! `docs/pipeline.schema.json` is what the binary prints, every config in
//! the repository validates against it, and it agrees with the config
//! reader on the bad-config corpus: what the reader refuses for its shape,
//! the schema refuses too; what it refuses for a rule across fields, the
//! schema leaves to `sluice check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use host::config::{self, ConfigError, Location};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The schema, compiled.
pub fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&config::schema::json_schema()).expect("the schema compiles")
}

/// The TOML file as the JSON document the schema describes.
fn as_json(path: &Path) -> Option<serde_json::Value> {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).ok()
}

/// What the schema says is wrong with `doc`, one line per error.
pub fn errors(validator: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_committed_schema_is_what_sluice_config_schema_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["config", "schema"])
        .output()
        .expect("running sluice");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = root().join("docs/pipeline.schema.json");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(&committed).unwrap_or_default(),
        "{} is stale: run `cargo run -- config schema --out docs/pipeline.schema.json`",
        committed.display()
    );
}

/// Every pipeline config the repository ships: the examples (and their
/// fixture cases) and the lean build's. (`sluice new`'s, filled in, is
/// checked by the author tests.)
fn shipped_configs() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "toml")
                && path
                    .file_name()
                    .is_some_and(|n| n != "plugin.toml" && n != "Cargo.toml")
            {
                found.push(path);
            }
        }
    }
    let root = root();
    let mut found = Vec::new();
    walk(&root.join("examples"), &mut found);
    found.push(root.join("tests/lean/pipeline.toml"));
    found.sort();
    found
}

#[test]
fn every_shipped_config_validates() {
    let validator = validator();
    let configs = shipped_configs();
    assert!(configs.len() >= 10, "{configs:?}");
    for path in configs {
        let doc = as_json(&path).unwrap_or_else(|| panic!("{} is not TOML", path.display()));
        // The examples name the schema for editors (Taplo's `#:schema` line).
        let text = std::fs::read_to_string(&path).unwrap();
        if let Some(named) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#:schema "))
        {
            let named = path.parent().unwrap().join(named);
            assert_eq!(
                named.canonicalize().ok(),
                root().join("docs/pipeline.schema.json").canonicalize().ok(),
                "{}: #:schema names {}",
                path.display(),
                named.display()
            );
        } else {
            assert!(
                path.components().any(|c| c.as_os_str() == "tests"),
                "{}: an example opens with `#:schema <path to docs/pipeline.schema.json>`",
                path.display()
            );
        }
        let errors = errors(&validator, &doc);
        assert!(
            errors.is_empty(),
            "{}:\n{}",
            path.display(),
            errors.join("\n")
        );
    }
}

#[test]
fn the_schema_agrees_with_the_reader_on_every_bad_config() {
    let validator = validator();
    let dir = root().join("tests/corpus/configs");
    let mut shape = 0;
    let mut rules = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let Some(doc) = as_json(&path) else {
            continue; // not TOML at all: no document to validate
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let valid = validator.is_valid(&doc);
        match config::parse(&text, &Location::File(path.clone())) {
            Err(ConfigError::Parse { message, .. }) => {
                shape += 1;
                assert!(
                    !valid,
                    "{}: the reader says\n{message}\nbut the schema accepts it",
                    path.display()
                );
            }
            Err(ConfigError::Invalid { field, message, .. }) => {
                rules += 1;
                // The name rule is the one cross-checked rule the schema also states.
                let name_rule = message.contains("is not a valid name");
                assert_eq!(
                    valid,
                    !name_rule,
                    "{}: the reader says {field}: {message}\nthe schema's errors: {:?}",
                    path.display(),
                    errors(&validator, &doc)
                );
            }
            Err(ConfigError::Read { .. }) => unreachable!("the text is read already"),
            // Reads fine; what is wrong is found later (a plugin file to load).
            Ok(_) => assert!(valid, "{}: {:?}", path.display(), errors(&validator, &doc)),
        }
    }
    assert!(shape >= 10 && rules >= 10, "shape {shape}, rules {rules}");
}
