//! `cargo run -p quantfarm-scenario --example check_scenario -- FILE [PROFILE_DIR]`:
//! parse, validate and expand a scenario and print its job graph (or the error).

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(file) = args.next() else {
        eprintln!("usage: check_scenario FILE [PROFILE_DIR]");
        std::process::exit(2);
    };
    let dir = args.next().unwrap_or_else(|| "agents/profiles".into());
    let result = quantfarm_scenario::ProfileSet::load_dir(&dir)
        .map_err(quantfarm_scenario::ScenarioError::from)
        .and_then(|p| {
            let s = quantfarm_scenario::load(&file)?;
            quantfarm_scenario::expand(&s, &p)
        });
    match result {
        Ok(g) => {
            for j in &g.jobs {
                let deps: Vec<String> = j.deps.iter().map(|d| d.to_string()).collect();
                match &j.spec {
                    quantfarm_scenario::JobSpec::Optimize { model, label, .. } => {
                        println!("{} optimize {} × {label}", j.id, model.name)
                    }
                    quantfarm_scenario::JobSpec::Benchmark { device, metric, .. } => println!(
                        "{} benchmark {} on {} after {}",
                        j.id,
                        metric.name(),
                        device.as_deref().unwrap_or("any"),
                        deps.join(",")
                    ),
                }
            }
            for s in &g.skipped {
                println!(
                    "skipped {}/{} on {}: {}",
                    s.model,
                    s.technique,
                    s.device.as_deref().unwrap_or("-"),
                    s.reason
                );
            }
            println!("{} jobs, {} skipped", g.jobs.len(), g.skipped.len());
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
