"""spark-submit entry point: `spark-submit jobs/label_difficulty.py --help` (the same as `taosr1 corpus difficulty`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("label_difficulty")
