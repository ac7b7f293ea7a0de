"""What every backend is: the base class, and the warning of values saturated on the way in.

In a module of its own so that the backends that live in other modules (:mod:`.fpga`) and the
registry that chooses among them (:mod:`.backends`) both import it without importing each
other.
"""

import warnings


__all__ = ["Backend", "SaturationWarning", "warn_saturation"]


class SaturationWarning(UserWarning):
    """Values fell outside a fixed-point format and were saturated (never wrapped)."""


class Backend:
    """A place where models run. Subclasses set ``name`` and ``fixed_point``."""

    name = None
    fixed_point = False

    def gru(self, weights, formats, x, h0, lengths):
        """Run a GRU: ``x`` ``(T, N, D)``, ``h0`` ``(L*dirs, N, H)`` or None, ``lengths``
        ``(N,)`` -> ``(output, h_n)``, all float64 NumPy, time-major."""
        raise NotImplementedError

    def glu(self, formats, x, dim):
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


def warn_saturation(counter, when):
    """One :class:`SaturationWarning` saying what ``counter`` saw, if anything, ``when``."""
    if counter.total:
        warnings.warn(f"during {when}: {counter.report()}", SaturationWarning, stacklevel=4)
