"""festival as one subprocess per batch: a Scheme script synthesizes every request, saves
its wave and prints its Segment items with the id of the Word each belongs to.

Festival has no Python binding in Debian; starting it once per batch rather than per clip
keeps its start-up (about 0.2 s) out of the per-clip cost.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import soundfile

from ...errors import WhisperLensError
from . import Engine, Request, Synthesis, binary_available, resample, synthesis_from_segments

VOICE_FUNCTIONS = {
    "kal": "voice_kal_diphone",
    "ked": "voice_ked_diphone",
    "slt_hts": "voice_cmu_us_slt_arctic_hts",
}
VOICE_PACKAGES = {"kal": "festvox-kallpc16k", "ked": "festvox-kdlpc16k", "slt_hts": "festvox-us-slt-hts"}
VOICE_DIRECTORIES = {
    "kal": "english/kal_diphone",
    "ked": "english/ked_diphone",
    "slt_hts": "us/cmu_us_slt_arctic_hts",
}
FESTIVAL_VOICES = Path("/usr/share/festival/voices")
SEGMENT_LINE = "SEG"


class FestivalEngine(Engine):
    name = "festival"
    debian_package = "festival"
    voices = tuple(VOICE_FUNCTIONS)
    voice_packages = tuple(VOICE_PACKAGES.values())

    def is_available(self) -> bool:
        return binary_available("festival")

    def check_voice(self, voice: str) -> None:
        super().check_voice(voice)
        if not (FESTIVAL_VOICES / VOICE_DIRECTORIES[voice]).is_dir():
            package = VOICE_PACKAGES[voice]
            raise WhisperLensError(
                f"festival voice {voice!r} is not installed; install the Debian package {package} "
                f"(apt-get install {package})"
            )

    def synthesize_batch(self, requests: list[Request]) -> list[Synthesis]:
        if not requests:
            return []
        for voice in {request.voice for request in requests}:
            self.check_voice(voice)
        with tempfile.TemporaryDirectory(prefix="whisperlens-festival-") as folder:
            script = Path(folder) / "batch.scm"
            script.write_text(self._script(requests, Path(folder)))
            result = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True)
            if result.returncode != 0:
                raise WhisperLensError(f"festival failed: {result.stderr.strip().splitlines()[-1:]}")
            segments = self._parse(result.stdout, len(requests))
            syntheses = []
            for index, request in enumerate(requests):
                audio, rate = soundfile.read(Path(folder) / f"{index}.wav", dtype="float32")
                syntheses.append(synthesis_from_segments(resample(audio, rate), segments[index], request.text, self.name))
        return syntheses

    @staticmethod
    def _script(requests: list[Request], folder: Path) -> str:
        lines = []
        for index, request in enumerate(requests):
            text = request.text.replace("\\", " ").replace('"', " ")
            lines.append(
                f"({VOICE_FUNCTIONS[request.voice]})\n"
                f"(Parameter.set 'Duration_Stretch {request.rate:.4f})\n"
                f'(set! utt (utt.synth (Utterance Text "{text}")))\n'
                f'(utt.save.wave utt "{folder / f"{index}.wav"}" \'riff)\n'
                f"(mapcar (lambda (s) (format t \"{SEGMENT_LINE} {index} %s %s %s\\n\" (item.name s) "
                f'(item.feat s "end") (item.feat s "R:SylStructure.parent.parent.id"))) '
                f"(utt.relation.items utt 'Segment))\n"
            )
        return "".join(lines)

    @staticmethod
    def _parse(stdout: str, count: int) -> list[list[tuple[str, float, float, str]]]:
        segments: list[list] = [[] for _ in range(count)]
        for line in stdout.splitlines():
            fields = line.split()
            if len(fields) != 5 or fields[0] != SEGMENT_LINE:
                continue
            index, symbol, end, word_id = int(fields[1]), fields[2], float(fields[3]), fields[4]
            start = segments[index][-1][2] if segments[index] else 0.0
            segments[index].append((symbol, start, end, "" if word_id == "0" else word_id))
        return segments


ENGINE = FestivalEngine()
