//! Error paths: corrupt / truncated tars, missing folders and members, malformed
//! TSV rows, non-JPEG members, shared-root discovery, greyscale JPEG decoding.

use quantfarm_engine::data::{
    Cifar10, CifarSplit, ImageDataset, ImagenetSample, TarIndex, decode_jpeg, find_shared_root,
};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// A fresh, empty temp directory unique to this process and test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("quantfarm-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tar_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

const LABELS: &str = "index\tsynset\tname\n0\tn01440764\ttench\n1\tn01443537\tgoldfish\n";

fn manifest(rows: &[(&str, usize)]) -> String {
    let mut s =
        "index\tfile\twidth\theight\tbytes\tsha256\tsrc_width\tsrc_height\tsrc_mode\tupscaled\n"
            .to_string();
    for (i, (file, bytes)) in rows.iter().enumerate() {
        s += &format!("{i}\t{file}\t8\t8\t{bytes}\tabc\t8\t8\tL\t0\n");
    }
    s
}

/// A fake shared root with data/imagenet-sample holding the given files.
fn imagenet_root(name: &str, tar: &[u8], labels: &str, manifest: &str) -> PathBuf {
    let root = temp_dir(name);
    let dir = root.join("data/imagenet-sample");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("images.tar"), tar).unwrap();
    std::fs::write(dir.join("labels.tsv"), labels).unwrap();
    std::fs::write(dir.join("manifest.tsv"), manifest).unwrap();
    root
}

/// A hand-built 8x8 greyscale baseline JPEG, flat value 200: quantisation all 1,
/// one-code Huffman tables (DC category 10, AC EOB), scan bits
/// `0 1001000000 0` (DC diff 576 = 8·(200-128)) padded with 1s.
fn grey_jpeg() -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8];
    j.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    j.extend_from_slice(&[1u8; 64]);
    j.extend_from_slice(&[
        0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 0x08, 0x00, 0x08, 1, 1, 0x11, 0,
    ]);
    for (class, symbol) in [(0x00u8, 0x0Au8), (0x10, 0x00)] {
        j.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        j.extend_from_slice(&[0u8; 15]);
        j.push(symbol);
    }
    j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0]);
    j.extend_from_slice(&[0x48, 0x0F, 0xFF, 0xD9]);
    j
}

fn err_string<T>(r: quantfarm_engine::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn greyscale_jpeg_decodes_to_three_equal_channels() {
    let img = decode_jpeg(&grey_jpeg()).unwrap();
    assert_eq!((img.width, img.height, img.pixels.len()), (8, 8, 8 * 8 * 3));
    for p in img.pixels.chunks_exact(3) {
        assert_eq!(p[0], p[1]);
        assert_eq!(p[1], p[2]);
        assert!((i32::from(p[0]) - 200).abs() <= 1, "{p:?}");
    }
}

#[test]
fn garbage_and_truncated_jpegs_are_errors() {
    let e = err_string(decode_jpeg(b"hello"));
    assert!(e.contains("not a JPEG"), "{e}");
    assert!(err_string(decode_jpeg(&[])).contains("not a JPEG"));
    let j = grey_jpeg();
    for cut in [3, 10, 40, 80, 100, j.len() - 4] {
        // Whatever the decoder makes of a cut file, it must not panic.
        let _ = decode_jpeg(&j[..cut]);
    }
    // Every byte flipped in turn: errors or images, never a panic.
    for i in 0..j.len() {
        let mut k = j.clone();
        k[i] ^= 0x5A;
        let _ = decode_jpeg(&k);
    }
}

#[test]
fn non_jpeg_member_names_tar_and_member() {
    let jpeg = grey_jpeg();
    let tar = tar_bytes(&[
        ("0000_n01440764.jpg", &jpeg),
        ("0001_n01443537.jpg", b"this is not a jpeg"),
    ]);
    let m = manifest(&[
        ("0000_n01440764.jpg", jpeg.len()),
        ("0001_n01443537.jpg", 18),
    ]);
    let root = imagenet_root("nonjpeg", &tar, LABELS, &m);
    let ds = ImagenetSample::open(&root).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!((ds.label(0), ds.label(1)), (0, 1));
    let img = ds.image(0).unwrap();
    assert_eq!((img.width, img.height), (8, 8));
    let e = err_string(ds.image(1));
    assert!(
        e.contains("data/imagenet-sample/images.tar: member 0001_n01443537.jpg: not a JPEG"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn corrupt_tar_is_an_error_naming_the_file() {
    let root = imagenet_root("corrupt", &[0x41u8; 4096], LABELS, &manifest(&[]));
    let e = err_string(ImagenetSample::open(&root));
    assert!(
        e.contains("images.tar") && e.contains("not a valid tar"),
        "{e}"
    );
    // Directly, too.
    let e = err_string(TarIndex::open(
        &root.join("data/imagenet-sample/images.tar"),
    ));
    assert!(e.contains("images.tar: not a valid tar"), "{e}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn truncated_tar_is_an_error() {
    let big = vec![7u8; 5000];
    let full = tar_bytes(&[("0000_n01440764.jpg", &big)]);
    // Cut inside the member's data.
    let root = imagenet_root("truncated", &full[..2048], LABELS, &manifest(&[]));
    let e = err_string(TarIndex::open(
        &root.join("data/imagenet-sample/images.tar"),
    ));
    assert!(e.contains("truncated"), "{e}");
    // Cut inside a header.
    std::fs::write(root.join("data/imagenet-sample/images.tar"), &full[..300]).unwrap();
    assert!(TarIndex::open(&root.join("data/imagenet-sample/images.tar")).is_err());
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn missing_member_and_size_mismatch() {
    let jpeg = grey_jpeg();
    let tar = tar_bytes(&[("0000_n01440764.jpg", &jpeg)]);
    let m = manifest(&[
        ("0000_n01440764.jpg", jpeg.len()),
        ("0001_n01443537.jpg", 10),
    ]);
    let root = imagenet_root("missing-member", &tar, LABELS, &m);
    let e = err_string(ImagenetSample::open(&root));
    assert!(
        e.contains("images.tar: member 0001_n01443537.jpg is missing"),
        "{e}"
    );

    let m = manifest(&[("0000_n01440764.jpg", jpeg.len() + 1)]);
    std::fs::write(root.join("data/imagenet-sample/manifest.tsv"), m).unwrap();
    let e = err_string(ImagenetSample::open(&root));
    assert!(
        e.contains("member 0000_n01440764.jpg has") && e.contains("manifest.tsv"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn malformed_tsv_rows_name_file_and_line() {
    let jpeg = grey_jpeg();
    let tar = tar_bytes(&[("0000_n01440764.jpg", &jpeg)]);
    let good = manifest(&[("0000_n01440764.jpg", jpeg.len())]);

    let root = imagenet_root(
        "bad-labels",
        &tar,
        "index\tsynset\tname\n0\tn01440764\n",
        &good,
    );
    let e = err_string(ImagenetSample::open(&root));
    assert!(e.contains("labels.tsv: line 2: expected 3"), "{e}");

    std::fs::write(root.join("data/imagenet-sample/labels.tsv"), "idx\tsyn\n").unwrap();
    let e = err_string(ImagenetSample::open(&root));
    assert!(e.contains("labels.tsv: line 1: expected header"), "{e}");

    std::fs::write(root.join("data/imagenet-sample/labels.tsv"), LABELS).unwrap();
    let bad_num = good.replace("\t8\t8\t", "\teight\t8\t");
    std::fs::write(root.join("data/imagenet-sample/manifest.tsv"), bad_num).unwrap();
    let e = err_string(ImagenetSample::open(&root));
    assert!(e.contains("manifest.tsv: line 2: column 'width'"), "{e}");

    let bad_syn = good.replace("0000_n01440764.jpg", "0000_n99999999.jpg");
    std::fs::write(root.join("data/imagenet-sample/manifest.tsv"), bad_syn).unwrap();
    let e = err_string(ImagenetSample::open(&root));
    assert!(e.contains("synset n99999999 is not in labels.tsv"), "{e}");

    std::fs::write(
        root.join("data/imagenet-sample/manifest.tsv"),
        [0xFFu8, 0xFE],
    )
    .unwrap();
    let e = err_string(ImagenetSample::open(&root));
    assert!(e.contains("manifest.tsv: not valid UTF-8"), "{e}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn missing_dirs_and_files_are_named() {
    let root = temp_dir("missing-dir");
    let e = err_string(ImagenetSample::open(&root));
    assert!(
        e.contains("data/imagenet-sample: dataset folder not found"),
        "{e}"
    );
    let e = err_string(Cifar10::open(&root, CifarSplit::Test));
    assert!(e.contains("data/cifar10: dataset folder not found"), "{e}");

    let dir = root.join("data/imagenet-sample");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("labels.tsv"), LABELS).unwrap();
    let e = err_string(ImagenetSample::open(&root));
    assert!(e.contains("images.tar"), "{e}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn cifar_unknown_class_and_good_fake() {
    let root = temp_dir("cifar");
    let dir = root.join("data/cifar10");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("classes.txt"), "airplane\nautomobile\n").unwrap();
    let jpeg = grey_jpeg();
    let tar = tar_bytes(&[("automobile/0000.jpg", &jpeg), ("airplane/0000.jpg", b"xx")]);
    std::fs::write(dir.join("test.tar"), &tar).unwrap();
    let ds = Cifar10::open(&root, CifarSplit::Test).unwrap();
    assert_eq!((ds.len(), ds.num_classes()), (2, 2));
    assert_eq!((ds.label(0), ds.label(1)), (1, 0));
    assert_eq!(ds.image(0).unwrap().width, 8);
    let e = err_string(ds.image(1));
    assert!(
        e.contains("test.tar: member airplane/0000.jpg: not a JPEG"),
        "{e}"
    );
    let e = err_string(Cifar10::open(&root, CifarSplit::Train));
    assert!(e.contains("train.tar"), "{e}");

    let tar = tar_bytes(&[("horse/0000.jpg", &jpeg)]);
    std::fs::write(dir.join("test.tar"), &tar).unwrap();
    let e = err_string(Cifar10::open(&root, CifarSplit::Test));
    assert!(
        e.contains("member horse/0000.jpg: class 'horse' is not listed"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn shared_root_discovery() {
    let base = temp_dir("root");
    let shared = base.join("shared");
    let deep = base.join("project/crates/engine");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&deep).unwrap();
    // No DESIGN.md yet: not recognised.
    let e = err_string(find_shared_root(None, &deep));
    assert!(e.contains("QUANTFARM_DATA"), "{e}");
    std::fs::write(shared.join("DESIGN.md"), "x").unwrap();
    assert_eq!(find_shared_root(None, &deep).unwrap(), shared);
    assert_eq!(
        find_shared_root(None, &base.join("project")).unwrap(),
        shared
    );
    // The variable wins, and must exist.
    assert_eq!(
        find_shared_root(Some(OsStr::new(deep.to_str().unwrap())), Path::new("/")).unwrap(),
        deep
    );
    let e = err_string(find_shared_root(
        Some(OsStr::new("/nonexistent/qf-data")),
        &deep,
    ));
    assert!(
        e.contains("QUANTFARM_DATA=/nonexistent/qf-data does not exist"),
        "{e}"
    );
    // Empty counts as unset.
    assert_eq!(
        find_shared_root(Some(OsStr::new("")), &deep).unwrap(),
        shared
    );
    let _ = std::fs::remove_dir_all(base);
}
