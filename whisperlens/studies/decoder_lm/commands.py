"""`whisperlens decoder bigrams WORD...` and `whisperlens decoder neighbours WORD...`:
the study's two looks at single words, printed and plotted without running the whole study."""

from __future__ import annotations

from pathlib import Path

from .neighbours import METHODS
from .prompts import CONDITIONS

DEFAULT_OUT = Path("runs") / "decoder"
BASELINE_QUERIES = 100  # queries whose random words set the alike thresholds here (the study uses its own sample)


def add_commands(actions) -> None:
    bigrams = actions.add_parser("bigrams", help="the top next tokens after each prompt, with no audio: printed and plotted")
    bigrams.add_argument("prompts", nargs="+", metavar="WORD", help="prompt words; quote several words ('New York')")
    bigrams.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    _common(bigrams, "bigrams")
    bigrams.set_defaults(run=run_bigrams)

    neighbours = actions.add_parser("neighbours", help="each word's nearest tokens in the token embedding, scored by sound "
                                                       "and meaning: printed and plotted")
    neighbours.add_argument("words", nargs="+", metavar="WORD", help="single-token words")
    neighbours.add_argument("--method", default="centred-pc1", choices=METHODS, help="shown beside raw cosine")
    _common(neighbours, "neighbours")
    neighbours.set_defaults(run=run_neighbours)


def _common(parser, name: str) -> None:
    parser.add_argument("--model", default="tiny.en", help="bundled name (tiny.en, base) or a checkpoint path")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top", type=int, default=20, help="tokens shown per word")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / name, help=f"figure folder (default {DEFAULT_OUT / name})")


def _model(args):
    from ...devices import check_device
    from ...errors import WhisperLensError
    from ...models.loading import load_model

    if args.top < 1:
        raise WhisperLensError(f"--top must be positive, got {args.top}")
    check_device(args.device)
    return load_model(args.model, device=args.device)


def run_bigrams(args) -> int:
    from ...study import blocks_as_text
    from .figures import next_token_figure, next_token_table
    from .parts import next_tokens
    from .prompts import english_tokenizer, prompt_tokens

    model = _model(args)
    tokenizer = english_tokenizer(model)
    for prompt in args.prompts:
        prompt_tokens(tokenizer, prompt)  # an empty prompt fails before any figure is written
    args.out.mkdir(parents=True, exist_ok=True)
    for prompt in next_tokens(model, tokenizer, args.prompts, args.conditions, args.top):
        name = next_token_figure(prompt, args.out, f"{_file_name(prompt['prompt'])}.png", args.model)
        table = next_token_table(prompt, args.conditions)
        table.caption = f"{args.model}: next tokens after {' + '.join(map(repr, prompt['tokens']))}"
        print(blocks_as_text([table]) + f"\nfigure: {args.out / name}\n")
    return 0


def run_neighbours(args) -> int:
    from ...study import blocks_as_text
    from .figures import neighbour_table, neighbours_figure
    from .neighbours import queries, thresholds
    from .parts import baseline_scores, word_embedding, word_neighbours
    from .prompts import english_tokenizer, word_token

    model = _model(args)
    tokenizer = english_tokenizer(model)
    for word in args.words:
        word_token(tokenizer, word)  # a word that is not one token fails before any work
    embedding = word_embedding(model, tokenizer)
    cache: dict = {}
    limits = thresholds(baseline_scores(embedding, queries(embedding, BASELINE_QUERIES, 0), args.top, 0, cache))
    args.out.mkdir(parents=True, exist_ok=True)
    for word in args.words:
        entry = word_neighbours(embedding, tokenizer, word, args.top, limits, cache)
        methods = list(dict.fromkeys(["raw", args.method]))
        name = neighbours_figure(entry, methods, args.out, f"{_file_name(word)}.png", args.model)
        print(blocks_as_text([neighbour_table(entry, methods)]) + f"\nfigure: {args.out / name}\n")
    return 0


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.strip()) or "prompt"
