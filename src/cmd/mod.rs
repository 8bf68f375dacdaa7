//! Subcommand implementations.

mod agent;
mod bench;
mod cancel;
mod compat;
mod convert;
mod coordinator;
mod eval;
mod infer;
mod inspect;
mod optimize;
mod quantize;
mod report;
mod run;
mod status;
mod train;
mod zoo;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use quantfarm_engine::exec::{Interpreter, InterpreterOptions, KernelChoice, SparseMode};
use quantfarm_engine::ir::Model;
use quantfarm_engine::tflite;

use crate::cli::{Cli, Command, Kernels, RunArgs, Sparse};

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Inspect(a) => inspect::run(&a),
        Command::Convert(a) => convert::run(&a),
        Command::Zoo(a) => zoo::run(&a),
        Command::Infer(a) => infer::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Compat(a) => return compat::run(&a),
        Command::Train(a) => train::run(&a),
        Command::Optimize(a) => optimize::run(&a),
        Command::Quantize(a) => quantize::run(&a),
        Command::Run(a) => run::run(&a),
        Command::Report(a) => return report::run(&a),
        Command::Coordinator(a) => coordinator::run(&a),
        Command::Agent(a) => agent::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Cancel(a) => cancel::run(&a),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Read and parse a `.tflite` file within the default memory limit; errors name the
/// file.
pub fn load_model(path: &Path) -> Result<Model> {
    load_model_limited(
        path,
        quantfarm_engine::measure::limits::default_memory_limit(),
    )
}

/// Read and parse a `.tflite` file whose IR must fit in `memory_limit` bytes; errors
/// name the file.
pub fn load_model_limited(path: &Path, memory_limit: u64) -> Result<Model> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    tflite::read_model_limited(&bytes, memory_limit).with_context(|| path.display().to_string())
}

/// Write a model; errors name the file.
pub fn save_model(model: &Model, path: &Path) -> Result<u64> {
    let bytes =
        tflite::write_model(model).with_context(|| format!("{}: cannot encode", path.display()))?;
    std::fs::write(path, &bytes).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(bytes.len() as u64)
}

/// Prepare an interpreter within `--memory-limit`; errors name the model file.
pub fn interpreter(model: &Model, path: &Path, run: &RunArgs) -> Result<Interpreter> {
    interpreter_with(model, path, run, run.memory.bytes(), |o| o)
}

/// [`interpreter`] within `memory_limit` bytes, with options adjusted by `with` (e.g.
/// the copies of the input a caller holds).
pub fn interpreter_with(
    model: &Model,
    path: &Path,
    run: &RunArgs,
    memory_limit: u64,
    with: impl FnOnce(InterpreterOptions) -> InterpreterOptions,
) -> Result<Interpreter> {
    quantfarm_engine::measure::limits::check_threads(run.threads).context("--threads")?;
    let opts = InterpreterOptions {
        threads: run.threads,
        kernels: match run.kernels {
            Kernels::Fast => KernelChoice::Fast,
            Kernels::Reference => KernelChoice::Reference,
        },
        sparse: match run.sparse {
            Sparse::Auto => SparseMode::Auto,
            Sparse::Off => SparseMode::Off,
        },
        memory_limit,
        ..Default::default()
    };
    Interpreter::new(model, with(opts)).with_context(|| path.display().to_string())
}

/// Print a JSON value on one line.
pub fn print_json(v: &serde_json::Value) {
    outln!("{v}");
}
