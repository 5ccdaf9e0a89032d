//! Lists the web app's built bundle (`web/dist`, committed) for
//! `http/routes/ui.rs` to embed with `include_bytes!`.

use std::path::{Path, PathBuf};
use std::{env, fs};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = root.join("../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    walk(&dist, &mut files);
    files.sort();
    let mut code = String::from("/// The bundle's files: path under `web/dist`, bytes.\n");
    code.push_str("static FILES: &[(&str, &[u8])] = &[\n");
    for path in files {
        let name = path
            .strip_prefix(&dist)
            .expect("under dist")
            .to_string_lossy()
            .replace('\\', "/");
        let full = fs::canonicalize(&path).expect("readable bundle file");
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            full.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("bundle.rs");
    fs::write(out, code).expect("OUT_DIR is writable");
}
