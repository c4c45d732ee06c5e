"""dmm_engine: dataflow matrix machines — V-values, neurons, networks, engines, zoo.

No I/O frameworks here: this package never imports Kafka, Faust, Prometheus or the CLI.
"""

from dmm_engine import vvalue, zoo
from dmm_engine.drivers import (
    MessageFeed,
    TimerDrivenText,
    one_hot,
    run_messages,
    run_timer_driven,
    split_symbols,
    step_message,
)
from dmm_engine.errors import (
    CompileError,
    DmmError,
    ModelFileError,
    NetworkValidationError,
    UnknownNeuronTypeError,
    VValueError,
)
from dmm_engine.interpreter import State, cycle, initial_state, read_outputs
from dmm_engine.modelfile import (
    load_matrix,
    load_model,
    network_from_dict,
    network_to_dict,
    save_model,
)
from dmm_engine.network import Network, count_links, links, validate
from dmm_engine.neurons import NeuronRegistry, NeuronType, default_registry
from dmm_engine.vvalue import VValue

__all__ = [
    "CompileError",
    "DmmError",
    "MessageFeed",
    "ModelFileError",
    "Network",
    "NetworkValidationError",
    "NeuronRegistry",
    "NeuronType",
    "State",
    "TimerDrivenText",
    "UnknownNeuronTypeError",
    "VValue",
    "VValueError",
    "count_links",
    "cycle",
    "default_registry",
    "initial_state",
    "links",
    "load_matrix",
    "load_model",
    "network_from_dict",
    "network_to_dict",
    "one_hot",
    "read_outputs",
    "run_messages",
    "run_timer_driven",
    "save_model",
    "split_symbols",
    "step_message",
    "validate",
    "vvalue",
    "zoo",
]
