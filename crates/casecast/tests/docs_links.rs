//! The README and `docs/` link only to what exists (issue 19): every relative link names a file
//! of the repository, every `#anchor` a heading of its page (GitHub's way of naming them), and
//! every image is there. Links inside code (fenced blocks, `inline code`) are not links. Web
//! addresses are not followed (the machines that run this have no internet).

// Helpers of a test crate are test code too, though clippy's allow-unwrap-in-tests (clippy.toml)
// spares only #[test] functions and #[cfg(test)] modules.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Markdown pages checked: the README and every `.md` under `docs/`.
fn pages(root: &Path) -> Vec<PathBuf> {
    let mut pages = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages.sort();
    pages
}

/// The text outside fenced code blocks and inline code spans, line by line (code is blanked,
/// so line numbers stay right).
fn prose(text: &str) -> Vec<String> {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~") {
                fenced = !fenced;
                return String::new();
            }
            if fenced {
                return String::new();
            }
            // Inline code: drop what is between backticks.
            let mut out = String::new();
            let mut in_code = false;
            for c in line.chars() {
                if c == '`' {
                    in_code = !in_code;
                } else if !in_code {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, only letters, digits, `-` and
/// `_` kept; a repeated heading gets `-1`, `-2`….
fn anchors(text: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for line in prose(text) {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('#') {
            continue;
        }
        let title = trimmed.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        out.push(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of `[text](target)`, `![alt](target)` and `<img src="target">` on a line.
fn targets(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or("");
        found.push(target.trim_matches(['<', '>']).to_string());
        rest = &after[end.min(after.len())..];
    }
    let mut rest = line;
    while let Some(i) = rest.find("src=\"") {
        let after = &rest[i + 5..];
        let end = after.find('"').unwrap_or(after.len());
        found.push(after[..end].to_string());
        rest = &after[end..];
    }
    found
}

#[test]
fn every_link_and_image_of_the_readme_and_the_docs_is_there() {
    let root = repository();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages(&root) {
        let text = std::fs::read_to_string(&page).unwrap();
        let shown = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        for (n, line) in prose(&text).iter().enumerate() {
            for target in targets(line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
                let file = percent_decode(file);
                let path = if file.is_empty() {
                    page.clone()
                } else if file.starts_with('/') {
                    problems.push(format!(
                        "{shown}:{}: {target}: an absolute path works on no other machine",
                        n + 1
                    ));
                    continue;
                } else {
                    page.parent().unwrap().join(&file)
                };
                if !path.exists() {
                    problems.push(format!("{shown}:{}: {target}: no such file", n + 1));
                    continue;
                }
                if !anchor.is_empty() {
                    let is_markdown = path.extension().is_some_and(|e| e == "md");
                    let known = is_markdown
                        && anchors(&std::fs::read_to_string(&path).unwrap())
                            .iter()
                            .any(|a| a == anchor);
                    if !known {
                        problems.push(format!(
                            "{shown}:{}: {target}: no heading makes the anchor #{anchor}",
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        checked > 20,
        "only {checked} links were found: is the parser right?"
    );
}

/// `%20` and the like in a link's path.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn the_checker_finds_links_and_anchors_as_github_makes_them() {
    assert_eq!(
        targets("see [the guide](docs/x.md#a-b) and ![shot](images/a.png \"title\")"),
        ["docs/x.md#a-b", "images/a.png"]
    );
    assert_eq!(
        targets("<img src=\"images/b.png\" width=\"600\">"),
        ["images/b.png"]
    );
    assert_eq!(
        anchors("# Case groups & their sheets\n## Smart groups\n```\n# not a heading\n```\n## Smart groups\n"),
        ["case-groups--their-sheets", "smart-groups", "smart-groups-1"]
    );
    assert_eq!(prose("a `[x](nowhere.md)` b"), ["a  b"]);
    assert_eq!(percent_decode("a%20b.md"), "a b.md");
}
