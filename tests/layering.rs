//! The engine knows nothing of front ends or apps: no file under
//! `src/engine/` may use the TUI, the CLI, the apps, the scenarios,
//! ratatui or crossterm. Keeps a second backend (a real Temporal cluster)
//! possible behind the same read model.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn engine_imports_no_front_end_or_app() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("engine.rs")];
    rust_files(&root.join("engine"), &mut files);
    assert!(files.len() > 5, "found the engine's files");
    let forbidden = [
        "crate::tui",
        "crate::cli",
        "crate::apps",
        "crate::scenario",
        "ratatui",
        "crossterm",
    ];
    let mut offences = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    offences.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "engine reaches outside its layer:\n{}",
        offences.join("\n")
    );
}
