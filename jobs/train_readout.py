"""spark-submit entry point: `spark-submit jobs/train_readout.py --help` (the same as `taosr1 train readout`)."""

from taosr1.cli import run_job

if __name__ == "__main__":
    run_job("train_readout")
