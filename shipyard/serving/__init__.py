"""Model serving: the model server (OIP V2 and /predict), batching, rollouts, prediction log."""
