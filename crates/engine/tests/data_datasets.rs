//! The real shared datasets: ImageNet sample and CIFAR-10, read in place.

use quantfarm_engine::data::{
    Cifar10, CifarSplit, ImageDataset, ImagenetSample, central_crop_resize, open_dataset,
    shared_root, to_unit_range,
};
use std::time::Instant;

fn root() -> std::path::PathBuf {
    shared_root().expect("shared data folder (set QUANTFARM_DATA)")
}

/// (width, height) of manifest row `i`, read independently of the crate's parser.
fn manifest_size(i: usize) -> (usize, usize) {
    let text = std::fs::read_to_string(root().join("data/imagenet-sample/manifest.tsv")).unwrap();
    let row: Vec<&str> = text.lines().nth(i + 1).unwrap().split('\t').collect();
    (row[2].parse().unwrap(), row[3].parse().unwrap())
}

#[test]
fn imagenet_sample_opens_with_1000_ordered_labels() {
    let ds = ImagenetSample::open(&root()).unwrap();
    assert_eq!(ds.len(), 1000);
    assert_eq!(ds.num_classes(), 1000);
    for i in 0..1000 {
        assert_eq!(ds.label(i), i, "item {i}");
    }
    assert_eq!(ds.name(0), "0000_n01440764.jpg");
    assert_eq!(ds.name(999), "0999_n15075141.jpg");
    assert_eq!(ds.class_name(0), "tench");
    assert_eq!(ds.synset(0), "n01440764");
    // Names are not unique (README): both 134 and 517 are "crane".
    assert_eq!(ds.class_name(134), "crane");
    assert_eq!(ds.class_name(517), "crane");
    assert_eq!(ds.manifest_size(0), manifest_size(0));
}

#[test]
fn imagenet_images_decode_to_manifest_size() {
    let ds = ImagenetSample::open(&root()).unwrap();
    let img = ds.image(0).unwrap();
    assert_eq!((img.width, img.height), manifest_size(0));
    assert_eq!(img.pixels.len(), img.width * img.height * 3);
    // The widest image (README): 1096 x 320.
    let wide = ds.image(798).unwrap();
    assert_eq!((wide.width, wide.height), (1096, 320));
    // A spread of others (debug builds decode slowly; the release timing test does all).
    for i in (0..1000).step_by(97) {
        let img = ds.image(i).unwrap();
        assert_eq!((img.width, img.height), manifest_size(i), "item {i}");
        assert_eq!(img.width.min(img.height), 320, "item {i}");
    }
    assert!(ds.image(1000).is_err());
}

#[test]
fn concurrent_reads_match_sequential_reads() {
    let ds = ImagenetSample::open(&root()).unwrap();
    let idx = [3usize, 250, 500, 998];
    let seq: Vec<Vec<u8>> = idx.iter().map(|&i| ds.jpeg_bytes(i).unwrap()).collect();
    let par: Vec<Vec<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = idx
            .iter()
            .map(|&i| {
                let ds = &ds;
                s.spawn(move || ds.jpeg_bytes(i).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(seq, par);
    assert!(seq.iter().all(|b| b.starts_with(&[0xFF, 0xD8])));
}

#[test]
fn cifar10_test_has_1000_per_class_32x32() {
    let ds = Cifar10::open(&root(), CifarSplit::Test).unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.num_classes(), 10);
    let mut counts = [0usize; 10];
    for i in 0..ds.len() {
        counts[ds.label(i)] += 1;
    }
    assert_eq!(counts, [1000; 10]);
    assert_eq!(ds.name(0), "airplane/0000.jpg");
    assert_eq!(ds.label(0), 0);
    assert_eq!(ds.class_name(9), "truck");
    assert_eq!(ds.name(9999), "truck/0999.jpg");
    assert_eq!(ds.label(9999), 9);
    for i in (0..10_000).step_by(501) {
        let img = ds.image(i).unwrap();
        assert_eq!((img.width, img.height), (32, 32), "{}", ds.name(i));
        assert_eq!(img.pixels.len(), 32 * 32 * 3);
    }
}

#[test]
fn cifar10_train_and_open_dataset_names() {
    let root = root();
    let train = open_dataset("cifar10-train", &root).unwrap();
    assert_eq!(train.len(), 50_000);
    let mut counts = [0usize; 10];
    for i in 0..train.len() {
        counts[train.label(i)] += 1;
    }
    assert_eq!(counts, [5000; 10]);
    // Named in the README as drawn from train.tar.
    let dog = (0..train.len())
        .find(|&i| train.name(i) == "dog/2303.jpg")
        .unwrap();
    assert_eq!(train.label(dog), 5);
    assert_eq!(open_dataset("cifar10", &root).unwrap().len(), 10_000);
    assert_eq!(open_dataset("cifar10-test", &root).unwrap().len(), 10_000);
    assert_eq!(open_dataset("imagenet-sample", &root).unwrap().len(), 1000);
    let err = open_dataset("mnist", &root).err().unwrap().to_string();
    assert!(err.contains("unknown dataset 'mnist'"), "{err}");
}

/// Decode + TF-slim preprocess all 1000 ImageNet images to 224x224, single thread.
/// Run: cargo test --release -p quantfarm-engine --test data_datasets -- --ignored --nocapture
#[test]
#[ignore = "timing; run in release"]
fn time_decode_and_preprocess_imagenet() {
    let ds = ImagenetSample::open(&root()).unwrap();
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    let mut decode = std::time::Duration::ZERO;
    let mut decode_cpu = 0u64;
    let mut sum = 0.0f64;
    for i in 0..ds.len() {
        let t = Instant::now();
        let c = thread_cpu_ns();
        let img = ds.image(i).unwrap();
        decode += t.elapsed();
        if let (Some(a), Some(b)) = (c, thread_cpu_ns()) {
            decode_cpu += b - a;
        }
        assert_eq!((img.width, img.height), ds.manifest_size(i));
        let mut x = central_crop_resize(&img, 0.875, 224, 224);
        to_unit_range(&mut x);
        assert_eq!(x.len(), 224 * 224 * 3);
        sum += f64::from(x[0]);
    }
    let total = t0.elapsed();
    if let (Some(c0), Some(c1)) = (cpu0, thread_cpu_ns()) {
        // The machine is shared: on-CPU time is the contention-free figure.
        println!(
            "on-CPU time of this thread: {:.0} ms (read+decode {:.0} ms), {:.2} ms/image",
            (c1 - c0) as f64 / 1e6,
            decode_cpu as f64 / 1e6,
            (c1 - c0) as f64 / 1e9
        );
    }
    println!(
        "1000 ImageNet images: total {:.0} ms (read+decode {:.0} ms, crop+resize+scale {:.0} ms), \
         {:.2} ms/image [checksum {sum:.3}]",
        total.as_secs_f64() * 1e3,
        decode.as_secs_f64() * 1e3,
        (total - decode).as_secs_f64() * 1e3,
        total.as_secs_f64()
    );
}

/// CPU time consumed by the calling thread (Linux /proc), if available.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Cross-check crop geometry and channel order against the golden model inputs,
/// which are the same images centre-cropped 87.5% but resized with PIL's
/// antialiased bilinear: the pixels differ a little, never systematically.
#[test]
fn preprocessing_is_close_to_golden_pil_inputs() {
    let root = root();
    let ds = ImagenetSample::open(&root).unwrap();
    let golden = root.join("reference/golden/mobilenet_v2_1.0_224_quant");
    for (case, item) in [(0usize, 0usize), (1, 61), (2, 122)] {
        let want = std::fs::read(golden.join(format!("case_{case:03}.in0.bin"))).unwrap();
        assert_eq!(want.len(), 224 * 224 * 3);
        let got = central_crop_resize(&ds.image(item).unwrap(), 0.875, 224, 224);
        let mad = |shift: usize| -> f64 {
            // shift rotates the channel order: 0 = as is, 1/2 = swapped channels.
            let mut s = 0.0;
            for (i, &w) in want.iter().enumerate() {
                let j = i - i % 3 + (i % 3 + shift) % 3;
                s += (f64::from(got[j]) - f64::from(w)).abs();
            }
            s / want.len() as f64
        };
        let (m0, m1) = (mad(0), mad(1));
        println!(
            "case {case} (item {item}): mean |diff| {m0:.2} levels (rotated channels: {m1:.2})"
        );
        assert!(m0 < 6.0, "case {case}: mean abs diff {m0}");
        assert!(m0 < m1, "case {case}: channel order looks wrong");
    }
}

/// Every CIFAR-10 test image decodes to 32x32 (slow in debug).
/// Run: cargo test --release -p quantfarm-engine --test data_datasets -- --ignored --nocapture
#[test]
#[ignore = "decodes 10,000 images; run in release"]
fn decode_all_cifar10_test() {
    let ds = Cifar10::open(&root(), CifarSplit::Test).unwrap();
    let t0 = Instant::now();
    for i in 0..ds.len() {
        let img = ds.image(i).unwrap();
        assert_eq!((img.width, img.height), (32, 32), "{}", ds.name(i));
    }
    println!(
        "10,000 CIFAR-10 test images decoded in {:.0} ms",
        t0.elapsed().as_secs_f64() * 1e3
    );
}
