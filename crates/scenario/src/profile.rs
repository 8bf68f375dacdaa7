//! Device profiles: what an agent is, which numerics it runs natively and the
//! published numbers its simulator is calibrated against.

use crate::error::{Result, ScenarioError};
use crate::loc::At;
use crate::technique::Technique;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest profile file read; profiles are a screen of YAML.
const MAX_PROFILE_BYTES: u64 = 256 * 1024;
/// Largest number of profiles in one directory.
const MAX_PROFILES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// CPU kernels (the engine's interpreter; built-in + XNNPACK-like paths).
    Cpu,
    /// Mobile GPU delegate (float compute, int8 accepted through a float view).
    Gpu,
    /// Coral Edge TPU (fully 8-bit models only).
    Edgetpu,
    /// Qualcomm Hexagon DSP delegate (8-bit only).
    Dsp,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
            DeviceKind::Edgetpu => "edgetpu",
            DeviceKind::Dsp => "dsp",
        }
    }
}

/// A published (or derived / assumed) number, cited as in `accelerators.md`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedFact {
    /// What was measured, e.g. "MobileNet v1 224 quant, time per inference".
    pub fact: String,
    pub value: f64,
    pub unit: String,
    /// P = published, D = derived by us, A = assumption (accelerators.md tags).
    pub tag: String,
    /// Source key from accelerators.md (e.g. CORAL-BENCH, TF-OPT).
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: At<String>,
    kind: DeviceKind,
    description: String,
    accepts: At<Vec<At<Technique>>>,
    #[serde(default)]
    cores: Option<At<usize>>,
    #[serde(default)]
    simulated: bool,
    #[serde(default)]
    published: Vec<PublishedFact>,
    #[serde(default)]
    params: BTreeMap<String, f64>,
}

/// One device profile (`agents/profiles/<name>.yaml`).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceProfile {
    pub name: String,
    pub kind: DeviceKind,
    pub description: String,
    /// Model numerics the device runs itself (technique names; never `original`).
    /// Anything else falls back to the host CPU.
    pub accepts: Vec<Technique>,
    /// Cores available to a CPU benchmark; `None` = whatever the host has.
    pub cores: Option<usize>,
    /// True when the agent simulates the device on the host instead of driving it.
    pub simulated: bool,
    pub published: Vec<PublishedFact>,
    /// Free numeric parameters for the device simulator (peak throughput, link
    /// bandwidth, utilisation …); the simulators define their keys.
    pub params: BTreeMap<String, f64>,
    /// File the profile came from (for error messages).
    pub file: String,
}

impl DeviceProfile {
    /// Parse one profile. `file_name` names it in errors.
    pub fn parse(text: &str, file_name: &str) -> Result<DeviceProfile> {
        let mut opts = serde_saphyr::Options::default();
        opts.with_snippet = false;
        opts.strict_booleans = true;
        let raw: RawProfile = serde_saphyr::from_str_with_options(text, opts)
            .map_err(|e| ScenarioError::from_yaml(file_name, &e))?;
        let err = |l: u32, c: u32, m: String| ScenarioError::at(file_name, l, c, m);
        let n = &raw.name;
        if n.value.is_empty()
            || n.value.len() > 64
            || !n
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(err(
                n.line,
                n.column,
                format!(
                    "profile name '{}': expected 1–64 characters from a-z A-Z 0-9 . _ -",
                    n.value
                ),
            ));
        }
        if raw.accepts.value.is_empty() {
            return Err(err(
                raw.accepts.line,
                raw.accepts.column,
                "at least one accepted numeric expected".into(),
            ));
        }
        let mut accepts = Vec::new();
        for a in &raw.accepts.value {
            if a.value == Technique::Original {
                return Err(err(a.line, a.column, "`original` is not a numeric: expected float32, float16, dynamic, int8, int16x8 or uint8".into()));
            }
            if !accepts.contains(&a.value) {
                accepts.push(a.value);
            }
        }
        if let Some(c) = &raw.cores
            && c.value == 0
        {
            return Err(err(c.line, c.column, "cores 0: expected at least 1".into()));
        }
        for (k, v) in &raw.params {
            if !v.is_finite() {
                return Err(err(
                    n.line,
                    n.column,
                    format!("params.{k} = {v}: expected a finite number"),
                ));
            }
        }
        Ok(DeviceProfile {
            name: raw.name.value,
            kind: raw.kind,
            description: raw.description,
            accepts,
            cores: raw.cores.map(|c| c.value),
            simulated: raw.simulated,
            published: raw.published,
            params: raw.params,
            file: file_name.to_string(),
        })
    }

    /// Does the device run a model of this technique's numerics itself?
    /// `original` (numerics only known from the file) is never excluded here.
    pub fn accepts(&self, t: Technique) -> bool {
        match t.numerics() {
            None => true,
            Some(_) => self.accepts.contains(&t),
        }
    }
}

/// All known device profiles, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileSet {
    profiles: BTreeMap<String, DeviceProfile>,
}

impl ProfileSet {
    /// Load every `*.yaml` / `*.yml` in `dir` (not recursive). Each file must be
    /// named after its profile (`edgetpu-usb.yaml` holds `name: edgetpu-usb`).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<ProfileSet> {
        let dir = dir.as_ref();
        let dname = dir.display().to_string();
        let rd = std::fs::read_dir(dir).map_err(|e| {
            ScenarioError::file(&dname, format!("cannot read profile directory: {e}"))
        })?;
        let mut paths = Vec::new();
        for entry in rd {
            let entry =
                entry.map_err(|e| ScenarioError::file(&dname, format!("cannot list: {e}")))?;
            let p = entry.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) && p.is_file()
            {
                paths.push(p);
            }
        }
        if paths.len() > MAX_PROFILES {
            return Err(ScenarioError::file(
                &dname,
                format!("{} profiles: at most {MAX_PROFILES} expected", paths.len()),
            ));
        }
        paths.sort();
        let mut set = ProfileSet::default();
        for p in paths {
            let fname = p.display().to_string();
            let meta = std::fs::metadata(&p)
                .map_err(|e| ScenarioError::file(&fname, format!("cannot read: {e}")))?;
            if meta.len() > MAX_PROFILE_BYTES {
                return Err(ScenarioError::file(
                    &fname,
                    format!("{} bytes: at most {MAX_PROFILE_BYTES} expected", meta.len()),
                ));
            }
            let bytes = std::fs::read(&p)
                .map_err(|e| ScenarioError::file(&fname, format!("cannot read: {e}")))?;
            let text = String::from_utf8(bytes)
                .map_err(|e| ScenarioError::file(&fname, format!("not valid UTF-8: {e}")))?;
            let prof = DeviceProfile::parse(&text, &fname)?;
            let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            if stem != prof.name {
                return Err(ScenarioError::file(
                    &fname,
                    format!(
                        "profile is named '{}': expected the file to be named {}.yaml",
                        prof.name, prof.name
                    ),
                ));
            }
            set.insert(prof)?;
        }
        Ok(set)
    }

    /// Add a profile; a second profile of the same name is an error.
    pub fn insert(&mut self, p: DeviceProfile) -> Result<()> {
        if let Some(old) = self.profiles.get(&p.name) {
            return Err(ScenarioError::file(
                &p.file,
                format!("profile '{}' is already defined in {}", p.name, old.file),
            ));
        }
        self.profiles.insert(p.name.clone(), p);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&DeviceProfile> {
        self.profiles.get(name)
    }

    /// Profile names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &DeviceProfile> {
        self.profiles.values()
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }
}
