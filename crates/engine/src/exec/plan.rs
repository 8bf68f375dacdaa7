//! Static memory plan: every runtime tensor gets a fixed offset in one arena,
//! chosen before the first inference so that `invoke` never allocates.
//!
//! Lifetimes are op-index intervals; tensors whose intervals overlap never share
//! bytes. Placement is greedy by decreasing size (largest first, lowest offset that
//! fits), the strategy TFLite's arena planner uses, which keeps the arena close to the
//! peak of simultaneously live bytes.
//!
//! Sizes come from shapes a model file claims, so the arithmetic saturates: an
//! impossible plan comes out as `usize::MAX` bytes, which every memory limit refuses
//! before the offsets are used (`memory.rs`).

/// Alignment of every arena offset: a cache line, enough for any SIMD load.
pub const ARENA_ALIGN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub size: usize,
    /// First op index at which the tensor must hold data (0 for graph inputs).
    pub first: usize,
    /// Last op index that reads it (inclusive; `usize::MAX` = to the end).
    pub last: usize,
}

/// Offsets (same order as the requests) and the total arena size in bytes (saturated
/// at `usize::MAX`).
pub fn plan(requests: &[Request]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|&a, &b| requests[b].size.cmp(&requests[a].size).then(a.cmp(&b)));
    let mut offsets = vec![0usize; requests.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(requests.len());
    let mut total = 0;
    for &i in &order {
        let r = requests[i];
        let size = round_up(r.size.max(1));
        // Blocks of already-placed tensors alive at the same time, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| overlaps(&requests[j], &r))
            .map(|&j| {
                let start: usize = offsets[j];
                (
                    start,
                    start.saturating_add(round_up(requests[j].size.max(1))),
                )
            })
            .collect();
        busy.sort_unstable();
        let mut candidate: usize = 0;
        for (start, end) in busy {
            if candidate.saturating_add(size) <= start {
                break;
            }
            candidate = candidate.max(end);
        }
        offsets[i] = candidate;
        total = total.max(candidate.saturating_add(size));
        placed.push(i);
    }
    (offsets, total)
}

fn overlaps(a: &Request, b: &Request) -> bool {
    a.first <= b.last && b.first <= a.last
}

/// `n` rounded up to [`ARENA_ALIGN`] (saturating).
pub fn round_up(n: usize) -> usize {
    n.div_ceil(ARENA_ALIGN).saturating_mul(ARENA_ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(size: usize, first: usize, last: usize) -> Request {
        Request { size, first, last }
    }

    #[test]
    fn disjoint_lifetimes_share_memory() {
        let r = [req(100, 0, 1), req(100, 2, 3)];
        let (off, total) = plan(&r);
        assert_eq!(off, vec![0, 0]);
        assert_eq!(total, 128);
    }

    #[test]
    fn overlapping_lifetimes_never_share() {
        // A chain a -> b -> c -> d plus a long-lived tensor.
        let r = [
            req(1000, 0, 1),
            req(500, 1, 2),
            req(700, 2, 3),
            req(64, 0, usize::MAX),
        ];
        let (off, total) = plan(&r);
        for i in 0..r.len() {
            for j in 0..i {
                if overlaps(&r[i], &r[j]) {
                    let (a0, a1) = (off[i], off[i] + round_up(r[i].size));
                    let (b0, b1) = (off[j], off[j] + round_up(r[j].size));
                    assert!(a1 <= b0 || b1 <= a0, "{i} and {j} overlap");
                }
            }
            assert_eq!(off[i] % ARENA_ALIGN, 0);
        }
        assert!(total <= 1024 + 512 + 64, "total {total}");
    }

    #[test]
    fn sizes_past_the_address_space_saturate() {
        let r = [req(usize::MAX - 10, 0, 1), req(usize::MAX / 2, 0, 1)];
        let (_, total) = plan(&r);
        assert_eq!(total, usize::MAX);
    }
}
