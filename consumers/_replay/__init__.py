"""The parts of :func:`consumers.replay.replay`: lines, log files, the checkpoint, the run."""
