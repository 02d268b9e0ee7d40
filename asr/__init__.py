"""asr: recurrent-network (BiLSTM/BiGRU/RNN) CTC speech recognition.

Python API:
    >>> import asr
    >>> model = asr.load_model("exp/an4/model.pt")
    >>> model.transcribe(["utt1.wav"])
"""

__version__ = "0.1.0"


def load_model(path, device: str = "cpu"):
    """Load a trained model file; see :class:`asr.inference.Recognizer`."""
    from asr.inference import load_model as _load

    return _load(path, device)


__all__ = ["load_model", "__version__"]
