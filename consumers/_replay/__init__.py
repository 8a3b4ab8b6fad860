"""The parts of :func:`consumers.replaying.replay`: lines, log files, the checkpoint, the run."""
