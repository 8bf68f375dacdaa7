//! Bounds on the counts a user, a scenario or a job received over the network can set,
//! and on the memory a model may take.
//!
//! Every entry point checks these before allocating or looping (a job's numbers come
//! from the wire and skip scenario validation), so a malformed request fails with an
//! error naming the value and its bound instead of exhausting memory or time.
//!
//! **Memory.** A small model file can claim huge tensors (a large batch, large images,
//! many ops sharing one weight). Preparing a model (`exec::Interpreter::new`) first
//! plans every large buffer it will hold — the activation arena, the packed weights,
//! the kernels' scratch, copies the caller makes of the inputs — with checked
//! arithmetic, and refuses the model when the total is above the memory limit, before
//! allocating any of it; the model reader (`tflite::read_model_limited`) charges what
//! it copies out of the file against the same limit. The limit defaults to half of the
//! machine's memory ([`default_memory_limit`]) and is set per command and per agent
//! with `--memory-limit SIZE` ([`parse_size`]: `512M`, `4G`, `1.5GiB`, plain bytes).

use std::sync::OnceLock;

use crate::{EngineError, Result};

/// Timed inferences per latency measurement (a sample of 100 000 already resolves the
/// p90 of a 0.1 ms model to a few microseconds).
pub const MAX_RUNS: usize = 100_000;
/// Untimed warm-up inferences before timing.
pub const MAX_WARMUP: usize = 10_000;
/// Engine threads per interpreter (the interpreter's pool spins one worker per thread).
pub const MAX_THREADS: usize = 64;
/// Images in one evaluation or calibration slice (the largest shared dataset,
/// CIFAR-10 train, has 50 000).
pub const MAX_IMAGES: usize = 50_000;
/// Synthetic (self-test) job duration.
pub const MAX_SYNTHETIC_MS: u64 = 3_600_000;

/// Smallest memory limit accepted (a limit of a few bytes is a missing unit, not a choice).
pub const MIN_MEMORY_LIMIT: u64 = 1 << 20;
/// The default memory limit when the machine's memory cannot be read (no
/// `/proc/meminfo`): 4 GiB.
pub const FALLBACK_MEMORY_LIMIT: u64 = 4 << 30;

/// The default memory limit: half of the memory this process can have — the smaller of
/// `MemTotal` in `/proc/meminfo` and a cgroup v2 `memory.max` — or
/// [`FALLBACK_MEMORY_LIMIT`] when neither is readable. Read once per process.
pub fn default_memory_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| mem_total(&s));
        let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        match (meminfo, cgroup) {
            (Some(a), Some(b)) => a.min(b) / 2,
            (Some(a), None) | (None, Some(a)) => a / 2,
            (None, None) => FALLBACK_MEMORY_LIMIT,
        }
        .max(MIN_MEMORY_LIMIT)
    })
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// Parse a memory size: plain bytes (`1073741824`) or a number with a binary unit,
/// `K`, `M`, `G` or `T` (also written `KiB`, `MB`, `g`, ...: every unit is a power of
/// 1024), e.g. `512M`, `4G`, `1.5GiB`. At least [`MIN_MEMORY_LIMIT`].
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = |why: &str| {
        EngineError::bad_input(format!(
            "memory size '{text}' {why} (expected bytes or a number with K, M, G or T, e.g. 512M, 4G)"
        ))
    };
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad("has an unknown unit")),
    };
    let bytes = if let Ok(n) = number.parse::<u64>() {
        n.checked_mul(scale).ok_or_else(|| bad("is too large"))?
    } else {
        let v: f64 = number.parse().map_err(|_| bad("is not a number"))?;
        let b = (v * scale as f64).round();
        if !(b.is_finite() && b < u64::MAX as f64) {
            return Err(bad("is too large"));
        }
        b as u64
    };
    if bytes < MIN_MEMORY_LIMIT {
        return Err(EngineError::bad_input(format!(
            "memory size '{text}' is {}, below the minimum of {} (a unit may be missing: 512M, 4G)",
            format_bytes(bytes),
            format_bytes(MIN_MEMORY_LIMIT)
        )));
    }
    Ok(bytes)
}

/// A byte count for people: `512 B`, `3.4 MiB`, `38.2 GiB` (binary units).
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `value` of `what` must lie in `min..=max`.
pub fn check_range(what: &str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min || value > max {
        return Err(EngineError::bad_input(format!(
            "{what} = {value} is out of range: expected {min}..={max}"
        )));
    }
    Ok(())
}

/// A thread count: 1..=[`MAX_THREADS`].
pub fn check_threads(threads: usize) -> Result<()> {
    check_range("threads", threads as u64, 1, MAX_THREADS as u64)
}

/// A number of images to evaluate or calibrate on: 1..=[`MAX_IMAGES`].
pub fn check_images(what: &str, n: usize) -> Result<()> {
    check_range(what, n as u64, 1, MAX_IMAGES as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive_and_name_the_value() {
        assert!(check_range("runs", 1, 1, 10).is_ok());
        assert!(check_range("runs", 10, 1, 10).is_ok());
        let e = check_range("runs", 0, 1, 10).unwrap_err().to_string();
        assert!(e.contains("runs = 0") && e.contains("1..=10"), "{e}");
        assert!(check_threads(0).is_err());
        assert!(check_threads(MAX_THREADS + 1).is_err());
        assert!(check_images("limit", 0).is_err());
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("4g").unwrap(), 4 << 30);
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("4 GB").unwrap(), 4 << 30);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("2T").unwrap(), 2 << 40);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("1024K").unwrap(), 1 << 20);
        for bad in [
            "",
            "G",
            "4X",
            "-1G",
            "1.2.3G",
            "99999999999999999999T",
            "4",
            "1023K",
        ] {
            let e = parse_size(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
        assert!(
            parse_size("4")
                .unwrap_err()
                .to_string()
                .contains("unit may be missing")
        );
    }

    #[test]
    fn bytes_format_in_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(12 << 30), "12.0 GiB");
        assert_eq!(format_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn default_limit_is_half_the_machine() {
        assert_eq!(
            mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24576000 * 1024)
        );
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        let limit = default_memory_limit();
        assert!(limit >= MIN_MEMORY_LIMIT);
        if let Some(total) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| mem_total(&s))
        {
            assert!(limit <= total / 2, "{limit} of {total}");
        }
    }
}
