//! Write the report of a made-up run (the guide's four models on four devices, with a
//! slower baseline and two earlier runs for the trends) into a folder, to look at it:
//! `cargo run --release -p quantfarm-report --example synthetic -- /tmp/synthetic-report`.

use quantfarm_report::{Options, build, synthetic};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "synthetic-report".into());
    let run = synthetic::run("synthetic-run", 0, 1.0, 0.0);
    let history: Vec<_> = (1..=3u64)
        .map(|i| {
            let mut r = synthetic::run(&format!("synthetic-old{i}"), 0, 0.9 + 0.05 * i as f64, 0.0);
            r.created_unix -= 86_400 * (4 - i);
            r
        })
        .collect();
    let report = match build(&run, history.last(), &history, &Options::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
        eprintln!("error: {dir}: {e}");
        std::process::exit(2)
    });
    match report.write(&run, dir.as_ref()) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
