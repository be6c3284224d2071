"""Normalisation shared by the rules and identification: statutes, addresses, names, free text.

Pure functions, cached where the same value recurs across a batch; no I/O, no policy lookups.
"""
