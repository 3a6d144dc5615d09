"""The billing jobs on the store and publisher ports: meter, aggregate, rate, close.

The cloud handlers in ``functions/`` only decode their trigger into these calls.
"""
