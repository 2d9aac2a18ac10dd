"""Streaming per-feature statistics with bounded memory: top-k examples, a fixed-bin
histogram, octave-band samples and phone counts per band.

Everything is updated in one pass over each batch by a numba kernel. Doing the same with
numpy or torch takes about ten full passes over the (frames x features) batch (a top-k, a
log, a floor, a bincount, a scatter per statistic), which cost several times the model's own
forward pass; fused, the statistics cost a fraction of it.

Definitions (all deterministic; none depends on how the corpus was cut into batches):
- top-k: each clip offers its maximum frame (the first one on ties) per feature, if positive;
  the k largest values are kept, ties going to the earlier clip. Slots no clip filled keep
  clip -1 and value -inf.
- histogram: fixed bins. Bin 0 holds values <= 0 (derived from the frame count at the end), bin 1 values in (0, 2^MIN_EXP), then
  BINS_PER_OCTAVE equal-width bins per octave up to 2^MAX_EXP (the last bin also holds larger
  values). The bins are read straight from the float's exponent and mantissa bits.
- bands: the same range cut at octaves only (band 0: <= 0, band 1: underflow, then one band
  per octave). Activation is heavy-tailed, so octave bands below a feature's maximum spread
  examples over its range where equal-width intervals would put almost every frame in the
  lowest one.
- band samples: per feature and band, the SAMPLES_PER_BAND frames with the smallest hash
  priority (a seeded hash of the frame's clip and position): a uniform sample without
  replacement of that band's frames, reproducible from the seed alone.
- phone counts: per feature, band and phone, the number of frames.
- negative top-k (only where the harvest asks for it: encoder MLP neurons, read before the
  GELU at `mlp.hook_pre`): each clip offers its minimum frame (the first on ties) per feature,
  if negative; the k most negative are kept, ties going to the earlier clip. They are stored as
  a top-k of -x (`negative_values` holds -x > 0), so they stream, finalize and merge exactly as
  the top-k does. Sites without it keep zero-width arrays.

State (for merging partial statistics of disjoint clip sets): `n_frames`, `n_clips`,
`histogram`, `phone_counts` and `phone_totals` add; `top_*` and `negative_*` keep the k best
of the union under the top-k order (value descending, then clip ascending); `sample_*` keep
the SAMPLES_PER_BAND smallest priorities per band. Nothing else is state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numba
import numpy as np

MIN_EXP = -6
MAX_EXP = 10
BINS_PER_OCTAVE = 4
N_OCTAVES = MAX_EXP - MIN_EXP
N_BINS = 2 + N_OCTAVES * BINS_PER_OCTAVE
N_BANDS = 2 + N_OCTAVES
SAMPLES_PER_BAND = 5
_MANTISSA_SHIFT = 23 - 2  # BINS_PER_OCTAVE = 4: the top two mantissa bits
_UINT64_MAX = np.iinfo(np.uint64).max


def bin_lower_edges() -> np.ndarray:
    """Lower edge of every histogram bin (bin 0, the non-positive values, gets -inf)."""
    edges = [-np.inf, 0.0]
    for octave in range(N_OCTAVES):
        for step in range(BINS_PER_OCTAVE):
            edges.append(2.0 ** (MIN_EXP + octave) * (1 + step / BINS_PER_OCTAVE))
    return np.array(edges)


def band_lower_edges() -> np.ndarray:
    return np.array([-np.inf, 0.0] + [2.0 ** (MIN_EXP + octave) for octave in range(N_OCTAVES)])


def band_of(values: np.ndarray) -> np.ndarray:
    """The band index of each value (the kernel computes the same from the float's bits)."""
    values = np.asarray(values, dtype=np.float32)
    exponent = np.floor(np.log2(np.where(values > 0, values, 1))).astype(np.int64)
    bands = 2 + np.clip(exponent - MIN_EXP, -1, N_OCTAVES - 1)
    bands = np.where(exponent < MIN_EXP, 1, bands)
    return np.where(values > 0, bands, 0)


def frame_priorities(seed: int, clips: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """A seeded 64-bit hash (splitmix64) per frame: the order in which band samples are drawn."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)) ^ (
            clips.astype(np.uint64) << np.uint64(16) | positions.astype(np.uint64)
        )
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass
class SiteStats:
    """The running statistics of every feature at one site (a hook point seen through a basis)."""

    n_frames: np.ndarray  # () int64: frames seen
    n_clips: np.ndarray  # () int64
    histogram: np.ndarray  # (n, N_BINS) int64
    top_values: np.ndarray  # (n, k) float32; a heap while streaming, sorted by `finalized`
    top_clips: np.ndarray  # (n, k) int64; -1 where fewer than k clips were seen
    top_positions: np.ndarray  # (n, k) int32
    sample_priorities: np.ndarray  # (n, N_BANDS, SAMPLES_PER_BAND) uint64
    sample_values: np.ndarray  # (n, N_BANDS, SAMPLES_PER_BAND) float32
    sample_clips: np.ndarray  # (n, N_BANDS, SAMPLES_PER_BAND) int64; -1 = empty
    sample_positions: np.ndarray  # (n, N_BANDS, SAMPLES_PER_BAND) int32
    phone_counts: np.ndarray  # (n, N_BANDS, n_phones) int32; n_phones = 0 for token sites
    phone_totals: np.ndarray  # (n_phones,) int64: frames per phone over the corpus
    negative_values: np.ndarray  # (n, k_neg) float32: -x of the most negative clips' minima (> 0); a heap while streaming
    negative_clips: np.ndarray  # (n, k_neg) int64; -1 where empty; k_neg = 0 at sites without negatives
    negative_positions: np.ndarray  # (n, k_neg) int32

    @classmethod
    def empty(cls, n_features: int, k: int, n_phones: int, negative_k: int = 0) -> SiteStats:
        shape = (n_features, N_BANDS, SAMPLES_PER_BAND)
        return cls(
            n_frames=np.zeros((), np.int64),
            n_clips=np.zeros((), np.int64),
            histogram=np.zeros((n_features, N_BINS), np.int64),
            top_values=np.full((n_features, k), -np.inf, np.float32),
            top_clips=np.full((n_features, k), -1, np.int64),
            top_positions=np.full((n_features, k), -1, np.int32),
            sample_priorities=np.full(shape, _UINT64_MAX, np.uint64),
            sample_values=np.zeros(shape, np.float32),
            sample_clips=np.full(shape, -1, np.int64),
            sample_positions=np.full(shape, -1, np.int32),
            phone_counts=np.zeros((n_features, N_BANDS, n_phones), np.int32),
            phone_totals=np.zeros(n_phones, np.int64),
            negative_values=np.full((n_features, negative_k), -np.inf, np.float32),
            negative_clips=np.full((n_features, negative_k), -1, np.int64),
            negative_positions=np.full((n_features, negative_k), -1, np.int32),
        )

    @property
    def n_features(self) -> int:
        return self.histogram.shape[0]

    @property
    def k(self) -> int:
        return self.top_values.shape[1]

    def update(self, values: np.ndarray, clip_offsets: np.ndarray, clip_indices: np.ndarray,
               positions: np.ndarray, phone_ids: np.ndarray | None, priorities: np.ndarray) -> None:
        """Fold in one batch.

        values: (frames, n_features) float32, the frames of several clips one after another;
        clip_offsets: (clips + 1,) row where each clip starts; clip_indices: (clips,) global
        clip index; positions: (frames,) position in its clip; phone_ids: (frames,) index
        into the phone list (or None at token sites); priorities: (frames,) uint64.
        """
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.shape[1] != self.n_features:
            raise ValueError(f"batch has {values.shape[1]} features, the site {self.n_features}")
        n_phones = self.phone_counts.shape[2]
        n_rows = values.shape[0]
        phones = np.zeros(n_rows, np.int16) if phone_ids is None else np.asarray(phone_ids, np.int16)
        _update_kernel(
            values, values.view(np.int32), np.asarray(clip_offsets, np.int64), np.asarray(clip_indices, np.int64),
            np.asarray(positions, np.int32), phones, n_phones > 0, np.asarray(priorities, np.uint64),
            self.histogram, self.top_values, self.top_clips, self.top_positions,
            self.sample_priorities, self.sample_values, self.sample_clips, self.sample_positions,
            self.phone_counts,
        )
        if n_phones:
            self.phone_totals += np.bincount(phones, minlength=n_phones)[:n_phones]
        self.n_frames += n_rows
        self.n_clips += len(clip_indices)

    def update_negative(self, values: np.ndarray, clip_offsets: np.ndarray, clip_indices: np.ndarray,
                        positions: np.ndarray) -> None:
        """Fold one batch into the negative top-k: `values` (frames, n_features), laid out as
        in `update` (for MLP neurons: the pre-GELU values of the same frames)."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.shape[1] != self.n_features:
            raise ValueError(f"batch has {values.shape[1]} features, the site {self.n_features}")
        if self.negative_values.shape[1] == 0:
            raise ValueError("this site keeps no negative examples (negative_k = 0)")
        _negative_kernel(values, np.asarray(clip_offsets, np.int64), np.asarray(clip_indices, np.int64),
                         np.asarray(positions, np.int32), self.negative_values, self.negative_clips,
                         self.negative_positions)

    def finalized(self) -> SiteStats:
        """A copy with the top-k sorted (value descending, then clip) and the band samples
        sorted by priority."""
        order = _topk_order(self.top_values, self.top_clips)
        negative_order = _topk_order(self.negative_values, self.negative_clips)
        sample_order = np.argsort(self.sample_priorities, axis=-1, kind="stable")
        take = np.take_along_axis
        return SiteStats(
            n_frames=self.n_frames.copy(), n_clips=self.n_clips.copy(), histogram=self.histogram.copy(),
            top_values=take(self.top_values, order, -1), top_clips=take(self.top_clips, order, -1),
            top_positions=take(self.top_positions, order, -1),
            sample_priorities=take(self.sample_priorities, sample_order, -1),
            sample_values=take(self.sample_values, sample_order, -1),
            sample_clips=take(self.sample_clips, sample_order, -1),
            sample_positions=take(self.sample_positions, sample_order, -1),
            phone_counts=self.phone_counts.copy(), phone_totals=self.phone_totals.copy(),
            negative_values=take(self.negative_values, negative_order, -1),
            negative_clips=take(self.negative_clips, negative_order, -1),
            negative_positions=take(self.negative_positions, negative_order, -1),
        )

    @property
    def has_negatives(self) -> bool:
        return self.negative_values.shape[1] > 0

    def complete_histogram(self) -> np.ndarray:
        """The histogram with bin 0 (values <= 0, and NaN) filled in from the frame count."""
        histogram = self.histogram.copy()
        histogram[:, 0] = int(self.n_frames) - histogram[:, 1:].sum(1)
        return histogram

    def complete_phone_counts(self) -> np.ndarray:
        """Phone counts with band 0 (not firing) filled in from the per-phone totals."""
        counts = self.phone_counts.astype(np.int64)
        counts[:, 0, :] = self.phone_totals[None, :] - counts[:, 1:, :].sum(1)
        return counts

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays) -> SiteStats:
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})

    def firing_rate(self) -> np.ndarray:
        """Fraction of frames with a positive value, per feature."""
        return self.histogram[:, 1:].sum(1) / max(int(self.n_frames), 1)

    def max_values(self) -> np.ndarray:
        return self.top_values.max(axis=1)

    # ---- merging: statistics of consecutive shards of a corpus, as one pass would give them ----

    _SUMMED = ("n_frames", "n_clips", "histogram", "phone_counts", "phone_totals")
    _TOP = ("top_values", "top_clips", "top_positions")
    _NEGATIVE = ("negative_values", "negative_clips", "negative_positions")  # a top-k of -x: the same rule
    _SAMPLES = ("sample_priorities", "sample_values", "sample_clips", "sample_positions")

    def merge(self, later: SiteStats) -> SiteStats:
        """The statistics of this one's frames and then `later`'s, equal (after `finalized`) to
        one pass over both: counts add; the top-k is the k best of both by (value, earlier
        clip), each clip offering one entry per feature; the band samples are the
        SAMPLES_PER_BAND smallest priorities of both, each frame's priority being its own.
        Both sets are left in the layout the streaming kernel keeps (a min-heap, the largest
        priority in slot 0), so the merge can be updated further. Associative and deterministic."""
        handled = set(self._SUMMED + self._TOP + self._NEGATIVE + self._SAMPLES)
        unmerged = [f.name for f in fields(self) if f.name not in handled]
        if unmerged:  # a statistic added without a merge rule must not be dropped silently
            raise NotImplementedError(f"SiteStats.merge has no rule for {', '.join(unmerged)}")
        merged = {name: getattr(self, name) + getattr(later, name) for name in self._SUMMED}
        for names in (self._TOP, self._NEGATIVE):
            top = [np.concatenate([getattr(self, name), getattr(later, name)], axis=-1) for name in names]
            best_first = np.lexsort((top[1], -top[0].astype(np.float64)), axis=-1)[..., : getattr(self, names[0]).shape[-1]]
            worst_first = best_first[..., ::-1]  # ascending goodness is a valid min-heap for the kernel
            merged.update({name: np.take_along_axis(part, worst_first, -1) for name, part in zip(names, top)})
        samples = [np.concatenate([getattr(self, name), getattr(later, name)], axis=-1) for name in self._SAMPLES]
        per_band = self.sample_priorities.shape[-1]
        smallest = np.argsort(samples[0], axis=-1, kind="stable")[..., :per_band][..., ::-1]  # largest kept in slot 0
        merged.update({name: np.take_along_axis(part, smallest, -1) for name, part in zip(self._SAMPLES, samples)})
        return SiteStats(**{name: np.asarray(value) for name, value in merged.items()})  # 0-d counts stay 0-d


def _topk_order(values: np.ndarray, clips: np.ndarray) -> np.ndarray:
    """The top-k order of each row: value descending, then clip ascending."""
    return np.lexsort((clips, -values.astype(np.float64)), axis=-1)


_BLOCK = 64  # features per task: four cache lines of each frame's row (measured best of 16-128)


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _update_kernel(values, bits, clip_offsets, clip_indices, positions, phones, count_phones, priorities,
                   histogram, top_values, top_clips, top_positions,
                   sample_priorities, sample_values, sample_clips, sample_positions, phone_counts):
    # values is frame-major (frames, features), as the model and the bases produce it. A task
    # takes a block of features and walks the frames; each frame's block is one cache line.
    n_features = values.shape[1]
    for block in numba.prange((n_features + _BLOCK - 1) // _BLOCK):
        first = block * _BLOCK
        width = min(_BLOCK, n_features - first)
        best = np.empty(_BLOCK, np.float32)
        best_row = np.empty(_BLOCK, np.int64)
        for c in range(clip_indices.shape[0]):
            clip = clip_indices[c]
            best[:] = -np.inf
            best_row[:] = -1
            for row in range(clip_offsets[c], clip_offsets[c + 1]):
                for j in range(width):
                    f = first + j
                    v = values[row, f]
                    if v > best[j]:
                        best[j], best_row[j] = v, row
                    b = bits[row, f]
                    if b <= 0 or v != v:
                        continue  # not firing (<= 0) or NaN: only counted in the totals
                    octave = ((b >> 23) & 0xFF) - 127 - MIN_EXP
                    if octave < 0:
                        fine, band = 1, 1
                    elif octave >= N_OCTAVES:
                        fine, band = N_BINS - 1, N_BANDS - 1
                    else:
                        fine = 2 + octave * BINS_PER_OCTAVE + ((b >> _MANTISSA_SHIFT) & 3)
                        band = 2 + octave
                    histogram[f, fine] += 1
                    if count_phones:
                        phone_counts[f, band, phones[row]] += 1
                    if band >= 2:
                        _offer_sample(sample_priorities, sample_values, sample_clips, sample_positions,
                                      f, band, priorities[row], v, clip, positions[row])
            for j in range(width):
                if best[j] > 0:  # a clip whose maximum is not positive is no example of the feature
                    _offer_top(top_values, top_clips, top_positions, first + j, best[j], clip, positions[best_row[j]])


@numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _negative_kernel(values, clip_offsets, clip_indices, positions, negative_values, negative_clips, negative_positions):
    # Each clip's first minimum per feature, offered as -x to the same min-heap as the top-k.
    # The same walk over feature blocks and clips as _update_kernel, on another tensor and
    # without the per-frame statistics: one kernel for both would test a flag on every value.
    n_features = values.shape[1]
    for block in numba.prange((n_features + _BLOCK - 1) // _BLOCK):
        first = block * _BLOCK
        width = min(_BLOCK, n_features - first)
        lowest = np.empty(_BLOCK, np.float32)
        lowest_row = np.empty(_BLOCK, np.int64)
        for c in range(clip_indices.shape[0]):
            lowest[:] = np.inf
            lowest_row[:] = -1
            for row in range(clip_offsets[c], clip_offsets[c + 1]):
                for j in range(width):
                    v = values[row, first + j]
                    if v < lowest[j]:
                        lowest[j], lowest_row[j] = v, row
            for j in range(width):
                if lowest[j] < 0:  # a clip whose minimum is not negative is no negative example
                    _offer_top(negative_values, negative_clips, negative_positions, first + j, -lowest[j],
                               clip_indices[c], positions[lowest_row[j]])


@numba.njit(inline="always")
def _offer_sample(priorities, values, clips, positions, f, band, priority, v, clip, position):
    # Slot 0 always holds the largest priority kept, so most frames are turned away by one compare.
    if priority >= priorities[f, band, 0]:
        return
    priorities[f, band, 0], values[f, band, 0] = priority, v
    clips[f, band, 0], positions[f, band, 0] = clip, position
    worst = 0
    for s in range(1, priorities.shape[2]):
        if priorities[f, band, s] > priorities[f, band, worst]:
            worst = s
    if worst != 0:
        _swap3(priorities, values, clips, positions, f, band, 0, worst)


@numba.njit(inline="always")
def _swap3(priorities, values, clips, positions, f, band, a, b):
    priorities[f, band, a], priorities[f, band, b] = priorities[f, band, b], priorities[f, band, a]
    values[f, band, a], values[f, band, b] = values[f, band, b], values[f, band, a]
    clips[f, band, a], clips[f, band, b] = clips[f, band, b], clips[f, band, a]
    positions[f, band, a], positions[f, band, b] = positions[f, band, b], positions[f, band, a]


@numba.njit(inline="always")
def _worse(values, clips, f, a, b):
    """Is heap entry a below entry b? A lower value, or an equal value from a later clip."""
    return values[f, a] < values[f, b] or (values[f, a] == values[f, b] and clips[f, a] > clips[f, b])


@numba.njit(inline="always")
def _offer_top(values, clips, positions, f, v, clip, position):
    # A min-heap per feature: its root is the entry a better candidate replaces.
    root_value, root_clip = values[f, 0], clips[f, 0]
    if not (v > root_value or (v == root_value and (root_clip == -1 or clip < root_clip))):
        return
    values[f, 0], clips[f, 0], positions[f, 0] = v, clip, position
    k = values.shape[1]
    i = 0
    while True:
        left, right, lowest = 2 * i + 1, 2 * i + 2, i
        if left < k and _worse(values, clips, f, left, lowest):
            lowest = left
        if right < k and _worse(values, clips, f, right, lowest):
            lowest = right
        if lowest == i:
            return
        values[f, i], values[f, lowest] = values[f, lowest], values[f, i]
        clips[f, i], clips[f, lowest] = clips[f, lowest], clips[f, i]
        positions[f, i], positions[f, lowest] = positions[f, lowest], positions[f, i]
        i = lowest
