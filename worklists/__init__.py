"""Pure reading-worklist rules: priorities, SLA deadlines, consultation status, ordering.

No I/O and no clock reads: time is always a parameter, so every rule is testable with plain values.
"""
