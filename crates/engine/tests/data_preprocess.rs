//! TF-slim preprocessing on synthetic images vs hand-computed values.

use quantfarm_engine::data::{
    RgbImage, central_crop_box, central_crop_resize, resize_bilinear_tf1, to_unit_range,
};

/// R = 10·x, G = 20·y, B = 7 (a horizontal and a vertical gradient).
fn gradient(w: usize, h: usize) -> RgbImage {
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            pixels.extend_from_slice(&[(10 * x) as u8, (20 * y) as u8, 7]);
        }
    }
    RgbImage {
        width: w,
        height: h,
        pixels,
    }
}

fn channel(out: &[f32], w: usize, y: usize, x: usize, c: usize) -> f32 {
    out[(y * w + x) * 3 + c]
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-3
}

#[test]
fn central_crop_box_follows_tf_arithmetic() {
    // start = trunc((side - side*0.875) / 2), size = side - 2*start.
    assert_eq!(central_crop_box(320, 427, 0.875), (20, 26, 280, 375)); // 26.6875 → 26
    assert_eq!(central_crop_box(320, 1096, 0.875), (20, 68, 280, 960)); // 68.5 → 68
    assert_eq!(central_crop_box(32, 32, 0.875), (2, 2, 28, 28));
    assert_eq!(central_crop_box(10, 10, 0.875), (0, 0, 10, 10)); // 0.625 → 0
    assert_eq!(central_crop_box(100, 50, 0.5), (25, 12, 50, 26)); // 12.5 → 12
    // 1.0 and invalid fractions keep the whole image.
    assert_eq!(central_crop_box(7, 9, 1.0), (0, 0, 7, 9));
    assert_eq!(central_crop_box(7, 9, 0.0), (0, 0, 7, 9));
    assert_eq!(central_crop_box(7, 9, f32::NAN), (0, 0, 7, 9));
}

#[test]
fn crop_and_resize_gradient_exact_weights() {
    // 16x16 → crop (1, 1, 14, 14) → 4x4: scale 3.5, src x = 0, 3.5, 7, 10.5
    // → image columns 1, avg(4,5), 8, avg(11,12).
    let img = gradient(16, 16);
    let out = central_crop_resize(&img, 0.875, 4, 4);
    assert_eq!(out.len(), 4 * 4 * 3);
    let want_r = [10.0, 45.0, 80.0, 115.0];
    let want_g = [20.0, 90.0, 160.0, 230.0];
    for (y, g) in want_g.iter().enumerate() {
        for (x, r) in want_r.iter().enumerate() {
            assert!(close(channel(&out, 4, y, x, 0), *r), "R at {y},{x}");
            assert!(close(channel(&out, 4, y, x, 1), *g), "G at {y},{x}");
            assert!(close(channel(&out, 4, y, x, 2), 7.0), "B at {y},{x}");
        }
    }
}

#[test]
fn crop_and_resize_gradient_fractional_weights() {
    // 16 → crop 14 → 5: scale 2.8, src = 0, 2.8, 5.6, 8.4, 11.2 (+1 for the crop).
    let img = gradient(16, 16);
    let out = central_crop_resize(&img, 0.875, 1, 5);
    let want_r = [10.0, 38.0, 66.0, 94.0, 122.0];
    for (x, w) in want_r.iter().enumerate() {
        assert!(
            close(channel(&out, 5, 0, x, 0), *w),
            "R at {x}: {}",
            channel(&out, 5, 0, x, 0)
        );
    }
    // One output row: scale 14, src y = 0 → image row 1 → G = 20.
    assert!(close(channel(&out, 5, 0, 0, 1), 20.0));
}

#[test]
fn tf1_upscale_has_no_half_pixel_offset() {
    // 2x1 → 4x1: src x = 0, 0.5, 1, 1.5 with the upper neighbour clamped to column 1,
    // so the output is a, (a+b)/2, b, b (half-pixel centres would give a, .75a+.25b, ...).
    let img = RgbImage {
        width: 2,
        height: 1,
        pixels: vec![0, 100, 200, 200, 100, 0],
    };
    let out = resize_bilinear_tf1(&img, 1, 4);
    let r: Vec<f32> = (0..4).map(|x| channel(&out, 4, 0, x, 0)).collect();
    let b: Vec<f32> = (0..4).map(|x| channel(&out, 4, 0, x, 2)).collect();
    assert_eq!(r, vec![0.0, 100.0, 200.0, 200.0]);
    assert_eq!(b, vec![200.0, 100.0, 0.0, 0.0]);
    assert!((0..4).all(|x| channel(&out, 4, 0, x, 1) == 100.0));
}

#[test]
fn downscale_samples_top_left_aligned_grid() {
    // 8x8 → 2x2: scale 4, src = 0 and 4: pure point samples, no averaging (no antialias).
    let img = gradient(8, 8);
    let out = resize_bilinear_tf1(&img, 2, 2);
    assert_eq!(channel(&out, 2, 0, 0, 0), 0.0);
    assert_eq!(channel(&out, 2, 0, 1, 0), 40.0);
    assert_eq!(channel(&out, 2, 1, 0, 1), 80.0);
    assert_eq!(channel(&out, 2, 1, 1, 1), 80.0);
}

#[test]
fn identity_size_returns_the_pixels() {
    let img = gradient(5, 3);
    let out = resize_bilinear_tf1(&img, 3, 5);
    let want: Vec<f32> = img.pixels.iter().map(|&p| f32::from(p)).collect();
    assert_eq!(out, want);
}

#[test]
fn unit_range_maps_0_255_to_minus1_plus1() {
    let mut v = vec![0.0, 127.5, 255.0, 51.0];
    to_unit_range(&mut v);
    assert!(close(v[0], -1.0) && close(v[1], 0.0) && close(v[2], 1.0) && close(v[3], -0.6));
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let empty = RgbImage {
        width: 0,
        height: 0,
        pixels: vec![],
    };
    assert_eq!(central_crop_resize(&empty, 0.875, 2, 2), vec![0.0; 12]);
    let inconsistent = RgbImage {
        width: 4,
        height: 4,
        pixels: vec![1; 5],
    };
    assert_eq!(
        central_crop_resize(&inconsistent, 0.875, 1, 1),
        vec![0.0; 3]
    );
    assert!(central_crop_resize(&gradient(3, 3), 0.875, 0, 5).is_empty());
    // A 1x1 image crops to itself and replicates.
    let one = RgbImage {
        width: 1,
        height: 1,
        pixels: vec![9, 8, 7],
    };
    assert_eq!(
        central_crop_resize(&one, 0.875, 2, 1),
        vec![9.0, 8.0, 7.0, 9.0, 8.0, 7.0]
    );
}
