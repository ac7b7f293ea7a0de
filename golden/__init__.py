"""The executable specification of gatework, NumPy only.

Number formats and the one rounding rule (:mod:`.fixed`), the activation table
(:mod:`.activations`), the formats of a build (:mod:`.formats`), and float and bit-exact
fixed-point models of every block: GRU (:mod:`.gru`), GLU (:mod:`.glu`) and the sequence
transposer (:mod:`.transposer`). Weight import from PyTorch, ONNX and Keras is in
:mod:`.importers`. The gateware imports its formats and tables from here.
"""

from .fixed import QFormat, SaturationCounter, rescale
from .activations import ActivationTable
from .formats import NumberFormats, DEFAULT_FORMATS
from .gru import (GRUDirectionWeights, GRUWeights, QuantizedGRUWeights, gru_float, gru_fixed,
                  gru_cell_float, gru_cell_fixed, quantize_gru)
from .glu import glu_float, glu_fixed
from .transposer import pack, unpack


__all__ = [
    "QFormat", "SaturationCounter", "rescale", "ActivationTable", "NumberFormats",
    "DEFAULT_FORMATS", "GRUDirectionWeights", "GRUWeights", "QuantizedGRUWeights",
    "gru_float", "gru_fixed", "gru_cell_float", "gru_cell_fixed", "quantize_gru",
    "glu_float", "glu_fixed", "pack", "unpack",
]
