"""The HTTP shell: request validation, the eleven endpoints, envelopes."""
