//! Top-1/top-5 accuracy of an image classifier over a slice of a labelled dataset.
//!
//! Preprocessing follows TF-slim's evaluation: ImageNet images are centrally cropped to
//! 87.5% and resized with TF1's bilinear resize; CIFAR-10 images are resized whole
//! and float inputs get [0, 1] (this project's CIFAR-10 convention) instead of [-1, 1].
//! Each model gets the pixels encoded for its own input (its input quantization, or
//! raw pixels for an unquantized uint8 input).

use std::ops::Range;
use std::sync::mpsc;

use super::limits::check_images;
use crate::data::{self, ImageDataset, TopK};
use crate::exec::{Interpreter, TensorInfo};
use crate::{EngineError, Result};

/// What evaluating one model on one dataset needs, checked once: the model has one
/// `[1, H, W, 3]` input, and its output has as many scores as the dataset has classes
/// (or one more: TF-slim ImageNet models keep a background class in slot 0).
#[derive(Debug, Clone)]
pub struct ImageEval {
    pub input: TensorInfo,
    /// Added to a dataset label to get the model's class index.
    pub label_offset: usize,
    /// Central-crop fraction before resizing.
    pub crop: f32,
    /// Float input convention of the dataset's models ([0, 1] for CIFAR-10).
    pub range: data::InputRange,
    pub classes: usize,
}

/// One evaluated image, handed to the caller's step function.
pub struct EvalStep<'a> {
    pub index: usize,
    /// The dataset's label.
    pub label: usize,
    /// The model's class index for `label`.
    pub target: usize,
    /// Preprocessed pixels (RGB, HWC, float) before the model's input encoding.
    pub pixels: &'a [f32],
    /// The bytes set as the model's input.
    pub input: &'a [u8],
    /// The model's output scores.
    pub scores: &'a [f32],
}

impl ImageEval {
    /// Float32 copies of the model input an evaluation holds at once, for the
    /// interpreter's memory plan (`InterpreterOptions::input_copies`): up to 8
    /// preprocessed images queued, one being preprocessed, one being run, and its
    /// encoded input bytes.
    pub const INPUT_COPIES: u32 = 12;

    /// Check that `interp`'s model can be evaluated on `ds` (named `dataset`).
    pub fn new(interp: &Interpreter, ds: &dyn ImageDataset, dataset: &str) -> Result<ImageEval> {
        let shapes = || {
            interp
                .inputs()
                .iter()
                .map(|i| format!("{:?}", i.shape))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let input = match interp.inputs() {
            [i] if i.shape.len() == 4 && i.shape[0] == 1 && i.shape[3] == 3 => i.clone(),
            _ => {
                return Err(EngineError::bad_input(format!(
                    "evaluation needs an image model with one [1, H, W, 3] input, this one has {}",
                    shapes()
                )));
            }
        };
        let classes = interp
            .outputs()
            .first()
            .map(|o| o.num_elements())
            .ok_or_else(|| EngineError::bad_input("model has no output"))?;
        let label_offset = if classes == ds.num_classes() + 1 {
            1
        } else if classes == ds.num_classes() {
            0
        } else {
            return Err(EngineError::bad_input(format!(
                "model outputs {classes} scores, dataset {dataset} has {} classes",
                ds.num_classes()
            )));
        };
        let crop = if dataset.starts_with("imagenet") {
            0.875
        } else {
            1.0
        };
        Ok(ImageEval {
            input,
            label_offset,
            crop,
            range: data::InputRange::for_dataset(dataset),
            classes,
        })
    }

    /// Run `interp` on every image of `range` and count top-1/top-5 hits. Images are
    /// decoded and preprocessed on a second thread while this one runs the model.
    /// `step` sees every image after inference; an error from it stops the evaluation
    /// (cancellation, or the caller's own I/O failing).
    pub fn run<E: From<EngineError>>(
        &self,
        interp: &mut Interpreter,
        ds: &dyn ImageDataset,
        range: Range<usize>,
        mut step: impl FnMut(&EvalStep) -> std::result::Result<(), E>,
    ) -> std::result::Result<TopK, E> {
        check_images("images to evaluate", range.len())?;
        let (h, w) = (self.input.shape[1], self.input.shape[2]);
        let crop = self.crop;
        let mut topk = TopK::new();
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::sync_channel::<Result<(usize, usize, Vec<f32>)>>(8);
            s.spawn(move || {
                for i in range {
                    let item = ds
                        .image(i)
                        .map(|img| (i, ds.label(i), data::central_crop_resize(&img, crop, h, w)));
                    // The receiver is gone when the caller stopped early.
                    if tx.send(item).is_err() {
                        return;
                    }
                }
            });
            for item in rx {
                let (index, label, pixels) = item?;
                let bytes = data::encode_model_input_in(
                    &pixels,
                    self.input.dtype,
                    self.input.quant.as_ref(),
                    self.range,
                );
                interp.set_input_bytes(0, &bytes)?;
                interp.invoke();
                let scores = interp.output_f32(0)?;
                let target = label + self.label_offset;
                topk.update(&scores, target);
                step(&EvalStep {
                    index,
                    label,
                    target,
                    pixels: &pixels,
                    input: &bytes,
                    scores: &scores,
                })?;
            }
            Ok(topk)
        })
    }
}
