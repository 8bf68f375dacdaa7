//! Training images held in memory as u8 (decoded once), batches as f32 in [0, 1]
//! with random-crop (zero pad 4) + horizontal-flip augmentation.

use quantfarm_engine::data::{Cifar10, CifarSplit, ImageDataset};
use quantfarm_engine::{EngineError, Result};
use std::path::Path;

use crate::rng::Rng;

/// Decoded images `[n, H, W, C]` u8 and their labels.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub shape: [usize; 3],
}

/// Crop offsets are drawn in `-PAD..=PAD`.
pub const PAD: usize = 4;

impl ImageSet {
    /// Training takes whole batches: fewer images than one batch is bad input.
    pub fn check_batch(&self, batch: usize) -> Result<()> {
        if self.len() < batch.max(1) {
            return Err(EngineError::bad_input(format!(
                "{} training images are fewer than one batch of {batch}",
                self.len()
            )));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// CIFAR-10 from the shared folder `root`. With `limit`, an evenly spaced subset
    /// (members are sorted by class, so every class keeps its share). JPEGs are
    /// decoded on `threads` threads.
    pub fn cifar10(
        root: &Path,
        split: CifarSplit,
        limit: Option<usize>,
        threads: usize,
    ) -> Result<ImageSet> {
        let ds = Cifar10::open(root, split)?;
        let total = ds.len();
        let n = limit.map_or(total, |l| l.min(total));
        if n == 0 {
            return Err(EngineError::bad_input("no images to load (limit 0)"));
        }
        let pick: Vec<usize> = (0..n).map(|i| i * total / n).collect();
        let shape = [32, 32, 3];
        let per = 32 * 32 * 3;
        let mut images = vec![0u8; n * per];
        let threads = threads.clamp(1, n);
        let chunk = n.div_ceil(threads);
        std::thread::scope(|s| -> Result<()> {
            let handles: Vec<_> = images
                .chunks_mut(chunk * per)
                .zip(pick.chunks(chunk))
                .map(|(out, idx)| {
                    let ds = &ds;
                    s.spawn(move || -> Result<()> {
                        for (dst, &i) in out.chunks_exact_mut(per).zip(idx) {
                            let img = ds.image(i)?;
                            if img.width != 32 || img.height != 32 {
                                return Err(EngineError::dataset(format!(
                                    "CIFAR-10 member {} is {}x{}, expected 32x32",
                                    ds.name(i),
                                    img.width,
                                    img.height
                                )));
                            }
                            dst.copy_from_slice(&img.pixels);
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("decoder thread panicked")?;
            }
            Ok(())
        })?;
        let labels = pick.iter().map(|&i| ds.label(i) as u8).collect();
        Ok(ImageSet {
            images,
            labels,
            shape,
        })
    }

    /// Images `idx` as f32 `[len, H, W, C]` in [0, 1]. With `aug = Some(key)`, image
    /// `i` is shifted by a random offset in ±[`PAD`] (zeros shifted in) and flipped
    /// with probability ½, drawn from `Rng::derive(key, [i])`: the same image gets
    /// the same augmentation in an epoch whatever the batching or thread count.
    pub fn batch(&self, idx: &[usize], aug: Option<u64>) -> Vec<f32> {
        let [h, w, c] = self.shape;
        let per = self.image_len();
        let mut out = vec![0f32; idx.len() * per];
        for (dst, &i) in out.chunks_exact_mut(per).zip(idx) {
            let src = &self.images[i * per..(i + 1) * per];
            let (dy, dx, flip) = match aug {
                Some(key) => {
                    let mut r = Rng::derive(key, &[i as u64]);
                    let dy = r.below(2 * PAD + 1) as isize - PAD as isize;
                    let dx = r.below(2 * PAD + 1) as isize - PAD as isize;
                    (dy, dx, r.below(2) == 1)
                }
                None => (0, 0, false),
            };
            for y in 0..h {
                let sy = y as isize + dy;
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                for x in 0..w {
                    let xx = if flip { w - 1 - x } else { x };
                    let sx = xx as isize + dx;
                    if sx < 0 || sx >= w as isize {
                        continue;
                    }
                    let s = (sy as usize * w + sx as usize) * c;
                    let d = (y * w + x) * c;
                    for k in 0..c {
                        dst[d + k] = f32::from(src[s + k]) * (1.0 / 255.0);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::ImageSet;

    #[test]
    fn augmentation_shifts_and_flips_and_repeats() {
        let shape = [4, 4, 1];
        let images: Vec<u8> = (0..16).map(|v| v * 10).collect();
        let set = ImageSet {
            images,
            labels: vec![0],
            shape,
        };
        let plain = set.batch(&[0], None);
        assert_eq!(plain[5], 50.0 * (1.0 / 255.0));
        let a = set.batch(&[0], Some(9));
        assert_eq!(a, set.batch(&[0], Some(9)));
        // Some key gives a changed image; every augmented pixel is a source pixel or 0.
        let changed = (0..20u64).any(|k| set.batch(&[0], Some(k)) != plain);
        assert!(changed);
        for v in a {
            assert!(v == 0.0 || plain.contains(&v));
        }
    }
}
