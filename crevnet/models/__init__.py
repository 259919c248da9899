"""Loading and running a trained model: checkpoints, bundled names, devices, eval mode."""
