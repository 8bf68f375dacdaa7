//! The data appended after the FlatBuffer: in practice a ZIP archive of "associated
//! files" (label lists) that the TFLite metadata tooling adds.
//!
//! The tooling writes the ZIP's offsets relative to the start of the whole file
//! (the file is a valid ZIP with the FlatBuffer as a prefix). Since a rewritten
//! FlatBuffer has a different length, the reader stores the archive *normalised*
//! (offsets relative to the archive's own first byte, i.e. a standalone ZIP) and
//! the writer rebases the offsets onto the new FlatBuffer length. Read → write →
//! read therefore gives identical `Model::trailing` bytes, and the written file
//! stays a valid ZIP.

const EOCD_SIG: u32 = 0x0605_4b50;
const CDH_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CDH_LEN: usize = 46;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Where the parts of a ZIP archive that ends exactly at the end of `b` are.
struct ZipLayout {
    eocd: usize,
    /// Position of the central directory in `b`.
    cd_pos: usize,
    /// Positions (in `b`) of the local-header-offset field of each central entry.
    offset_fields: Vec<usize>,
    /// Smallest local header offset stored in the central directory (relative to
    /// the archive's base), `None` for an archive without entries.
    min_local: Option<u32>,
}

/// Parse the end of central directory record and the central directory of a ZIP
/// that ends at the end of `b`. `None` if there is none or it is inconsistent
/// (including ZIP64 archives, which the metadata tooling does not produce).
fn layout(b: &[u8]) -> Option<ZipLayout> {
    if b.len() < EOCD_LEN {
        return None;
    }
    // The EOCD record is followed only by its comment (at most 65535 bytes).
    let lowest = b.len().saturating_sub(EOCD_LEN + usize::from(u16::MAX));
    let mut eocd = None;
    for pos in (lowest..=b.len() - EOCD_LEN).rev() {
        if u32_at(b, pos) == Some(EOCD_SIG)
            && pos + EOCD_LEN + usize::from(u16_at(b, pos + 20)?) == b.len()
        {
            eocd = Some(pos);
            break;
        }
    }
    let eocd = eocd?;
    let entries = u16_at(b, eocd + 10)?;
    let cd_size = u32_at(b, eocd + 12)? as usize;
    let cd_offset = u32_at(b, eocd + 16)?;
    if entries == u16::MAX || cd_offset == u32::MAX {
        return None; // ZIP64 markers
    }
    let cd_pos = eocd.checked_sub(cd_size)?;
    let mut offset_fields = Vec::with_capacity(usize::from(entries));
    let mut min_local: Option<u32> = None;
    let mut at = cd_pos;
    for _ in 0..entries {
        if u32_at(b, at)? != CDH_SIG {
            return None;
        }
        let name = usize::from(u16_at(b, at + 28)?);
        let extra = usize::from(u16_at(b, at + 30)?);
        let comment = usize::from(u16_at(b, at + 32)?);
        let local = u32_at(b, at + 42)?;
        if local == u32::MAX {
            return None; // ZIP64
        }
        offset_fields.push(at + 42);
        min_local = Some(min_local.map_or(local, |m| m.min(local)));
        at = at.checked_add(CDH_LEN + name + extra + comment)?;
        if at > eocd {
            return None;
        }
    }
    Some(ZipLayout {
        eocd,
        cd_pos,
        offset_fields,
        min_local,
    })
}

/// Find a ZIP archive appended to the file and return it normalised (offsets
/// relative to its first byte). Empty if there is none.
pub(crate) fn extract(file: &[u8]) -> Vec<u8> {
    let Some(z) = layout(file) else {
        return Vec::new();
    };
    let Some(cd_offset) = u32_at(file, z.eocd + 16) else {
        return Vec::new();
    };
    // Offsets in the archive are relative to `base` (0 when written as absolute
    // file offsets, as the metadata tooling does).
    let Some(base) = z.cd_pos.checked_sub(cd_offset as usize) else {
        return Vec::new();
    };
    let start = match z.min_local {
        Some(m) => base + m as usize,
        None => z.cd_pos,
    };
    // The archive must lie after the 8-byte FlatBuffer header and, when it has
    // entries, begin with a local file header.
    if start < 8
        || start > z.cd_pos
        || (z.min_local.is_some() && u32_at(file, start) != Some(LOCAL_SIG))
    {
        return Vec::new();
    }
    let shift = (start - base) as u32;
    let mut out = file[start..].to_vec();
    for &f in &z.offset_fields {
        let v = u32_at(file, f).unwrap_or(0) - shift;
        put_u32(&mut out, f - start, v);
    }
    put_u32(&mut out, z.eocd + 16 - start, cd_offset - shift);
    out
}

/// The trailing bytes to append after a FlatBuffer of `fb_len` bytes: a normalised
/// ZIP gets its offsets moved by `fb_len`; anything else is appended unchanged.
pub(crate) fn rebase(trailing: &[u8], fb_len: usize) -> Vec<u8> {
    let mut out = trailing.to_vec();
    let Some(z) = layout(trailing) else {
        return out;
    };
    let Ok(delta) = u32::try_from(fb_len) else {
        return out;
    };
    // Only a normalised archive (first local header at offset 0, central directory
    // where its offset says) can be rebased safely.
    let cd_offset = u32_at(trailing, z.eocd + 16);
    if cd_offset != u32::try_from(z.cd_pos).ok() || z.min_local.is_some_and(|m| m != 0) {
        return out;
    }
    let mut fields: Vec<usize> = z.offset_fields.clone();
    fields.push(z.eocd + 16);
    let mut moved = Vec::with_capacity(fields.len());
    for &f in &fields {
        match u32_at(trailing, f).and_then(|v| v.checked_add(delta)) {
            Some(v) => moved.push((f, v)),
            None => return out, // would need ZIP64: keep the bytes as they are
        }
    }
    for (f, v) in moved {
        put_u32(&mut out, f, v);
    }
    out
}
