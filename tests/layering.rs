//! The architecture's one rule, checked on the source: a module uses only modules below it
//! (the layers drawn in `src/lib.rs`), and no file under `src/` grows past about 400 lines.

use std::path::{Path, PathBuf};

/// Layers from the bottom; a room may use rooms of its own layer or below.
const LAYERS: &[&[&str]] = &[
    &[
        "stats", "clock", "config", "log", "throttle", "auth", "tls", "guard",
    ],
    &["lru", "reaper"],
    &["backend"],
    &["net"],
    &["admin"],
    &["services"],
    &["http", "resp"],
    &["apps"],
];

fn layer(room: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&room))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room a file belongs to: its first path component under `src/`, without `.rs`.
fn room_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Rooms named as `crate::room` in `text` (code only: comments are skipped).
fn rooms_used(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.push(name);
            }
        }
    }
    used
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let room = room_of(&src, file);
        if room == "main" || room == "lib" {
            continue;
        }
        let Some(own) = layer(&room) else {
            wrong.push(format!("{}: room {room} is in no layer", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("reading a source file");
        for used in rooms_used(&text) {
            // Macros exported at the crate root (`crate::info!`) come from `log`.
            let used_room = if layer(&used).is_some() {
                used
            } else {
                "log".to_string()
            };
            if layer(&used_room).is_some_and(|l| l > own) {
                wrong.push(format!("{}: {room} uses {used_room}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "upward arrows:\n{}", wrong.join("\n"));
}

#[test]
fn no_source_file_is_over_about_400_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > 420).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over about 400 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_layer_check_sees_an_upward_arrow() {
    assert_eq!(
        rooms_used("use crate::http::parse; // crate::apps"),
        vec!["http"]
    );
    assert!(layer("net") < layer("http"));
}
