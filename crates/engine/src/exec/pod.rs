//! The element types the arena hands out as typed slices.

/// The few plain-old-data types the arena hands out as typed slices.
///
/// # Safety
/// Implementors must be plain data: any bit pattern valid, no padding, no drop.
pub unsafe trait Pod: Copy + 'static {}

/// Marks primitive numbers as [`Pod`].
macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive number (f16 is a transparent u16): every bit pattern is a
        // value, there is no padding and no drop glue.
        unsafe impl Pod for $t {}
    )*};
}

pod!(u8, i8, u16, i16, u32, i32, u64, i64, f32, half::f16);
