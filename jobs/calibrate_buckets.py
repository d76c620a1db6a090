"""spark-submit entry point: `spark-submit jobs/calibrate_buckets.py --help` (the same as `taosr1 calibrate`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("calibrate_buckets")
