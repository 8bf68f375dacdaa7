//! CPU feature detection and choice of the SIMD path used by the fast kernels.
//!
//! Features are detected once and cached. The ISA actually used is the best one the
//! CPU supports, capped by (in order) the env var `QUANTFARM_ISA=portable|avx2|avx512`,
//! a process-wide override ([`set_isa_cap`]) and a per-thread override ([`with_isa`]).
//! A cap can only lower the ISA: asking for AVX-512 on a CPU without it gives the best
//! available path, so a selected ISA is always safe to execute.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// What the CPU can do (all `false` on non-x86_64 targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// AVX2 and FMA3 both present (the AVX2 path needs both).
    pub avx2_fma: bool,
    pub avx512f: bool,
    pub avx512vnni: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512dq: bool,
    pub avx512fp16: bool,
    pub f16c: bool,
    /// AMX tiles with 8-bit dot products (AMX-TILE and AMX-INT8 in CPUID). Using them
    /// also needs the OS permission of [`amx_usable`].
    pub amx_int8: bool,
}

/// The SIMD family a fast kernel runs with. Ordered: `Portable < Avx2 < Avx512`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust written so the compiler can autovectorize (baseline target features).
    Portable,
    /// AVX2 + FMA3, 256-bit.
    Avx2,
    /// AVX-512F, 512-bit.
    Avx512,
}

impl Isa {
    /// Parses `portable`, `avx2` or `avx512` (case-insensitive).
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" | "scalar" | "generic" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx512f" => Some(Isa::Avx512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Isa::Portable => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
        }
    }

    fn from_u8(v: u8) -> Option<Isa> {
        match v {
            1 => Some(Isa::Portable),
            2 => Some(Isa::Avx2),
            3 => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// Detected CPU features (detected on first call, then cached).
pub fn features() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> CpuFeatures {
    use std::arch::is_x86_feature_detected as has;
    CpuFeatures {
        avx2_fma: has!("avx2") && has!("fma"),
        avx512f: has!("avx512f"),
        avx512vnni: has!("avx512vnni"),
        avx512bw: has!("avx512bw"),
        avx512vl: has!("avx512vl"),
        avx512dq: has!("avx512dq"),
        avx512fp16: has!("avx512fp16"),
        f16c: has!("f16c"),
        amx_int8: cpuid_amx_int8(),
    }
}

/// CPUID leaf 7 EDX: bit 24 AMX-TILE, bit 25 AMX-INT8 (std's feature names for AMX are
/// not stable yet).
#[cfg(target_arch = "x86_64")]
fn cpuid_amx_int8() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    edx & (1 << 24) != 0 && edx & (1 << 25) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> CpuFeatures {
    CpuFeatures::default()
}

/// The best ISA the CPU supports, ignoring every cap.
pub fn detected_isa() -> Isa {
    let f = features();
    // The AVX-512 kernels also use FMA/AVX2 helpers, so require both families.
    if f.avx512f && f.avx2_fma {
        Isa::Avx512
    } else if f.avx2_fma {
        Isa::Avx2
    } else {
        Isa::Portable
    }
}

fn env_cap() -> Option<Isa> {
    static CAP: OnceLock<Option<Isa>> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("QUANTFARM_ISA")
            .ok()
            .and_then(|v| Isa::parse(&v))
    })
}

/// 0 = no process-wide cap.
static GLOBAL_CAP: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static THREAD_CAP: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Sets (or clears with `None`) a process-wide cap on the ISA, on top of `QUANTFARM_ISA`.
pub fn set_isa_cap(cap: Option<Isa>) {
    GLOBAL_CAP.store(cap.map_or(0, Isa::to_u8), Ordering::Relaxed);
}

/// Runs `f` with the ISA capped to `isa` on this thread only (tests use it to force each
/// path while running in parallel). Kernels read the ISA once on the calling thread, so
/// the cap also covers the pool workers they fan out to.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_CAP.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_CAP.with(|c| c.replace(Some(isa))));
    f()
}

/// The ISA the fast kernels use now: detected, capped by env, global and thread caps.
pub fn selected_isa() -> Isa {
    let mut isa = detected_isa();
    if let Some(cap) = env_cap() {
        isa = isa.min(cap);
    }
    if let Some(cap) = Isa::from_u8(GLOBAL_CAP.load(Ordering::Relaxed)) {
        isa = isa.min(cap);
    }
    if let Some(cap) = THREAD_CAP.with(|c| c.get()) {
        isa = isa.min(cap);
    }
    isa
}

/// Lowers `isa` to what the CPU really supports (guards every SIMD dispatch).
pub(crate) fn clamp_to_detected(isa: Isa) -> Isa {
    isa.min(detected_isa())
}

/// Whether this process may execute AMX tile instructions: the CPU has AMX-INT8 and
/// Linux granted the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`,
/// asked once per process; without it the first tile instruction faults).
pub fn amx_usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| features().amx_int8 && request_amx_permission())
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_amx_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes the process's permitted
    // XSAVE features; it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_amx_permission() -> bool {
    false
}

fn env_amx_off() -> bool {
    static OFF: OnceLock<bool> = OnceLock::new();
    *OFF.get_or_init(|| {
        std::env::var("QUANTFARM_AMX").is_ok_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "0" | "off" | "no" | "false"
            )
        })
    })
}

thread_local! {
    static THREAD_AMX: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the 8-bit GEMM uses AMX tiles now: usable, the selected ISA is AVX-512 (the
/// tile kernels' epilogue is AVX-512), not turned off by `QUANTFARM_AMX=off` or
/// [`with_amx`].
pub fn amx_selected() -> bool {
    selected_isa() == Isa::Avx512
        && !env_amx_off()
        && THREAD_AMX.with(|c| c.get()).unwrap_or(true)
        && amx_usable()
}

/// Runs `f` with AMX allowed (`true`, still only where usable) or kept off on this
/// thread (tests run every kernel both ways).
pub fn with_amx<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_AMX.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(THREAD_AMX.with(|c| c.replace(Some(on))));
    f()
}

/// Every ISA this machine can run, lowest first (tests iterate over it).
pub fn available_isas() -> Vec<Isa> {
    let best = detected_isa();
    [Isa::Portable, Isa::Avx2, Isa::Avx512]
        .into_iter()
        .filter(|&i| i <= best)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_caps() {
        assert_eq!(Isa::parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse("portable"), Some(Isa::Portable));
        assert_eq!(Isa::parse("neon"), None);
        assert!(available_isas().contains(&Isa::Portable));
        with_isa(Isa::Portable, || assert_eq!(selected_isa(), Isa::Portable));
        // Nested caps restore the outer one.
        with_isa(Isa::Avx512, || {
            let outer = selected_isa();
            with_isa(Isa::Portable, || assert_eq!(selected_isa(), Isa::Portable));
            assert_eq!(selected_isa(), outer);
        });
        assert!(clamp_to_detected(Isa::Avx512) <= detected_isa());
    }
}
