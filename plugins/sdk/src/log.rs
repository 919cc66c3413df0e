//! Logging from a plugin into the host's structured logs.
//!
//! A plugin has no stdout: these functions call the host's `log` import, and
//! the host writes JSON log lines tagged with the step and plugin names.
//! Use the macros: `sluice_plugin::info!("dropped {n} events")`.

use crate::bindings::filter::sluice::plugin::log::{Level, log};

/// Logs `message` at `level`.
pub fn write(level: Level, message: &str) {
    log(level, message);
}

pub use crate::bindings::filter::sluice::plugin::log::Level as LogLevel;

/// Logs at `error` level, `format!` style.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::LogLevel::Error, &::std::format!($($arg)*)) };
}
/// Logs at `warn` level, `format!` style.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::LogLevel::Warn, &::std::format!($($arg)*)) };
}
/// Logs at `info` level, `format!` style.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::LogLevel::Info, &::std::format!($($arg)*)) };
}
/// Logs at `debug` level, `format!` style.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::LogLevel::Debug, &::std::format!($($arg)*)) };
}
