"""Quality gates: great-expectations suites (``quality/*.json``) run on Spark DataFrames before publication."""

from taosr1.quality.gates import GateResult, QualityGateFailed, run_gate

__all__ = ["GateResult", "QualityGateFailed", "run_gate"]
