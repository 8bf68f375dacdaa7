//! Integer kernels for every quantized op except conv/depthwise/FC and LSTM, written
//! to reproduce TFLite's reference kernels bit for bit (`docs/quantization-spec.md`).
//!
//! Kernels work on plain slices and prepared parameter structs; all multipliers and
//! tables are computed once at preparation.

pub mod act16;
pub mod binary;
pub mod gemmlowp;
pub mod lut;
pub mod mean;
pub mod pool;
pub mod requant;
pub mod resize;
pub mod shape;
pub mod softmax;

/// The integer element types of quantized tensors, widened to `i32` for arithmetic.
pub trait QInt: Copy + Send + Sync + 'static {
    const MIN: i32;
    const MAX: i32;
    fn get(self) -> i32;
    /// From a value already clamped into `[MIN, MAX]`.
    fn put(v: i32) -> Self;
}

macro_rules! qint {
    ($t:ty) => {
        impl QInt for $t {
            const MIN: i32 = <$t>::MIN as i32;
            const MAX: i32 = <$t>::MAX as i32;
            #[inline(always)]
            fn get(self) -> i32 {
                self as i32
            }
            #[inline(always)]
            fn put(v: i32) -> Self {
                v as $t
            }
        }
    };
}
qint!(u8);
qint!(i8);
qint!(i16);

/// Clamp `v` to `[lo, hi]` and store it as `T`.
#[inline(always)]
pub fn clamp_to<T: QInt>(v: i32, lo: i32, hi: i32) -> T {
    T::put(v.max(lo).min(hi))
}
