"""The one place the worker gets its machines: a network and an engine behind `StreamMachines`."""

from __future__ import annotations

from dmm_engine import Network, NeuronRegistry, zoo
from dmm_engine.engines import make_machines
from dmm_engine.streams import StreamMachines
from service.settings import Settings

DEFAULT_MODEL_VERSION = 1


def load_network(settings: Settings, registry: NeuronRegistry) -> Network:
    """The network of ``DMM_WORKER_MODEL`` (a zoo name or a model file).

    Raises:
        ModelFileError: neither a zoo name nor a valid model file.
    """
    return zoo.resolve(settings.worker.model, registry)


def build_machines(
    settings: Settings, network: Network, registry: NeuronRegistry
) -> StreamMachines:
    """The per-stream machines the worker drives, on ``DMM_WORKER_ENGINE`` (compiled by default).

    Sets torch's thread count (``DMM_WORKER_ENGINE_THREADS``): a process-wide setting, so the
    worker process owns it, not the engine library.
    """
    if settings.worker.engine == "compiled":
        import torch  # only the compiled engine needs it; `dmm swap` and friends start faster

        torch.set_num_threads(settings.worker.engine_threads)
    return make_machines(network, registry, settings.worker.engine)


def model_version_of(network: Network) -> int:
    """The model version stamped on outputs: the model file's ``metadata.version``, else 1."""
    version = network.metadata.get("version", DEFAULT_MODEL_VERSION)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1
