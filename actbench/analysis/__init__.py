"""Statistical procedures behind suite decisions (sequential designs)."""
