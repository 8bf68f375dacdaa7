//! A model's size as the optimization guide reports it: bytes on disk, and bytes after
//! gzip. The gzip size is where pruning's zeros and clustering's repeated values pay
//! off (TFMOT's examples report it the same way); the file itself does not shrink.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Bytes of `data` compressed with gzip at zlib's default level (6), counted without
/// keeping the compressed stream.
pub fn gzip_size(data: &[u8]) -> u64 {
    let mut enc = GzEncoder::new(Counter(0), Compression::default());
    // Writing to a counter cannot fail.
    enc.write_all(data).expect("counting writer");
    enc.finish().expect("counting writer").0
}

/// A writer that only counts what it is given.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_compress_and_noise_does_not() {
        let zeros = vec![0u8; 100_000];
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(gzip_size(&zeros) < 1_000, "{}", gzip_size(&zeros));
        assert!(gzip_size(&noise) > 99_000, "{}", gzip_size(&noise));
        // The same bytes give the same size (the stream has no time stamp).
        assert_eq!(gzip_size(&noise), gzip_size(&noise.clone()));
        // An empty input is the gzip header and trailer only.
        assert!((18..=30).contains(&gzip_size(&[])));
    }
}
