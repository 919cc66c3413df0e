//! One module per subcommand: its flags (`Args`, checked where they are
//! read) and the one function that runs it (`run`).

pub mod build;
pub mod check;
pub mod config;
pub mod consume;
pub mod diff;
pub mod filter_criteria;
pub mod iam;
pub mod new;
pub mod precompile;
pub mod progress;
pub mod put;
pub mod replay;
pub mod run;
pub mod test;

/// The async runtime a subcommand blocks on: one thread, as in Lambda.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
