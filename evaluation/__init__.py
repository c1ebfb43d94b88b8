"""Measuring recommendations, not a pipeline stage: ranking metrics (also the train stage's promotion
holdout), held-out users ranked by the real rankers (also the LLM gate), and `recs eval`'s comparison of methods."""
