"""spark-submit entry point: `spark-submit jobs/vacuum.py --help` (the same as `taosr1 vacuum`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("vacuum")
