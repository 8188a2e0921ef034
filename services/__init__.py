"""Services around dad_core: the sample generator, the sample store, and (elsewhere) training and the API.

Side effects (storage, Ray, HTTP) live here, never in dad_core.
"""
