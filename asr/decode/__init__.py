"""Decoders: CTC log-probs -> typed hypotheses."""
