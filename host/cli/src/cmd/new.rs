//! `sluice new`: a plugin folder from a template.

use std::path::PathBuf;
use std::process::ExitCode;

/// Makes a new plugin folder from a template: code, build file, README,
/// a pipeline running it alone and one test case.
#[derive(clap::Args)]
pub struct Args {
    /// The plugin kind: the WIT world it targets.
    #[arg(value_parser = ["filter", "transform", "route", "aggregate"])]
    pub kind: String,
    /// The plugin's name (and folder name).
    pub name: String,
    /// The language.
    #[arg(long, value_enum)]
    pub lang: crate::author::Lang,
    /// Where to make the folder (default: here).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// Writes the folder and says what to run next.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Args {
        kind,
        name,
        lang,
        dir,
    } = args;
    let kind: host::config::StepKind = serde_json::from_value(serde_json::Value::from(kind))?;
    let made = crate::author::new(&dir, kind, &name, lang)?;
    println!(
        "made {} ({} {} plugin). Next:",
        made.display(),
        lang.as_str(),
        kind
    );
    println!("  sluice build {}", made.display());
    println!("  sluice test {}", made.display());
    Ok(ExitCode::SUCCESS)
}
