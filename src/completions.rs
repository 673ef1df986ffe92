//! `snoopcast completions <bash|zsh|fish>` (hidden): the shell completion script, generated
//! by clap_complete from the same clap definitions as the command line, so it never lists an
//! option that does not exist. The Debian package ships the three scripts (tests/package.sh
//! generates them before `cargo deb`).

use crate::cli::{Cli, CompletionShell, CompletionsArgs};
use clap::CommandFactory;
use std::io::{self, Write};
use std::process::ExitCode;

impl From<CompletionShell> for clap_complete::Shell {
    fn from(s: CompletionShell) -> Self {
        match s {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script for `shell`, for the binary named `snoopcast`.
pub fn script(shell: CompletionShell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        &mut Cli::command(),
        "snoopcast",
        &mut out,
    );
    out
}

/// Print the script to stdout: exit 0 (also when the reader has gone), or 1 if stdout
/// cannot be written.
pub fn print(a: CompletionsArgs) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(&script(a.shell))
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("snoopcast: cannot write the completion script: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;
    use clap::Parser;

    #[test]
    fn each_shell_gets_its_own_script_naming_the_real_options() {
        for (shell, marker) in [
            (CompletionShell::Bash, "complete -F _snoopcast"),
            (CompletionShell::Zsh, "#compdef snoopcast"),
            (CompletionShell::Fish, "complete -c snoopcast"),
        ] {
            let s = String::from_utf8(script(shell)).unwrap();
            assert!(s.contains(marker), "{shell:?}: no '{marker}'");
            for word in ["run", "status", "upstream", "downstream", "compat-fallback"] {
                assert!(s.contains(word), "{shell:?} script lacks {word}");
            }
        }
    }

    #[test]
    fn the_subcommand_parses_and_stays_out_of_the_help() {
        let c = Cli::try_parse_from(["snoopcast", "completions", "fish"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Completions(CompletionsArgs {
                shell: CompletionShell::Fish
            })
        ));
        assert!(Cli::try_parse_from(["snoopcast", "completions", "powershell"]).is_err());
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("completions"), "{help}");
    }
}
