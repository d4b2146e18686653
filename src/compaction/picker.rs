//! Which files to compact next: level scores, level targets, round-robin file choice,
//! overlap expansion and trivial moves.
//!
//! Score of level 0: files / `l0_compaction_trigger`. Score of level n (1..last): bytes /
//! target(n), target(n) = base * multiplier^(n-1). The last level has no target. The
//! level with the highest score >= 1 is compacted into the next one.

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use crate::ikey;
use crate::version::{FileHandle, Version, NUM_LEVELS};

/// The shape the levels are kept in: level 0's file-count trigger and the byte targets of
/// the levels below it (the engine builds it from its options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LevelTargets {
    base: u64,
    multiplier: u64,
    l0_trigger: usize,
}

impl LevelTargets {
    /// Level 1 holds `base` bytes, each level below `multiplier` times the one above; level
    /// 0 is due at `l0_trigger` files. Each is raised to its smallest workable value.
    pub(crate) fn new(base: u64, multiplier: u64, l0_trigger: usize) -> LevelTargets {
        LevelTargets {
            base: base.max(1),
            multiplier: multiplier.max(2),
            l0_trigger: l0_trigger.max(1),
        }
    }

    /// The byte target of `level`; `None` for level 0 (sized by file count) and the last
    /// level (unbounded: it holds what the others do not).
    pub(crate) fn target(&self, level: usize) -> Option<u64> {
        if level == 0 || level >= NUM_LEVELS - 1 {
            return None;
        }
        let exp = u32::try_from(level - 1).unwrap_or(u32::MAX);
        Some(
            self.base
                .saturating_mul(self.multiplier.saturating_pow(exp)),
        )
    }
}

/// The score of every level (see the module docs); >= 1 means it needs compaction.
pub(crate) fn scores(v: &Version, targets: &LevelTargets) -> [f64; NUM_LEVELS] {
    let mut out = [0.0; NUM_LEVELS];
    for (level, score) in out.iter_mut().enumerate() {
        *score = if level == 0 {
            let files = v.levels.first().map_or(0, Vec::len);
            files as f64 / targets.l0_trigger as f64
        } else {
            match targets.target(level) {
                Some(t) => v.level_bytes(level) as f64 / t as f64,
                None => 0.0,
            }
        };
    }
    out
}

/// Bytes compaction would have to rewrite to bring every level within its target (an
/// estimate, as RocksDB's): level 0's bytes once it reached its trigger, plus each
/// level's excess over its target.
pub(crate) fn pending_compaction_bytes(v: &Version, targets: &LevelTargets) -> u64 {
    let mut pending = 0u64;
    if v.levels.first().map_or(0, Vec::len) >= targets.l0_trigger {
        pending = pending.saturating_add(v.level_bytes(0));
    }
    for level in 1..NUM_LEVELS {
        if let Some(t) = targets.target(level) {
            pending = pending.saturating_add(v.level_bytes(level).saturating_sub(t));
        }
    }
    pending
}

/// One compaction: `inputs` of `level` merged with the overlapping `below` of
/// `output_level`. `level == output_level` only for a manual rewrite of the last level.
#[derive(Clone)]
pub(crate) struct CompactionPlan {
    pub(crate) level: usize,
    pub(crate) output_level: usize,
    pub(crate) inputs: Vec<Arc<FileHandle>>,
    pub(crate) below: Vec<Arc<FileHandle>>,
    /// Nothing below overlaps and the inputs do not overlap each other: move, not merge.
    pub(crate) trivial: bool,
}

impl CompactionPlan {
    /// A plan for `inputs` of `level` into `output_level`, with the overlapping files of
    /// the output level added. `None` without inputs.
    pub(crate) fn new(
        v: &Version,
        level: usize,
        output_level: usize,
        inputs: Vec<Arc<FileHandle>>,
        allow_trivial: bool,
    ) -> Option<CompactionPlan> {
        let (lo, hi) = user_range(&inputs)?;
        let below = if output_level == level {
            Vec::new()
        } else {
            v.overlapping(output_level, lo, hi)
        };
        let trivial = allow_trivial
            && output_level != level
            && below.is_empty()
            && (level > 0 || mutually_disjoint(&inputs));
        Some(CompactionPlan {
            level,
            output_level,
            inputs,
            below,
            trivial,
        })
    }

    /// Every file the plan reads.
    pub(crate) fn all_inputs(&self) -> impl Iterator<Item = &Arc<FileHandle>> {
        self.inputs.iter().chain(self.below.iter())
    }

    pub(crate) fn input_bytes(&self) -> u64 {
        self.all_inputs().map(|f| f.meta.size).sum()
    }

    /// The largest internal key of the inputs of `level` (the next round-robin start).
    pub(crate) fn largest_input(&self) -> Option<Vec<u8>> {
        self.inputs
            .iter()
            .map(|f| f.largest.as_slice())
            .max_by(|a, b| ikey::compare(a, b))
            .map(<[u8]>::to_vec)
    }
}

/// The next compaction `v` needs, or `None` when every score is below 1.
pub(crate) fn pick(v: &Version, targets: &LevelTargets) -> Option<CompactionPlan> {
    let s = scores(v, targets);
    let mut best: Option<(usize, f64)> = None;
    for (level, score) in s.iter().enumerate().take(NUM_LEVELS - 1) {
        if *score >= 1.0 && best.is_none_or(|(_, b)| *score > b) {
            best = Some((level, *score));
        }
    }
    let (level, _) = best?;
    let files = v.levels.get(level)?;
    let inputs = if level == 0 {
        // Level-0 files overlap in any order: take them all, so that no older version of
        // a key stays above a newer one.
        files.clone()
    } else {
        // Round robin: the first file after the last one compacted out of this level.
        let start = match &v.compact_pointer[level] {
            Some(p) => files
                .iter()
                .position(|f| ikey::compare(&f.largest, p) == std::cmp::Ordering::Greater)
                .unwrap_or(0),
            None => 0,
        };
        vec![Arc::clone(files.get(start)?)]
    };
    CompactionPlan::new(v, level, level + 1, inputs, true)
}

/// A manual compaction of the files of `level` in `[lower, upper]` (user keys) into
/// `output_level`. At level 0, one overlapping file brings in all of level 0.
pub(crate) fn plan_range(
    v: &Version,
    level: usize,
    output_level: usize,
    lower: &Bound<Vec<u8>>,
    upper: &Bound<Vec<u8>>,
    allow_trivial: bool,
) -> Option<CompactionPlan> {
    let files = v.levels.get(level)?;
    let hits: Vec<Arc<FileHandle>> = files
        .iter()
        .filter(|f| in_range(f, lower, upper))
        .cloned()
        .collect();
    if hits.is_empty() {
        return None;
    }
    let inputs = if level == 0 { files.clone() } else { hits };
    CompactionPlan::new(v, level, output_level, inputs, allow_trivial)
}

/// True when the file's user-key range meets `[lower, upper]`: its last key is not below
/// the range and its first key not above it.
pub(crate) fn in_range(f: &FileHandle, lower: &Bound<Vec<u8>>, upper: &Bound<Vec<u8>>) -> bool {
    within(ikey::user_key(&f.largest), slices(lower), Bound::Unbounded)
        && within(ikey::user_key(&f.smallest), Bound::Unbounded, slices(upper))
}

fn slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    b.as_ref().map(Vec::as_slice)
}

/// True when `key` is within `(lower, upper)`.
fn within(key: &[u8], lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    <(Bound<&[u8]>, Bound<&[u8]>) as RangeBounds<[u8]>>::contains(&(lower, upper), key)
}

/// The smallest and largest user keys of `files`.
fn user_range(files: &[Arc<FileHandle>]) -> Option<(&[u8], &[u8])> {
    let lo = files.iter().map(|f| ikey::user_key(&f.smallest)).min()?;
    let hi = files.iter().map(|f| ikey::user_key(&f.largest)).max()?;
    Some((lo, hi))
}

fn mutually_disjoint(files: &[Arc<FileHandle>]) -> bool {
    let mut ranges: Vec<(&[u8], &[u8])> = files
        .iter()
        .map(|f| (ikey::user_key(&f.smallest), ikey::user_key(&f.largest)))
        .collect();
    ranges.sort();
    ranges.windows(2).all(|w| match w {
        [a, b] => a.1 < b.0,
        _ => true,
    })
}
