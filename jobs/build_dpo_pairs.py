"""spark-submit entry point: `spark-submit jobs/build_dpo_pairs.py --help` (the same as `taosr1 corpus dpo`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("build_dpo_pairs")
