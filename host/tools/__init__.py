"""The tooling around the API: the ``gatework`` command line (:mod:`.cli`), the benchmarks
(:mod:`.bench`) and the performance report (:mod:`.performance`).

The API (``gatework.host``) never imports this package; these modules use the API, the
gateware, the simulators and the board builds, and the libraries only they need (scikit-learn,
matplotlib).
"""
