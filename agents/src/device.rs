//! The device an agent serves, as its profile describes it: the host CPU (latency is
//! timed) or a simulated device (latency is predicted by `quantfarm_devices`, op
//! placement comes from the device's rules, and accuracy is measured with the numerics
//! the device would use).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, anyhow};
use quantfarm_devices::{DeviceNumerics, DeviceProfile, Placement, ProfileSet, Simulation};
use quantfarm_engine::exec::{Interpreter, InterpreterOptions};
use quantfarm_engine::ir::Model;

/// A device profile with the set its fallback CPU is looked up in.
#[derive(Debug, Clone)]
pub struct ServedDevice {
    pub profile: DeviceProfile,
    profiles: Arc<ProfileSet>,
}

impl ServedDevice {
    /// `name_or_path` resolved in `profiles` ([`ProfileSet::resolve`]: a name of the
    /// set, or a path to a `.yaml` profile).
    pub fn resolve(profiles: Arc<ProfileSet>, name_or_path: &str) -> Result<ServedDevice> {
        let profile = profiles.resolve(name_or_path).map_err(|e| anyhow!("{e}"))?;
        Ok(ServedDevice { profile, profiles })
    }

    /// `name_or_path` resolved in the profiles of folder `dir`.
    pub fn from_dir(dir: &Path, name_or_path: &str) -> Result<ServedDevice> {
        let set = ProfileSet::load_dir(dir).map_err(|e| anyhow!("{e}"))?;
        Self::resolve(Arc::new(set), name_or_path)
    }

    pub fn name(&self) -> &str {
        &self.profile.name
    }

    /// A simulated device: latencies are predicted, never timed on this host.
    pub fn simulated(&self) -> bool {
        self.profile.simulated
    }

    /// Placement and predicted latency of `model` on this device.
    pub fn simulate(&self, model: &Model) -> Result<Simulation> {
        quantfarm_devices::simulate(model, &self.profile, &self.profiles)
            .map_err(|e| anyhow!("{}: {e}", self.profile.name))
    }

    /// An interpreter that computes as this device does: the engine's kernels as they
    /// are (the exact integer kernels of the Edge TPU and the DSP, the host CPU), or
    /// half-precision storage on the ops a half-precision GPU runs; `opts` are the
    /// job's (threads, memory limit, input copies).
    pub fn interpreter(
        &self,
        model: &Model,
        opts: InterpreterOptions,
    ) -> Result<(Interpreter, String)> {
        if !self.simulated() {
            return Ok((Interpreter::new(model, opts)?, String::new()));
        }
        let sim = self.simulate(model)?;
        Ok(match sim.numerics {
            DeviceNumerics::Fp16 => {
                let mask: Vec<bool> = sim
                    .ops
                    .iter()
                    .map(|o| o.placement == Placement::Device)
                    .collect();
                let on = mask.iter().filter(|&&b| b).count();
                (
                    Interpreter::new_fp16(model, opts, &mask)?,
                    format!(
                        "numerics: {} stores the float32 tensors of its {on} of {} ops in \
                         half precision (arithmetic inside an op in float32; integer \
                         tensors through the exact integer kernels)",
                        self.profile.name,
                        mask.len()
                    ),
                )
            }
            DeviceNumerics::Exact | DeviceNumerics::HostCpu => (
                Interpreter::new(model, opts)?,
                format!(
                    "numerics: the engine's kernels as they are ({} computes exactly as \
                     TFLite's reference kernels)",
                    self.profile.name
                ),
            ),
        })
    }
}
