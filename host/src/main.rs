//! `sluice-lambda`: the Lambda function. Deploy it as the bootstrap
//! (`cargo lambda build --release --arm64 -p host --bin sluice-lambda`); it
//! reads the pipeline config named by `SLUICE_CONFIG` at cold start and
//! serves invocations until Lambda stops it.
//!
//! `sluice-lambda --check` does the cold start (fetches the config and the
//! plugins, compiles or loads them) and exits: 0 when the function would
//! start, 1 with the reason when not. It has no other flags: the plugin
//! author's and operator's tools are the `sluice` CLI (`host/cli`).

use std::process::ExitCode;

use host::logging;

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!(
                "error: `sluice-lambda` takes no arguments but `--check`, got `{other}`; \
                 the local tools are the `sluice` CLI"
            );
            return ExitCode::from(2);
        }
    };
    logging::init(logging::Mode::Lambda);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if check {
        runtime.block_on(host::lambda::cold_start()).map(drop)
    } else {
        runtime
            .block_on(host::lambda::run())
            .map_err(|e| e.to_string())
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
