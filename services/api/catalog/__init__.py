"""The catalog: a database index of the store (runs, sample sets and their rows, evaluation results).

The store is the source of truth; `python -m services.api.catalog rebuild --store URI --database URL`
recreates every row from it.
"""
