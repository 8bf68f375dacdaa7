//! Type-generic data movement for PACK, UNPACK and GATHER_ND: elements are moved as
//! opaque values of their width, so one instantiation per width serves every dtype.

/// PACK: `inputs` all of shape `S`; output `S[..axis] + [N] + S[axis..]` where
/// `outer = Π S[..axis]` and `inner = Π S[axis..]`.
pub fn pack<T: Copy>(inputs: &[&[T]], outer: usize, inner: usize, y: &mut [T]) {
    let n = inputs.len();
    for o in 0..outer {
        for (k, x) in inputs.iter().enumerate() {
            y[(o * n + k) * inner..][..inner].copy_from_slice(&x[o * inner..][..inner]);
        }
    }
}

/// UNPACK: the input is `[outer, N, inner]`; output `k` receives `[outer, inner]`.
pub fn unpack<T: Copy>(x: &[T], outer: usize, inner: usize, outputs: &mut [&mut [T]]) {
    let n = outputs.len();
    for o in 0..outer {
        for (k, y) in outputs.iter_mut().enumerate() {
            y[o * inner..][..inner].copy_from_slice(&x[(o * n + k) * inner..][..inner]);
        }
    }
}

/// GATHER_ND: `indices` holds `count` tuples of `depth` coordinates into `shape`;
/// each tuple selects a slice of `Π shape[depth..]` elements. `Err(position)` for
/// an out-of-range coordinate (the output is then left partly written).
pub fn gather_nd<T: Copy>(
    x: &[T],
    shape: &[usize],
    indices: &[i64],
    depth: usize,
    y: &mut [T],
) -> Result<(), usize> {
    let slice: usize = shape[depth..].iter().product();
    if depth == 0 {
        for chunk in y.chunks_exact_mut(slice.max(1)) {
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
        return Ok(());
    }
    for (t, (tuple, out)) in indices
        .chunks_exact(depth)
        .zip(y.chunks_exact_mut(slice.max(1)))
        .enumerate()
    {
        let mut off = 0usize;
        for (d, &i) in tuple.iter().enumerate() {
            if i < 0 || i as usize >= shape[d] {
                return Err(t);
            }
            off = off * shape[d] + i as usize;
        }
        out.copy_from_slice(&x[off * slice..][..out.len()]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip() {
        // Two [2, 3] inputs packed on axis 1 → [2, 2, 3].
        let a = [1u8, 2, 3, 4, 5, 6];
        let b = [7u8, 8, 9, 10, 11, 12];
        let mut y = [0u8; 12];
        pack(&[&a, &b], 2, 3, &mut y);
        assert_eq!(y, [1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12]);
        let (mut p, mut q) = ([0u8; 6], [0u8; 6]);
        unpack(&y, 2, 3, &mut [&mut p[..], &mut q[..]]);
        assert_eq!((p, q), (a, b));
        // Axis 0 of scalars-per-row: [3] ×2 → [2, 3] (outer 1).
        let mut y = [0i32; 6];
        pack(&[&[1i32, 2, 3][..], &[4, 5, 6][..]], 1, 3, &mut y);
        assert_eq!(y, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn gather_nd_slices_and_elements() {
        // params [2, 2, 2]; indices [[1, 0], [0, 1]] → slices of 2.
        let x: Vec<i8> = (0..8).collect();
        let mut y = [0i8; 4];
        gather_nd(&x, &[2, 2, 2], &[1, 0, 0, 1], 2, &mut y).unwrap();
        assert_eq!(y, [4, 5, 2, 3]);
        // Full-depth indices pick single elements.
        let mut y = [0i8; 2];
        gather_nd(&x, &[2, 2, 2], &[1, 1, 1, 0, 0, 1], 3, &mut y).unwrap();
        assert_eq!(y, [7, 1]);
        assert_eq!(
            gather_nd(&x, &[2, 2, 2], &[2, 0, 0], 3, &mut y[..1]),
            Err(0)
        );
    }
}
