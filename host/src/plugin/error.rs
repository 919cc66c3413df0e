//! Why a plugin could not be loaded or started: each error names the step
//! and the plugin, and says what to do.

use super::WIT_PACKAGE;
use crate::config::StepKind;

/// A plugin could not be loaded or started.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The component could not be read or fetched.
    #[error("step `{step}`: cannot read plugin `{plugin}`: {error}")]
    Read {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// Why.
        error: String,
    },
    /// The component's digest differs from the step's `sha256` pin.
    #[error(
        "step `{step}`: plugin `{plugin}` has SHA-256 {actual}, but the config pins {expected}"
    )]
    Digest {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// The pinned digest (hex).
        expected: String,
        /// The file's digest (hex).
        actual: String,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("step `{step}`: plugin `{plugin}` is not a valid WebAssembly component: {error:#}")]
    Compile {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// The compiler's error.
        error: anyhow::Error,
    },
    /// The component imports something Sluice does not offer.
    #[error("step `{step}`: plugin `{plugin}` needs an import Sluice does not offer: {error:#}")]
    Import {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// Which import.
        error: anyhow::Error,
    },
    /// The component was built against a version of the WIT package this
    /// Sluice does not serve.
    #[error(
        "step `{step}`: plugin `{plugin}` was built against `sluice:plugin@{found}`, but this Sluice \
         serves `{WIT_PACKAGE}` (and other {compatible} versions): rebuild the plugin against this \
         Sluice's `wit/plugin.wit`, or run a Sluice that serves {found}"
    )]
    WitVersion {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// The version the plugin imports.
        found: String,
        /// The versions served, e.g. `0.1.x`.
        compatible: String,
    },
    /// The component does not export the world its step's kind needs.
    #[error(
        "step `{step}` is a `{kind}` step, but plugin `{plugin}` exports neither the \
         `sluice:plugin/{kind}` world nor `sluice:plugin/packed-{kind}`: {error:#}"
    )]
    Export {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// The step's kind.
        kind: StepKind,
        /// What is missing or mistyped.
        error: anyhow::Error,
    },
    /// A precompiled artifact was made for another wasmtime version, engine
    /// settings or target, or is damaged.
    #[error(
        "step `{step}`: plugin `{plugin}` is a precompiled artifact this Sluice cannot load: {error:#}. \
         an artifact only loads in the Sluice and wasmtime versions, engine settings and CPU \
         architecture that made it: make it again with this Sluice's `sluice precompile`"
    )]
    Precompiled {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// wasmtime's reason.
        error: anyhow::Error,
    },
    /// A precompiled artifact without a `sha256` pin in the config.
    #[error(
        "step `{step}`: plugin `{plugin}` is precompiled native code, and Sluice only loads it when \
         the step pins its `sha256` (`sluice precompile` writes the pin)"
    )]
    Unpinned {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
    },
    /// A `.wasm` component, in a Sluice built without a compiler.
    #[error(
        "step `{step}`: plugin `{plugin}` is a `.wasm` component, and this Sluice was built \
         without a compiler (no `compiler` feature): it loads only precompiled artifacts. \
         Precompile the pipeline with `sluice precompile`, or deploy a Sluice built with the \
         `compiler` feature"
    )]
    NoCompiler {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
    },
    /// A precompiled artifact in S3, named by a config that is not pinned.
    #[error(
        "step `{step}`: plugin `{plugin}` is precompiled native code from S3, and the config \
         `{config}` that names it is not pinned: whoever can write the config could run native \
         code with this function's role. Pin the config in the function's environment \
         (`SLUICE_CONFIG_SHA256`, which `sluice precompile` prints), or ship the artifacts in \
         the deployment package or a layer"
    )]
    UntrustedNative {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// The config's location.
        config: String,
    },
    /// Instantiation or the plugin's `init` trapped.
    #[error("step `{step}`: plugin `{plugin}` failed to start: {error:#}")]
    Instantiate {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// The trap or error.
        error: anyhow::Error,
    },
    /// The plugin's `init` rejected the step's settings.
    #[error("step `{step}`: plugin `{plugin}` rejected its config: {message}")]
    Init {
        /// The step.
        step: String,
        /// The plugin's location.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// A lookup table the steps read did not load (`[tables.NAME]`).
    #[error("{0}")]
    Table(String),
}
