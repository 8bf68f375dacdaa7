//! `data/cifar10`: CIFAR-10 as JPEG members `<class>/<NNNN>.jpg` in `train.tar` /
//! `test.tar`, labels from the member's directory via `classes.txt` line order.

use super::tarindex::TarIndex;
use super::{ImageDataset, RgbImage, dataset_dir, decode_jpeg, read_text, strip};
use crate::{EngineError, Result};
use std::path::Path;

/// Folder of CIFAR-10, relative to the shared root.
pub const CIFAR10_DIR: &str = "data/cifar10";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CifarSplit {
    Train,
    Test,
}

impl CifarSplit {
    /// The tar file name of the split.
    pub fn file_name(self) -> &'static str {
        match self {
            CifarSplit::Train => "train.tar",
            CifarSplit::Test => "test.tar",
        }
    }
}

/// One CIFAR-10 split, read in place; items in archive order (by class, then number).
#[derive(Debug)]
pub struct Cifar10 {
    split: CifarSplit,
    tar: TarIndex,
    classes: Vec<String>,
    labels: Vec<usize>,
}

impl Cifar10 {
    /// `root` is the shared folder; reads `data/cifar10/{classes.txt,<split>.tar}`.
    pub fn open(root: &Path, split: CifarSplit) -> Result<Self> {
        let dir = dataset_dir(root, CIFAR10_DIR)?;
        let classes_path = dir.join("classes.txt");
        let classes: Vec<String> = read_text(&classes_path)?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if classes.is_empty() {
            return Err(EngineError::dataset(format!(
                "{}: no class names",
                classes_path.display()
            )));
        }
        let tar = TarIndex::open(&dir.join(split.file_name()))?;
        let mut labels = Vec::with_capacity(tar.len());
        for m in tar.members() {
            let class = m.name.split_once('/').map(|(c, _)| c).ok_or_else(|| {
                EngineError::dataset(format!(
                    "{}: member {} is not in a <class>/ directory",
                    tar.path().display(),
                    m.name
                ))
            })?;
            let label = classes.iter().position(|c| c == class).ok_or_else(|| {
                EngineError::dataset(format!(
                    "{}: member {}: class '{class}' is not listed in {}",
                    tar.path().display(),
                    m.name,
                    classes_path.display()
                ))
            })?;
            labels.push(label);
        }
        if labels.is_empty() {
            return Err(EngineError::dataset(format!(
                "{}: no image members",
                tar.path().display()
            )));
        }
        Ok(Cifar10 {
            split,
            tar,
            classes,
            labels,
        })
    }

    pub fn split(&self) -> CifarSplit {
        self.split
    }

    /// Name of class `i` ("airplane", ...). Panics if `i >= num_classes()`.
    pub fn class_name(&self, i: usize) -> &str {
        &self.classes[i]
    }
}

impl ImageDataset for Cifar10 {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }

    fn image(&self, i: usize) -> Result<RgbImage> {
        let bytes = self.tar.read(i)?;
        decode_jpeg(&bytes).map_err(|e| {
            EngineError::dataset(format!(
                "{}: member {}: {}",
                self.tar.path().display(),
                self.tar.members()[i].name,
                strip(&e)
            ))
        })
    }

    fn name(&self, i: usize) -> String {
        self.tar.members()[i].name.clone()
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }
}
