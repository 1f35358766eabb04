//! Finds libimgjudge: $IMGJUDGE_LIB_DIR (a folder holding libimgjudge.so, e.g.
//! build/capi or <prefix>/lib), else pkg-config. The library's folder is
//! recorded as an rpath so tests and examples run without LD_LIBRARY_PATH.
use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=IMGJUDGE_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let lib_dir = env::var("IMGJUDGE_LIB_DIR").ok().filter(|d| !d.is_empty()).or_else(|| {
        let output = Command::new("pkg-config")
            .args(["--variable=libdir", "imgjudge"])
            .output()
            .ok()?;
        let dir = String::from_utf8(output.stdout).ok()?.trim().to_string();
        (output.status.success() && !dir.is_empty()).then_some(dir)
    });
    let Some(lib_dir) = lib_dir else {
        panic!(
            "libimgjudge not found: set IMGJUDGE_LIB_DIR to the folder with libimgjudge.so \
             (e.g. <build>/capi) or PKG_CONFIG_PATH to the folder with imgjudge.pc"
        );
    };
    println!("cargo:rustc-link-search=native={lib_dir}");
    println!("cargo:rustc-link-lib=dylib=imgjudge");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
}
