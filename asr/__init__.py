"""asr: recurrent-network CTC speech recognition."""
