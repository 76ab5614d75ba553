"""The wire contracts (generated from proto/ into `gen/`) and their conversions to core types.

The data plane and the control plane share only this package and `gossamer.core`.
"""
