"""What a training stage holds and a checkpoint restores: the optimizer (`optimizer`),
which parameter groups train (`freezing`), and the train state with its shardings
(`train_state.TrainState`, `train_state.StateSpec`). The training loop (`training/`),
the workdir loader and the TPU tooling build on it; it imports only the model, the
sharding rules and `model_init`."""
