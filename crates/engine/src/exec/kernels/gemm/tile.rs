//! What the GEMM driver (`super`) and its micro-kernels (`x86`, `portable`) share:
//! the panel width, one tile call's operands, an ISA's kernel family, and the bounds
//! check every SIMD kernel runs before it reads through raw pointers.

/// Panel width (columns of B per packed panel).
pub(super) const NR: usize = 16;

/// One micro-kernel call: `mr` valid rows (of the kernel's MR) × `ncols` valid
/// columns; `b`/`bias` start at the first of the `np` panels, `c` at the tile's corner.
pub(super) struct Tile<'a> {
    pub k: usize,
    /// Packed A tile (`lda == 0`), or row-major rows `lda` floats apart (direct kernels).
    pub a: &'a [f32],
    pub lda: usize,
    pub b: &'a [f32],
    pub bias: &'a [f32],
    pub np: usize,
    pub c: &'a mut [f32],
    pub ldc: usize,
    pub mr: usize,
    pub ncols: usize,
    pub min: f32,
    pub max: f32,
}

/// An ISA's micro-kernel family.
#[derive(Clone, Copy)]
pub(super) struct Kernel {
    /// Rows per tile (A packing stride).
    pub mr: usize,
    /// Panels per GEMM tile call.
    pub tile_panels: usize,
    /// Panels per GEMV call (MR = 1).
    pub gemv_panels: usize,
    pub tile: fn(Tile<'_>),
    pub gemv: fn(Tile<'_>),
    /// Rows per direct tile (A read in place, no packing).
    pub direct_mr: usize,
    /// Panels per direct tile call.
    pub direct_panels: usize,
    pub direct: fn(Tile<'_>),
}

/// Checks a tile's slices before a SIMD kernel dereferences raw pointers into them.
pub(super) fn check_tile(t: &Tile<'_>, mr_stride: usize) {
    if t.lda == 0 {
        assert!(t.a.len() >= t.k * mr_stride, "packed A too short");
    } else {
        assert!(
            t.lda >= t.k && t.a.len() >= (t.mr - 1) * t.lda + t.k,
            "A rows too short"
        );
    }
    assert!(t.b.len() >= t.np * t.k * NR, "packed B too short");
    assert!(t.bias.len() >= t.np * NR, "bias too short");
    assert!(t.np >= 1 && t.ncols <= t.np * NR && t.mr <= mr_stride && t.mr >= 1);
    assert!(
        t.c.len() >= (t.mr - 1) * t.ldc + t.ncols,
        "output tile too short"
    );
}
