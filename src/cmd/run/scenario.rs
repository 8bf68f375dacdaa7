//! Minimal scenario reader used by `quantfarm run` until the `quantfarm-scenario`
//! crate lands (then this file goes): parse with line:column errors, check devices
//! and techniques before anything runs, expand into a job DAG.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub models: Vec<ModelEntry>,
    #[serde(default = "default_techniques")]
    pub techniques: Vec<String>,
    pub devices: Vec<String>,
    #[serde(default)]
    pub dataset: Option<String>,
    #[serde(default = "default_limit")]
    pub limit: usize,
    #[serde(default)]
    pub bench: Bench,
    #[serde(default)]
    pub gates: Vec<Gate>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    /// Relative to the scenario file, else to the shared data folder.
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bench {
    #[serde(default = "default_warmup")]
    pub warmup: usize,
    #[serde(default = "default_runs")]
    pub runs: usize,
}

impl Default for Bench {
    fn default() -> Self {
        Self {
            warmup: default_warmup(),
            runs: default_runs(),
        }
    }
}

/// A threshold on one metric of every benchmark row it selects.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub name: String,
    pub metric: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub technique: Option<String>,
    #[serde(default)]
    pub device: Option<String>,
}

fn default_techniques() -> Vec<String> {
    vec!["none".into()]
}
fn default_limit() -> usize {
    100
}
fn default_warmup() -> usize {
    3
}
fn default_runs() -> usize {
    20
}

/// Devices this build can serve: `cpu-host` (real timing) and every profile under
/// `agents/profiles/` beside the working directory.
pub fn known_devices() -> BTreeSet<String> {
    let mut d = BTreeSet::from(["cpu-host".to_string()]);
    if let Ok(rd) = std::fs::read_dir("agents/profiles") {
        for e in rd.flatten() {
            let p = e.path();
            if matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
                && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
            {
                d.insert(stem.to_string());
            }
        }
    }
    d
}

/// Line (1-based) and column of the first occurrence of `needle` as a YAML value.
fn locate(text: &str, needle: &str) -> String {
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = line.find(needle) {
            return format!("{}:{}", i + 1, c + 1);
        }
    }
    "1:1".into()
}

pub fn load(path: &Path, techniques: &[&str]) -> Result<(Scenario, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let sc: Scenario = serde_yaml_ng::from_str(&text).map_err(|e| match e.location() {
        Some(l) => anyhow::anyhow!("{}:{}:{}: {e}", path.display(), l.line(), l.column()),
        None => anyhow::anyhow!("{}: {e}", path.display()),
    })?;
    let here = |needle: &str| format!("{}:{}", path.display(), locate(&text, needle));
    if sc.name.is_empty()
        || !sc
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!(
            "{}: scenario name must be non-empty letters, digits, '-', '_' or '.'",
            here("name")
        );
    }
    if sc.models.is_empty() {
        bail!("{}: a scenario needs at least one model", here("models"));
    }
    if sc.devices.is_empty() {
        bail!("{}: a scenario needs at least one device", here("devices"));
    }
    let known = known_devices();
    for d in &sc.devices {
        if !known.contains(d) {
            bail!(
                "{}: unknown device {d:?} (known: {})",
                here(d),
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    for t in &sc.techniques {
        if !techniques.contains(&t.as_str()) {
            bail!(
                "{}: unknown technique {t:?} (available: {})",
                here(t),
                techniques.join(", ")
            );
        }
    }
    let mut names = BTreeSet::new();
    for m in &sc.models {
        if !names.insert(&m.name) || m.name.contains('/') || m.name.is_empty() {
            bail!(
                "{}: model names must be unique, non-empty and without '/'",
                here(&m.name)
            );
        }
    }
    if sc.bench.runs == 0 {
        bail!("{}: bench.runs must be at least 1", here("runs"));
    }
    for g in &sc.gates {
        if g.min.is_none() && g.max.is_none() {
            bail!("{}: gate {:?} needs min or max", here(&g.name), g.name);
        }
    }
    Ok((sc, text))
}

/// Where a model entry's file is: beside the scenario first, then in the shared folder.
pub fn model_path(scenario: &Path, m: &ModelEntry) -> Result<PathBuf> {
    if m.path.is_absolute() {
        return Ok(m.path.clone());
    }
    if let Some(dir) = scenario.parent() {
        let p = dir.join(&m.path);
        if p.is_file() {
            return Ok(p);
        }
    }
    let root = quantfarm_engine::data::shared_root()?;
    let p = root.join(&m.path);
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "model {}: {} not found beside the scenario or in {}",
        m.name,
        m.path.display(),
        root.display()
    )
}
