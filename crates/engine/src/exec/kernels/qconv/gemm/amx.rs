//! AMX-INT8 tile kernels of the 8-bit GEMM ([`super::narrow`]).
//!
//! A tile register holds 16 rows of 64 bytes. `TDPBUSD`/`TDPBSSD` multiply a 16×64
//! byte tile of input rows (unsigned or signed bytes) with a 16-row tile of weights in
//! the VNNI layout (row `k/4` holds, for 16 channels, 4 bytes of consecutive `k`) and
//! add the products of each group of four into the 16×16 int32 sums without
//! saturation: the same wrapping int32 sums as `vpdpbusd` and as the reference, so
//! the same requantization gives the same bytes.
//!
//! Register use: four accumulators (two 16-row tiles × two 16-channel blocks), two
//! input tiles, two weight tiles; each 64-deep step loads four tiles for four dot
//! products of 16K MACs each.
//!
//! Rust has no stable AMX intrinsics, so the instructions are inline assembly. Tile
//! registers are touched only inside this module; Linux saves them on context switches
//! once the process has the permission of [`cpu::amx_usable`].
//!
//! [`cpu::amx_usable`]: crate::exec::kernels::cpu::amx_usable

use std::arch::asm;
use std::marker::PhantomData;

/// Rows of one tile (input rows or int32 output rows per tile).
pub(super) const TILE_ROWS: usize = 16;
/// Bytes of `k` per tile step.
pub(super) const TILE_K: usize = 64;
/// Bytes of one weight tile (16 rows of 64 bytes).
pub(super) const B_TILE_BYTES: usize = TILE_ROWS * TILE_K;

/// Palette 1 with eight tiles of 16 rows × 64 bytes (the layout of `LDTILECFG`:
/// palette byte, start row, 14 reserved bytes, 16 two-byte row widths, 16 row counts).
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = TILE_K as u8;
        c[48 + t] = TILE_ROWS as u8;
        t += 1;
    }
    TileConfig(c)
};

/// The tile configuration loaded on this thread; released on drop. Not `Send`: tile
/// state belongs to the thread that configured it.
pub(super) struct Tiles {
    _thread_bound: PhantomData<*const ()>,
}

impl Tiles {
    /// Configures the tile registers of this thread.
    ///
    /// # Safety
    /// The CPU has AMX-INT8 and the process has the tile data permission
    /// (`cpu::amx_usable()` returned true).
    pub(super) unsafe fn configure() -> Self {
        // SAFETY: AMX is usable (caller); CONFIG is a valid palette-1 configuration
        // of 64 bytes.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG.0, options(nostack, readonly)) };
        Tiles {
            _thread_bound: PhantomData,
        }
    }

    /// `c[32 × 32]` (int32, row stride `ldc` int32) becomes the 32 rows of `a` (row
    /// stride `lda` bytes, `64·kt` bytes used per row) times the weight panels `b0` and
    /// `b1` (16 channels each, `kt` tiles of 1 KiB one after another), plus the old `c`
    /// if `accumulate`. With `b1 = None` only the first 16 columns of `c` are touched.
    ///
    /// # Safety
    /// `a` is readable for 32 rows of `64·kt` bytes at stride `lda`; `b0` (and `b1`) for
    /// `kt` KiB; `c` readable and writable for 32 rows of 32 int32 at stride `ldc`.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn block<const SIGNED: bool>(
        &self,
        a: *const u8,
        lda: usize,
        kt: usize,
        b0: *const i8,
        b1: Option<*const i8>,
        c: *mut i32,
        ldc: usize,
        accumulate: bool,
    ) {
        let a1 = a.wrapping_add(TILE_ROWS * lda);
        let (c1, c2, c3) = (
            c.wrapping_add(TILE_K / 4),
            c.wrapping_add(TILE_ROWS * ldc),
            c.wrapping_add(TILE_ROWS * ldc + TILE_K / 4),
        );
        // Row strides in bytes: 64 for weights, `4·ldc` for the int32 sums.
        let (sb, sc) = (TILE_K, 4 * ldc);
        // SAFETY: the tiles are configured on this thread (`self`); zeroing tiles
        // touches no memory, loads read `c` as the caller guarantees. (The blocks
        // below: every access stays in the ranges the caller guarantees.)
        unsafe {
            if accumulate {
                asm!(
                    "tileloadd tmm0, [{c0} + {sc}*1]",
                    "tileloadd tmm1, [{c1} + {sc}*1]",
                    "tileloadd tmm2, [{c2} + {sc}*1]",
                    "tileloadd tmm3, [{c3} + {sc}*1]",
                    c0 = in(reg) c,
                    c1 = in(reg) c1,
                    c2 = in(reg) c2,
                    c3 = in(reg) c3,
                    sc = in(reg) sc,
                    options(nostack, readonly)
                );
            } else {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
            }
        }
        for t in 0..kt {
            let (ak0, ak1) = (a.wrapping_add(t * TILE_K), a1.wrapping_add(t * TILE_K));
            let bk0 = b0.wrapping_add(t * B_TILE_BYTES);
            match b1 {
                Some(b1) => {
                    let bk1 = b1.wrapping_add(t * B_TILE_BYTES);
                    macro_rules! step2 {
                        ($dp:literal) => {
                            // SAFETY: see above.
                            unsafe {
                                asm!(
                                    "tileloadd tmm4, [{a0} + {lda}*1]",
                                    "tileloadd tmm6, [{b0} + {sb}*1]",
                                    "tileloadd tmm7, [{b1} + {sb}*1]",
                                    concat!($dp, " tmm0, tmm4, tmm6"),
                                    "tileloadd tmm5, [{a1} + {lda}*1]",
                                    concat!($dp, " tmm1, tmm4, tmm7"),
                                    concat!($dp, " tmm2, tmm5, tmm6"),
                                    concat!($dp, " tmm3, tmm5, tmm7"),
                                    a0 = in(reg) ak0,
                                    a1 = in(reg) ak1,
                                    b0 = in(reg) bk0,
                                    b1 = in(reg) bk1,
                                    lda = in(reg) lda,
                                    sb = in(reg) sb,
                                    options(nostack, readonly)
                                )
                            }
                        };
                    }
                    if SIGNED {
                        step2!("tdpbssd")
                    } else {
                        step2!("tdpbusd")
                    }
                }
                None => {
                    macro_rules! step1 {
                        ($dp:literal) => {
                            // SAFETY: see above.
                            unsafe {
                                asm!(
                                    "tileloadd tmm4, [{a0} + {lda}*1]",
                                    "tileloadd tmm6, [{b0} + {sb}*1]",
                                    concat!($dp, " tmm0, tmm4, tmm6"),
                                    "tileloadd tmm5, [{a1} + {lda}*1]",
                                    concat!($dp, " tmm2, tmm5, tmm6"),
                                    a0 = in(reg) ak0,
                                    a1 = in(reg) ak1,
                                    b0 = in(reg) bk0,
                                    lda = in(reg) lda,
                                    sb = in(reg) sb,
                                    options(nostack, readonly)
                                )
                            }
                        };
                    }
                    if SIGNED {
                        step1!("tdpbssd")
                    } else {
                        step1!("tdpbusd")
                    }
                }
            }
        }
        // SAFETY: see above; `c` holds 32 rows of 32 int32 at stride `ldc`.
        unsafe {
            asm!(
                "tilestored [{c0} + {sc}*1], tmm0",
                "tilestored [{c2} + {sc}*1], tmm2",
                c0 = in(reg) c,
                c2 = in(reg) c2,
                sc = in(reg) sc,
                options(nostack)
            );
            if b1.is_some() {
                asm!(
                    "tilestored [{c1} + {sc}*1], tmm1",
                    "tilestored [{c3} + {sc}*1], tmm3",
                    c1 = in(reg) c1,
                    c3 = in(reg) c3,
                    sc = in(reg) sc,
                    options(nostack)
                );
            }
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by this thread (`configure`); releasing
        // returns them to the initial state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}
