//! Every warning and error the daemon logs is documented: each fixed piece of text of every
//! `warn!`/`error!` format string in src/ must appear in docs/TROUBLESHOOTING.md, so a new
//! warning cannot go undocumented. Every doctor check NAME has its own section there too.

use std::path::Path;

/// The format strings of every warn!/error! call in `text`: the first string literal after
/// the macro's opening parenthesis, with `\` line continuations and escapes resolved.
fn format_strings(text: &str) -> Vec<String> {
    let mut out = vec![];
    for mac in ["warn!(", "error!("] {
        let mut rest = text;
        while let Some(i) = rest.find(mac) {
            rest = &rest[i + mac.len()..];
            let Some(q) = rest.find('"') else { break };
            let mut s = String::new();
            let mut chars = rest[q + 1..].chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('\n') => {
                            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                                chars.next();
                            }
                        }
                        Some('n') => s.push('\n'),
                        Some(o) => s.push(o),
                        None => break,
                    },
                    c => s.push(c),
                }
            }
            out.push(s);
        }
    }
    out
}

/// The fixed pieces of a format string: the text between `{...}` placeholders.
fn fixed_pieces(f: &str) -> Vec<String> {
    let mut pieces = vec![];
    let mut cur = String::new();
    let mut depth = 0;
    for c in f.chars() {
        match c {
            '{' => {
                depth += 1;
                pieces.push(std::mem::take(&mut cur));
            }
            '}' if depth > 0 => depth -= 1,
            c if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    pieces.push(cur);
    pieces
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| p.len() >= 6)
        .collect()
}

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
fn every_warning_and_error_is_in_troubleshooting_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Whitespace runs count as one space: the document wraps long messages.
    let squash = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let doc = squash(&std::fs::read_to_string(root.join("docs/TROUBLESHOOTING.md")).unwrap());
    let mut files = vec![];
    rust_files(&root.join("src"), &mut files);
    let mut missing = vec![];
    let mut seen = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for fmt in format_strings(&text) {
            seen += 1;
            for piece in fixed_pieces(&fmt) {
                if !doc.contains(&squash(&piece)) {
                    missing.push(format!("{}: {piece:?} (of {fmt:?})", f.display()));
                }
            }
        }
    }
    assert!(
        seen >= 20,
        "only {seen} warn!/error! found: is the scan broken?"
    );
    assert!(
        missing.is_empty(),
        "not in docs/TROUBLESHOOTING.md:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_doctor_check_has_a_section() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/TROUBLESHOOTING.md"),
    )
    .unwrap();
    for name in snoopcast::doctor::checks::CHECKS {
        assert!(
            doc.contains(&format!("### `{name}`")),
            "no section for {name}"
        );
    }
}

#[test]
fn the_scanner_finds_continued_strings_and_their_pieces() {
    let src =
        "warn!(\n \"a: {x} cannot open \\\n   the thing {}; retry\", y);\nlog::error!(\"{e}\");";
    let f = format_strings(src);
    assert_eq!(
        f,
        vec![
            "a: {x} cannot open the thing {}; retry".to_string(),
            "{e}".into()
        ]
    );
    assert_eq!(
        fixed_pieces(&f[0]),
        vec!["cannot open the thing".to_string(), "; retry".into()]
    );
    assert!(fixed_pieces(&f[1]).is_empty());
}
