//! The execution tree stays a tree: no file of `src/exec` depends, directly or through
//! other files of `src/exec`, on a file that depends on it. A dependency is a `use` of
//! an item or module another file defines, or a path written out in the code
//! (`crate::exec::parallel::run`, `super::QElem`, `cpu::features()` after `use
//! super::cpu`). A parent declaring `mod child;` is not a dependency: tests declared
//! that way may `use super::*`. Modules must be mounted where their file is (no
//! `#[path]`), so a module path names its file.
//!
//! The checker is a small lexer over the sources (comments, strings and char literals
//! skipped), not a Rust parser: it understands `use` trees (groups, `self`, globs,
//! `as`), inline `mod name { .. }` blocks (where `super` and `self` point) and the
//! names a `use` brings in. `checker_finds_cycles` keeps it honest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One module: the file holding it and its path inside that file (inline modules).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Loc {
    file: String,
    inline: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_start = |ch: char| ch.is_alphabetic() || ch == '_';
    let ident_char = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if (ch == 'r' || (ch == 'b' && next == Some('r'))) && {
            let mut j = i + if ch == 'b' { 2 } else { 1 };
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            c.get(j) == Some(&'"') && (i == 0 || !ident_char(c[i - 1]))
        } {
            // Raw string: r"..", r#".."#, br".."
            let mut j = i + if ch == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while c[j] == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            i = j;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ident_start(ch) {
            let start = i;
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            out.push(Tok::Ident(word.trim_start_matches("r#").to_string()));
        } else if ch.is_ascii_digit() {
            while i < c.len() && (ident_char(c[i]) || c[i] == '.') {
                if c[i] == '.' && !c.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    break;
                }
                i += 1;
            }
        } else if ch == ':' && next == Some(':') {
            out.push(Tok::Path);
            i += 2;
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

/// The module path of a file (`exec/kernels/gemm/mod.rs` → `exec::kernels::gemm`).
fn module_path(file: &str) -> Vec<String> {
    let stem = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = stem.split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The sources of a crate (paths relative to `src/`, `/`-separated) and the inline
/// modules each file holds.
struct Crate {
    files: BTreeMap<String, String>,
    inline: BTreeMap<String, BTreeSet<Vec<String>>>,
}

impl Crate {
    fn new(files: BTreeMap<String, String>) -> Crate {
        let mut inline = BTreeMap::new();
        for (f, src) in &files {
            let toks = lex(src);
            let mut set = BTreeSet::new();
            walk_modules(&toks, |stack, _| {
                set.insert(stack.to_vec());
            });
            inline.insert(f.clone(), set);
        }
        Crate { files, inline }
    }

    /// The file of the module at `path` (from the crate root), if it exists.
    fn module(&self, path: &[String]) -> Option<Loc> {
        let mut loc = Loc {
            file: "lib.rs".into(),
            inline: Vec::new(),
        };
        for seg in path {
            loc = self.child(&loc, seg)?;
        }
        Some(loc)
    }

    /// Child module `name` of `loc`: an inline `mod name { }` or a file.
    fn child(&self, loc: &Loc, name: &str) -> Option<Loc> {
        let mut inline = loc.inline.clone();
        inline.push(name.to_string());
        if self
            .inline
            .get(&loc.file)
            .is_some_and(|s| s.contains(&inline))
        {
            return Some(Loc {
                file: loc.file.clone(),
                inline,
            });
        }
        if !loc.inline.is_empty() {
            return None;
        }
        let dir = match loc.file.rsplit_once('/') {
            _ if loc.file == "lib.rs" => String::new(),
            Some((d, "mod.rs")) => format!("{d}/"),
            _ => format!("{}/", loc.file.trim_end_matches(".rs")),
        };
        [format!("{dir}{name}.rs"), format!("{dir}{name}/mod.rs")]
            .into_iter()
            .find(|f| self.files.contains_key(f))
            .map(|file| Loc {
                file,
                inline: Vec::new(),
            })
    }

    /// The file a path from the crate root lands in: the deepest module it names (the
    /// rest are items of that module).
    fn file_of(&self, path: &[String]) -> Option<String> {
        let mut loc = self.module(&[])?;
        for seg in path {
            match self.child(&loc, seg) {
                Some(next) => loc = next,
                None => break,
            }
        }
        Some(loc.file)
    }

    /// Whether `name` is a module in scope at `here` (a child module).
    fn is_child(&self, here: &[String], name: &str) -> bool {
        self.module(here)
            .is_some_and(|loc| self.child(&loc, name).is_some())
    }
}

/// Calls `f(inline module stack, token index)` for every token, tracking `mod name {`
/// blocks by brace depth.
fn walk_modules(toks: &[Tok], mut f: impl FnMut(&[String], usize)) {
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        let names: Vec<String> = stack.iter().map(|(n, _)| n.clone()).collect();
        f(&names, i);
        match t {
            Tok::Punct('{') => {
                depth += 1;
                if i >= 2
                    && toks[i - 2] == Tok::Ident("mod".into())
                    && let Tok::Ident(name) = &toks[i - 1]
                {
                    stack.push((name.clone(), depth));
                }
            }
            Tok::Punct('}') => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
}

/// Parses a `use` tree starting at `toks[i]` into full paths (as written, a trailing
/// `*` for globs, `self` resolved) with the name each brings into scope. Returns the
/// index after the tree.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, String)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) if s == "self" && !path.is_empty() => {
                i += 1;
                let name = path.last().cloned().unwrap_or_default();
                let (alias, next) = rename(toks, i, name);
                out.push((path.clone(), alias));
                return next;
            }
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if toks.get(i) == Some(&Tok::Path) {
                    i += 1;
                    continue;
                }
                let (alias, next) = rename(toks, i, s.clone());
                out.push((path, alias));
                return next;
            }
            Some(Tok::Punct('*')) => {
                path.push("*".into());
                out.push((path, String::new()));
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while toks.get(i).is_some_and(|t| *t != Tok::Punct('}')) {
                    i = use_tree(toks, i, &path, out);
                    if toks.get(i) == Some(&Tok::Punct(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Tok::Path) => i += 1, // a leading `::`
            _ => return i,
        }
    }
}

fn rename(toks: &[Tok], i: usize, name: String) -> (String, usize) {
    match (toks.get(i), toks.get(i + 1)) {
        (Some(Tok::Ident(a)), Some(Tok::Ident(b))) if a == "as" => (b.clone(), i + 2),
        _ => (name, i),
    }
}

/// A path as written in module `here`, made absolute: `crate`, `super`, `self`, or a
/// child module first. `None` for paths outside the crate (std, other crates, types).
fn absolute(c: &Crate, here: &[String], path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut base = here.to_vec();
    let mut rest = path;
    match first.as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        name if c.is_child(here, name) => {}
        _ => return None,
    }
    base.extend(rest.iter().filter(|s| *s != "*").cloned());
    Some(base)
}

#[derive(Default)]
struct Report {
    edges: BTreeMap<String, BTreeSet<String>>,
    path_attributes: Vec<String>,
}

/// The dependencies between the files under `scope` (a folder of the crate).
fn dependencies(c: &Crate, scope: &str) -> Report {
    let mut report = Report::default();
    for (file, src) in &c.files {
        if !file.starts_with(scope) {
            continue;
        }
        let toks = lex(src);
        let base = module_path(file);
        let mut uses = Vec::new();
        let mut here_at = Vec::new();
        walk_modules(&toks, |stack, _| {
            let mut h = base.clone();
            h.extend(stack.iter().cloned());
            here_at.push(h);
        });
        // Names brought in by `use` (per module), for paths like `cpu::features()`.
        let mut aliases: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
        let mut i = 0;
        while i < toks.len() {
            let here = &here_at[i];
            match &toks[i] {
                Tok::Punct('#')
                    if toks.get(i + 1) == Some(&Tok::Punct('['))
                        && toks.get(i + 2) == Some(&Tok::Ident("path".into())) =>
                {
                    report.path_attributes.push(file.clone());
                    i += 3;
                }
                Tok::Ident(kw) if kw == "use" => {
                    let mut tree = Vec::new();
                    i = use_tree(&toks, i + 1, &[], &mut tree);
                    for (path, alias) in tree {
                        if let Some(abs) = absolute(c, here, &path) {
                            uses.push(abs.clone());
                            aliases.insert((here.clone(), alias), abs);
                        }
                    }
                }
                // `pub(in crate::a::b)` names a module, it imports nothing.
                Tok::Ident(kw) if kw == "in" && i > 0 && toks[i - 1] == Tok::Punct('(') => {
                    i += 1;
                    while matches!(toks.get(i), Some(Tok::Ident(_) | Tok::Path)) {
                        i += 1;
                    }
                }
                Tok::Ident(first) if i == 0 || toks[i - 1] != Tok::Path => {
                    // A written-out path: ident (:: ident)+.
                    let mut path = vec![first.clone()];
                    let mut j = i + 1;
                    while toks.get(j) == Some(&Tok::Path) {
                        match toks.get(j + 1) {
                            Some(Tok::Ident(s)) => path.push(s.clone()),
                            _ => break,
                        }
                        j += 2;
                    }
                    if path.len() > 1 {
                        let abs = match aliases.get(&(here.clone(), first.clone())) {
                            Some(a) => Some(a.iter().chain(&path[1..]).cloned().collect()),
                            None => absolute(c, here, &path),
                        };
                        uses.extend(abs);
                    }
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
        for abs in uses {
            if let Some(target) = c.file_of(&abs)
                && target.starts_with(scope)
                && target != *file
            {
                report.edges.entry(file.clone()).or_default().insert(target);
            }
        }
    }
    report
}

/// Every cycle's files, one list per strongly connected component of more than one file.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges
        .iter()
        .flat_map(|(a, bs)| std::iter::once(a).chain(bs))
        .collect();
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(n) = todo.pop() {
            for m in edges.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        nodes.iter().map(|n| (*n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in &nodes {
        if done.contains(*n) || !reaches[n].contains(*n) {
            continue;
        }
        let scc: Vec<String> = nodes
            .iter()
            .filter(|m| reaches[n].contains(**m) && reaches[*m].contains(*n))
            .map(|m| (*m).clone())
            .collect();
        done.extend(scc.iter().cloned());
        out.push(scc);
    }
    out
}

fn read_tree(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            read_tree(root, &p, files);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p.strip_prefix(root).expect("under src");
            let rel = rel.to_string_lossy().replace('\\', "/");
            files.insert(rel, std::fs::read_to_string(&p).expect("read source"));
        }
    }
}

fn describe(report: &Report) -> String {
    cycles(&report.edges)
        .iter()
        .map(|scc| {
            let inside: Vec<String> = scc
                .iter()
                .flat_map(|a| {
                    report.edges[a]
                        .iter()
                        .filter(|b| scc.contains(b))
                        .map(move |b| format!("    {a} -> {b}"))
                })
                .collect();
            format!("cycle between {} files:\n{}", scc.len(), inside.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn exec_files_form_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_tree(&src, &src, &mut files);
    let c = Crate::new(files);
    let report = dependencies(&c, "exec/");
    let found = describe(&report);
    assert!(found.is_empty(), "import cycles in src/exec:\n{found}");
    assert!(
        report.path_attributes.is_empty(),
        "#[path] mounts a module away from its file in {:?}",
        report.path_attributes
    );
    // The check saw the tree (a broken walk would find no edges and pass).
    assert!(
        report.edges.len() > 20,
        "only {} files with edges",
        report.edges.len()
    );
}

fn fake_crate(files: &[(&str, &str)]) -> Crate {
    Crate::new(
        files
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect(),
    )
}

#[test]
fn checker_finds_cycles() {
    let lib = ("lib.rs", "pub mod exec;");
    let root = ("exec/mod.rs", "mod a;\nmod b;\nmod c;\npub mod d;");
    // a -> b by `use crate::..`, b -> a by a written-out path: a cycle.
    let c = fake_crate(&[
        lib,
        root,
        (
            "exec/a.rs",
            "use crate::exec::b::{self as bee, B};\npub struct A;",
        ),
        (
            "exec/b.rs",
            "pub struct B;\nfn f() { let _ = super::a::A; }",
        ),
        ("exec/c.rs", ""),
        ("exec/d/mod.rs", ""),
    ]);
    let r = dependencies(&c, "exec/");
    assert_eq!(
        cycles(&r.edges),
        vec![vec!["exec/a.rs".to_string(), "exec/b.rs".into()]]
    );

    // Three files in a ring, through a glob, a group and an alias.
    let c = fake_crate(&[
        lib,
        root,
        ("exec/a.rs", "use super::{b::*, c};"),
        ("exec/b.rs", "use super::c; fn f() { c::g() }"),
        ("exec/c.rs", "fn g() { crate::exec::d::h(); }"),
        ("exec/d/mod.rs", "use super::a::A; pub fn h() {}"),
    ]);
    let r = dependencies(&c, "exec/");
    assert_eq!(cycles(&r.edges).len(), 1);
    assert_eq!(cycles(&r.edges)[0].len(), 4, "{}", describe(&r));

    // Not cycles: `super` inside an inline module is the file itself, a parent's
    // `mod child;` is no import, strings and comments are not code, std is outside.
    let c = fake_crate(&[
        lib,
        root,
        (
            "exec/a.rs",
            "mod tests { use super::*; }\n// use super::b::B;\nconst S: &str = \"super::b::B\";\nuse std::mem;",
        ),
        (
            "exec/b.rs",
            "pub struct B; fn f() -> char { '{' } use super::a::*;",
        ),
        (
            "exec/c.rs",
            "use super::d::inner::X; pub(in crate::exec::a) fn f() {}",
        ),
        (
            "exec/d/mod.rs",
            "mod tests;\npub mod inner { pub struct X; }",
        ),
        ("exec/d/tests.rs", "use super::*; use crate::exec::c;"),
    ]);
    let r = dependencies(&c, "exec/");
    assert!(cycles(&r.edges).is_empty(), "{}", describe(&r));
    assert_eq!(
        r.edges["exec/b.rs"],
        BTreeSet::from(["exec/a.rs".to_string()])
    );
    assert_eq!(
        r.edges["exec/d/tests.rs"],
        BTreeSet::from(["exec/c.rs".to_string(), "exec/d/mod.rs".into()])
    );
    assert_eq!(
        r.edges["exec/c.rs"],
        BTreeSet::from(["exec/d/mod.rs".to_string()])
    );
    assert!(!r.edges.contains_key("exec/a.rs"));

    // `#[path]` is reported.
    let c = fake_crate(&[lib, ("exec/mod.rs", "#[path = \"x/y.rs\"]\nmod y;")]);
    assert_eq!(
        dependencies(&c, "exec/").path_attributes,
        vec!["exec/mod.rs".to_string()]
    );
}
