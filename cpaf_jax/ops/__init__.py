"""Pure array operations: the bases, parameter sharing, the CPAF function and its fused 2x2 pool.

Nothing here knows about modules, training or activation families; every other layer of the
package builds on these functions.
"""
