"""Measures of one result against its truth, shared by validation during training and by the evaluation."""
