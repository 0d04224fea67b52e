"""The CNN: a recognizer we train (train.py), its checkpoints (checkpoint.py) and the solver that reads with them."""

from captchas.errors import UserError


class CNNError(UserError):
    """Training settings, training data or a checkpoint that the CNN cannot use; the message names the fix."""
