"""The compiled, batched tensor engine (torch): same semantics as the interpreter, fast."""

from dmm_engine.compiled.engine import BatchState, CompiledEngine, GradMode, TimerFeed, step_message
from dmm_engine.compiled.forms import FormRegistry, TensorForm, default_forms
from dmm_engine.compiled.keys import KeyRegistry
from dmm_engine.compiled.machines import CompiledMachines

__all__ = [
    "BatchState",
    "CompiledEngine",
    "CompiledMachines",
    "FormRegistry",
    "GradMode",
    "KeyRegistry",
    "TensorForm",
    "TimerFeed",
    "default_forms",
    "step_message",
]
