//! The element types the arena hands out as typed slices.

/// The few plain-old-data types the arena hands out as typed slices.
///
/// # Safety
/// Implementors must be plain data: any bit pattern valid, no padding, no drop.
pub unsafe trait Pod: Copy + 'static {}
unsafe impl Pod for u8 {}
unsafe impl Pod for i8 {}
unsafe impl Pod for u16 {}
unsafe impl Pod for i16 {}
unsafe impl Pod for u32 {}
unsafe impl Pod for i32 {}
unsafe impl Pod for u64 {}
unsafe impl Pod for i64 {}
unsafe impl Pod for f32 {}
unsafe impl Pod for half::f16 {}
