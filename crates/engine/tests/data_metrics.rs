//! top_k, TopK and slice_range.

use quantfarm_engine::data::{TopK, slice_range, top_k};

#[test]
fn top_k_orders_best_first_and_breaks_ties_by_index() {
    let s = [0.1, 0.5, 0.3, 0.5, 0.9, 0.0];
    assert_eq!(top_k(&s, 1), vec![4]);
    assert_eq!(top_k(&s, 3), vec![4, 1, 3]);
    assert_eq!(top_k(&s, 6), vec![4, 1, 3, 2, 0, 5]);
    assert_eq!(top_k(&s, 10), vec![4, 1, 3, 2, 0, 5]);
    assert!(top_k(&s, 0).is_empty());
    assert!(top_k(&[], 5).is_empty());
    // All equal → the first k indices.
    assert_eq!(top_k(&[2.0; 8], 5), vec![0, 1, 2, 3, 4]);
    // NaN ranks last; negative scores fine.
    assert_eq!(top_k(&[f32::NAN, -3.0, -1.0], 3), vec![2, 1, 0]);
    // Larger input: k largest of a permutation.
    let v: Vec<f32> = (0..1001).map(|i| ((i * 37) % 1001) as f32).collect();
    let best = top_k(&v, 5);
    let vals: Vec<f32> = best.iter().map(|&i| v[i]).collect();
    assert_eq!(vals, vec![1000.0, 999.0, 998.0, 997.0, 996.0]);
}

#[test]
fn topk_accumulates_top1_and_top5() {
    let mut m = TopK::new();
    assert_eq!((m.n(), m.top1(), m.top5()), (0, 0.0, 0.0));
    let scores = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]; // ranking 6,5,4,3,2,1,0
    m.update(&scores, 6); // top-1 hit
    m.update(&scores, 2); // top-5 hit only
    m.update(&scores, 1); // miss (rank 6)
    m.update(&scores, 99); // label out of range: a miss, not a panic
    assert_eq!(m.n(), 4);
    assert_eq!(m.top1(), 0.25);
    assert_eq!(m.top5(), 0.5);
    let mut other = TopK::new();
    other.update(&[1.0, 0.0], 0);
    m.merge(&other);
    assert_eq!((m.n(), m.hits1(), m.hits5()), (5, 2, 3));
    // Tie at the top: the lower index wins top-1.
    let mut t = TopK::new();
    t.update(&[0.5, 0.5], 1);
    assert_eq!((t.top1(), t.top5()), (0.0, 1.0));
}

#[test]
fn slice_range_in_range() {
    assert_eq!(slice_range(1000, 0, None).unwrap(), 0..1000);
    assert_eq!(slice_range(1000, 10, Some(90)).unwrap(), 10..100);
    assert_eq!(slice_range(1000, 999, Some(1)).unwrap(), 999..1000);
    assert_eq!(slice_range(1000, 0, Some(1000)).unwrap(), 0..1000);
    assert_eq!(slice_range(1000, 5, Some(0)).unwrap(), 5..5);
}

#[test]
fn slice_range_errors_are_clear() {
    let e = slice_range(1000, 1000, None).unwrap_err().to_string();
    assert!(e.contains("offset 1000") && e.contains("1000 items"), "{e}");
    let e = slice_range(1000, 990, Some(20)).unwrap_err().to_string();
    assert!(e.contains("limit 20") && e.contains("at most 10"), "{e}");
    let e = slice_range(1000, 1, Some(usize::MAX))
        .unwrap_err()
        .to_string();
    assert!(e.contains("past the end"), "{e}");
    assert!(slice_range(0, 0, None).is_err());
}

#[test]
fn nan_scores_are_counted_and_never_a_hit() {
    let mut m = TopK::new();
    // A diverged model: every score NaN. The tie rule would name class 0; it must not
    // score on class-0 images.
    m.update(&[f32::NAN; 10], 0);
    assert_eq!((m.n(), m.hits1(), m.hits5(), m.nonfinite()), (1, 0, 0, 1));
    // Some scores NaN: the finite ones still rank.
    m.update(&[f32::NAN, 0.2, 0.9], 2);
    assert_eq!((m.hits1(), m.nonfinite()), (1, 2));
    m.update(&[0.1, f32::INFINITY, 0.3], 1);
    assert_eq!((m.hits1(), m.nonfinite()), (2, 3));
    let mut other = TopK::new();
    other.update(&[f32::NAN; 3], 1);
    m.merge(&other);
    assert_eq!((m.n(), m.nonfinite()), (4, 4));
}
