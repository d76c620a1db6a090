"""spark-submit entry point: `spark-submit jobs/load_labels.py --help` (the same as `taosr1 load-labels`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("load_labels")
