"""Activation families: ``family.py`` (the ``ActivationFamily`` record and the generic NNX
module), one file per family (``cpaf``, ``prelu``, ``elu``, ``fixed``, ``apl``, ``pau``,
``swish``), ``registry`` (the table of records), ``linen`` (the generic Linen module),
``export`` (NumPy) and ``initializers`` (Table 1). Importing this package registers nothing."""
