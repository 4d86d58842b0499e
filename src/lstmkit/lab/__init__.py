"""The memory lab: tasks from the long-memory literature, a reproducible trainer, gradient-flow measurement
and the RNN-vs-GRU-vs-LSTM demo. Imported on demand (``import lstmkit`` does not import it); plotting,
progress bars, safetensors and scikit-learn are imported only by the functions that need them."""
