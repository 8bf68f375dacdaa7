//! One 64-byte aligned block of memory holding every runtime tensor.

use super::pod::Pod;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

pub struct Arena {
    /// Owns the memory; never touched after construction, all access goes through
    /// `base` so that writes never derive from a shared borrow of the Vec.
    _storage: Vec<Line>,
    base: *mut u8,
    capacity: usize,
    len: usize,
}

// SAFETY: the arena owns its memory exclusively; `base` points into `_storage`.
unsafe impl Send for Arena {}

impl Arena {
    pub fn new(len: usize) -> Arena {
        let mut storage = vec![Line([0; 64]); len.div_ceil(64)];
        let base = storage.as_mut_ptr() as *mut u8;
        Arena {
            capacity: storage.len() * 64,
            _storage: storage,
            base,
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn check(&self, offset: usize, bytes: usize) {
        assert!(
            offset
                .checked_add(bytes)
                .is_some_and(|end| end <= self.capacity),
            "arena access {offset}+{bytes} outside {} bytes",
            self.len
        );
    }

    pub fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        self.check(offset, len);
        // SAFETY: in bounds (checked); Line is plain bytes.
        unsafe { std::slice::from_raw_parts(self.base.add(offset), len) }
    }

    pub fn bytes_mut(&mut self, offset: usize, len: usize) -> &mut [u8] {
        self.check(offset, len);
        // SAFETY: in bounds (checked); exclusive borrow of the arena.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(offset), len) }
    }

    /// A typed view of `count` elements at `offset`.
    ///
    /// # Safety
    /// `offset` must be aligned for `T` and no mutable view of the range may exist.
    pub unsafe fn typed<T: Pod>(&self, offset: usize, count: usize) -> &[T] {
        let bytes = count * std::mem::size_of::<T>();
        self.check(offset, bytes);
        debug_assert_eq!(offset % std::mem::align_of::<T>(), 0);
        // SAFETY: bounds checked above; alignment and aliasing are the caller's contract.
        unsafe { std::slice::from_raw_parts(self.base.add(offset) as *const T, count) }
    }

    /// A typed mutable view of `count` elements at `offset`.
    ///
    /// # Safety
    /// `offset` must be aligned for `T` and the range must not overlap any other view
    /// alive at the same time.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn typed_mut<T: Pod>(&self, offset: usize, count: usize) -> &mut [T] {
        let bytes = count * std::mem::size_of::<T>();
        self.check(offset, bytes);
        debug_assert_eq!(offset % std::mem::align_of::<T>(), 0);
        // SAFETY: as above; `base` came from a mutable borrow at construction, and the
        // caller guarantees no other view of this range is alive.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(offset) as *mut T, count) }
    }
}
