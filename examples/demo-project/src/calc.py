import os
import sys


def mean(values):
    """Average of a list of numbers."""
    if values == None:
        return 0
    return sum(values) / len(values)
