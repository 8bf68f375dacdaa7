//! Run-time ISA choice for the plain-Rust loops of the integer kernels: one
//! `#[inline(always)]` function compiled three times (baseline, AVX2, AVX-512) by
//! [`multiversion!`] and called through [`dispatch!`] with the ISA read once when the
//! kernel is packed ([`isa_now`]).

use crate::exec::kernels::cpu::{self, Isa};

/// Generates AVX2 and AVX-512 copies of a plain `#[inline(always)]` function.
macro_rules! multiversion {
    ($name:ident, $avx2:ident, $avx512:ident, <$($g:ident : $b:path),*> ($($arg:ident : $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn $avx2<$($g: $b),*>($($arg: $ty),*) {
            $name($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
        fn $avx512<$($g: $b),*>($($arg: $ty),*) {
            $name($($arg),*)
        }
    };
}

/// Calls the copy of a multiversioned function matching `isa`.
macro_rules! dispatch {
    ($isa:expr, $name:ident, $avx2:ident, $avx512:ident, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            match $isa {
                // SAFETY: `isa` was clamped to the detected CPU features when the kernel
                // was packed (`isa_now`), so AVX-512F/BW, AVX2 and FMA are present.
                Isa::Avx512 => unsafe { $avx512($($arg),*) },
                // SAFETY: as above, AVX2 and FMA are present.
                Isa::Avx2 => unsafe { $avx2($($arg),*) },
                Isa::Portable => $name($($arg),*),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $name($($arg),*)
        }
    }};
}

pub(super) fn isa_now() -> Isa {
    let isa = cpu::clamp_to_detected(cpu::selected_isa());
    // The AVX-512 copies also use avx512bw.
    if isa == Isa::Avx512 && !cpu::features().avx512bw {
        Isa::Avx2
    } else {
        isa
    }
}

pub(super) use {dispatch, multiversion};
