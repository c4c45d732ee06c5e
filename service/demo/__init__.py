"""`dmm demo`: broker, worker and trainer on one machine; live text; a hot swap; a summary."""

from service.demo.run import DemoError, DemoOptions, DemoSummary, describe, run_demo

__all__ = ["DemoError", "DemoOptions", "DemoSummary", "describe", "run_demo"]
