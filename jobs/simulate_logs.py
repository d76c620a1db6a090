"""spark-submit entry point: `spark-submit jobs/simulate_logs.py --help` (the same as `taosr1 simulate-logs`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("simulate_logs")
