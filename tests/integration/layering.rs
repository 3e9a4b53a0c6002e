//! The engine knows nothing of front ends or apps: no file under
//! `src/engine/` may use the TUI, the CLI, the apps, the scenarios,
//! ratatui, crossterm, clap, reqwest or printpdf. Keeps a second backend (a
//! real Temporal cluster) possible behind the same read model. And the
//! engine's own modules form layers: no import cycle between them.

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
        "clap",
        "reqwest",
        "printpdf",
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

/// The engine module a path inside `src/engine/` belongs to (`state` for
/// `state.rs` and `state/activity.rs`).
fn module_of(engine_dir: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(engine_dir).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Which engine modules a file imports: `crate::engine::X`, or `super::X`
/// from a top-level file, or `super::super::X` from a file in a folder.
fn imports(text: &str, depth: usize) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let supers = "super::".repeat(depth + 1);
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for prefix in ["crate::engine::", supers.as_str()] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                let after = &rest[i + prefix.len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                // `super::super::x` seen from depth 0 is not an engine module.
                let deeper = prefix != "crate::engine::" && rest[..i].ends_with("super::");
                if !name.is_empty() && !deeper {
                    out.insert(name);
                }
                rest = after;
            }
        }
    }
    out
}

/// The engine's modules are layers (history → state → store → runtime →
/// client / read model / worker API → worker): an import cycle between two
/// of them would mean one can no longer be understood, or tested, without
/// the other.
#[test]
fn engine_modules_have_no_import_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let engine_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    rust_files(&engine_dir, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = module_of(&engine_dir, f);
        let depth = f.strip_prefix(&engine_dir).unwrap().components().count() - 1;
        let text = std::fs::read_to_string(f).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(imports(&text, depth).into_iter().filter(|d| *d != module));
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    assert!(
        known.contains("runtime") && known.contains("state"),
        "{known:?}"
    );
    for deps in graph.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    // Depth-first search for a cycle, reporting its path.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in &graph[n] {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = visit(n, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle between engine modules: {}", cycle.join(" → "));
        }
    }
}

/// No engine source file grows past ~800 lines: split by concept first.
#[test]
fn engine_files_stay_small() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("engine.rs")];
    rust_files(&root.join("engine"), &mut files);
    let big: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 800).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(big.is_empty(), "split these by concept: {big:?}");
}
