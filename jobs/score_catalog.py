"""spark-submit entry point: `spark-submit jobs/score_catalog.py --help` (the same as `taosr1 score`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("score_catalog")
