//! `data/imagenet-sample`: 1000 ImageNet JPEGs (one per class) in `images.tar`,
//! with `labels.tsv` (index, synset, name) and `manifest.tsv` (per-image facts).

use super::tarindex::TarIndex;
use super::{ImageDataset, RgbImage, dataset_dir, decode_jpeg, read_text, strip};
use crate::{EngineError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Folder of the sample, relative to the shared root.
pub const IMAGENET_SAMPLE_DIR: &str = "data/imagenet-sample";

const LABELS_HEADER: &[&str] = &["index", "synset", "name"];
const MANIFEST_HEADER: &[&str] = &[
    "index",
    "file",
    "width",
    "height",
    "bytes",
    "sha256",
    "src_width",
    "src_height",
    "src_mode",
    "upscaled",
];

#[derive(Debug, Clone)]
struct Class {
    synset: String,
    name: String,
}

#[derive(Debug, Clone)]
struct Item {
    member: usize,
    label: usize,
    width: usize,
    height: usize,
    upscaled: bool,
}

/// The ImageNet sample, read in place. Item `i` is manifest row `i`; its label is
/// the ILSVRC-2012 class index (0..999) of the synset in its file name.
#[derive(Debug)]
pub struct ImagenetSample {
    dir: PathBuf,
    tar: TarIndex,
    classes: Vec<Class>,
    items: Vec<Item>,
}

impl ImagenetSample {
    /// `root` is the shared folder; reads `data/imagenet-sample/{images.tar,labels.tsv,manifest.tsv}`.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = dataset_dir(root, IMAGENET_SAMPLE_DIR)?;
        let classes = parse_labels(&dir.join("labels.tsv"))?;
        let tar = TarIndex::open(&dir.join("images.tar"))?;
        let items = parse_manifest(&dir.join("manifest.tsv"), &classes, &tar)?;
        Ok(ImagenetSample {
            dir,
            tar,
            classes,
            items,
        })
    }

    /// Name of class `i` (first synonym, e.g. "great white shark"). Not unique: key on
    /// the index or synset. Panics if `i >= num_classes()`.
    pub fn class_name(&self, i: usize) -> &str {
        &self.classes[i].name
    }

    /// WordNet id of class `i`, e.g. "n01440764". Panics if `i >= num_classes()`.
    pub fn synset(&self, i: usize) -> &str {
        &self.classes[i].synset
    }

    /// Decoded `(width, height)` of item `i` as `manifest.tsv` records it.
    pub fn manifest_size(&self, i: usize) -> (usize, usize) {
        (self.items[i].width, self.items[i].height)
    }

    /// True if item `i`'s source was smaller than 320 px and had to be upscaled.
    pub fn upscaled(&self, i: usize) -> bool {
        self.items[i].upscaled
    }

    /// The dataset folder (`<root>/data/imagenet-sample`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The raw JPEG bytes of item `i`.
    pub fn jpeg_bytes(&self, i: usize) -> Result<Vec<u8>> {
        let item = self.items.get(i).ok_or_else(|| {
            EngineError::bad_input(format!(
                "image index {i} out of range ({} items)",
                self.items.len()
            ))
        })?;
        self.tar.read(item.member)
    }
}

impl ImageDataset for ImagenetSample {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn label(&self, i: usize) -> usize {
        self.items[i].label
    }

    fn image(&self, i: usize) -> Result<RgbImage> {
        let bytes = self.jpeg_bytes(i)?;
        let item = &self.items[i];
        let name = &self.tar.members()[item.member].name;
        let img = decode_jpeg(&bytes).map_err(|e| {
            EngineError::dataset(format!(
                "{}: member {name}: {}",
                self.tar.path().display(),
                strip(&e)
            ))
        })?;
        if (img.width, img.height) != (item.width, item.height) {
            return Err(EngineError::dataset(format!(
                "{}: member {name}: decoded {}x{} but manifest.tsv says {}x{}",
                self.tar.path().display(),
                img.width,
                img.height,
                item.width,
                item.height
            )));
        }
        Ok(img)
    }

    fn name(&self, i: usize) -> String {
        self.tar.members()[self.items[i].member].name.clone()
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

/// Split a TSV file into rows after checking its header; yields (1-based line, fields).
fn tsv_rows<'a>(path: &Path, text: &'a str, header: &[&str]) -> Result<Vec<(usize, Vec<&'a str>)>> {
    let mut lines = text.lines().enumerate();
    let first = lines.next().map(|(_, l)| l).unwrap_or("");
    let got: Vec<&str> = first.split('\t').collect();
    if got != header {
        return Err(EngineError::dataset(format!(
            "{}: line 1: expected header '{}', found '{}'",
            path.display(),
            header.join("\\t"),
            first.replace('\t', "\\t")
        )));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != header.len() {
            return Err(EngineError::dataset(format!(
                "{}: line {}: expected {} tab-separated fields, found {}",
                path.display(),
                i + 1,
                header.len(),
                fields.len()
            )));
        }
        rows.push((i + 1, fields));
    }
    Ok(rows)
}

fn parse_num<T: std::str::FromStr>(path: &Path, line: usize, col: &str, s: &str) -> Result<T> {
    s.parse().map_err(|_| {
        EngineError::dataset(format!(
            "{}: line {line}: column '{col}' is not a valid number: '{s}'",
            path.display()
        ))
    })
}

fn parse_labels(path: &Path) -> Result<Vec<Class>> {
    let text = read_text(path)?;
    let rows = tsv_rows(path, &text, LABELS_HEADER)?;
    let mut classes = Vec::with_capacity(rows.len());
    for (line, f) in rows {
        let index: usize = parse_num(path, line, "index", f[0])?;
        if index != classes.len() {
            return Err(EngineError::dataset(format!(
                "{}: line {line}: index {index} out of order (expected {})",
                path.display(),
                classes.len()
            )));
        }
        if f[1].is_empty() {
            return Err(EngineError::dataset(format!(
                "{}: line {line}: empty synset",
                path.display()
            )));
        }
        classes.push(Class {
            synset: f[1].to_string(),
            name: f[2].to_string(),
        });
    }
    if classes.is_empty() {
        return Err(EngineError::dataset(format!(
            "{}: no classes",
            path.display()
        )));
    }
    Ok(classes)
}

fn parse_manifest(path: &Path, classes: &[Class], tar: &TarIndex) -> Result<Vec<Item>> {
    let text = read_text(path)?;
    let rows = tsv_rows(path, &text, MANIFEST_HEADER)?;
    let by_synset: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.synset.as_str(), i))
        .collect();
    let mut items = Vec::with_capacity(rows.len());
    for (line, f) in rows {
        let bad =
            |msg: String| EngineError::dataset(format!("{}: line {line}: {msg}", path.display()));
        let index: usize = parse_num(path, line, "index", f[0])?;
        if index != items.len() {
            return Err(bad(format!(
                "index {index} out of order (expected {})",
                items.len()
            )));
        }
        let file = f[1];
        // Member names are `<index:04>_<synset>.jpg`; the synset gives the label.
        let synset = file
            .strip_suffix(".jpg")
            .and_then(|s| s.split_once('_'))
            .map(|(_, syn)| syn)
            .ok_or_else(|| bad(format!("file '{file}' is not named <index>_<synset>.jpg")))?;
        let label = *by_synset.get(synset).ok_or_else(|| {
            bad(format!(
                "file '{file}': synset {synset} is not in labels.tsv"
            ))
        })?;
        let width: usize = parse_num(path, line, "width", f[2])?;
        let height: usize = parse_num(path, line, "height", f[3])?;
        let bytes: u64 = parse_num(path, line, "bytes", f[4])?;
        let upscaled = match f[9] {
            "0" => false,
            "1" => true,
            other => {
                return Err(bad(format!(
                    "column 'upscaled' must be 0 or 1, found '{other}'"
                )));
            }
        };
        let member = tar.find(file).ok_or_else(|| {
            EngineError::dataset(format!(
                "{}: member {file} is missing (listed at {} line {line})",
                tar.path().display(),
                path.display()
            ))
        })?;
        let size = tar.members()[member].size;
        if size != bytes {
            return Err(EngineError::dataset(format!(
                "{}: member {file} has {size} bytes but {} line {line} says {bytes}",
                tar.path().display(),
                path.display()
            )));
        }
        items.push(Item {
            member,
            label,
            width,
            height,
            upscaled,
        });
    }
    if items.is_empty() {
        return Err(EngineError::dataset(format!(
            "{}: no images listed",
            path.display()
        )));
    }
    Ok(items)
}
