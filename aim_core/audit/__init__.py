"""The audit: records of every attempt, the JSONL hash chain, and reading it back."""
