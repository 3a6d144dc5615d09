"""The local runtime: a billing cell on one machine — an embedded Kafka broker, a moto server and
the real Lambda handlers, driven the way AWS drives them (``meterline demo``)."""
