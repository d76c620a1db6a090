"""spark-submit entry point: `spark-submit jobs/promote_model.py --help` (the same as `taosr1 promote`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("promote_model")
