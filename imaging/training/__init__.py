"""Training: cached frozen-trunk features, heads, text alignment, the weights bundle."""
