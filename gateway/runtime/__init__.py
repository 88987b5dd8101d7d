"""The process: the CLI, start-up checks, assembling the parts, serving, workers, logs."""
