"""`whisperlens locality remove AUDIO (--word TEXT | --span START:END | --time START:END)`: the
transcript before and after replacing a span of encoder outputs with the padding-only audio's."""

from __future__ import annotations

from ...errors import WhisperLensError

LONGEST_TRANSCRIPT = 224  # tokens: openai-whisper samples at most half the decoder's context


def add_commands(actions) -> None:
    from ...commands.common import add_model_arguments

    remove = actions.add_parser("remove", help="remove words by replacing a span of encoder outputs with padding-only audio's",
                                description=__doc__)
    remove.add_argument("audio", help="an audio file of at most 30 s")
    target = remove.add_mutually_exclusive_group(required=True)
    target.add_argument("--word", help="words of the transcript (first occurrence); Whisper's word timestamps give the frames")
    target.add_argument("--span", help="encoder positions START:END (20 ms each, END excluded), e.g. 150:175")
    target.add_argument("--time", help="seconds START:END, e.g. 1.2:1.6")
    remove.add_argument("--margin", type=int, default=0, help="frames added each side of the span (default 0)")
    add_model_arguments(remove)
    remove.set_defaults(run=run_remove)


def parse_pair(text: str, kind, flag: str, upper) -> tuple:
    try:
        start, end = (kind(part) for part in text.split(":"))
    except ValueError:
        raise WhisperLensError(f"{flag} takes START:END, e.g. {'150:175' if kind is int else '1.2:1.6'}; got {text!r}") from None
    if not 0 <= start < end <= upper:
        raise WhisperLensError(f"{flag} {text}: need 0 <= START < END <= {upper}")
    return start, end


def find_words(spans: list[dict], target: str) -> tuple[int, int]:
    """The first run of words in `spans` matching `target`'s words (case and punctuation aside)."""
    def plain(word: str) -> str:
        return "".join(ch for ch in word.lower() if ch.isalnum() or ch == "'")

    wanted = [plain(w) for w in target.split()]
    said = [plain(s["word"]) for s in spans]
    for i in range(len(said) - len(wanted) + 1):
        if said[i: i + len(wanted)] == wanted:
            return spans[i]["frames"][0], spans[i + len(wanted) - 1]["frames"][1]
    raise WhisperLensError(f"{target!r} is not among the transcript's words: {' '.join(s['word'] for s in spans)}")


def run_remove(args) -> int:
    from ...audio import N_ENCODER_FRAMES, SAMPLE_RATE, load_audio, log_mel
    from ...commands.common import load_model_from_args
    from ...stream import FRAME_SECONDS
    from ...transcripts import decode
    from .examples import remove_span, word_spans

    if args.margin < 0:
        raise WhisperLensError(f"--margin must be 0 or more, got {args.margin}")
    span = parse_pair(args.span, int, "--span", N_ENCODER_FRAMES) if args.span else None
    if args.time:
        start_s, end_s = parse_pair(args.time, float, "--time", 30.0)
        span = (int(start_s / FRAME_SECONDS), max(int(start_s / FRAME_SECONDS) + 1, round(end_s / FRAME_SECONDS)))
    audio = load_audio(args.audio)
    if len(audio) > 30 * SAMPLE_RATE:
        raise WhisperLensError(f"{args.audio}: {len(audio) / SAMPLE_RATE:.1f} s; word removal works on one 30 s window")
    model = load_model_from_args(args)
    how = "given"
    if args.word:
        span = find_words(word_spans(model, audio), args.word)
        how = f"Whisper's word timestamps for {args.word!r}"
    start, stop = max(0, span[0] - args.margin), min(N_ENCODER_FRAMES, span[1] + args.margin)
    original = decode(model, log_mel(audio, model.dims.n_mels)[None], LONGEST_TRANSCRIPT, timestamps=True)[0].text.strip()
    print(f"original: {original}")
    print(f"frames:   {start}-{stop} ({start * FRAME_SECONDS:.2f}-{stop * FRAME_SECONDS:.2f} s; {how})")
    print(f"edited:   {remove_span(model, audio, start, stop, max_tokens=LONGEST_TRANSCRIPT)}")
    return 0
