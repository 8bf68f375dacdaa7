//! Datasets read in place from the shared folder, TF-slim preprocessing and
//! top-k metrics.
//!
//! - [`shared_root`]: where the shared data lives (`QUANTFARM_DATA` or `../shared`);
//! - [`ImagenetSample`], [`Cifar10`]: labelled JPEG datasets indexed once from their
//!   tar and read with positioned reads, so [`ImageDataset::image`] is thread-safe;
//! - [`central_crop_resize`], [`to_unit_range`]: the TF-slim ImageNet eval pipeline;
//! - [`TopK`], [`top_k`]: accuracy accounting.

mod cifar10;
mod image;
mod imagenet;
mod metrics;
mod preprocess;
mod root;
mod tarindex;

pub use cifar10::{CIFAR10_DIR, Cifar10, CifarSplit};
pub use image::{RgbImage, decode_jpeg};
pub use imagenet::{IMAGENET_SAMPLE_DIR, ImagenetSample};
pub use metrics::{TopK, top_k};
pub use preprocess::{
    InputRange, central_crop_box, central_crop_resize, encode_model_input, encode_model_input_in,
    resize_bilinear_tf1, to_unit_range,
};
pub use root::{DATA_ENV, find_shared_root, shared_root};
pub use tarindex::{TarIndex, TarMember};

use crate::{EngineError, Result};
use std::ops::Range;
use std::path::Path;

/// A labelled image dataset read in place from its tar (member offsets indexed once).
/// `label` and `name` panic if `i >= len()` (like slice indexing); `image` returns an
/// error instead, since it also reports unreadable or corrupt members.
pub trait ImageDataset: Send + Sync {
    fn len(&self) -> usize;
    /// Class index as the dataset defines it (ImageNet 0..999, CIFAR-10 0..9).
    fn label(&self, i: usize) -> usize;
    fn image(&self, i: usize) -> Result<RgbImage>;
    /// Member name inside the tar.
    fn name(&self, i: usize) -> String;
    fn num_classes(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Dataset names accepted by [`open_dataset`].
pub const DATASET_NAMES: &[&str] = &[
    "imagenet-sample",
    "cifar10-train",
    "cifar10-test",
    "cifar10",
];

/// Open a dataset by name: "imagenet-sample", "cifar10-train", "cifar10-test"
/// (alias "cifar10" = test). `root` is the shared folder.
pub fn open_dataset(name: &str, root: &Path) -> Result<Box<dyn ImageDataset>> {
    Ok(match name {
        "imagenet-sample" => Box::new(ImagenetSample::open(root)?),
        "cifar10-train" => Box::new(Cifar10::open(root, CifarSplit::Train)?),
        "cifar10-test" | "cifar10" => Box::new(Cifar10::open(root, CifarSplit::Test)?),
        other => {
            return Err(EngineError::dataset(format!(
                "unknown dataset '{other}' (known: {})",
                DATASET_NAMES.join(", ")
            )));
        }
    })
}

/// A contiguous slice `[offset, offset+limit)` of a dataset of `len` items, with a
/// clear error if out of range. `limit = None` means "to the end". The offset must
/// point at an item (`offset < len`); `Some(0)` yields an empty range.
pub fn slice_range(len: usize, offset: usize, limit: Option<usize>) -> Result<Range<usize>> {
    if offset >= len {
        return Err(EngineError::bad_input(format!(
            "offset {offset} is out of range: the dataset has {len} items (valid offsets 0..{len})"
        )));
    }
    let end = match limit {
        None => len,
        Some(l) => match offset.checked_add(l) {
            Some(end) if end <= len => end,
            _ => {
                return Err(EngineError::bad_input(format!(
                    "offset {offset} + limit {l} goes past the end of the dataset ({len} items; at most {} from offset {offset})",
                    len - offset
                )));
            }
        },
    };
    Ok(offset..end)
}

/// Read a UTF-8 text file, naming it in the error.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path.display().to_string(), e))?;
    String::from_utf8(bytes)
        .map_err(|_| EngineError::dataset(format!("{}: not valid UTF-8", path.display())))
}

/// The dataset folder `root/rel`, or an error naming it (and the root) if absent.
pub(crate) fn dataset_dir(root: &Path, rel: &str) -> Result<std::path::PathBuf> {
    let dir = root.join(rel);
    if !dir.is_dir() {
        return Err(EngineError::dataset(format!(
            "{}: dataset folder not found (is {} the shared folder? set QUANTFARM_DATA)",
            dir.display(),
            root.display()
        )));
    }
    Ok(dir)
}

/// The message of a dataset error without its "dataset: " prefix, for re-wrapping.
pub(crate) fn strip(e: &EngineError) -> String {
    match e {
        EngineError::Dataset(m) => m.clone(),
        other => other.to_string(),
    }
}
