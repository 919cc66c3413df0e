//! Packs the Rust plugin SDK (`plugins/sdk`) with `cargo package`, so that
//! what `sluice new` writes next to a Rust plugin is exactly the published
//! crate: its sources, its WIT and its normalized manifest (workspace
//! settings resolved), from one source and never a hand-kept copy.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest_dir.join("../..");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let sdk = root.join("plugins/sdk");
    for watched in [
        "plugins/sdk/Cargo.toml",
        "plugins/sdk/src",
        "wit",
        "Cargo.toml",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }

    let target_dir = out_dir.join("sdk-package");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "package",
            "--no-verify",
            "--allow-dirty",
            "--offline",
            "--quiet",
        ])
        .arg("--manifest-path")
        .arg(sdk.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's target folder and wrappers are not this command's.
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .expect("running `cargo package` for the plugin SDK");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        eprintln!("error: `cargo package -p sluice-plugin` (plugins/sdk) failed");
        std::process::exit(1);
    }
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let packed = target_dir.join(format!("package/sluice-plugin-{version}.crate"));
    std::fs::copy(&packed, out_dir.join("sluice-plugin.crate"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", packed.display()));
}
