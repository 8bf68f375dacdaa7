//! Read a `.tflite` file into the IR and write it back out.
//!
//! Usage: `tflite_roundtrip IN OUT`. Used by `tests/interop/run_roundtrip.sh` to
//! check with the official LiteRT interpreter that rewritten models compute the
//! same outputs as the originals.

use std::path::Path;
use std::process::ExitCode;

use quantfarm_engine::tflite::{read_model_file, write_model_file};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: tflite_roundtrip IN.tflite OUT.tflite");
        return ExitCode::from(2);
    };
    let model = match read_model_file(Path::new(input)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = write_model_file(&model, Path::new(output)) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let g = model.main();
    println!(
        "{input} -> {output}: {} subgraph(s), {} tensors, {} ops, {} metadata, {} trailing bytes",
        model.subgraphs.len(),
        g.tensors.len(),
        g.ops.len(),
        model.metadata.len(),
        model.trailing.len()
    );
    ExitCode::SUCCESS
}
