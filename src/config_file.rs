//! The configuration file (`--config FILE`, see snoopcast.toml(5)): TOML whose keys are the
//! long option names of `run`, spelled the same (`upstream = "eth1"`,
//! `allow = ["239.0.0.0/8"]`, `no-ipv6 = true`).
//!
//! The file is read with the `toml` crate and each of its values is turned back into the
//! command-line arguments it stands for, which go through the very clap parsers the command
//! line uses: a value means the same, and fails with the same words, in both places. An
//! option given on the command line wins over the file (a list on the command line replaces
//! the file's list). Pure: the caller reads the file.

use crate::cli::RunArgs;
use clap::builder::{ArgAction, RangedU64ValueParser, ValueParser};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, FromArgMatches};
use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use toml::{Spanned, Value};

/// What a key's value must be in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A flag: `true` or `false`.
    Bool,
    /// A number: a TOML integer.
    Integer,
    /// A string (an interface, a duration, a prefix, a path, a name).
    Text,
    /// A repeatable option: a list of strings (a single string is a list of one).
    List,
}

impl Kind {
    fn of(arg: &clap::Arg) -> Kind {
        let numeric = [
            ValueParser::from(RangedU64ValueParser::<u8>::new()).type_id(),
            ValueParser::from(RangedU64ValueParser::<u32>::new()).type_id(),
            ValueParser::from(RangedU64ValueParser::<u64>::new()).type_id(),
        ];
        match arg.get_action() {
            ArgAction::SetTrue => Kind::Bool,
            ArgAction::Append => Kind::List,
            _ if numeric.contains(&arg.get_value_parser().type_id()) => Kind::Integer,
            _ => Kind::Text,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "true or false",
            Kind::Integer => "a number",
            Kind::Text => "a string",
            Kind::List => "a list of strings",
        }
    }
}

/// A file problem: which file, where in it, which key. One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub msg: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(l) = self.line {
            write!(f, " line {l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key '{k}'")?;
        }
        write!(f, ": {}", self.msg)
    }
}

impl std::error::Error for FileError {}

/// One option of the file, as the arguments it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, as written (a long option name).
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    /// The clap id of the option, to ask whether the command line gave it.
    id: String,
    /// `--key value` (repeated for a list; `--key` alone for a true flag; empty for false).
    pub args: Vec<String>,
}

/// The options a file may set: every long option of `run` but `--config` (and `--help`).
fn settable(run: &Command) -> impl Iterator<Item = &clap::Arg> {
    run.get_arguments().filter(|a| {
        a.get_long()
            .is_some_and(|l| l != "config" && l != "help" && !crate::cli::DOCTOR_ONLY.contains(&l))
    })
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Read the options in `text` (the contents of `path`). `run` is the `run` subcommand's
/// clap command: it says which keys exist and checks every value.
pub fn parse(path: &Path, text: &str, run: &Command) -> Result<Vec<Entry>, FileError> {
    let file = path.display().to_string();
    let fail = |line: Option<usize>, key: Option<&str>, msg: String| FileError {
        path: file.clone(),
        line,
        key: key.map(str::to_string),
        msg,
    };
    let doc: std::collections::BTreeMap<Spanned<String>, Spanned<Value>> = toml::from_str(text)
        .map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            fail(line, None, e.message().trim().to_string())
        })?;
    let mut entries: Vec<Entry> = Vec::new();
    for (k, v) in doc {
        let line = line_of(text, k.span().start);
        let key = k.get_ref().as_str();
        let Some(arg) = settable(run).find(|a| a.get_long() == Some(key)) else {
            let msg = if key == "config" {
                "a configuration file cannot name another one".to_string()
            } else {
                "unknown key (keys are the long options of `snoopcast run`, e.g. upstream, \
                 downstream, allow; see snoopcast.toml(5))"
                    .to_string()
            };
            return Err(fail(Some(line), Some(key), msg));
        };
        let kind = Kind::of(arg);
        let bad_type = |got: &Value| {
            fail(
                Some(line),
                Some(key),
                format!("expected {}, found {}", kind.expected(), got.type_str()),
            )
        };
        let opt = format!("--{key}");
        let value = v.get_ref();
        let args: Vec<String> = match (kind, value) {
            (Kind::Bool, Value::Boolean(true)) => vec![opt],
            (Kind::Bool, Value::Boolean(false)) => Vec::new(),
            (Kind::Integer, Value::Integer(n)) => vec![opt, n.to_string()],
            (Kind::Text, Value::String(s)) => vec![opt, s.clone()],
            (Kind::List, Value::String(s)) => vec![opt, s.clone()],
            (Kind::List, Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => out.extend([opt.clone(), s.clone()]),
                        other => return Err(bad_type(other)),
                    }
                }
                out
            }
            (_, other) => return Err(bad_type(other)),
        };
        // The same parsers as the command line: an unknown value fails here, with the key.
        if !args.is_empty() {
            let mut argv = vec![
                "snoopcast".to_string(),
                "--config".to_string(),
                file.clone(),
            ];
            argv.extend(args.iter().cloned());
            if let Err(e) = run.clone().try_get_matches_from(argv) {
                return Err(fail(Some(line), Some(key), clap_message(&e)));
            }
        }
        entries.push(Entry {
            key: key.to_string(),
            line,
            id: arg.get_id().to_string(),
            args,
        });
    }
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

/// The first line of a clap error, without its `error: ` prefix.
fn clap_message(e: &clap::Error) -> String {
    let s = e.to_string();
    let first = s.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// The arguments of `run` with the file's options put in: those of `file` that `cli` (the
/// parsed command line) did not give, then the command line's own. `cli_args` are the
/// command line's arguments after the subcommand name.
pub fn merge(file: &[Entry], cli: &ArgMatches, cli_args: &[OsString]) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for e in file {
        if cli.value_source(&e.id) != Some(ValueSource::CommandLine) {
            out.extend(e.args.iter().map(OsString::from));
        }
    }
    out.extend(cli_args.iter().cloned());
    out
}

/// The options of `run` from its command-line arguments `cli_args` (those after the
/// subcommand name) and, when they give `--config FILE`, from that file, read with `read`.
/// Returns the options and the merged matches (for [`render`]). An error is one line.
pub fn resolve(
    run: &Command,
    cli_args: &[OsString],
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<(RunArgs, ArgMatches), String> {
    let parse_args = |args: &[OsString]| {
        let mut argv = vec![OsString::from("snoopcast")];
        argv.extend(args.iter().cloned());
        let m = run
            .clone()
            .try_get_matches_from(argv)
            .map_err(|e| clap_message(&e))?;
        let a = RunArgs::from_arg_matches(&m).map_err(|e| clap_message(&e))?;
        Ok::<_, String>((a, m))
    };
    let (a, m) = parse_args(cli_args)?;
    let Some(path) = a.config.clone() else {
        return Ok((a, m));
    };
    let text = read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let entries = parse(&path, &text, run).map_err(|e| e.to_string())?;
    parse_args(&merge(&entries, &m, cli_args))
}

/// The effective configuration as TOML: every option `run` has, its value from `m` (the
/// merged arguments, defaults included); options without a value are commented out.
pub fn render(run: &Command, m: &ArgMatches) -> String {
    let mut out = String::from(
        "# The effective configuration of `snoopcast run` (snoopcast check); see snoopcast.toml(5).\n",
    );
    for arg in settable(run) {
        let key = arg.get_long().unwrap_or_default();
        let id = arg.get_id().as_str();
        let kind = Kind::of(arg);
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = match kind {
            Kind::Bool => Some(Value::Boolean(m.get_flag(id))),
            Kind::List if raw.is_empty() => None,
            Kind::List => Some(Value::Array(raw.into_iter().map(Value::String).collect())),
            _ if raw.is_empty() => None,
            Kind::Integer => raw[0].parse::<i64>().ok().map(Value::Integer),
            Kind::Text => Some(Value::String(raw[0].clone())),
        };
        match value {
            Some(v) => out.push_str(&format!("{key} = {v}\n")),
            None => out.push_str(&format!("# {key} = (not set)\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;
    use std::path::PathBuf;

    fn run_cmd() -> Command {
        Cli::command()
            .find_subcommand("run")
            .expect("run subcommand")
            .clone()
    }

    fn parse_str(text: &str) -> Result<Vec<Entry>, FileError> {
        parse(Path::new("/etc/snoopcast/snoopcast.toml"), text, &run_cmd())
    }

    fn args(text: &str) -> Vec<String> {
        parse_str(text)
            .unwrap()
            .into_iter()
            .flat_map(|e| e.args)
            .collect()
    }

    #[test]
    fn keys_are_the_long_options_and_values_become_their_arguments() {
        let a = args(
            "upstream = \"eth1\"\ndownstream = [\"eth0\", \"tap0\"]\nquery-interval = \"2m\"\n\
             robustness = 3\nno-ipv6 = true\nwait-for-interfaces = false\nallow = \"239.0.0.0/8\"\n",
        );
        assert_eq!(
            a,
            [
                "--upstream",
                "eth1",
                "--downstream",
                "eth0",
                "--downstream",
                "tap0",
                "--query-interval",
                "2m",
                "--robustness",
                "3",
                "--no-ipv6",
                "--allow",
                "239.0.0.0/8"
            ]
        );
    }

    #[test]
    fn every_option_of_run_can_be_set_in_the_file() {
        let run = run_cmd();
        let keys: Vec<_> = settable(&run).filter_map(|a| a.get_long()).collect();
        for k in [
            "upstream",
            "downstream",
            "control",
            "control-group",
            "query-interval",
            "query-response-interval",
            "robustness",
            "querier",
            "igmp-version",
            "mld-version",
            "no-ipv6",
            "allow",
            "deny",
            "max-groups-per-host",
            "max-members",
            "query-source",
            "compat-fallback",
            "wait-for-interfaces",
            "workers",
            "source-mac",
            "log-level",
            "log-file",
            "metrics-listen",
            "metrics-max-members",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert!(!keys.contains(&"config"));
        // The example file sets every one of them.
        let example = include_str!("../examples/snoopcast.toml");
        let uncommented: String = example
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        for k in &keys {
            assert!(
                uncommented
                    .lines()
                    .any(|l| l.starts_with(&format!("{k} = "))),
                "examples/snoopcast.toml lacks {k}"
            );
        }
        assert!(parse_str(example).is_ok(), "{:?}", parse_str(example));
    }

    #[test]
    fn the_kinds_follow_the_options() {
        let run = run_cmd();
        let kind = |k: &str| Kind::of(settable(&run).find(|a| a.get_long() == Some(k)).unwrap());
        assert_eq!(kind("robustness"), Kind::Integer);
        assert_eq!(kind("igmp-version"), Kind::Integer);
        assert_eq!(kind("max-members"), Kind::Integer);
        assert_eq!(kind("workers"), Kind::Integer);
        assert_eq!(kind("metrics-max-members"), Kind::Integer);
        assert_eq!(kind("metrics-listen"), Kind::Text);
        assert_eq!(kind("no-ipv6"), Kind::Bool);
        assert_eq!(kind("allow"), Kind::List);
        assert_eq!(kind("compat-fallback"), Kind::List);
        assert_eq!(kind("upstream"), Kind::Text);
        assert_eq!(kind("query-interval"), Kind::Text);
    }

    fn err(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn an_unknown_key_names_the_file_the_line_and_the_key() {
        assert_eq!(
            err("upstream = \"eth1\"\n\nquery-intervall = \"5s\"\n"),
            "/etc/snoopcast/snoopcast.toml line 3: key 'query-intervall': unknown key (keys are \
             the long options of `snoopcast run`, e.g. upstream, downstream, allow; see \
             snoopcast.toml(5))"
        );
        assert!(err("config = \"/etc/other.toml\"").contains("line 1: key 'config'"));
        assert!(err("[run]\nupstream = \"x\"").contains("key 'run'"));
    }

    #[test]
    fn a_wrong_type_names_what_was_expected() {
        assert_eq!(
            err("robustness = \"two\""),
            "/etc/snoopcast/snoopcast.toml line 1: key 'robustness': expected a number, found string"
        );
        assert!(err("no-ipv6 = \"yes\"")
            .ends_with("key 'no-ipv6': expected true or false, found string"));
        assert!(err("\nupstream = 5")
            .ends_with("line 2: key 'upstream': expected a string, found integer"));
        assert!(err("allow = [\"239.0.0.0/8\", 7]")
            .ends_with("key 'allow': expected a list of strings, found integer"));
        assert!(err("upstream = [\"a\", \"b\"]").ends_with("expected a string, found array"));
    }

    #[test]
    fn a_bad_value_gets_the_command_line_parser_words() {
        let e = err("upstream = \"eth1\"\nquery-interval = \"soon\"\n");
        assert!(
            e.starts_with(
                "/etc/snoopcast/snoopcast.toml line 2: key 'query-interval': invalid value 'soon'"
            ),
            "{e}"
        );
        assert!(e.contains("is not a duration"), "{e}");
        let e = err("allow = [\"239.0.0.0/8\", \"10.0.0.0/99\"]");
        assert!(
            e.contains("line 1: key 'allow'") && e.contains("10.0.0.0/99"),
            "{e}"
        );
        let e = err("robustness = 9");
        assert!(e.contains("key 'robustness'") && e.contains("9"), "{e}");
        let e = err("querier = \"sometimes\"");
        assert!(
            e.contains("key 'querier'") && e.contains("sometimes"),
            "{e}"
        );
        let e = err("compat-fallback = [\"tap0=always\"]");
        assert!(e.contains("tap0=always"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn a_file_that_is_not_toml_names_the_line() {
        let e = err("upstream = \"eth1\"\ndownstream = [\"eth0\"\n");
        assert!(e.starts_with("/etc/snoopcast/snoopcast.toml line "), "{e}");
        let e = err("upstream = \"eth1\"\nupstream = \"eth2\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    fn merged(file: &str, cli: &[&str]) -> Vec<String> {
        let entries = parse_str(file).unwrap();
        let mut argv = vec!["snoopcast", "--config", "f.toml"];
        argv.extend_from_slice(cli);
        let m = run_cmd().try_get_matches_from(&argv).unwrap();
        let cli_args: Vec<OsString> = argv[1..].iter().map(OsString::from).collect();
        merge(&entries, &m, &cli_args)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let file = "upstream = \"eth1\"\ndownstream = [\"eth0\", \"tap0\"]\nrobustness = 3\n";
        assert_eq!(
            merged(file, &["--robustness", "4"]),
            [
                "--upstream",
                "eth1",
                "--downstream",
                "eth0",
                "--downstream",
                "tap0",
                "--config",
                "f.toml",
                "--robustness",
                "4"
            ]
        );
        // A list on the command line replaces the file's.
        assert_eq!(
            merged(file, &["--downstream", "lan9"]),
            [
                "--upstream",
                "eth1",
                "--robustness",
                "3",
                "--config",
                "f.toml",
                "--downstream",
                "lan9"
            ]
        );
    }

    #[test]
    fn render_prints_every_option_and_reads_back_the_same() {
        let file = "upstream = \"eth1\"\ndownstream = [\"eth0\"]\nallow = [\"239.0.0.0/8\"]\nno-ipv6 = true\n";
        let argv = merged(file, &[]);
        let mut full = vec!["snoopcast".to_string()];
        full.extend(argv);
        let run = run_cmd();
        let m = run.clone().try_get_matches_from(&full).unwrap();
        let out = render(&run, &m);
        for line in [
            "upstream = \"eth1\"",
            "downstream = [\"eth0\"]",
            "query-interval = \"125s\"",
            "robustness = 2",
            "no-ipv6 = true",
            "wait-for-interfaces = false",
            "allow = [\"239.0.0.0/8\"]",
            "# deny = (not set)",
            "# workers = (not set)",
            "log-level = \"info\"",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
        // What check prints is itself a valid file that means the same.
        let again = parse(&PathBuf::from("check.toml"), &out, &run).unwrap();
        let mut full2 = vec!["snoopcast".to_string()];
        full2.extend(again.into_iter().flat_map(|e| e.args));
        let m2 = run.clone().try_get_matches_from(&full2).unwrap();
        assert_eq!(render(&run, &m2), out);
    }

    #[test]
    fn resolve_reads_the_named_file_and_names_it_when_it_cannot() {
        let run = run_cmd();
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let files = |p: &Path| match p.to_str() {
            Some("/etc/snoopcast/a.toml") => {
                Ok("upstream = \"eth1\"\ndownstream = \"eth0\"\n".into())
            }
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        let (a, _) = resolve(&run, &os(&["--config", "/etc/snoopcast/a.toml"]), files).unwrap();
        assert_eq!(a.upstream.as_deref(), Some("eth1"));
        assert_eq!(a.downstreams, ["eth0"]);
        let (a, _) = resolve(
            &run,
            &os(&["--config", "/etc/snoopcast/a.toml", "--upstream", "eth9"]),
            files,
        )
        .unwrap();
        assert_eq!(a.upstream.as_deref(), Some("eth9"));
        let e = resolve(&run, &os(&["--config", "/nope.toml"]), files).unwrap_err();
        assert!(e.starts_with("cannot read /nope.toml: "), "{e}");
        // Without --config nothing is read.
        let (a, _) = resolve(&run, &os(&["--upstream", "u", "--downstream", "d"]), |_| {
            panic!("read without --config")
        })
        .unwrap();
        assert_eq!(a.downstreams, ["d"]);
    }
}
