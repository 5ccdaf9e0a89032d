//! The Layout rule in lib.rs, checked: a room imports only from rooms
//! below it, so no arrow runs back up and no two rooms import each other.

use std::path::Path;

use regex::Regex;

/// Bottom first. LM Studio's REST room sits above OpenAI's: its v0 chat is
/// OpenAI's, streamed the same, with LM Studio's figures when whole.
const ROOMS: &[&str] = &[
    "config",
    "logging",
    "downloads",
    "registry",
    "versions",
    "state",
    "chat",
    "http",
    "api/openai",
    "api/anthropic",
    "api/responses",
    "api/lmstudio_rest",
    "api/lmstudio_sdk",
    "api/ollama",
    "api/orchestrator",
    "app",
    "args",
    "serve",
];

/// `api/ollama/chat.rs` is in `api/ollama`; `http/routes/docs.rs` in `http`.
fn room_of(parts: &[&str]) -> String {
    match parts {
        ["api", api, ..] => format!("api/{}", api.trim_end_matches(".rs")),
        [first, ..] => first.trim_end_matches(".rs").to_string(),
        [] => String::new(),
    }
}

/// Every room `source` names through a `crate::` path.
fn imports(source: &str) -> Vec<String> {
    let group = Regex::new(r"crate::((?:[a-z_]+::)*)\{([^}]*)\}").expect("valid regex");
    let path = Regex::new(r"crate::([a-z_]+(?:::[a-z_]+)*)(::\{)?").expect("valid regex");
    let mut out = Vec::new();
    for c in group.captures_iter(source) {
        for item in c[2].split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let full = format!("{}{item}", &c[1]);
            out.push(room_of(&full.split("::").collect::<Vec<_>>()));
        }
    }
    for c in path.captures_iter(source).filter(|c| c.get(2).is_none()) {
        out.push(room_of(&c[1].split("::").collect::<Vec<_>>()));
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_room_imports_only_from_rooms_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rank = |room: &str| ROOMS.iter().position(|r| *r == room);
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 50, "found only {} sources", files.len());
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
        // The crate root and `api/mod.rs` only declare rooms.
        if matches!(
            parts.as_slice(),
            ["lib.rs"] | ["layers.rs"] | ["api", "mod.rs"]
        ) {
            continue;
        }
        let room = room_of(&parts);
        let own = rank(&room).unwrap_or_else(|| panic!("{} is in no room", rel.display()));
        let source = std::fs::read_to_string(&file).expect("readable source");
        for target in imports(&source) {
            match rank(&target) {
                Some(r) if r < own || target == room => {}
                _ => wrong.push(format!("{} ({room}) imports {target}", rel.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports running up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn imports_are_read_from_paths_and_groups() {
    let found = imports("use crate::api::{openai, ollama::names};\nuse crate::state::AppState;");
    assert_eq!(found, ["api/openai", "api/ollama", "state"]);
}
