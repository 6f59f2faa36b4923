"""Fitting activation shapes to target curves: ``solver`` (a generic Levenberg-Marquardt
least-squares solver) and ``curve_fit`` (``fit_curve`` over an activation family's record).
Neither imports an activation family; families (PAU's default initial values) import them."""
