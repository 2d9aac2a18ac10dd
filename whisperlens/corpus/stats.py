"""Counts over a corpus: clips per set, engine, voice and language, and ARPAbet coverage."""

from __future__ import annotations

from collections import Counter

from .corpus import Corpus
from .phones import ARPABET


def corpus_stats(corpus: Corpus) -> dict:
    phone_counts = Counter(phone for clip in corpus for phone, _, _ in clip.phones)
    return {
        "clips": len(corpus),
        "set": Counter(clip.set for clip in corpus),
        "engine": Counter(clip.engine for clip in corpus),
        "voice": Counter(f"{clip.engine}/{clip.voice}" for clip in corpus),
        "language": Counter(clip.language or "none" for clip in corpus),
        "phones": {phone: phone_counts.get(phone, 0) for phone in ARPABET},
        "distinct_texts": len({clip.text for clip in corpus if clip.text}),
        "seconds": sum(clip.duration for clip in corpus),
    }


def format_stats(stats: dict) -> str:
    lines = [f"{stats['clips']} clips, {stats['seconds'] / 3600:.2f} h, {stats['distinct_texts']} distinct transcripts"]
    for key in ("set", "engine", "voice", "language"):
        lines.append(f"\nby {key}:")
        lines.extend(f"  {name:<28} {count:>7}" for name, count in sorted(stats[key].items()))
    present = [phone for phone, count in stats["phones"].items() if count]
    lines.append(f"\nphone coverage: {len(present)} of {len(ARPABET)} ARPAbet phones")
    missing = [phone for phone in ARPABET if not stats["phones"][phone]]
    if missing:
        lines.append(f"  missing: {' '.join(missing)}")
    row = []
    for phone in ARPABET:
        row.append(f"{phone:>3} {stats['phones'][phone]:>7}")
        if len(row) == 6:
            lines.append("  " + "   ".join(row))
            row = []
    if row:
        lines.append("  " + "   ".join(row))
    return "\n".join(lines)
