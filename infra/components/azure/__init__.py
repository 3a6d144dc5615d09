"""The Azure billing cell: one ComponentResource per concern (`meterline:azure:*`)."""
