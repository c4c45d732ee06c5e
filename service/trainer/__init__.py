"""The trainer sidecar: samples live text, fine-tunes the running matrix, publishes if better.

`run_trainer` runs the Faust app (`service.trainer.app`); `TrainerLoop` is one replica's runs
(`service.trainer.loop`); `fine_tune` and `judge` are the pure training step and gate
(`service.trainer.tuning`). The worker never imports this package.
"""

from service.trainer.app import TrainerReport, run_trainer
from service.trainer.loop import RunOutcome, TrainerLoop
from service.trainer.sampler import StreamSampler, is_held_out
from service.trainer.tuning import TuningConfig, TuningResult, Verdict, fine_tune, judge

__all__ = [
    "RunOutcome",
    "StreamSampler",
    "TrainerLoop",
    "TrainerReport",
    "TuningConfig",
    "TuningResult",
    "Verdict",
    "fine_tune",
    "is_held_out",
    "judge",
    "run_trainer",
]
