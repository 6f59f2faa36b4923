"""Fitting activation shapes to target curves (Levenberg-Marquardt), e.g. CPAF initialisers."""
