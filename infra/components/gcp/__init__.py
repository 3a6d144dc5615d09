"""The GCP billing cell: one ComponentResource per concern (`meterline:gcp:*`)."""
