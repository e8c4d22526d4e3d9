//! One-way layers: no module of a crate imports a module that imports it back, and every module
//! file opens with a `//!` comment saying what lives there.
//!
//! The check reads every `.rs` file under `src/` and `crates/*/src/` as text (std only, no
//! parser): comments, strings and character literals are blanked out, then it collects the
//! paths that name another module of the same crate — `crate::a::b`, `super::x`, `self::x`, in
//! `use` trees and in code, and a child's name used as a path (`child::f()`) — and builds the
//! graph of file modules. A parent that only declares and re-exports its children
//! (`mod x; pub use x::Y;`) does not import them; a child importing from its parent does, and
//! so does a parent whose own code uses its child. Inline modules (`mod tests { .. }`) belong to
//! their file. Any strongly connected group of two or more modules is a cycle.
//!
//! It is a guess in one place: a path is read from its text, so a `macro_rules!` body or a
//! `#[path]` attribute could hide an import, and a name re-exported by a parent and then used
//! by the parent's own code is not counted. The unit tests below check what it does catch.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Cycles allowed, each with a comment saying why: `(crate directory, modules of the cycle)`;
/// none today. Each entry must match a cycle found (a stale entry fails too).
const ALLOWED_CYCLES: &[(&str, &[&str])] = &[];

/// Module files allowed to lack their opening `//!` comment (none today; a stale entry fails).
const ALLOWED_UNDOCUMENTED: &[&str] = &[];

/// Macros whose input is code for the crate the macro expands into (the derive crate's
/// output), whose paths are not imports of the module they are written in.
const QUOTING_MACROS: &[&str] = &[
    "quote",
    "quote_spanned",
    "parse_quote",
    "parse_quote_spanned",
];

/// One source file of a crate: its path (for messages) and its text.
struct SourceFile {
    path: String,
    text: String,
}

/// An import of one module by another, with the line it was seen on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    from: String,
    to: String,
    line: usize,
}

/// What the check found in one crate.
#[derive(Debug, Default)]
struct Findings {
    /// Each cycle: its modules, sorted, and the imports that close it.
    cycles: Vec<(Vec<String>, Vec<Edge>)>,
    /// Module files that do not start with `//!`.
    undocumented: Vec<String>,
}

/// The module path of a file relative to its crate's `src/` (`a/b.rs`, `a/b/mod.rs` → `a::b`,
/// `lib.rs`/`main.rs` → the root, spelled `crate`).
fn module_of(relative: &str) -> String {
    let trimmed = relative.trim_end_matches(".rs");
    let mut parts: Vec<&str> = trimmed.split('/').collect();
    if matches!(parts.last(), Some(&"mod") | Some(&"lib") | Some(&"main")) {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".to_string()
    } else {
        parts.join("::")
    }
}

/// `text` with comments, string and character literals replaced by spaces (newlines kept, so
/// line numbers stay right).
fn blank_out(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"..", r#".."#, ...
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            out.extend(chars[i..j.min(chars.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let close = match (next, chars.get(i + 2)) {
                (Some('\\'), _) => chars
                    .get(i + 3..)
                    .and_then(|rest| rest.iter().position(|&c| c == '\''))
                    .map(|p| i + 3 + p),
                (Some(_), Some('\'')) => Some(i + 2),
                _ => None,
            };
            match close {
                Some(end) => {
                    out.extend(chars[i..=end].iter().map(|&c| blank(c)));
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// A token of blanked-out source: an identifier, `::`, or one punctuation character.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

fn tokens(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

/// One path found in a file: its segments, the inline modules it sits in, whether it is part
/// of a `pub use` (a re-export), and its line.
struct FoundPath {
    segments: Vec<String>,
    inline: Vec<String>,
    reexport: bool,
    line: usize,
}

/// The leaf paths of a `use` tree (`a::{b, c::{self, D}}` → `a::b`, `a::c`, `a::c::D`).
fn use_tree(tokens: &[Token], prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].text.as_str() {
            "::" => {}
            "{" => {
                // Split the group's top level on commas.
                let mut depth = 0;
                let mut start = i + 1;
                for j in i..tokens.len() {
                    match tokens[j].text.as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                use_tree(&tokens[start..j], &path, out);
                                return;
                            }
                        }
                        "," if depth == 1 => {
                            use_tree(&tokens[start..j], &path, out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            "as" | "*" => break,
            // `x::{self}` names `x` itself.
            "self" if !path.is_empty() => {}
            word => path.push(word.to_string()),
        }
        i += 1;
    }
    if !path.is_empty() {
        out.push(path);
    }
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The paths of `code` that may name a module of the crate, and the child modules it declares
/// (`mod x;`).
fn scan(code: &str) -> (Vec<FoundPath>, BTreeSet<String>) {
    let tokens = tokens(code);
    let mut found = Vec::new();
    let mut children = BTreeSet::new();
    // Inline modules we are in, with the brace depth their body opened at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].text.as_str();
        let next = tokens.get(i + 1).map(|t| t.text.as_str());
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "mod" if next.is_some_and(is_ident) => {
                let name = tokens[i + 1].text.clone();
                match tokens.get(i + 2).map(|t| t.text.as_str()) {
                    Some(";") if inline.is_empty() => {
                        children.insert(name);
                    }
                    Some("{") => {
                        inline.push((name, depth));
                        depth += 1;
                        i += 3;
                        continue;
                    }
                    _ => {}
                }
                i += 2;
                continue;
            }
            // Code generated for another crate (`quote!`, `parse_quote!`): not an import here.
            _ if QUOTING_MACROS.contains(&t)
                && next == Some("!")
                && tokens
                    .get(i + 2)
                    .is_some_and(|t| matches!(t.text.as_str(), "(" | "[" | "{")) =>
            {
                let (open, close) = match tokens[i + 2].text.as_str() {
                    "(" => ("(", ")"),
                    "[" => ("[", "]"),
                    _ => ("{", "}"),
                };
                let mut nesting = 0;
                let mut j = i + 2;
                while j < tokens.len() {
                    if tokens[j].text == open {
                        nesting += 1;
                    } else if tokens[j].text == close {
                        nesting -= 1;
                        if nesting == 0 {
                            break;
                        }
                    }
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            "use" => {
                let end = tokens[i..]
                    .iter()
                    .position(|t| t.text == ";")
                    .map_or(tokens.len(), |p| i + p);
                let reexport = is_public(&tokens[..i]);
                let mut leaves = Vec::new();
                use_tree(&tokens[i + 1..end], &[], &mut leaves);
                for segments in leaves {
                    found.push(FoundPath {
                        segments,
                        inline: inline.iter().map(|(n, _)| n.clone()).collect(),
                        reexport,
                        line: tokens[i].line,
                    });
                }
                i = end + 1;
                continue;
            }
            _ if is_ident(t)
                && next == Some("::")
                && !matches!(
                    tokens[..i].last().map(|t| t.text.as_str()),
                    Some("::" | "$" | "in")
                )
                && tokens.get(i + 2).is_some_and(|t| is_ident(&t.text)) =>
            {
                let mut segments = vec![t.to_string()];
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|t| t.text == "::")
                    && tokens.get(j + 1).is_some_and(|t| is_ident(&t.text))
                {
                    segments.push(tokens[j + 1].text.clone());
                    j += 2;
                }
                // `syn::parse_quote!(..)`: skip the input, from the macro's name.
                if tokens.get(j).is_some_and(|t| t.text == "!")
                    && segments
                        .last()
                        .is_some_and(|s| QUOTING_MACROS.contains(&s.as_str()))
                {
                    i = j - 1;
                    continue;
                }
                found.push(FoundPath {
                    segments,
                    inline: inline.iter().map(|(n, _)| n.clone()).collect(),
                    reexport: false,
                    line: tokens[i].line,
                });
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (found, children)
}

/// Whether the tokens before a `use` make it public (`pub use`, `pub(crate) use`, ...).
fn is_public(before: &[Token]) -> bool {
    match before.last().map(|t| t.text.as_str()) {
        Some("pub") => true,
        Some(")") => {
            let open = before.iter().rposition(|t| t.text == "(");
            open.is_some_and(|o| o > 0 && before[o - 1].text == "pub")
        }
        _ => false,
    }
}

/// The module a path names, if it is another module of the crate: the longest prefix of the
/// resolved path that is a known module, with the item the path names in it (if any).
fn target(
    module: &str,
    path: &FoundPath,
    children: &BTreeSet<String>,
    modules: &BTreeSet<String>,
) -> Option<(String, Option<String>)> {
    let here: Vec<String> = if module == "crate" {
        Vec::new()
    } else {
        module.split("::").map(String::from).collect()
    };
    let mut scope: Vec<String> = here.iter().chain(&path.inline).cloned().collect();
    let mut segments = path.segments.iter().peekable();
    match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            scope.clear();
            segments.next();
        }
        Some("super") => {
            while segments.peek().is_some_and(|s| *s == "super") {
                scope.pop()?;
                segments.next();
            }
        }
        Some("self") => {
            segments.next();
        }
        // A child module named directly, from the file's own code (not from an inline module).
        Some(first) if path.inline.is_empty() && children.contains(first) => {}
        _ => return None,
    }
    let mut resolved = scope;
    resolved.extend(segments.cloned());
    (0..=resolved.len()).rev().find_map(|n| {
        let name = if n == 0 {
            "crate".to_string()
        } else {
            resolved[..n].join("::")
        };
        modules
            .contains(&name)
            .then(|| (name, resolved.get(n).cloned()))
    })
}

/// Whether `child` is `parent` or below it.
fn descends(child: &str, parent: &str) -> bool {
    parent == "crate" || child == parent || child.starts_with(&format!("{parent}::"))
}

/// Checks the files of one crate (paths relative to its `src/`).
fn check_crate(files: &[SourceFile]) -> Findings {
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&f.path)).collect();
    let mut findings = Findings::default();
    let mut edges: BTreeMap<String, BTreeMap<String, Edge>> = BTreeMap::new();
    let scanned: Vec<(String, Vec<FoundPath>, BTreeSet<String>)> = files
        .iter()
        .map(|f| {
            let (paths, children) = scan(&blank_out(&f.text));
            (module_of(&f.path), paths, children)
        })
        .collect();
    // What each module re-exports from below it (`pub use child::Item`): (module, item) → the
    // module the item lives in. A path to `module::Item` is an import of that module, so that a
    // facade `mod.rs` does not hide a cycle with the child behind it.
    let mut reexports: BTreeMap<(String, String), String> = BTreeMap::new();
    for (module, paths, children) in &scanned {
        for path in paths.iter().filter(|p| p.reexport) {
            if let Some((to, Some(item))) = target(module, path, children, &modules)
                && to != *module
                && descends(&to, module)
            {
                reexports.insert((module.clone(), item), to);
            }
        }
    }
    let through_reexports = |mut to: String, mut item: Option<String>| {
        // Chains end: each step goes strictly deeper.
        while let Some(name) = item.take() {
            match reexports.get(&(to.clone(), name.clone())) {
                Some(deeper) => {
                    to = deeper.clone();
                    item = Some(name);
                }
                None => break,
            }
        }
        to
    };
    for (file, (module, paths, children)) in files.iter().zip(&scanned) {
        if !file.text.starts_with("//!") {
            findings.undocumented.push(file.path.clone());
        }
        let module = module.clone();
        for path in paths {
            let Some((to, item)) = target(&module, path, children, &modules) else {
                continue;
            };
            let to = if path.reexport {
                to
            } else {
                through_reexports(to, item)
            };
            // A parent re-exporting what lives below it does not import it.
            if to == module || (path.reexport && descends(&to, &module)) {
                continue;
            }
            edges
                .entry(module.clone())
                .or_default()
                .entry(to.clone())
                .or_insert(Edge {
                    from: module.clone(),
                    to,
                    line: path.line,
                });
        }
    }
    for group in strongly_connected(&modules, &edges) {
        let inside: Vec<Edge> = group
            .iter()
            .flat_map(|m| edges.get(m).into_iter().flat_map(|e| e.values()))
            .filter(|e| group.contains(&e.to))
            .cloned()
            .collect();
        findings.cycles.push((group, inside));
    }
    findings
}

/// The groups of two or more modules that reach each other (Tarjan's algorithm), each sorted.
fn strongly_connected(
    modules: &BTreeSet<String>,
    edges: &BTreeMap<String, BTreeMap<String, Edge>>,
) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, Edge>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        groups: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, v: &'a str) {
        let n = state.index.len();
        state.index.insert(v, n);
        state.low.insert(v, n);
        state.stack.push(v);
        state.on_stack.insert(v);
        let edges = state.edges;
        for w in edges.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !state.index.contains_key(w) {
                visit(state, w);
                let low = state.low[v].min(state.low[w]);
                state.low.insert(v, low);
            } else if state.on_stack.contains(w) {
                let low = state.low[v].min(state.index[w]);
                state.low.insert(v, low);
            }
        }
        if state.low[v] == state.index[v] {
            let mut group = Vec::new();
            while let Some(w) = state.stack.pop() {
                state.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                state.groups.push(group);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for m in modules {
        if !state.index.contains_key(m.as_str()) {
            visit(&mut state, m);
        }
    }
    state.groups
}

/// Every `.rs` file under `dir`, with its path relative to `root`.
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_tree(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).expect("below the root");
            out.push(SourceFile {
                path: relative.to_string_lossy().replace('\\', "/"),
                text: fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
            });
        }
    }
}

/// The crates of the workspace: `(directory relative to the workspace, its src/ files)`.
fn workspace_crates() -> Vec<(String, Vec<SourceFile>)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut crates = vec![".".to_string()];
    let mut members: Vec<String> = fs::read_dir(workspace.join("crates"))
        .expect("crates/")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("src").is_dir())
        .map(|p| format!("crates/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    members.sort();
    crates.extend(members);
    crates
        .into_iter()
        .map(|dir| {
            let src = workspace.join(&dir).join("src");
            let mut files = Vec::new();
            read_tree(&src, &src, &mut files);
            (dir, files)
        })
        .collect()
}

fn describe_cycle(krate: &str, modules: &[String], edges: &[Edge]) -> String {
    let mut text = format!("{krate}: {} import each other:\n", modules.join(", "));
    for e in edges {
        text.push_str(&format!("    {} -> {} (line {})\n", e.from, e.to, e.line));
    }
    text
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut problems = Vec::new();
    let mut allowed_seen = BTreeSet::new();
    for (krate, files) in workspace_crates() {
        assert!(!files.is_empty(), "{krate}: no source files found");
        for (modules, edges) in check_crate(&files).cycles {
            let allowed = ALLOWED_CYCLES.iter().position(|(k, m)| {
                *k == krate && m.iter().copied().eq(modules.iter().map(String::as_str))
            });
            match allowed {
                Some(n) => {
                    allowed_seen.insert(n);
                }
                None => problems.push(describe_cycle(&krate, &modules, &edges)),
            }
        }
    }
    for (n, (krate, modules)) in ALLOWED_CYCLES.iter().enumerate() {
        if !allowed_seen.contains(&n) {
            problems.push(format!(
                "{krate}: the allowed cycle {modules:?} is gone: remove it from ALLOWED_CYCLES\n"
            ));
        }
    }
    assert!(problems.is_empty(), "module cycles:\n{}", problems.concat());
}

#[test]
fn every_module_file_opens_with_a_doc_comment() {
    let mut missing = Vec::new();
    let mut allowed_seen = BTreeSet::new();
    for (krate, files) in workspace_crates() {
        for path in check_crate(&files).undocumented {
            let full = if krate == "." {
                format!("src/{path}")
            } else {
                format!("{krate}/src/{path}")
            };
            match ALLOWED_UNDOCUMENTED.iter().position(|a| *a == full) {
                Some(n) => {
                    allowed_seen.insert(n);
                }
                None => missing.push(full),
            }
        }
    }
    for (n, path) in ALLOWED_UNDOCUMENTED.iter().enumerate() {
        if !allowed_seen.contains(&n) {
            missing.push(format!(
                "{path} is documented now: remove it from ALLOWED_UNDOCUMENTED"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "module files not starting with a `//!` comment saying what lives there:\n{}",
        missing.join("\n")
    );
}

/// A tiny crate in memory.
fn tree(files: &[(&str, &str)]) -> Vec<SourceFile> {
    files
        .iter()
        .map(|(path, text)| SourceFile {
            path: path.to_string(),
            text: text.to_string(),
        })
        .collect()
}

fn cycles(files: &[(&str, &str)]) -> Vec<Vec<String>> {
    check_crate(&tree(files))
        .cycles
        .into_iter()
        .map(|(modules, _)| modules)
        .collect()
}

#[test]
fn the_check_catches_a_cycle() {
    let found = check_crate(&tree(&[
        ("lib.rs", "//! Root.\nmod a;\nmod b;\npub use a::A;\n"),
        ("a.rs", "//! A.\nuse crate::b::B;\npub struct A(B);\n"),
        (
            "b/mod.rs",
            "//! B.\npub struct B;\nfn f() { super::a::A::new(); }\n",
        ),
    ]));
    assert_eq!(found.cycles.len(), 1, "{:?}", found.cycles);
    let (modules, edges) = &found.cycles[0];
    assert_eq!(modules, &["a", "b"]);
    let lines: Vec<(&str, &str, usize)> = edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str(), e.line))
        .collect();
    assert_eq!(lines, [("a", "b", 2), ("b", "a", 3)]);
    assert!(describe_cycle("demo", modules, edges).contains("a -> b (line 2)"));
}

#[test]
fn the_check_sees_a_cycle_behind_a_reexport() {
    // `error` uses `sub::Apply`, which `sub/mod.rs` re-exports from `sub::apply`, which uses
    // `error`: a cycle between `error` and `sub::apply`, though `sub/mod.rs` imports nothing.
    let found = check_crate(&tree(&[
        ("lib.rs", "//! Root.\nmod error;\nmod sub;\n"),
        (
            "error.rs",
            "//! E.\nuse crate::sub::Apply;\npub struct E(Apply);\n",
        ),
        ("sub/mod.rs", "//! S.\nmod apply;\npub use apply::Apply;\n"),
        (
            "sub/apply.rs",
            "//! A.\nuse crate::error::E;\npub struct Apply;\n",
        ),
    ]));
    assert_eq!(found.cycles.len(), 1, "{:?}", found.cycles);
    assert_eq!(found.cycles[0].0, ["error", "sub::apply"]);
}

#[test]
fn the_check_follows_use_trees_children_and_parents() {
    // A grouped `use` tree, reaching a grandchild through `self`.
    assert_eq!(
        cycles(&[
            ("lib.rs", "//!\nmod x;\nmod y;\n"),
            (
                "x/mod.rs",
                "//!\nmod z;\nuse crate::{y::Y, x::{self, z::Z}};\n"
            ),
            ("x/z.rs", "//!\n"),
            ("y.rs", "//!\nuse crate::x::{self};\n"),
        ]),
        [["x", "y"]]
    );
    // A parent's own code using its child by name, and the child using its parent.
    assert_eq!(
        cycles(&[
            ("lib.rs", "//!\nmod p;\n"),
            (
                "p/mod.rs",
                "//!\nmod c;\npub struct P;\nfn f() { c::run(); }\n"
            ),
            ("p/c.rs", "//!\nuse super::P;\npub fn run() {}\n"),
        ]),
        [["p", "p::c"]]
    );
    // Three modules in a ring.
    assert_eq!(
        cycles(&[
            ("lib.rs", "//!\nmod a;\nmod b;\nmod c;\n"),
            ("a.rs", "//!\nuse crate::b::B;\n"),
            ("b.rs", "//!\nuse crate::c::C;\n"),
            ("c.rs", "//!\nfn f() -> crate::a::A { todo!() }\n"),
        ]),
        [["a", "b", "c"]]
    );
}

#[test]
fn the_check_ignores_reexports_comments_strings_and_inline_modules() {
    assert_eq!(
        cycles(&[
            // The parent only declares and re-exports its children.
            (
                "lib.rs",
                "//!\nmod a;\nmod b;\npub use a::A;\npub(crate) use b::{B, self};\n"
            ),
            // The children import their parent's re-exports and each other one way.
            (
                "a.rs",
                "//!\nuse crate::B;\nuse crate::b::B as Other;\npub struct A;\n"
            ),
            (
                "b.rs",
                concat!(
                    "//! Not `crate::a::A` (a comment).\n",
                    "pub struct B;\n",
                    "// use crate::a::A;\n",
                    "/* crate::a::A */\n",
                    "const S: &str = \"crate::a::A\";\n",
                    "const R: &str = r#\"use crate::a::A;\"#;\n",
                    "const C: char = '\"'; fn f<'a>(x: &'a str) {}\n",
                    "#[cfg(test)]\nmod tests {\n    use super::*;\n    use self::inner::X;\n}\n",
                    "macro_rules! m { () => { $crate::a::A }; }\n",
                    "fn g() { let _ = quote! { crate::a::A }; let _: P = syn::parse_quote!(crate::a::A); }\n",
                ),
            ),
        ]),
        Vec::<Vec<String>>::new()
    );
    // A test module's `super` is its file; its `super::super` the file's parent.
    assert_eq!(
        cycles(&[
            ("lib.rs", "//!\nmod a;\nmod b;\n"),
            ("a.rs", "//!\nuse crate::b::B;\n"),
            (
                "b.rs",
                "//!\npub struct B;\nmod tests {\n    use super::super::a::A;\n}\n"
            ),
        ]),
        [["a", "b"]]
    );
}

#[test]
fn the_check_finds_undocumented_modules() {
    let found = check_crate(&tree(&[
        ("lib.rs", "//! Root.\nmod a;\nmod b;\n"),
        ("a.rs", "use std::fmt;\n//! Too late.\n"),
        (
            "b.rs",
            "/// An item's doc, not the module's.\npub struct B;\n",
        ),
    ]));
    assert_eq!(found.undocumented, ["a.rs", "b.rs"]);
    assert_eq!(module_of("lib.rs"), "crate");
    assert_eq!(module_of("a/b/mod.rs"), "a::b");
    assert_eq!(module_of("a/b.rs"), "a::b");
}
