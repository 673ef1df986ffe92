//! docs/CONFORMANCE.md stays true: every test it names exists, every file it names exists,
//! and its tables are whole (five columns a row, at least MIN_ROWS rows).
//!
//! No root, no network, std only: the document is read from the source tree and the test
//! names are looked up as `fn <name>(` in the `.rs` files under `src/` and `tests/`.

use std::fs;
use std::path::{Path, PathBuf};

/// The columns of a conformance row: section, requirement, verdict, code, test.
const COLUMNS: usize = 5;
/// The code column (0-based).
const CODE: usize = 3;
/// The test column (0-based).
const TEST: usize = 4;
/// The document is meant to cover roughly a hundred requirements; fewer than this means
/// rows went missing.
const MIN_ROWS: usize = 80;

/// One data row of a markdown table: its line number (1-based) and its cells, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    line: usize,
    cells: Vec<String>,
}

/// The cells of a table line (`| a | b |`), split at every `|` not escaped as `\|`, with the
/// outer pipes dropped and each cell trimmed. None for a line that is no table line.
fn split_cells(line: &str) -> Option<Vec<String>> {
    let line = line.trim();
    if !line.starts_with('|') {
        return None;
    }
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = line[1..].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_string()),
            c => cell.push(c),
        }
    }
    // Text after the last pipe: a row without its closing pipe still has that cell.
    if !cell.trim().is_empty() {
        cells.push(cell.trim().to_string());
    }
    Some(cells)
}

/// Whether the cells are a header separator such as `| --- | :---: |`.
fn is_separator(cells: &[String]) -> bool {
    !cells.is_empty()
        && cells.iter().all(|c| {
            let c = c.trim_matches(':');
            !c.is_empty() && c.chars().all(|ch| ch == '-')
        })
}

/// The data rows of every table in `doc`: table lines that are neither a separator nor the
/// header line just above one.
fn table_rows(doc: &str) -> Vec<Row> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut rows = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(cells) = split_cells(line) else {
            continue;
        };
        if is_separator(&cells) {
            continue;
        }
        let next_is_separator = lines
            .get(i + 1)
            .and_then(|l| split_cells(l))
            .is_some_and(|c| is_separator(&c));
        if next_is_separator {
            continue;
        }
        rows.push(Row { line: i + 1, cells });
    }
    rows
}

/// The backticked spans of a cell, in order (an unclosed backtick ends nothing).
fn backticked(cell: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = cell;
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// Whether `s` can be a Rust function name (what the test column may hold in backticks).
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The test names of a test cell: every backticked span. Err names the spans that cannot be
/// function names (the column must hold nothing else in backticks). A cell that only says
/// "gap: ..." names none.
fn test_names(cell: &str) -> Result<Vec<&str>, Vec<&str>> {
    let spans = backticked(cell);
    let bad: Vec<&str> = spans
        .iter()
        .copied()
        .filter(|s| !is_identifier(s))
        .collect();
    if bad.is_empty() {
        Ok(spans)
    } else {
        Err(bad)
    }
}

/// The source files a code cell names: backticked spans that are paths of `.rs` files.
fn file_paths(cell: &str) -> Vec<&str> {
    backticked(cell)
        .into_iter()
        .filter(|s| s.ends_with(".rs") && (s.starts_with("src/") || s.starts_with("tests/")))
        .collect()
}

/// Whether `source` defines a function `name`: the text `fn <name>(` occurs in it.
fn defines_fn(source: &str, name: &str) -> bool {
    source.contains(&format!("fn {name}("))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn document() -> String {
    let path = root().join("docs/CONFORMANCE.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// All Rust sources of the crate and its tests, concatenated.
fn all_sources() -> String {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    files.sort();
    let mut text = String::new();
    for f in files {
        text.push_str(&fs::read_to_string(&f).unwrap_or_default());
        text.push('\n');
    }
    text
}

#[test]
fn conformance_tables_have_enough_rows_of_five_columns() {
    let rows = table_rows(&document());
    let broken: Vec<String> = rows
        .iter()
        .filter(|r| r.cells.len() != COLUMNS)
        .map(|r| format!("line {}: {} columns", r.line, r.cells.len()))
        .collect();
    assert!(
        broken.is_empty(),
        "docs/CONFORMANCE.md rows without exactly {COLUMNS} columns (a `|` inside a cell \
         must be written \\|):\n{}",
        broken.join("\n")
    );
    assert!(
        rows.len() >= MIN_ROWS,
        "docs/CONFORMANCE.md has {} rows, fewer than {MIN_ROWS}",
        rows.len()
    );
}

#[test]
fn every_test_named_in_conformance_md_exists() {
    let rows = table_rows(&document());
    let sources = all_sources();
    let mut missing: Vec<String> = Vec::new();
    let mut not_names: Vec<String> = Vec::new();
    let mut named = 0;
    for r in rows.iter().filter(|r| r.cells.len() == COLUMNS) {
        match test_names(&r.cells[TEST]) {
            Ok(names) => {
                for n in names {
                    named += 1;
                    if !defines_fn(&sources, n) && !missing.iter().any(|m| m == n) {
                        missing.push(n.to_string());
                    }
                }
            }
            Err(bad) => not_names.push(format!("line {}: {}", r.line, bad.join(", "))),
        }
    }
    assert!(
        not_names.is_empty(),
        "backticked text in the test column that is no test name:\n{}",
        not_names.join("\n")
    );
    assert!(named > 0, "docs/CONFORMANCE.md names no test at all");
    assert!(
        missing.is_empty(),
        "{} test(s) named in docs/CONFORMANCE.md have no `fn <name>(` under src/ or tests/:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn every_file_named_in_conformance_md_exists() {
    let rows = table_rows(&document());
    let mut missing: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| r.cells.len() == COLUMNS) {
        for p in file_paths(&r.cells[CODE]) {
            if !root().join(p).is_file() {
                missing.push(format!("line {}: {p}", r.line));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "files named in the code column of docs/CONFORMANCE.md that do not exist:\n{}",
        missing.join("\n")
    );
}

// ----- the parsing itself -----

const SAMPLE: &str = "\
# Title

| RFC section | Requirement | Verdict | Where | Test |
| --- | --- | :---: | --- | --- |
| 6.6.2 | Lowest address wins. | conformant | `src/core/querier.rs` `Querier::accept_query` | `first_test`, `second_test` |
| 4.1 | EXCLUDE merge. | gap | `src/core/membership.rs` `Table::upstream_wants` | gap: defect 8 is open |
| 3 | A cell with a \\| pipe. | by design | none | `third_test`; gap: the rest |

Text between tables | with a pipe is no row.
";

#[test]
fn header_and_separator_lines_are_not_rows() {
    let rows = table_rows(SAMPLE);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].line, 5);
    assert_eq!(rows[0].cells[0], "6.6.2");
    assert!(rows.iter().all(|r| r.cells.len() == COLUMNS), "{rows:?}");
}

#[test]
fn a_row_with_two_test_names_yields_both() {
    let rows = table_rows(SAMPLE);
    assert_eq!(
        test_names(&rows[0].cells[TEST]),
        Ok(vec!["first_test", "second_test"])
    );
    assert_eq!(
        file_paths(&rows[0].cells[CODE]),
        vec!["src/core/querier.rs"]
    );
}

#[test]
fn a_gap_row_yields_no_names() {
    let rows = table_rows(SAMPLE);
    assert_eq!(test_names(&rows[1].cells[TEST]), Ok(vec![]));
    // A test and a gap note for the rest: only the test is a name.
    assert_eq!(test_names(&rows[2].cells[TEST]), Ok(vec!["third_test"]));
}

#[test]
fn an_escaped_pipe_stays_in_its_cell() {
    let rows = table_rows(SAMPLE);
    assert_eq!(rows[2].cells[1], "A cell with a | pipe.");
    assert_eq!(
        split_cells("| a | b"),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(split_cells("no table"), None);
}

#[test]
fn backticked_text_that_is_no_name_is_refused() {
    assert_eq!(
        test_names("`src/core/querier.rs` and `a_test`"),
        Err(vec!["src/core/querier.rs"])
    );
    assert_eq!(test_names("`unclosed"), Ok(vec![]));
    assert!(is_identifier("bridge_igmp_exc_to_exclude"));
    assert!(!is_identifier("9lives") && !is_identifier("") && !is_identifier("a-b"));
}

#[test]
fn a_function_is_found_by_its_definition_only() {
    let src = "fn helper() {}\n    fn real_test() {\n    }\n// calls not_defined()\n";
    assert!(defines_fn(src, "real_test"));
    assert!(defines_fn(src, "helper"));
    assert!(!defines_fn(src, "not_defined"));
    assert!(!defines_fn(src, "real"), "a prefix is not the function");
}
