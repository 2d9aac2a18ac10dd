"""Sparse autoencoders on Whisper activations, trained with SAELens and stored in its format.

SAELens is imported only inside the functions that need it: importing it takes seconds.
"""

from .format import load_sae, save_sae
from .train import SAETrainingConfig, SAETrainingResult, train_sae

__all__ = ["SAETrainingConfig", "SAETrainingResult", "load_sae", "save_sae", "train_sae"]
