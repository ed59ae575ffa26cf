"""Raw landing of the Sparkify feed: files in, jsonb rows (or rejects) out, via COPY."""
