"""taosr1: TaoSR1's data side on Spark and Delta (corpora, pass@N, TRL hand-off, nightly CumPT scoring)."""

__version__ = "0.1.0"
