"""The job pipeline: a train job's stages (data, training, registration, evaluation) and evaluation jobs, run on Ray."""
