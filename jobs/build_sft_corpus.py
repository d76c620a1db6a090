"""spark-submit entry point: `spark-submit jobs/build_sft_corpus.py --help` (the same as `taosr1 corpus sft`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("build_sft_corpus")
