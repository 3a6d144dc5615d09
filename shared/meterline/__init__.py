"""meterline: usage-based billing. The rating core lives in this package and is pure Python."""
