"""The features study's config: its fields are `whisperlens features run`'s flags."""

from dataclasses import dataclass, field
from pathlib import Path

import simple_parsing

from ..distributed.spec import ExecutorSpec
from ..errors import WhisperLensError
from ..study import CorpusStudyConfig
from .harvest import DEFAULT_HOOKS, MODE_CHOICES, HarvestConfig, choose_mode


@dataclass
class FeaturesConfig(CorpusStudyConfig):
    """Harvest neurons, random directions and SAE features over the corpus, label them with phones
    and tokens, and write pages where each feature's top examples can be heard."""

    store: str | None = None  # feature store folder (default runs/features/MODEL/MODE), read by `features describe`
    hooks: tuple[str, ...] = DEFAULT_HOOKS  # hook names or globs (aliases such as encoder.blocks.2.mlp.1 work)
    layers: tuple[int, ...] | None = None  # keep only hooks in these block indices
    bases: tuple[str, ...] = ("neurons", "random", "sae")  # any of neurons, random, sae
    sae_layers: tuple[int, ...] = (2, 3)  # encoder blocks whose hook_resid_post gets an SAE
    sae_architecture: str = simple_parsing.field(default="batchtopk", choices=("batchtopk", "topk", "standard"))
    sae_max_vectors: int = 2_000_000  # activation vectors kept in memory per SAE (every frame of the default corpus)
    sae_training_vectors: int = 2_000_000  # vectors shown to each SAE in training (~7 min each on 2 cores; docs/features.md)
    mode: str = "auto"  # auto, exact, short or short-bf16; auto: short-bf16 where a matmul probe finds bf16 fast, else short
    batch_size: int = 32  # clips per forward pass
    top_k: int = 32  # top clips kept per feature
    random_features: int = 384  # random directions per hook, the baseline
    html: bool = True  # write the listening pages
    html_top: int = 24  # features per page with rendered audio and spectrograms
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)  # --executor local|ray, --ray-address, ...

    def validate(self) -> None:
        super().validate()
        if self.mode not in MODE_CHOICES:
            raise WhisperLensError(f"--mode must be one of {', '.join(MODE_CHOICES)}, not {self.mode!r}")
        self.harvest_config().validate()
        self.executor.validate()

    def store_dir(self) -> Path:
        return Path(self.store) if self.store else Path("runs") / "features" / self.model.model / choose_mode(self.mode)

    def harvest_config(self, sae_paths: dict[str, str] | None = None) -> HarvestConfig:
        return HarvestConfig(model=self.model.model, hooks=self.hooks, layers=self.layers, bases=self.bases,
                             sae_paths=sae_paths or {}, random_features=self.random_features, mode=self.mode,
                             batch_size=self.batch_size, top_k=self.top_k, seed=self.seed, device=self.model.device)

    def model_spec(self):
        """short-bf16 runs the model in bfloat16; the other modes in the model spec's dtype."""
        from dataclasses import replace

        return replace(self.model, dtype="bfloat16") if choose_mode(self.mode) == "short-bf16" else self.model

    def model_request(self):
        """The model as a Ray worker loads it: the harvest mode's precision, with the study's interventions."""
        import json

        from ..distributed import ModelRequest

        spec = self.model_spec()
        return ModelRequest(spec.model, spec.dtype, spec.device, json.dumps(self.interventions))
