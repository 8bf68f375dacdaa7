//! Calibration: run the float model over representative inputs and collect, per
//! activation tensor, the global min/max (TFLite's convention, quantization spec §16)
//! and a histogram from which the `percentile` and `mse` range estimators work.
//!
//! The histogram is symmetric around zero over `[-R, R]` with `R` a power of two; when a
//! value falls outside, `R` doubles and bin pairs merge exactly, so one pass suffices.

use crate::error::{EngineError, Result};
use crate::exec::{Interpreter, InterpreterOptions};
use crate::ir::{DType, Model, TensorId, bytes_to_f32};
use crate::measure::limits::default_memory_limit;

/// Number of histogram bins over `[-R, R]` (even, so bin pairs merge exactly).
const BINS: usize = 4096;

/// How a calibrated range is chosen from the statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// Global min and max over all samples (the TFLite converter's rule).
    MinMax,
    /// Clip each side at this percentile of the values (e.g. 99.99).
    Percentile(f64),
    /// The range that minimises the expected quantization MSE over the histogram.
    Mse,
}

impl RangeMethod {
    /// Parse `minmax`, `percentile` (99.99%), `percentile:P` or `mse`.
    pub fn parse(s: &str) -> Result<RangeMethod> {
        match s {
            "minmax" => Ok(RangeMethod::MinMax),
            "percentile" => Ok(RangeMethod::Percentile(99.99)),
            "mse" => Ok(RangeMethod::Mse),
            other => match other.strip_prefix("percentile:").map(str::parse::<f64>) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(RangeMethod::Percentile(p)),
                _ => Err(EngineError::bad_input(format!(
                    "unknown calibration method '{other}' (minmax, percentile, percentile:P with 50 < P <= 100, mse)"
                ))),
            },
        }
    }
}

/// The quantized grid a range will be mapped to; the MSE estimator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grid {
    /// 256 levels, asymmetric, zero exactly representable (int8 and uint8 activations).
    Asymmetric8,
    /// 65535 levels, symmetric around zero (int16 activations).
    Symmetric16,
}

/// A calibrated float range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorRange {
    pub min: f32,
    pub max: f32,
}

/// Per-tensor ranges indexed by tensor id (`None` for constants and tensors never seen).
#[derive(Debug, Clone, Default)]
pub struct TensorRanges {
    pub ranges: Vec<Option<TensorRange>>,
    /// Number of samples the statistics came from.
    pub samples: usize,
}

impl TensorRanges {
    pub fn get(&self, t: TensorId) -> Option<TensorRange> {
        self.ranges.get(t).copied().flatten()
    }
}

/// Running statistics of one tensor.
#[derive(Debug, Clone)]
pub struct TensorStats {
    pub min: f32,
    pub max: f32,
    pub count: u64,
    /// Half-width of the histogram (0 until a non-zero value is seen).
    radius: f32,
    /// Zeros seen before the histogram existed.
    pending_zeros: u64,
    bins: Vec<u64>,
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            count: 0,
            radius: 0.0,
            pending_zeros: 0,
            bins: Vec::new(),
        }
    }
}

impl TensorStats {
    /// Add values; NaN or infinity is an error (the converter refuses them too).
    pub fn update(&mut self, values: &[f32]) -> Result<()> {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for &v in values {
            if !v.is_finite() {
                return Err(EngineError::bad_input(format!(
                    "calibration produced a non-finite value ({v})"
                )));
            }
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if values.is_empty() {
            return Ok(());
        }
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        self.count += values.len() as u64;
        let amax = lo.abs().max(hi.abs());
        if amax == 0.0 && self.radius == 0.0 {
            self.pending_zeros += values.len() as u64;
            return Ok(());
        }
        if self.radius == 0.0 {
            self.radius = next_pow2(amax);
            self.bins = vec![0; BINS];
            self.bins[BINS / 2] += self.pending_zeros;
            self.pending_zeros = 0;
        }
        while amax > self.radius {
            self.grow();
        }
        let inv_w = BINS as f32 / (2.0 * self.radius);
        for &v in values {
            let b = ((v + self.radius) * inv_w) as usize;
            self.bins[b.min(BINS - 1)] += 1;
        }
        Ok(())
    }

    /// Double the radius, merging bin pairs: old bin `i` lands in `BINS/4 + i/2`.
    fn grow(&mut self) {
        let mut merged = vec![0u64; BINS];
        for (i, &c) in self.bins.iter().enumerate() {
            merged[BINS / 4 + i / 2] += c;
        }
        self.bins = merged;
        self.radius *= 2.0;
    }

    fn bin_width(&self) -> f32 {
        2.0 * self.radius / BINS as f32
    }

    fn bin_center(&self, i: usize) -> f32 {
        -self.radius + (i as f32 + 0.5) * self.bin_width()
    }

    /// The range chosen by `method` for `grid` (`None` if no value was seen).
    pub fn range(&self, method: RangeMethod, grid: Grid) -> Option<TensorRange> {
        if self.count == 0 {
            return None;
        }
        let full = TensorRange {
            min: self.min,
            max: self.max,
        };
        if self.radius == 0.0 {
            return Some(full);
        }
        Some(match method {
            RangeMethod::MinMax => full,
            RangeMethod::Percentile(p) => self.percentile_range(p),
            RangeMethod::Mse => self.mse_range(grid),
        })
    }

    fn percentile_range(&self, p: f64) -> TensorRange {
        let total: u64 = self.bins.iter().sum();
        let tail = ((1.0 - p / 100.0) * total as f64).floor() as u64;
        let w = self.bin_width();
        // Lower edge: skip `tail` values from the bottom.
        let mut acc = 0;
        let mut lo = self.min;
        for (i, &c) in self.bins.iter().enumerate() {
            acc += c;
            if acc > tail {
                lo = (-self.radius + i as f32 * w).max(self.min);
                break;
            }
        }
        let mut acc = 0;
        let mut hi = self.max;
        for (i, &c) in self.bins.iter().enumerate().rev() {
            acc += c;
            if acc > tail {
                hi = (-self.radius + (i + 1) as f32 * w).min(self.max);
                break;
            }
        }
        TensorRange { min: lo, max: hi }
    }

    /// Shrink `[min, max]` by a common factor and keep the one whose quantize/dequantize
    /// round trip has the smallest squared error over the histogram (clipping included).
    fn mse_range(&self, grid: Grid) -> TensorRange {
        let lo0 = self.min.min(0.0);
        let hi0 = self.max.max(0.0);
        let occupied: Vec<(f32, f64)> = self
            .bins
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| (self.bin_center(i), c as f64))
            .collect();
        let mut best = (f64::INFINITY, TensorRange { min: lo0, max: hi0 });
        for step in 0..100 {
            let f = 1.0 - step as f32 * 0.01;
            let (lo, hi) = (lo0 * f, hi0 * f);
            let err = quantization_mse(&occupied, lo, hi, grid);
            if err < best.0 {
                best = (err, TensorRange { min: lo, max: hi });
            }
        }
        best.1
    }
}

/// Sum of squared round-trip errors of histogram points for range `[lo, hi]`.
fn quantization_mse(points: &[(f32, f64)], lo: f32, hi: f32, grid: Grid) -> f64 {
    let (scale, zp, qmin, qmax) = match grid {
        Grid::Asymmetric8 => {
            let s = (hi - lo) / 255.0;
            if s <= 0.0 {
                return f64::INFINITY;
            }
            let zp = (-128.0 - lo / s).round().clamp(-128.0, 127.0);
            (s, zp, -128.0f32, 127.0f32)
        }
        Grid::Symmetric16 => {
            let s = lo.abs().max(hi.abs()) / 32767.0;
            if s <= 0.0 {
                return f64::INFINITY;
            }
            (s, 0.0, -32767.0, 32767.0)
        }
    };
    points
        .iter()
        .map(|&(v, c)| {
            let q = ((v / scale).round() + zp).clamp(qmin, qmax);
            let d = (v - (q - zp) * scale) as f64;
            d * d * c
        })
        .sum()
}

fn next_pow2(x: f32) -> f32 {
    let mut r = 2f32.powi(x.log2().ceil() as i32);
    while r < x {
        r *= 2.0;
    }
    r
}

/// Runs a float model and accumulates statistics of every float activation tensor.
pub struct Calibrator {
    interp: Interpreter,
    /// Float activation tensors observed, with their statistics.
    tracked: Vec<(TensorId, TensorStats)>,
    num_tensors: usize,
    samples: usize,
}

impl Calibrator {
    /// Prepare `model` (which must have float32 inputs) for calibration, within the
    /// default memory limit.
    pub fn new(model: &Model, threads: usize) -> Result<Calibrator> {
        Self::with_memory_limit(model, threads, default_memory_limit())
    }

    /// [`Calibrator::new`] refusing a model that needs more than `memory_limit` bytes:
    /// every activation kept at once (calibration reads them all after each sample),
    /// plus the statistics of every tracked tensor, planned before anything is allocated.
    pub fn with_memory_limit(
        model: &Model,
        threads: usize,
        memory_limit: u64,
    ) -> Result<Calibrator> {
        let opts = InterpreterOptions {
            threads,
            preserve_all_tensors: true,
            memory_limit,
            extra_bytes: statistics_bytes(model),
            ..Default::default()
        };
        let interp = Interpreter::new(model, opts)?;
        if let Some(bad) = interp.inputs().iter().find(|i| i.dtype != DType::F32) {
            return Err(EngineError::unsupported(format!(
                "calibration needs float32 inputs; input '{}' is {}",
                bad.name, bad.dtype
            )));
        }
        let g = model.main();
        let tracked = g
            .tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| t.dtype == DType::F32 && !t.is_constant())
            .map(|(i, _)| (i, TensorStats::default()))
            .collect();
        Ok(Calibrator {
            interp,
            tracked,
            num_tensors: g.tensors.len(),
            samples: 0,
        })
    }

    /// Shapes of the model inputs.
    pub fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.interp
            .inputs()
            .iter()
            .map(|i| i.shape.clone())
            .collect()
    }

    /// Run one sample (one float vector per model input) and update the statistics.
    pub fn observe(&mut self, inputs: &[Vec<f32>]) -> Result<()> {
        if inputs.len() != self.interp.inputs().len() {
            return Err(EngineError::bad_input(format!(
                "calibration sample has {} inputs, the model {}",
                inputs.len(),
                self.interp.inputs().len()
            )));
        }
        for (k, v) in inputs.iter().enumerate() {
            self.interp.set_input_f32(k, v)?;
        }
        self.interp.invoke();
        for (t, stats) in &mut self.tracked {
            if let Some(bytes) = self.interp.tensor_bytes(*t) {
                stats.update(&bytes_to_f32(bytes))?;
            }
        }
        self.samples += 1;
        Ok(())
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    /// The statistics of tensor `t`, if it is tracked.
    pub fn stats(&self, t: TensorId) -> Option<&TensorStats> {
        self.tracked.iter().find(|(i, _)| *i == t).map(|(_, s)| s)
    }

    /// Ranges of every tracked tensor by `method` for `grid`.
    pub fn ranges(&self, method: RangeMethod, grid: Grid) -> TensorRanges {
        let mut ranges = vec![None; self.num_tensors];
        for (t, s) in &self.tracked {
            ranges[*t] = s.range(method, grid);
        }
        TensorRanges {
            ranges,
            samples: self.samples,
        }
    }
}

/// What calibration holds beside the interpreter: a histogram per tracked tensor, the
/// float copy of the largest one read after each sample, and the ranges (saturating).
fn statistics_bytes(model: &Model) -> u64 {
    let g = model.main();
    let tracked = g
        .tensors
        .iter()
        .filter(|t| t.dtype == DType::F32 && !t.is_constant());
    let per_tensor = (std::mem::size_of::<TensorStats>() + 8 * BINS) as u64;
    let (count, largest) = tracked.fold((0u64, 0u64), |(n, big), t| {
        (n + 1, big.max(t.checked_byte_len().unwrap_or(u64::MAX)))
    });
    let ranges = (std::mem::size_of::<Option<TensorRange>>() * g.tensors.len()) as u64;
    count
        .saturating_mul(per_tensor)
        .saturating_add(largest)
        .saturating_add(ranges)
}

/// Calibrate an image model on the dataset images `images` (indices): TF-slim preprocessing (central
/// crop 87.5% for ImageNet, bilinear resize), values mapped to the dataset's input
/// range (`InputRange::for_dataset`: [-1, 1], CIFAR-10 [0, 1]), as `eval` does.
/// `progress` is called after each image.
pub fn calibrate_images(
    calibrator: &mut Calibrator,
    dataset: &dyn crate::data::ImageDataset,
    central_fraction: f32,
    input_range: crate::data::InputRange,
    images: impl IntoIterator<Item = usize>,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    let shapes = calibrator.input_shapes();
    let shape = match shapes.as_slice() {
        [s] if s.len() == 4 && s[0] == 1 && s[3] == 3 => s.clone(),
        _ => {
            return Err(EngineError::unsupported(format!(
                "image calibration needs one [1, H, W, 3] input, the model has {shapes:?}"
            )));
        }
    };
    for (n, i) in images.into_iter().enumerate() {
        let img = dataset.image(i)?;
        let mut pixels =
            crate::data::central_crop_resize(&img, central_fraction, shape[1], shape[2]);
        pixels.iter_mut().for_each(|p| *p = input_range.map(*p));
        calibrator.observe(&[pixels])?;
        progress(n + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_grows_and_keeps_counts() {
        let mut s = TensorStats::default();
        s.update(&[0.0, 0.0]).unwrap();
        s.update(&[0.5, -0.25]).unwrap();
        s.update(&[10.0]).unwrap();
        assert_eq!(s.bins.iter().sum::<u64>(), 5);
        assert_eq!(s.radius, 16.0);
        assert_eq!((s.min, s.max), (-0.25, 10.0));
        let r = s.range(RangeMethod::MinMax, Grid::Asymmetric8).unwrap();
        assert_eq!((r.min, r.max), (-0.25, 10.0));
    }

    #[test]
    fn percentile_clips_outliers() {
        let mut s = TensorStats::default();
        let mut v: Vec<f32> = (0..100_000).map(|i| (i % 1000) as f32 / 1000.0).collect();
        v.push(100.0);
        s.update(&v).unwrap();
        let r = s
            .range(RangeMethod::Percentile(99.99), Grid::Asymmetric8)
            .unwrap();
        assert!(r.max < 1.1 && r.max > 0.9, "{r:?}");
        assert!(r.min <= 0.0 + 1e-3);
        let m = s.range(RangeMethod::Mse, Grid::Asymmetric8).unwrap();
        assert!(m.max < 100.0 && m.max > 0.9, "{m:?}");
    }

    #[test]
    fn nan_is_an_error() {
        let mut s = TensorStats::default();
        assert!(s.update(&[f32::NAN]).is_err());
    }

    #[test]
    fn parse_methods() {
        assert_eq!(RangeMethod::parse("minmax").unwrap(), RangeMethod::MinMax);
        assert_eq!(
            RangeMethod::parse("percentile:99.9").unwrap(),
            RangeMethod::Percentile(99.9)
        );
        assert!(RangeMethod::parse("bogus").is_err());
    }
}
