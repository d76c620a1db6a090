"""spark-submit entry point: `spark-submit jobs/evaluate.py --help` (the same as `taosr1 evaluate`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("evaluate")
