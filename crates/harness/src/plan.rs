//! A scenario made ready to run: parsed and validated against the device profiles,
//! expanded into jobs, its model files read, its run id and folder chosen. Everything
//! that can be wrong with a scenario is found here, before anything runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use quantfarm_scenario::{self as scenario, JobGraph, ModelSource, ProfileSet, Scenario};

use crate::rundir::RunDir;

/// What `quantfarm run` needs besides the coordinator to use.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: PathBuf,
    /// Device profiles folder; `None` = `agents/profiles` here, else beside the
    /// scenario's folder ([`profiles_dir`]).
    pub profiles: Option<PathBuf>,
    /// Reports go to `reports/<run-id>/`.
    pub reports: PathBuf,
    /// Resume or name a run; `None` = `<scenario>-<UTC time>-<pid>`.
    pub run_id: Option<String>,
}

pub struct RunPlan {
    pub scenario: Scenario,
    /// The scenario file's text (kept with the run on the coordinator).
    pub text: String,
    pub graph: JobGraph,
    /// Model files the jobs read, each read once.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    pub run_id: String,
    pub dir: RunDir,
    /// The device profiles the scenario was validated against (the local agents'
    /// profiles).
    pub profiles: Arc<ProfileSet>,
}

impl RunPlan {
    pub fn prepare(o: &RunOptions) -> Result<RunPlan> {
        let profiles = ProfileSet::load_dir(profiles_dir(o.profiles.as_deref(), &o.scenario))
            .map_err(|e| anyhow!("{e}"))?;
        let sc = scenario::load(&o.scenario).map_err(|e| anyhow!("{e}"))?;
        let graph = scenario::expand(&sc, &profiles).map_err(|e| anyhow!("{e}"))?;
        let text = std::fs::read_to_string(&o.scenario).unwrap_or_default();
        let mut files: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
        for j in graph.optimize_jobs() {
            if let scenario::JobSpec::Optimize { model, .. } = &j.spec
                && let ModelSource::File { resolved, .. } | ModelSource::Dequantize { resolved, .. } =
                    &model.source
                && !files.contains_key(resolved)
            {
                let bytes = std::fs::read(resolved)
                    .with_context(|| format!("{}: cannot read", resolved.display()))?;
                files.insert(resolved.clone(), bytes);
            }
        }
        let run_id = o.run_id.clone().unwrap_or_else(|| new_run_id(&sc.name));
        let dir = RunDir::new(&o.reports, &run_id);
        Ok(RunPlan {
            scenario: sc,
            text,
            graph,
            files,
            run_id,
            dir,
            profiles: Arc::new(profiles),
        })
    }

    /// The device profiles the scenario names (one local agent each).
    pub fn devices(&self) -> Vec<String> {
        self.scenario
            .devices
            .iter()
            .map(|d| d.value.clone())
            .collect()
    }
}

/// `explicit`, else `agents/profiles` in the current folder, else the one beside the
/// scenario's folder (`scenarios/x.yaml` → `agents/profiles`), so a run started from
/// elsewhere in or outside the repository finds the shipped profiles.
pub fn profiles_dir(explicit: Option<&Path>, scenario: &Path) -> PathBuf {
    const DEFAULT: &str = "agents/profiles";
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    let beside_scenario = scenario
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .and_then(|d| d.parent().map(|root| root.join(DEFAULT)));
    match beside_scenario {
        Some(p) if !Path::new(DEFAULT).is_dir() && p.is_dir() => p,
        _ => PathBuf::from(DEFAULT),
    }
}

/// `name-YYYYMMDD-HHMMSS-pid` (UTC), unique enough for one machine and sortable.
pub fn new_run_id(name: &str) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_date(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{name}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_date(days: u64) -> (i64, i64, i64) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        // 2000-02-29 (a leap day in a century leap year) and the day after.
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(20_794), (2026, 12, 7));
    }
}
