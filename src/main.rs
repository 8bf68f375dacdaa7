//! `quantfarm`: the command-line front end. Each subcommand lives in `cmd/`; this
//! file only parses arguments and turns errors into one line and an exit code.

mod cli;
#[macro_use]
mod out;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cmd::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of contexts, outermost first (file, then problem).
            let msg = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
